//! Container-side kernel steps, through a socket opened in the container's netns: sysctls,
//! addresses, link up, routes.

use crate::config::BridgeConf;
use crate::errors::kernel;
use crate::plan::AddressPlan;
use cni_protocol::{crash, CniError};
use netops::{IfAddr, Link, Netns, Route, RouteSocket, Scope};
use std::net::IpAddr;

/// Sysctls of the container interface, written from one thread that joins the netns.
pub fn write_sysctls(
    netns: &Netns,
    conf: &BridgeConf,
    ifname: &str,
    has_ipv6: bool,
) -> Result<(), CniError> {
    let v6 = |leaf: &str| format!("net/ipv6/conf/{ifname}/{leaf}");
    let mut writes: Vec<(String, &str, bool)> = Vec::new(); // key, value, fatal
    if has_ipv6 {
        // Containers often start with IPv6 off; the reference turns it on where it needs it.
        writes.push(("net/ipv6/conf/lo/disable_ipv6".into(), "0", true));
        writes.push((v6("disable_ipv6"), "0", true));
        writes.push((v6("keep_addr_on_down"), "1", true));
    }
    if conf.enable_dad {
        writes.push((v6("enhanced_dad"), "1", false));
        writes.push((v6("accept_dad"), "1", false));
    } else {
        writes.push((v6("accept_dad"), "0", false));
    }
    writes.push((format!("net/ipv4/conf/{ifname}/arp_notify"), "1", false));
    let result = netops::run_in_netns(netns, || {
        for (key, value, fatal) in &writes {
            // Skip writes that change nothing (and IPv6 keys when IPv6 is off in the netns).
            match netops::sysctl_read(key) {
                Ok(current) if current == *value => continue,
                Err(_) if !*fatal => continue,
                _ => {}
            }
            if let Err(e) = netops::sysctl_write(key, value) {
                if *fatal {
                    return Err(CniError::internal(format!(
                        "failed to enable IPv6 for interface {ifname:?}: {e}"
                    )));
                }
            }
        }
        Ok(())
    });
    result.map_err(kernel)?
}

/// Gives the container interface its addresses, brings it up, and installs the routes.
pub fn configure_interface(
    container: &mut RouteSocket,
    conf: &BridgeConf,
    link: &Link,
    plan: &AddressPlan,
) -> Result<(), CniError> {
    for ip in &plan.ips {
        let mut addr = IfAddr::new(link.index, ip.address);
        if !conf.enable_dad {
            addr = addr.without_dad();
        }
        container.add_address(&addr).map_err(|e| {
            CniError::internal(format!(
                "failed to add IP addr {} to {:?}: {e}",
                ip.address, link.name
            ))
        })?;
    }
    container
        .set_link_up(link.index)
        .map_err(|e| CniError::internal(format!("failed to set {:?} up: {e}", link.name)))?;
    crash::point("addressed");
    let gateway_v4 = plan
        .ips
        .iter()
        .filter(|i| i.address.is_ipv4())
        .find_map(|i| i.gateway);
    let gateway_v6 = plan
        .ips
        .iter()
        .filter(|i| i.address.is_ipv6())
        .find_map(|i| i.gateway);
    for r in &plan.routes {
        let gw: Option<IpAddr> = r.gw.or(if r.dst.is_ipv4() {
            gateway_v4
        } else {
            gateway_v6
        });
        let mut route = Route::new(r.dst).dev(link.index);
        // Without a gateway the route keeps scope universe, as the reference adds it.
        if let Some(gw) = gw {
            route = route.via(gw);
        }
        if let Some(p) = r.priority {
            route = route.metric(p);
        }
        if let Some(t) = r.table {
            route.table = t;
        }
        if let Some(s) = r.scope {
            route = route.scope(Scope::from(u8::try_from(s).unwrap_or(0)));
        }
        container.add_route(&route).map_err(|e| {
            // Name the interface, not its index.
            let text = route.to_string().replace(
                &format!(" dev #{}", link.index),
                &format!(" dev {}", link.name),
            );
            CniError::internal(format!("failed to add route '{text}': {e}"))
        })?;
    }
    crash::point("routed");
    Ok(())
}
