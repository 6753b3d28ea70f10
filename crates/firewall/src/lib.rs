//! The suite's firewall layer: the kernel packet-filter state plugins keep per attachment.
//!
//! Layout: a toolkit, features on top of it, and one backend seam.
//! - Toolkit: `nft` (private) is the only code that knows nf_tables: encoding, expressions,
//!   table objects, and generation-bound transactions over netops's netlink transport;
//!   [`iptables`] runs `iptables`/`iptables-restore` and knows the reference's rule shapes.
//! - Features describe layout and plan, and call the toolkit: [`masquerade`] (the bridge's
//!   `ipMasq`), [`portmap`] (+ [`portmap_iptables`]), [`macspoof`] (the bridge's
//!   `macspoofchk`, nftables only, as in the reference), and the removal of what the Go
//!   reference made ([`remove_reference_state`], [`gc_reference_state`],
//!   [`portmap::remove_reference_state`]).
//! - Seam: [`Backend`] is the one backend kind; [`Backend::resolve`] applies the reference's
//!   default. Each feature has one trait with an nftables and an iptables implementation:
//!   [`MasqueradeBackend`] (opened by [`masquerade`](fn@masquerade)) and
//!   [`portmap::PortMapper`] (opened by [`portmap::open`]).
//!
//! Whatever backend is in use, DEL and GC should also remove the reference's state and the
//! other backend's; they cost a few netlink lookups when there is nothing to remove.
//!
//! All kernel state lives in the network namespace of the calling thread (sockets are opened
//! there, commands are started from it). This crate knows nothing of the CNI protocol.

mod backend;
mod error;
pub mod iptables;
pub mod macspoof;
pub mod masquerade;
mod naming;
mod nft;
pub mod portmap;
pub mod portmap_iptables;
mod reference;

use std::fmt;

use ipnetwork::IpNetwork;

pub use backend::{iptables_usable, nftables_usable, Backend};
pub use error::{Error, Result};
pub use iptables::IptablesBackend;
pub use masquerade::NftablesBackend;
pub use naming::{reference_iptables_chain, reference_iptables_comment};
pub use reference::{gc_reference_state, remove_reference_state, REFERENCE_CHAIN, REFERENCE_TABLE};

/// One container interface on one network: what masquerade state is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attachment<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

impl fmt::Display for Attachment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "network {:?} container {:?} interface {:?}",
            self.network, self.container_id, self.ifname
        )
    }
}

/// Installs, verifies and removes the masquerade state of attachments.
///
/// Addresses are the pod's addresses with their prefix (`10.1.0.5/24`): traffic from the
/// address to anything outside that subnet and outside multicast is masqueraded.
pub trait MasqueradeBackend {
    /// Make `addresses` (all of the attachment's, any family) masquerade. Repeating it is
    /// harmless; addresses the attachment had before and are not listed stop masquerading.
    fn add(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()>;

    /// Remove the attachment's state. Needs no address, so it works after the container's
    /// network namespace is gone; missing state is success.
    fn del(&mut self, att: &Attachment) -> Result<()>;

    /// Verify the state `add` made; the error names what is missing.
    fn check(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()>;

    /// Remove the state of every attachment of `network` that is not in `keep`.
    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()>;
}

/// Open the masquerade implementation of `backend` in the calling thread's network namespace.
pub fn masquerade(backend: Backend) -> Result<Box<dyn MasqueradeBackend>> {
    Ok(match backend {
        Backend::Nftables => Box::new(NftablesBackend::new()?),
        Backend::Iptables => Box::new(IptablesBackend::new()),
    })
}
