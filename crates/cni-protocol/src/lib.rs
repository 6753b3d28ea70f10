//! The CNI protocol as a plugin binary sees it: environment variables, the stdin network
//! configuration, version negotiation, results rendered per spec version, error objects with the
//! spec's codes, and executing a delegated (IPAM) plugin. Kernel work lives elsewhere.

pub mod args;
pub mod config;
pub mod crash;
pub mod delegate;
pub mod env;
pub mod error;
pub mod gojson;
pub mod log;
pub mod result;
pub mod skel;
pub mod version;

pub use config::NetConf;
pub use env::{Command, Invocation};
pub use error::{CniError, ErrorCode};
pub use result::CniResult;
pub use skel::{Plugin, Request};
pub use version::Version;
