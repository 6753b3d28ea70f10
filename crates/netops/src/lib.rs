//! Kernel operations for CNI plugins: network namespaces, links, bridges, veths, addresses,
//! routes, sysctls and conntrack entries, over a small synchronous netlink transport.
//!
//! No CNI knowledge lives here. The shape follows DESIGN.md §5b: open one [`RouteSocket`] per
//! network namespace up front ([`RouteSocket::open_in`] creates it on a throwaway thread that
//! joined the netns), then drive every request from the calling thread, which never changes
//! namespace. Errors say what was attempted on which object ([`Error`]).

#![warn(missing_docs)]

mod address;
mod bridge;
pub mod conntrack;
mod error;
mod link;
pub mod netlink;
mod netns;
mod route;
mod rtnl;
mod sysctl;
mod veth;

pub use address::{IfAddr, IpFamily};
pub use bridge::{BridgePortChange, BridgeSpec, BridgeVlan, VlanTarget};
pub use conntrack::{Conntrack, CtEntry, CtTuple};
pub use error::{Error, Failure, Result};
pub use link::{validate_ifname, AddrGenMode, BridgePort, Link, MacAddr, MacParseError};
pub use netlink::{NetlinkSocket, RawMessage};
pub use netns::{run_in_netns, Netns};
pub use route::{Route, Scope, TABLE_MAIN};
pub use rtnl::RouteSocket;
pub use sysctl::{
    interface_sysctl_key, set_accept_dad, set_accept_ra, set_arp_notify, set_interface_sysctl,
    sysctl_path, sysctl_read, sysctl_read_in, sysctl_write, sysctl_write_in,
};
pub use veth::VethEnd;
