//! The `portmap` chained plugin: publishes container ports on the host's addresses (DNAT),
//! with masquerade of hairpin and localhost-originated traffic.

pub mod config;
mod plugin;

pub use plugin::Portmap;
