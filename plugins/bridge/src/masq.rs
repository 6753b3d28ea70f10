//! `ipMasq`: which backend, and the cleanup of every backend's state (ours and the
//! reference's) on DEL and GC so a node can switch binaries, or defaults, without leaking rules.

use crate::config::BridgeConf;
use crate::errors::from_firewall;
use cni_protocol::CniError;
use firewall::{Attachment, Backend, MasqueradeBackend};
use ipnetwork::IpNetwork;

fn open(conf: &BridgeConf) -> Result<Box<dyn MasqueradeBackend>, CniError> {
    firewall::masquerade(Backend::resolve(conf.ip_masq_backend)).map_err(from_firewall)
}

pub fn add(conf: &BridgeConf, att: &Attachment, addresses: &[IpNetwork]) -> Result<(), CniError> {
    open(conf)?.add(att, addresses).map_err(from_firewall)
}

pub fn check(conf: &BridgeConf, att: &Attachment, addresses: &[IpNetwork]) -> Result<(), CniError> {
    open(conf)?.check(att, addresses).map_err(from_firewall)
}

/// Removes the attachment's state from every backend and whatever the reference made for it;
/// tries everything and reports every failure.
pub fn del(att: &Attachment) -> Result<(), CniError> {
    del_keep_open(att).0
}

/// [`del`], handing back our nftables backend so the caller can close it later. Closing an
/// nftables socket right after a deletion waits out an RCU grace period (the kernel frees the
/// deleted rules first) while holding nftables' commit lock, which unregistering a veth needs
/// too; kept open across the veth deletion, the kernel has freed them by the time it is closed.
///
/// The configured backend does not matter: the reference's state (whose iptables shape our
/// iptables backend writes too) and our nftables state are both removed, so an attachment made
/// under another default or configuration is not stranded.
pub fn del_keep_open(
    att: &Attachment,
) -> (Result<(), CniError>, Option<Box<dyn MasqueradeBackend>>) {
    let mut errors = Vec::new();
    // The reference's state first: its lookups open and close nftables sockets of their own,
    // and any such close after our deletion below would wait out the grace period after all.
    if let Err(e) = firewall::remove_reference_state(att) {
        errors.push(e);
    }
    let mut kept = None;
    if firewall::nftables_usable() {
        match firewall::masquerade(Backend::Nftables) {
            Ok(mut backend) => {
                if let Err(e) = backend.del(att) {
                    errors.push(e);
                }
                kept = Some(backend);
            }
            Err(e) => errors.push(e),
        }
    }
    (cleanup_result(errors), kept)
}

/// Removes masquerade state of `network`'s attachments that are not in `keep`, in both of our
/// backends (a network may have switched) and the reference's.
pub fn gc(network: &str, keep: &[Attachment]) -> Result<(), CniError> {
    let mut errors = Vec::new();
    let mut backends = vec![Backend::Iptables];
    if firewall::nftables_usable() {
        backends.push(Backend::Nftables);
    }
    for backend in backends {
        if let Err(e) = firewall::masquerade(backend).and_then(|mut b| b.gc(network, keep)) {
            errors.push(e);
        }
    }
    if let Err(e) = firewall::gc_reference_state(network, keep) {
        errors.push(e);
    }
    cleanup_result(errors)
}

fn cleanup_result(errors: Vec<firewall::Error>) -> Result<(), CniError> {
    firewall::Error::all(errors).map_err(|e| CniError::internal(format!("masquerade cleanup: {e}")))
}
