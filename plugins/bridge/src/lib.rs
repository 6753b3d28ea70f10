//! The `bridge` plugin: a Linux bridge on the host, a veth pair per attachment with one end in
//! the container's netns, addresses from the IPAM delegate, optional gateway and masquerade.

mod check;
pub mod config;
mod container;
mod errors;
mod host;
mod macspoof;
mod masq;
pub mod naming;
pub mod plan;
mod plugin;

pub use plugin::Bridge;
