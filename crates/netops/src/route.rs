//! Routes (`ip route add/replace/del/show`), unicast, one table at a time.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::address::IpFamily;
use crate::error::Result;
use crate::rtnl::RouteSocket;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

/// Route or address scope (`scope global|link|host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// `global`.
    #[default]
    Universe,
    /// `site` (IPv6).
    Site,
    /// `link`: directly attached, no gateway.
    Link,
    /// `host`: this machine only.
    Host,
    /// `nowhere`.
    Nowhere,
    /// Any other value.
    Other(u8),
}

impl From<u8> for Scope {
    fn from(v: u8) -> Self {
        match v {
            0 => Scope::Universe,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            o => Scope::Other(o),
        }
    }
}

impl From<Scope> for u8 {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Universe => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
            Scope::Other(o) => o,
        }
    }
}

/// A unicast route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination (`0.0.0.0/0` / `::/0` for a default route).
    pub dst: IpNetwork,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Scope; `Universe` for routes via a gateway, `Link` for on-link ones.
    pub scope: Scope,
    /// Routing table ([`TABLE_MAIN`] by default).
    pub table: u32,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Path MTU (`RTAX_MTU`).
    pub mtu: Option<u32>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
}

impl Route {
    /// A route to `dst` in the main table, global scope, nothing else set.
    pub fn new(dst: IpNetwork) -> Self {
        Route {
            dst,
            gateway: None,
            oif: None,
            scope: Scope::Universe,
            table: TABLE_MAIN,
            metric: None,
            mtu: None,
            src: None,
        }
    }

    /// A default route of `gw`'s family via `gw`, optionally pinned to `oif`.
    pub fn default_via(gw: IpAddr, oif: Option<u32>) -> Self {
        let mut r = Route::new(any_network(gw.is_ipv6()));
        r.gateway = Some(gw);
        r.oif = oif;
        r
    }

    /// Sets the gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }

    /// Sets the output interface.
    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    fn family(&self) -> IpFamily {
        IpFamily::of(&self.dst.ip())
    }

    fn to_message(self, for_delete: bool) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let h = &mut msg.header;
        h.address_family = self.family().af();
        h.destination_prefix_length = self.dst.prefix();
        h.table = u8::try_from(self.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        if for_delete {
            // Match any protocol/scope/type, as `ip route del` does.
            h.scope = RouteScope::NoWhere;
        } else {
            h.protocol = RouteProtocol::Boot;
            h.scope = RouteScope::from(u8::from(self.scope));
            h.kind = RouteType::Unicast;
        }
        if self.dst.prefix() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    self.dst.network(),
                )));
        }
        msg.attributes.push(RouteAttribute::Table(self.table));
        if let Some(gw) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(m) = self.metric {
            msg.attributes.push(RouteAttribute::Priority(m));
        }
        if let Some(src) = self.src {
            msg.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(mtu) = self.mtu {
            msg.attributes
                .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
        }
        msg
    }

    /// The route(s) of one dump message: a multipath route (IPv6 siblings, ECMP) gives one
    /// [`Route`] per next hop, each with that hop's gateway and device.
    fn from_message(msg: RouteMessage) -> Vec<Route> {
        let hops: Vec<_> = msg
            .attributes
            .iter()
            .filter_map(|a| match a {
                RouteAttribute::MultiPath(h) => Some(h.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let Some(base) = Self::from_single(msg) else {
            return Vec::new();
        };
        if hops.is_empty() {
            return vec![base];
        }
        hops.into_iter()
            .map(|hop| {
                let mut r = base;
                r.oif = Some(hop.interface_index);
                r.gateway = hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(g) => route_ip(g),
                    _ => None,
                });
                r
            })
            .collect()
    }

    fn from_single(msg: RouteMessage) -> Option<Route> {
        let h = &msg.header;
        if h.kind != RouteType::Unicast {
            return None;
        }
        let mut table = u32::from(h.table);
        let mut dst_ip: Option<IpAddr> = None;
        let v6 = h.address_family == IpFamily::V6.af();
        let mut r = Route::new(any_network(v6));
        r.scope = Scope::from(u8::from(h.scope));
        for a in &msg.attributes {
            match a {
                RouteAttribute::Destination(d) => dst_ip = route_ip(d),
                RouteAttribute::Gateway(g) => r.gateway = route_ip(g),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::PrefSource(s) => r.src = route_ip(s),
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        if let RouteMetric::Mtu(v) = m {
                            r.mtu = Some(*v);
                        }
                    }
                }
                _ => {}
            }
        }
        r.table = table;
        if let Some(ip) = dst_ip {
            r.dst = IpNetwork::new(ip, h.destination_prefix_length).ok()?;
        }
        Some(r)
    }
}

/// `0.0.0.0/0` or `::/0`.
fn any_network(v6: bool) -> IpNetwork {
    let ip = if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    // Prefix 0 is valid for both families, so the fallback is never taken.
    IpNetwork::new(ip, 0).unwrap_or(IpNetwork::from(ip))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl fmt::Display for Route {
    /// `ip route`-like text: `10.0.0.0/8 via 10.1.0.1 dev #3 metric 100 table 254`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.prefix() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev #{oif}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

impl RouteSocket {
    /// Adds a route (`ip route prepend`: `NLM_F_CREATE` without `NLM_F_EXCL`, as the
    /// reference's `RouteAddEcmp`): a second route to the same destination through another
    /// gateway or device is added next to the first (IPv6 makes them one multipath route), so
    /// ECMP routes and two attachments each with a default route work. [`Error::Exists`] only
    /// if an identical route exists.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.put_route(route, NLM_F_CREATE, "adding")
    }

    /// Adds or replaces a route (`ip route replace`).
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.put_route(route, NLM_F_CREATE | NLM_F_REPLACE, "replacing")
    }

    fn put_route(&mut self, route: &Route, flags: u16, verb: &str) -> Result<()> {
        let r = *route;
        self.ack(
            RouteNetlinkMessage::NewRoute(r.to_message(false)),
            flags,
            |s| format!("{verb} route {}", describe_route(s, &r)),
        )
    }

    /// Deletes a route (`ip route del`); `Ok(false)` if there was no such route.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool> {
        let r = *route;
        let res = self.ack(RouteNetlinkMessage::DelRoute(r.to_message(true)), 0, |s| {
            format!("deleting route {}", describe_route(s, &r))
        });
        crate::link::absent_is_false(res)
    }

    /// Lists the unicast routes of the main table, optionally of one family (`ip route show`).
    pub fn list_routes(&mut self, family: Option<IpFamily>) -> Result<Vec<Route>> {
        self.list_routes_in(family, TABLE_MAIN)
    }

    /// Lists the unicast routes of `table`.
    pub fn list_routes_in(&mut self, family: Option<IpFamily>, table: u32) -> Result<Vec<Route>> {
        let replies = self.dump(
            || {
                let mut msg = RouteMessage::default();
                if let Some(f) = family {
                    msg.header.address_family = f.af();
                }
                // Filtered in the kernel under NETLINK_GET_STRICT_CHK, and below anyway.
                msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
                msg.attributes.push(RouteAttribute::Table(table));
                RouteNetlinkMessage::GetRoute(msg)
            },
            |_| format!("listing routes of table {table}"),
        )?;
        Ok(replies
            .into_iter()
            .flat_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                _ => Vec::new(),
            })
            .filter(|r| r.table == table)
            .filter(|r| family.is_none_or(|f| r.family() == f))
            .collect())
    }
}

fn describe_route(s: &mut RouteSocket, r: &Route) -> String {
    let mut text = r.to_string();
    if let Some(oif) = r.oif {
        let name = s.describe_link(oif);
        text = text.replace(&format!("dev #{oif}"), &format!("dev {name}"));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_route_has_prefix_zero_and_prints_default() {
        let r = Route::default_via("10.1.0.1".parse().unwrap(), Some(3));
        assert_eq!(r.dst.prefix(), 0);
        assert_eq!(r.to_string(), "default via 10.1.0.1 dev #3");
        let r6 = Route::default_via("fd00::1".parse().unwrap(), None);
        assert!(r6.dst.is_ipv6());
        assert_eq!(r6.dst.prefix(), 0);
    }

    #[test]
    fn message_round_trip_keeps_fields() {
        let mut r = Route::new("10.2.0.0/16".parse().unwrap())
            .via("10.1.0.1".parse().unwrap())
            .dev(4)
            .metric(50);
        r.mtu = Some(1400);
        let mut msg = r.to_message(false);
        msg.header.kind = RouteType::Unicast;
        let back = Route::from_message(msg);
        assert_eq!(back, vec![r]);
    }

    #[test]
    fn a_multipath_route_lists_as_one_route_per_next_hop() {
        let base = Route::new("::/0".parse().unwrap()).metric(1024);
        let mut msg = base.to_message(false);
        let hop = |oif: u32, gw: &str| {
            let mut h = netlink_packet_route::route::RouteNextHop::default();
            h.interface_index = oif;
            h.attributes = vec![RouteAttribute::Gateway(RouteAddress::from(
                gw.parse::<IpAddr>().unwrap(),
            ))];
            h
        };
        msg.attributes.push(RouteAttribute::MultiPath(vec![
            hop(2, "fd00:1::1"),
            hop(3, "fd00:2::1"),
        ]));
        let routes = Route::from_message(msg);
        assert_eq!(
            routes,
            vec![
                base.via("fd00:1::1".parse().unwrap()).dev(2),
                base.via("fd00:2::1".parse().unwrap()).dev(3),
            ]
        );
    }

    #[test]
    fn scope_numbers_match_the_kernel() {
        assert_eq!(u8::from(Scope::Link), 253);
        assert_eq!(Scope::from(254), Scope::Host);
        assert_eq!(Scope::from(7), Scope::Other(7));
    }
}
