//! `ipMasq`: which backend, and the cleanup of every backend's state (ours and the
//! reference's) on DEL and GC so a node can switch binaries without leaking rules.

use crate::config::{BridgeConf, MasqBackend};
use crate::errors::firewall;
use cni_protocol::CniError;
use firewall::{Attachment, BackendKind, MasqueradeBackend};
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
    del_keep_open(conf, att).0
}

/// [`del`], handing back the backend so the caller can close it later. Closing an nftables
/// socket right after a deletion waits out an RCU grace period (the kernel frees the deleted
/// rules first) while holding nftables' commit lock, which unregistering a veth needs too; kept
/// open across the veth deletion, the kernel has freed them by the time it is closed.
pub fn del_keep_open(
    conf: &BridgeConf,
    att: &Attachment,
) -> (Result<(), CniError>, Option<Box<dyn MasqueradeBackend>>) {
    let mut failures = Vec::new();
    // The reference's state first: its lookups open and close nftables sockets of their own,
    // and any such close after our deletion below would wait out the grace period after all.
    if let Err(e) = firewall::remove_reference_state(att) {
        failures.push(e.to_string());
    }
    let backend = match firewall::open(kind(conf)) {
        Ok(mut backend) => {
            if let Err(e) = backend.del(att) {
                failures.push(e.to_string());
            }
            Some(backend)
        }
        Err(e) => {
            failures.push(e.to_string());
            None
        }
    };
    (joined(failures), backend)
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
