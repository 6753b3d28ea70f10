//! host-local IPAM: allocates addresses from configured ranges; leases are files under a data
//! dir in the reference's format, serialised by a per-network file lock.
//!
//! `config` and `range` turn stdin into canonical range sets, `allocator` picks addresses
//! through the [`store::LeaseStore`] trait, `disk` is the only code touching files, `plugin`
//! wires the CNI verbs together.

pub mod allocator;
pub mod boot;
pub mod config;
pub mod disk;
pub mod dns;
pub mod plugin;
pub mod range;
pub mod store;
