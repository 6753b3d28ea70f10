//! From IPAM's answer to what ADD configures: the container's addresses (all on result
//! interface 2), gateways filled in, default routes added, and the gateway addresses the bridge
//! must carry. Pure, so the reference's rules are unit-tested without a kernel.

use crate::config::BridgeConf;
use cni_protocol::result::{IpConfig, Route};
use cni_protocol::{CniError, CniResult};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Index of the container interface in the result: [bridge, host veth, container veth].
pub const CONTAINER_INTERFACE: usize = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct AddressPlan {
    /// Container addresses in IPAM order, each with `interface` = 2 and its gateway.
    pub ips: Vec<IpConfig>,
    /// IPAM routes, then one default route per family when `isDefaultGateway`.
    pub routes: Vec<Route>,
    /// Gateway addresses for the bridge (`gw/prefix-of-the-container-address`), when
    /// `isGateway`; at most one per gateway address.
    pub bridge_addresses: Vec<IpNetwork>,
}

impl AddressPlan {
    pub fn has_ipv4_gateway(&self) -> bool {
        self.bridge_addresses.iter().any(|a| a.is_ipv4())
    }

    pub fn has_ipv6_gateway(&self) -> bool {
        self.bridge_addresses.iter().any(|a| a.is_ipv6())
    }
}

/// The first address after the network address: the reference's default gateway.
fn first_host(net: IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) => u32::from(n.network())
            .checked_add(1)
            .map(|v| IpAddr::V4(v.into())),
        IpNetwork::V6(n) => u128::from(n.network())
            .checked_add(1)
            .map(|v| IpAddr::V6(v.into())),
    }
}

fn default_route(ipv4: bool) -> Result<IpNetwork, CniError> {
    let any: IpAddr = if ipv4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    IpNetwork::new(any, 0).map_err(|e| CniError::internal(e.to_string()))
}

pub fn plan(conf: &BridgeConf, ipam: &CniResult) -> Result<AddressPlan, CniError> {
    if ipam.ips.is_empty() {
        return Err(CniError::internal("IPAM plugin returned missing IP config"));
    }
    let mut ips = Vec::with_capacity(ipam.ips.len());
    let mut routes = ipam.routes.clone();
    let mut bridge_addresses: Vec<IpNetwork> = Vec::new();
    let mut default_added = [false, false];
    for ip in &ipam.ips {
        let mut ip = ip.clone();
        ip.interface = Some(CONTAINER_INTERFACE);
        if ip.gateway.is_none() && conf.is_gateway {
            ip.gateway = first_host(ip.address);
        }
        let family = usize::from(ip.address.is_ipv6());
        if let Some(gw) = ip.gateway {
            if conf.is_default_gateway && !default_added[family] {
                let dst = default_route(ip.address.is_ipv4())?;
                // IPAM may already route the default through a gateway, or name it without
                // one (it then goes via this same gateway). Adding ours too would be an
                // identical route, which the kernel refuses ("File exists"): the reference
                // fails every ADD of such a config; we add the one default it asks for.
                let has_default = routes.iter().any(|r| {
                    r.dst == dst && (r.gw.is_some() || (r.table.is_none() && r.priority.is_none()))
                });
                if !has_default {
                    routes.push(Route::new(dst, Some(gw)));
                }
                default_added[family] = true;
            }
            if conf.is_gateway {
                let address = IpNetwork::new(gw, ip.address.prefix()).map_err(|e| {
                    CniError::invalid_config(format!("gateway {gw} for {}: {e}", ip.address))
                })?;
                if !bridge_addresses.contains(&address) {
                    bridge_addresses.push(address);
                }
            }
        }
        ips.push(ip);
    }
    Ok(AddressPlan {
        ips,
        routes,
        bridge_addresses,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cni_protocol::NetConf;

    fn conf(extra: &str) -> BridgeConf {
        let json = format!(r#"{{"name":"n","ipam":{{"type":"host-local"}}{extra}}}"#);
        let raw = cni_protocol::gojson::parse(json.as_bytes(), &crate::config::SCHEMA).unwrap();
        let net = NetConf::from_value(&raw).unwrap();
        BridgeConf::load(&raw, &net, "").unwrap()
    }

    fn ipam(addrs: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            ips: addrs
                .iter()
                .map(|(a, g)| IpConfig {
                    address: a.parse().unwrap(),
                    gateway: g.map(|g| g.parse().unwrap()),
                    interface: None,
                })
                .collect(),
            ..CniResult::default()
        }
    }

    #[test]
    fn default_gateway_fills_gateways_routes_and_bridge_addresses_per_family() {
        let p = plan(
            &conf(r#","isDefaultGateway":true"#),
            &ipam(&[("10.1.0.5/16", None), ("fd00::5/64", Some("fd00::1"))]),
        )
        .unwrap();
        assert_eq!(p.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert!(p.ips.iter().all(|i| i.interface == Some(2)));
        assert_eq!(
            p.routes,
            vec![
                Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.0.1".parse().unwrap())
                ),
                Route::new("::/0".parse().unwrap(), Some("fd00::1".parse().unwrap())),
            ]
        );
        assert_eq!(
            p.bridge_addresses,
            vec![
                "10.1.0.1/16".parse::<IpNetwork>().unwrap(),
                "fd00::1/64".parse().unwrap()
            ]
        );
        assert!(p.has_ipv4_gateway() && p.has_ipv6_gateway());
    }

    #[test]
    fn without_is_gateway_nothing_is_added_to_the_bridge() {
        let p = plan(&conf(""), &ipam(&[("10.1.0.5/16", Some("10.1.0.1"))])).unwrap();
        assert!(p.bridge_addresses.is_empty() && p.routes.is_empty());
        assert_eq!(p.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        let p = plan(&conf(""), &ipam(&[("10.1.0.5/16", None)])).unwrap();
        assert_eq!(p.ips[0].gateway, None);
    }

    #[test]
    fn an_ipam_default_route_with_a_gateway_is_not_duplicated() {
        let mut r = ipam(&[("10.1.0.5/16", Some("10.1.0.1"))]);
        r.routes.push(Route::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.1.0.9".parse().unwrap()),
        ));
        let p = plan(&conf(r#","isDefaultGateway":true"#), &r).unwrap();
        assert_eq!(p.routes.len(), 1);
    }

    #[test]
    fn an_ipam_default_route_without_a_gateway_is_not_duplicated() {
        let mut r = ipam(&[("10.1.0.5/16", Some("10.1.0.1"))]);
        r.routes
            .push(Route::new("0.0.0.0/0".parse().unwrap(), None));
        let p = plan(&conf(r#","isDefaultGateway":true"#), &r).unwrap();
        assert_eq!(p.routes, r.routes);
    }

    #[test]
    fn no_addresses_is_an_error() {
        assert!(plan(&conf(""), &CniResult::default()).is_err());
    }
}
