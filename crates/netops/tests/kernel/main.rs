//! Kernel-level tests of netops. Each test runs in its own pair of fresh network namespaces
//! (see `sandbox`), asserts on state read back from the kernel, and cross-checks with `ip -j`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sandbox;

mod addresses;
mod bridges;
mod conntrack;
mod links;
mod netlink;
mod netns;
mod routes;
mod sysctls;
mod veths;
