//! CHECK: compare what `prevResult` says ADD made with what the kernel has now; the first drift
//! found is the error, named.

use crate::config::{format_mac, BridgeConf};
use crate::errors::kernel;
use crate::masq;
use cni_protocol::delegate;
use cni_protocol::result::Interface;
use cni_protocol::{CniError, Command, Request};
use netops::{IpFamily, Link, RouteSocket};

fn drift(msg: impl Into<String>) -> CniError {
    CniError::internal(msg)
}

fn same_mac(expected: Option<&str>, link: &Link) -> bool {
    match (expected, link.mac) {
        (None, _) => true,
        (Some(want), Some(have)) => want.eq_ignore_ascii_case(&format_mac(&have.octets())),
        (Some(_), None) => false,
    }
}

fn find<'a>(
    interfaces: &'a [Interface],
    name: &str,
    sandbox: Option<&str>,
) -> Option<&'a Interface> {
    interfaces
        .iter()
        .find(|i| i.name == name && i.sandbox.as_deref().filter(|s| !s.is_empty()) == sandbox)
}

pub fn check(req: &Request, conf: &BridgeConf) -> Result<(), CniError> {
    let inv = &req.invocation;
    let prev = req
        .prev_result()?
        .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))?;
    if let Some(plugin) = &conf.ipam {
        delegate::delegate(plugin, Command::Check, inv, &req.stdin)?;
    }

    let mut host = RouteSocket::open().map_err(kernel)?;
    let bridge_if = find(&prev.interfaces, &conf.bridge, None).ok_or_else(|| {
        drift(format!(
            "CNI created bridge {} in host namespace was not found in prevResult",
            conf.bridge
        ))
    })?;
    let bridge = host
        .link_by_name(&conf.bridge)
        .map_err(kernel)?
        .ok_or_else(|| drift(format!("Interface name {} not found", conf.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(drift(format!(
            "Interface {} does not have link type of bridge",
            conf.bridge
        )));
    }
    if !same_mac(bridge_if.mac.as_deref(), &bridge) {
        return Err(drift(format!(
            "Bridge interface {} Mac doesn't match: {}",
            conf.bridge,
            bridge_if.mac.as_deref().unwrap_or_default()
        )));
    }
    if conf.promisc != bridge.promisc {
        return Err(drift(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {}",
            conf.bridge, conf.promisc, bridge.promisc
        )));
    }

    let netns_path = crate::plugin::netns_path(req)?;
    let sandbox = netns_path.to_string_lossy();
    let container_if = find(&prev.interfaces, &inv.ifname, Some(&sandbox)).ok_or_else(|| {
        drift(format!(
            "CNI created interface in container {} not found in prevResult (sandbox {sandbox})",
            inv.ifname
        ))
    })?;
    let netns = crate::plugin::open_netns(netns_path)?;
    let mut container = RouteSocket::open_in(&netns).map_err(kernel)?;
    let link = container
        .link_by_name(&inv.ifname)
        .map_err(kernel)?
        .ok_or_else(|| {
            drift(format!(
                "CNI created interface in container {} not found",
                inv.ifname
            ))
        })?;
    if link.kind.as_deref() != Some("veth") {
        return Err(drift(format!(
            "Error: Container interface {} not of type veth",
            inv.ifname
        )));
    }
    if !same_mac(container_if.mac.as_deref(), &link) {
        return Err(drift(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            inv.ifname,
            container_if.mac.as_deref().unwrap_or_default(),
            link.mac
                .map(|m| format_mac(&m.octets()))
                .unwrap_or_default()
        )));
    }
    let peer = link
        .peer_index
        .and_then(|i| host.link_by_index(i).ok().flatten())
        .filter(|p| p.kind.as_deref() == Some("veth"))
        .ok_or_else(|| {
            drift(format!(
                "CNI veth created for bridge {} was not found",
                conf.bridge
            ))
        })?;
    if peer.master != Some(bridge.index) {
        return Err(drift(format!(
            "veth {} is not attached to bridge {}",
            peer.name, conf.bridge
        )));
    }
    if let Some(host_if) = find(&prev.interfaces, &peer.name, None) {
        if !same_mac(host_if.mac.as_deref(), &peer) {
            return Err(drift(format!(
                "Interface {} Mac {} doesn't match host veth Mac",
                peer.name,
                host_if.mac.as_deref().unwrap_or_default()
            )));
        }
    }

    let addresses = container
        .list_addresses(Some(link.index), None)
        .map_err(kernel)?;
    for ip in &prev.ips {
        if !addresses.iter().any(|a| a.network == ip.address) {
            return Err(drift(format!(
                "Failed to match addr {} on interface {}",
                ip.address, inv.ifname
            )));
        }
    }
    let mut routes = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        if prev
            .routes
            .iter()
            .any(|r| IpFamily::of(&r.dst.ip()) == family)
        {
            routes.extend(container.list_routes(Some(family)).map_err(kernel)?);
        }
    }
    for want in &prev.routes {
        let found = routes.iter().any(|r| {
            r.dst == want.dst
                && r.oif == Some(link.index)
                && want.gw.is_none_or(|gw| r.gateway == Some(gw))
        });
        if !found {
            return Err(drift(format!(
                "Expected Route {{dst: {}, gw: {}}} not found in routing table",
                want.dst,
                want.gw.map(|g| g.to_string()).unwrap_or_default()
            )));
        }
    }

    if conf.ip_masq && !prev.ips.is_empty() {
        let att = firewall::Attachment {
            network: &req.config.name,
            container_id: &inv.container_id,
            ifname: &inv.ifname,
        };
        let addresses: Vec<_> = prev.ips.iter().map(|i| i.address).collect();
        masq::check(conf, &att, &addresses)?;
    }
    if conf.mac_spoof_check {
        if let Some(mac) = link.mac {
            crate::macspoof::check(&inv.container_id, &inv.ifname, &peer.name, mac.octets())?;
        }
    }
    Ok(())
}
