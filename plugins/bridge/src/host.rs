//! Host-side kernel steps: the bridge itself, its gateway addresses, forwarding, and the pod's
//! port (hairpin, isolation, VLANs).

use crate::config::BridgeConf;
use crate::errors::kernel;
use crate::naming;
use cni_protocol::CniError;
use ipnetwork::IpNetwork;
use netops::{
    AddrGenMode, BridgePortChange, BridgeSpec, BridgeVlan, IfAddr, Link, RouteSocket, VethEnd,
    VlanTarget,
};

/// Creates the bridge or adopts the existing one; a non-bridge of that name is refused.
pub fn ensure_bridge(host: &mut RouteSocket, conf: &BridgeConf) -> Result<Link, CniError> {
    let link = match host.link_by_name(&conf.bridge).map_err(kernel)? {
        Some(link) => link,
        None => {
            let mut spec = BridgeSpec::new(&conf.bridge);
            // Like the reference, MTU and VLAN filtering apply only when we create it.
            spec.mtu = conf.mtu;
            spec.vlan_filtering = conf.uses_vlans();
            let link = host.ensure_bridge(&spec).map_err(|e| {
                CniError::internal(format!("failed to create bridge {:?}: {e}", conf.bridge))
            })?;
            // CVE-2020-10749: the bridge must not learn routes from rogue router adverts.
            let _ = netops::set_accept_ra(&conf.bridge, 0);
            link
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        // The config names a device it cannot use: a configuration error (the reference: 999).
        return Err(CniError::invalid_config(format!(
            "failed to create bridge {:?}: {:?} already exists but is not a bridge ({})",
            conf.bridge,
            conf.bridge,
            link.kind.as_deref().unwrap_or("no kind")
        )));
    }
    if conf.promisc && !link.promisc {
        host.set_promisc(link.index, true).map_err(kernel)?;
    }
    Ok(link)
}

/// Hairpin, isolation and VLANs of the pod's port on the bridge.
pub fn configure_port(
    host: &mut RouteSocket,
    conf: &BridgeConf,
    port: u32,
) -> Result<(), CniError> {
    // A new port starts with both off; only a change costs a request.
    if conf.hairpin || conf.port_isolation {
        let change = BridgePortChange {
            hairpin: Some(conf.hairpin),
            isolated: Some(conf.port_isolation),
        };
        host.set_bridge_port(port, &change).map_err(kernel)?;
    }
    if !conf.uses_vlans() {
        return Ok(());
    }
    // `vlan` is the native VLAN; trunk-only ports keep VLAN 1 native, as the reference does.
    let native = match (conf.vlan, conf.vlan_trunk.is_empty()) {
        (0, false) => Some(1),
        (0, true) => None,
        (vid, _) => Some(vid),
    };
    set_port_vlans(host, conf, port, native, &conf.vlan_trunk)
}

/// Replaces the port's default VLAN (unless `preserveDefaultVlan`) with `native` (untagged,
/// PVID) and `tagged`.
fn set_port_vlans(
    host: &mut RouteSocket,
    conf: &BridgeConf,
    port: u32,
    native: Option<u16>,
    tagged: &[u16],
) -> Result<(), CniError> {
    if !conf.preserve_default_vlan {
        for vlan in host.bridge_vlans(port).map_err(kernel)? {
            host.bridge_vlan_del(port, vlan.vid, VlanTarget::Port)
                .map_err(kernel)?;
        }
    }
    for vid in tagged.iter().filter(|v| Some(**v) != native) {
        host.bridge_vlan_add(port, BridgeVlan::tagged(*vid), VlanTarget::Port)
            .map_err(kernel)?;
    }
    if let Some(vid) = native {
        host.bridge_vlan_add(port, BridgeVlan::access(vid), VlanTarget::Port)
            .map_err(kernel)?;
    }
    Ok(())
}

/// The gateway of a `vlan` network, as the reference makes it: the bridge itself is in no
/// VLAN, so the gateway address goes on `<bridge>.<vid>`, one end of a host-side veth pair
/// whose other end is an access port of the VLAN on the bridge. Made by the first ADD that
/// needs it and then shared by every pod of the VLAN; like the bridge, no DEL removes it.
pub fn ensure_vlan_gateway(
    host: &mut RouteSocket,
    conf: &BridgeConf,
    bridge: &Link,
) -> Result<Link, CniError> {
    let name = format!("{}.{}", conf.bridge, conf.vlan);
    let failed = |e: &dyn std::fmt::Display| {
        CniError::internal(format!(
            "failed to create vlan interface: failed to create vlan gateway {name:?}: {e}"
        ))
    };
    if let Some(link) = host.link_by_name(&name).map_err(kernel)? {
        return Ok(link);
    }
    let port_name = naming::vlan_gateway_port_name(&conf.bridge, conf.vlan);
    let mut port_end = VethEnd::new(&port_name);
    port_end.mtu = Some(bridge.mtu);
    port_end.master = Some(bridge.index);
    port_end.up = true;
    port_end.addr_gen_mode = Some(AddrGenMode::None);
    let mut gateway_end = VethEnd::new(&name);
    gateway_end.mtu = Some(bridge.mtu);
    gateway_end.up = true;
    let port = match host.create_veth(&port_end, &gateway_end, None) {
        Ok(port) => port,
        // A parallel ADD made it first: use theirs.
        Err(e) if e.is_exists() => {
            if let Some(link) = host.link_by_name(&name).map_err(kernel)? {
                return Ok(link);
            }
            return Err(failed(&e));
        }
        Err(e) => return Err(failed(&e)),
    };
    let configured = set_port_vlans(host, conf, port.index, Some(conf.vlan), &[]);
    let gateway = configured.and_then(|()| {
        host.link_by_name(&name)
            .map_err(kernel)?
            .ok_or_else(|| failed(&"vanished after creation"))
    });
    if gateway.is_err() {
        // Half made: take it back so the next ADD starts over.
        let _ = host.delete_link_by_name(&port_name);
    }
    gateway
}

fn is_link_local_v6(net: &IpNetwork) -> bool {
    matches!(net, IpNetwork::V6(n) if n.ip().is_unicast_link_local())
}

fn conflicts(existing: &IpNetwork, wanted: &IpNetwork) -> bool {
    match (existing, wanted) {
        // One IPv4 address per bridge: any other one is a conflict.
        (IpNetwork::V4(_), IpNetwork::V4(_)) => true,
        // IPv6 bridges carry several prefixes; only an overlapping one conflicts.
        (IpNetwork::V6(e), IpNetwork::V6(w)) => e.contains(w.network()) || w.contains(e.network()),
        _ => false,
    }
}

/// Puts each gateway address on `target`, the bridge or a `vlan` network's gateway interface
/// (the reference's `forceAddress` semantics) and, when one was added, pins the MAC `target`
/// had when this ADD read it (for a bridge we created: its own random MAC, read before any
/// port was attached), so it stops following the lowest port MAC, as the reference's
/// `ensureAddr` does. Returns whether anything was added.
pub fn ensure_gateway_addresses(
    host: &mut RouteSocket,
    conf: &BridgeConf,
    target: &Link,
    wanted: &[IpNetwork],
) -> Result<bool, CniError> {
    // The reference's wording for each target.
    let what = if target.name == conf.bridge {
        "failed to set bridge addr"
    } else {
        "failed to set vlan interface for bridge with addr"
    };
    if wanted.is_empty() {
        return Ok(false);
    }
    let mut present: Vec<IpNetwork> = host
        .list_addresses(Some(target.index), None)
        .map_err(kernel)?
        .into_iter()
        .map(|a| a.network)
        .collect();
    let mut added = false;
    for want in wanted {
        if present.contains(want) {
            continue;
        }
        let clashing: Vec<IpNetwork> = present
            .iter()
            .filter(|p| conflicts(p, want) && !is_link_local_v6(p))
            .copied()
            .collect();
        if !clashing.is_empty() {
            let listed: Vec<String> = clashing.iter().map(ToString::to_string).collect();
            if !conf.force_address {
                // Typically a second network sharing this bridge, or this network's subnet
                // changed. Leave the address alone: pods of the other network route through it.
                return Err(CniError::invalid_config(format!(
                    "{what}: {:?} already has an IP address different from \
                     {want} ({}, e.g. another network's gateway or an earlier subnet of network \
                     {:?}); give each network its own bridge, or set forceAddress to replace it",
                    target.name,
                    listed.join(", "),
                    conf.network
                )));
            }
            eprintln!(
                "bridge: forceAddress: replacing {} on {:?} with {want}",
                listed.join(", "),
                target.name
            );
            for old in clashing {
                host.delete_address(target.index, old).map_err(kernel)?;
                present.retain(|p| *p != old);
            }
        }
        // No DAD: a tentative gateway would leave the first pods without a router for seconds.
        match host.add_address(&IfAddr::new(target.index, *want).without_dad()) {
            Ok(()) => {}
            // A parallel ADD got there first.
            Err(e) if e.is_exists() => {}
            Err(e) => {
                return Err(CniError::internal(format!(
                    "{what}: could not add IP address {want} to {:?}: {e}",
                    target.name
                )))
            }
        }
        present.push(*want);
        added = true;
    }
    if added {
        // Not the MAC a bridge has now: our veth is attached, and the bridge has taken its MAC.
        if let Some(mac) = target.mac.filter(|m| m.octets() != [0; 6]) {
            host.set_mac(target.index, mac).map_err(kernel)?;
        }
    }
    Ok(added)
}

/// Turns on forwarding for each family that got a gateway (only writing what is not set).
pub fn enable_forwarding(ipv4: bool, ipv6: bool) -> Result<(), CniError> {
    let keys = [
        (ipv4, "net/ipv4/ip_forward"),
        (ipv6, "net/ipv6/conf/all/forwarding"),
    ];
    for (_, key) in keys.iter().filter(|(wanted, _)| *wanted) {
        if netops::sysctl_read(key).ok().as_deref() != Some("1") {
            netops::sysctl_write(key, "1")
                .map_err(|e| CniError::internal(format!("failed to enable forwarding: {e}")))?;
        }
    }
    Ok(())
}
