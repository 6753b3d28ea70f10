//! `ipMasq`: which backend, and the cleanup of every backend's state (ours and the
//! reference's) on DEL and GC so a node can switch binaries without leaking rules.

use crate::config::{BridgeConf, MasqBackend};
use crate::errors::firewall;
use cni_protocol::CniError;
use firewall::{Attachment, BackendKind};
use ipnetwork::IpNetwork;

fn kind(conf: &BridgeConf) -> BackendKind {
    match conf.ip_masq_backend {
        Some(MasqBackend::Nftables) => BackendKind::Nftables,
        Some(MasqBackend::Iptables) => BackendKind::Iptables,
        None => firewall::detect_default(),
    }
}

pub fn add(conf: &BridgeConf, att: &Attachment, addresses: &[IpNetwork]) -> Result<(), CniError> {
    let mut backend = firewall::open(kind(conf)).map_err(firewall)?;
    backend.add(att, addresses).map_err(firewall)
}

pub fn check(conf: &BridgeConf, att: &Attachment, addresses: &[IpNetwork]) -> Result<(), CniError> {
    let mut backend = firewall::open(kind(conf)).map_err(firewall)?;
    backend.check(att, addresses).map_err(firewall)
}

/// Removes the attachment's state from the configured backend and whatever the reference made
/// for it; tries everything and reports every failure.
pub fn del(conf: &BridgeConf, att: &Attachment) -> Result<(), CniError> {
    let mut failures = Vec::new();
    match firewall::open(kind(conf)) {
        Ok(mut backend) => {
            if let Err(e) = backend.del(att) {
                failures.push(e.to_string());
            }
        }
        Err(e) => failures.push(e.to_string()),
    }
    if let Err(e) = firewall::remove_reference_state(att) {
        failures.push(e.to_string());
    }
    joined(failures)
}

/// Removes masquerade state of `network`'s attachments that are not in `keep`, in both of our
/// backends (a network may have switched) and the reference's.
pub fn gc(network: &str, keep: &[Attachment]) -> Result<(), CniError> {
    let mut failures = Vec::new();
    let mut kinds = vec![BackendKind::Iptables];
    if firewall::detect_default() == BackendKind::Nftables {
        kinds.push(BackendKind::Nftables);
    }
    for kind in kinds {
        let result = firewall::open(kind).and_then(|mut b| b.gc(network, keep));
        if let Err(e) = result {
            failures.push(e.to_string());
        }
    }
    if let Err(e) = firewall::gc_reference_state(network, keep) {
        failures.push(e.to_string());
    }
    joined(failures)
}

fn joined(failures: Vec<String>) -> Result<(), CniError> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::internal(format!(
            "masquerade cleanup: {}",
            failures.join("; ")
        )))
    }
}
