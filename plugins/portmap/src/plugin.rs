//! Verb handlers: ADD installs the attachment's port mappings and returns `prevResult`
//! unchanged; DEL, GC and CHECK work on the state keyed by network, container ID and ifname.

use crate::config::{Backend, PortmapConf};
use cni_protocol::{CniError, CniResult, Plugin, Request};
use firewall::portmap::{PortMapping, PortmapNft, Protocol, SnatOptions};
use firewall::portmap_iptables::{self, IptablesOptions};
use firewall::Attachment;
use ipnetwork::IpNetwork;
use netops::conntrack::IPPROTO_UDP;

pub const ABOUT: &str = concat!("CNI portmap plugin v", env!("CARGO_PKG_VERSION"));

pub struct Portmap;

fn fw(e: firewall::Error) -> CniError {
    CniError::internal(e.to_string())
}

fn load(req: &Request) -> Result<PortmapConf, CniError> {
    PortmapConf::parse(&req.raw)
}

/// The configured backend, or nftables when the kernel offers it (iptables otherwise).
fn backend(conf: &PortmapConf) -> Backend {
    if conf.needs_iptables() {
        return conf.backend.unwrap_or(Backend::Iptables);
    }
    conf.backend.unwrap_or(match firewall::detect_default() {
        firewall::BackendKind::Nftables => Backend::Nftables,
        firewall::BackendKind::Iptables => Backend::Iptables,
    })
}

fn iptables_options(conf: &PortmapConf) -> IptablesOptions<'_> {
    IptablesOptions {
        conditions_v4: &conf.conditions_v4,
        conditions_v6: &conf.conditions_v6,
        external_set_mark_chain: conf.external_set_mark_chain.as_deref(),
    }
}

fn attachment(req: &Request) -> Attachment<'_> {
    Attachment {
        network: &req.config.name,
        container_id: &req.invocation.container_id,
        ifname: &req.invocation.ifname,
    }
}

/// The first IPv4 and first IPv6 address of a sandbox interface, as the reference picks them.
fn container_ips(prev: &CniResult) -> Vec<IpNetwork> {
    let in_sandbox = |idx: Option<usize>| {
        idx.and_then(|i| prev.interfaces.get(i))
            .is_some_and(|iface| iface.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
    };
    let mut out: Vec<IpNetwork> = Vec::new();
    for ip in &prev.ips {
        let addr = ip.address;
        if in_sandbox(ip.interface) && !out.iter().any(|a| a.is_ipv4() == addr.is_ipv4()) {
            out.push(addr);
        }
    }
    out
}

fn require_prev(req: &Request) -> Result<CniResult, CniError> {
    req.prev_result()?.ok_or_else(|| {
        CniError::invalid_config("must be called as a chained plugin: prevResult is missing")
    })
}

/// `route_localnet=1` on the host-side interfaces of the attachment, so 127.0.0.1 traffic
/// DNATed towards the pod is routed; interfaces that do not exist are skipped.
fn enable_route_localnet(prev: &CniResult) -> Result<(), CniError> {
    for iface in &prev.interfaces {
        if iface.sandbox.as_deref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let key = format!("net/ipv4/conf/{}/route_localnet", iface.name);
        let Ok(path) = netops::sysctl_path(&key) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        netops::sysctl_write(&key, "1").map_err(|e| CniError::internal(e.to_string()))?;
    }
    Ok(())
}

/// Deletes the conntrack entries to the mapped UDP host ports (any address), as the reference
/// does after ADD: otherwise a client that keeps its source port stays NATed to the container
/// that held the port before. Failures are only logged, as by the reference.
fn flush_stale_udp(mappings: &[PortMapping], ips: &[IpNetwork]) {
    let ports: Vec<u16> = (mappings.iter())
        .filter(|m| m.protocol == Protocol::Udp)
        .map(|m| m.host_port)
        .collect();
    if ports.is_empty() {
        return;
    }
    let families: Vec<netops::IpFamily> = ips
        .iter()
        .map(|ip| netops::IpFamily::of(&ip.ip()))
        .collect();
    let flushed = netops::Conntrack::open()
        .and_then(|mut ct| ct.delete_by_orig_dst_port(&families, IPPROTO_UDP, &ports));
    if let Err(e) = flushed {
        for ip in ips {
            cni_protocol::cni_log!(
                "failed to delete stale UDP conntrack entries for {}: {e}",
                ip.ip()
            );
        }
    }
}

fn joined(failures: Vec<String>) -> Result<(), CniError> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::internal(failures.join("; ")))
    }
}

impl Plugin for Portmap {
    fn schema(&self) -> &'static cni_protocol::gojson::Node {
        &crate::config::SCHEMA
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = load(req)?;
        let prev = require_prev(req)?;
        if conf.mappings.is_empty() {
            return Ok(prev);
        }
        let ips = container_ips(&prev);
        if ips.is_empty() {
            return Ok(prev);
        }
        let opts = SnatOptions {
            snat: conf.snat,
            mark_bit: conf.mark_masq_bit,
        };
        let att = attachment(req);
        let installed = match backend(&conf) {
            Backend::Nftables => {
                PortmapNft::new().and_then(|mut nft| nft.add(&att, &conf.mappings, &ips, opts))
            }
            Backend::Iptables => {
                portmap_iptables::add(&att, &conf.mappings, &ips, opts, iptables_options(&conf))
            }
        };
        let ready = installed.map_err(fw).and_then(|()| {
            if conf.snat && ips.iter().any(IpNetwork::is_ipv4) {
                enable_route_localnet(&prev)
            } else {
                Ok(())
            }
        });
        if let Err(e) = ready {
            // Roll back: a failed ADD leaves nothing of this attachment behind.
            let _ = self.del(req);
            return Err(e);
        }
        flush_stale_udp(&conf.mappings, &ips);
        Ok(prev)
    }

    /// Removes our state and whatever the reference's iptables backend made for the same
    /// attachment; tries both and reports every failure.
    fn del(&self, req: &Request) -> Result<(), CniError> {
        load(req)?;
        let att = attachment(req);
        let mut failures = Vec::new();
        // Our nftables state (when the kernel has nf_tables), then the iptables chain that both
        // our iptables backend and the reference's make.
        if firewall::detect_default() == firewall::BackendKind::Nftables {
            if let Err(e) = PortmapNft::new().and_then(|mut nft| nft.del(&att)) {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = firewall::portmap::remove_reference_state(att.network, att.container_id) {
            failures.push(e.to_string());
        }
        joined(failures)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = load(req)?;
        let prev = require_prev(req)?;
        if conf.mappings.is_empty() {
            return Ok(());
        }
        let ips = container_ips(&prev);
        let att = attachment(req);
        match backend(&conf) {
            Backend::Nftables => {
                PortmapNft::new().and_then(|mut nft| nft.check(&att, &conf.mappings, &ips))
            }
            Backend::Iptables => {
                let opts = SnatOptions {
                    snat: conf.snat,
                    mark_bit: conf.mark_masq_bit,
                };
                portmap_iptables::check(&att, &conf.mappings, &ips, opts, iptables_options(&conf))
            }
        }
        .map_err(fw)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        load(req)?;
        let Some(valid) = req.config.gc_valid_attachments() else {
            cni_protocol::cni_log!("GC without cni.dev/valid-attachments: nothing removed");
            return Ok(());
        };
        let keep: Vec<Attachment> = valid
            .iter()
            .map(|v| Attachment {
                network: &req.config.name,
                container_id: &v.container_id,
                ifname: &v.ifname,
            })
            .collect();
        // Both backends (a network may have switched) and the reference's iptables chains.
        let mut failures = Vec::new();
        if firewall::detect_default() == firewall::BackendKind::Nftables {
            if let Err(e) = PortmapNft::new().and_then(|mut nft| nft.gc(&req.config.name, &keep)) {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = portmap_iptables::gc(&req.config.name, &keep) {
            failures.push(e.to_string());
        }
        joined(failures)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        load(req).map(|_| ())
    }
}
