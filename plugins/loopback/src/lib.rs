//! The `loopback` plugin: brings `lo` up in the container's netns on ADD and down on DEL.
//! CNI_IFNAME is not used: the interface is always `lo`.
//!
//! The result copies the reference's exactly, including its one quirk: whatever the config's
//! version, the result has the 1.0.0 shape (`ips` entries with `interface` and no `version`)
//! under the config's `cniVersion`, listing the addresses `lo` really has (so no `::1/128` when
//! IPv6 is disabled in the netns). Chained after another plugin it passes `prevResult` through.

use cni_protocol::{CniError, CniResult, ErrorCode, Plugin, Request};
use netops::{Link, Netns, RouteSocket};
use serde_json::{json, Value};
use std::path::Path;

/// The loopback device's name in every netns.
const LO: &str = "lo";
/// What the reference reports as `lo`'s hardware address.
const LO_MAC: &str = "00:00:00:00:00:00";

pub struct Loopback;

fn kernel(e: netops::Error) -> CniError {
    CniError::internal(e.to_string())
}

fn netns_path(req: &Request) -> Result<&Path, CniError> {
    req.invocation.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "required env variables [CNI_NETNS] missing",
        )
    })
}

/// A route socket inside CNI_NETNS; a path that is not a netns is the runtime's error.
fn open_in(path: &Path) -> Result<RouteSocket, CniError> {
    let ns = Netns::open(path).map_err(|e| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("failed to open netns {:?}: {e}", path.display()),
        )
    })?;
    RouteSocket::open_in(&ns).map_err(kernel)
}

fn lo_link(sock: &mut RouteSocket, path: &Path) -> Result<Link, CniError> {
    sock.link_by_name(LO).map_err(kernel)?.ok_or_else(|| {
        CniError::internal(format!(
            "no loopback interface in netns {:?}",
            path.display()
        ))
    })
}

/// The result the reference prints: `lo` with its addresses, IPv4 first.
fn lo_result(
    version_text: &str,
    sandbox: &Path,
    sock: &mut RouteSocket,
    lo: &Link,
) -> Result<Value, CniError> {
    let mut addrs = sock.list_addresses(Some(lo.index), None).map_err(kernel)?;
    addrs.sort_by_key(|a| a.network.is_ipv6());
    let ips: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"interface": 0, "address": a.network.to_string()}))
        .collect();
    Ok(json!({
        "cniVersion": version_text,
        "interfaces": [{"name": lo.name, "mac": LO_MAC, "sandbox": sandbox.display().to_string()}],
        "ips": ips,
        // The reference's result types always marshal `dns`, as `{}` when empty.
        "dns": {},
    }))
}

impl Plugin for Loopback {
    fn add(&self, _req: &Request) -> Result<CniResult, CniError> {
        // Unused: ADD's output is built by add_output, which skips version conversion.
        Err(CniError::internal("loopback ADD renders its own result"))
    }

    fn add_output(&self, req: &Request) -> Result<Value, CniError> {
        let path = netns_path(req)?;
        let mut sock = open_in(path)?;
        let lo = lo_link(&mut sock, path)?;
        sock.set_link_up(lo.index).map_err(|e| {
            CniError::internal(format!("setting {LO} up in {:?}: {e}", path.display()))
        })?;
        match &req.config.prev_result {
            None | Some(Value::Null) => lo_result(&req.version_text, path, &mut sock, &lo),
            Some(prev) => {
                // Validate it in the config's version, then hand it on as the runtime sent it.
                req.prev_result()?;
                let mut out = prev.clone();
                if let Some(obj) = out.as_object_mut() {
                    obj.insert("cniVersion".into(), req.version_text.clone().into());
                    // The reference re-marshals prevResult, which always prints `dns`.
                    obj.entry("dns").or_insert_with(|| json!({}));
                }
                Ok(out)
            }
        }
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        // An empty CNI_NETNS or a netns that is already gone has no loopback left to take down.
        let Some(path) = req.invocation.netns.as_deref() else {
            return Ok(());
        };
        let Ok(ns) = Netns::open(path) else {
            return Ok(());
        };
        let mut sock = RouteSocket::open_in(&ns).map_err(kernel)?;
        match sock.link_by_name(LO).map_err(kernel)? {
            Some(lo) => sock.set_link_down(lo.index).map_err(|e| {
                CniError::internal(format!("setting {LO} down in {:?}: {e}", path.display()))
            }),
            None => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let path = netns_path(req)?;
        let mut sock = open_in(path)?;
        if lo_link(&mut sock, path)?.up {
            Ok(())
        } else {
            Err(CniError::internal("loopback interface is down"))
        }
    }

    fn gc(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn status(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
}
