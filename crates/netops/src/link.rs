//! Links: lookup, listing and the per-link setters (`ip link show/set/del`).

use std::fmt;
use std::str::FromStr;

use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoPortData,
    LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::rtnl::RouteSocket;

/// An Ethernet hardware address; displays as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six address bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 0a:58:0a:f4:00:02")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// How the kernel generates IPv6 link-local addresses for a link (`ip link set X addrgenmode M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrGenMode {
    /// From the MAC address (the default).
    Eui64,
    /// No automatic address: the link gets no link-local, so sends no DAD/MLD/RS traffic.
    None,
    /// RFC 7217 stable privacy addresses.
    StablePrivacy,
    /// Random addresses.
    Random,
    /// A mode this crate does not name.
    Other(u8),
}

impl From<In6AddrGenMode> for AddrGenMode {
    fn from(m: In6AddrGenMode) -> Self {
        match m {
            In6AddrGenMode::Eui64 => AddrGenMode::Eui64,
            In6AddrGenMode::None => AddrGenMode::None,
            In6AddrGenMode::StablePrivacy => AddrGenMode::StablePrivacy,
            In6AddrGenMode::Random => AddrGenMode::Random,
            other => AddrGenMode::Other(u8::from(&other)),
        }
    }
}

impl From<AddrGenMode> for In6AddrGenMode {
    fn from(m: AddrGenMode) -> Self {
        match m {
            AddrGenMode::Eui64 => In6AddrGenMode::Eui64,
            AddrGenMode::None => In6AddrGenMode::None,
            AddrGenMode::StablePrivacy => In6AddrGenMode::StablePrivacy,
            AddrGenMode::Random => In6AddrGenMode::Random,
            AddrGenMode::Other(v) => In6AddrGenMode::from(v),
        }
    }
}

/// Per-port settings of a link enslaved to a bridge (`ip -d link show` "bridge_slave" part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgePort {
    /// Hairpin mode: frames may be sent back out of the port they came in on.
    pub hairpin: bool,
    /// Isolated: the port cannot talk to other isolated ports.
    pub isolated: bool,
}

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (unique within its netns).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` ("bridge", "veth", ...); `None` for physical devices and `lo`.
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte Ethernet one.
    pub mac: Option<MacAddr>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Index of the master (bridge) this link is enslaved to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Promiscuous mode (`IFF_PROMISC`).
    pub promisc: bool,
    /// `IFLA_LINK`: for a veth, the peer's index (in the peer's netns).
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: id of the netns holding the peer, as seen from this netns.
    pub link_netnsid: Option<i32>,
    /// Bridge port settings, when enslaved to a bridge.
    pub bridge_port: Option<BridgePort>,
    /// For bridges: whether VLAN filtering is on.
    pub vlan_filtering: Option<bool>,
    /// IPv6 address generation mode; `None` when IPv6 is disabled on the link.
    pub addr_gen_mode: Option<AddrGenMode>,
}

impl Link {
    pub(crate) fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            peer_index: None,
            link_netnsid: None,
            bridge_port: None,
            vlan_filtering: None,
            addr_gen_mode: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => {
                    if let Ok(b) = <[u8; 6]>::try_from(a.as_slice()) {
                        link.mac = Some(MacAddr(b));
                    }
                }
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Controller(m) if m != 0 => link.master = Some(m),
                LinkAttribute::Link(l) => link.peer_index = Some(l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => link.absorb_info(infos),
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        if let AfSpecUnspec::Inet6(v6) = spec {
                            for a in v6 {
                                if let AfSpecInet6::AddrGenMode(m) = a {
                                    link.addr_gen_mode = Some(m.into());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    fn absorb_info(&mut self, infos: Vec<LinkInfo>) {
        for info in infos {
            match info {
                LinkInfo::Kind(k) => self.kind = Some(k.to_string()),
                LinkInfo::Data(InfoData::Bridge(opts)) => {
                    for o in opts {
                        if let InfoBridge::VlanFiltering(v) = o {
                            self.vlan_filtering = Some(v);
                        }
                    }
                }
                LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                    let mut port = BridgePort::default();
                    for o in opts {
                        match o {
                            InfoBridgePort::HairpinMode(v) => port.hairpin = v,
                            InfoBridgePort::Isolated(v) => port.isolated = v,
                            _ => {}
                        }
                    }
                    self.bridge_port = Some(port);
                }
                _ => {}
            }
        }
    }
}

/// A `LinkMessage` addressed to `index` (the base of every per-link request).
pub(crate) fn link_msg(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

impl RouteSocket {
    /// Looks a link up by name (`ip link show NAME`); `None` if there is no such link.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_one_link(msg, |_| format!("looking up link {name}"))
    }

    /// Looks a link up by index; `None` if there is no such link.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut msg = link_msg(index);
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_one_link(msg, |_| format!("looking up link #{index}"))
    }

    fn get_one_link<F>(&mut self, msg: LinkMessage, op: F) -> Result<Option<Link>>
    where
        F: FnOnce(&mut Self) -> String,
    {
        match self.get(RouteNetlinkMessage::GetLink(msg), op) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists every link in the socket's netns (`ip link show`).
    pub fn list_links(&mut self) -> Result<Vec<Link>> {
        let replies = self.dump(
            || {
                let mut msg = LinkMessage::default();
                msg.attributes
                    .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
                RouteNetlinkMessage::GetLink(msg)
            },
            |_| "listing links".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags, on: bool, what: &str) -> Result<()> {
        let mut msg = link_msg(index);
        msg.header.change_mask = flag;
        if on {
            msg.header.flags = flag;
        }
        let what = what.to_string();
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!("setting {} {what}", s.describe_link(index))
        })
    }

    /// Brings a link up (`ip link set X up`).
    pub fn set_link_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, true, "up")
    }

    /// Brings a link down (`ip link set X down`).
    pub fn set_link_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, false, "down")
    }

    /// Turns promiscuous mode on or off (`ip link set X promisc on|off`).
    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        let what = if on { "promisc on" } else { "promisc off" };
        self.set_flag(index, LinkFlags::Promisc, on, what)
    }

    fn set_attr(&mut self, index: u32, attr: LinkAttribute, what: String) -> Result<()> {
        let mut msg = link_msg(index);
        msg.attributes.push(attr);
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!("setting {what} on {}", s.describe_link(index))
        })
    }

    /// Sets the hardware address (`ip link set X address MAC`).
    pub fn set_mac(&mut self, index: u32, mac: MacAddr) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Address(mac.0.to_vec()),
            format!("MAC {mac}"),
        )
    }

    /// Sets the MTU (`ip link set X mtu N`).
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_attr(index, LinkAttribute::Mtu(mtu), format!("MTU {mtu}"))
    }

    /// Enslaves a link to `master`, or frees it with `None` (`ip link set X master B|nomaster`).
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        let m = master.unwrap_or(0);
        self.set_attr(index, LinkAttribute::Controller(m), format!("master #{m}"))
    }

    /// Sets the IPv6 address generation mode (`ip link set X addrgenmode none`); do it before up.
    pub fn set_addr_gen_mode(&mut self, index: u32, mode: AddrGenMode) -> Result<()> {
        self.set_attr(
            index,
            addr_gen_mode_attr(mode),
            format!("IPv6 addrgenmode {mode:?}"),
        )
    }

    /// Deletes a link (`ip link del`); `Ok(false)` if it did not exist.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let r = self.ack(RouteNetlinkMessage::DelLink(link_msg(index)), 0, |_| {
            format!("deleting link #{index}")
        });
        absent_is_false(r)
    }

    /// Deletes a link by name; `Ok(false)` if it did not exist.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let r = self.ack(RouteNetlinkMessage::DelLink(msg), 0, |_| {
            format!("deleting link {name}")
        });
        absent_is_false(r)
    }
}

/// `IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE = mode } }`.
pub(crate) fn addr_gen_mode_attr(mode: AddrGenMode) -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        mode.into(),
    )])])
}

/// Maps "already gone" to `Ok(false)` for idempotent deletes.
pub(crate) fn absent_is_false(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Rejects names the kernel would refuse, before any request is made (`dev_valid_name`).
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |msg: &str| Error::Invalid {
        op: format!("using interface name {name:?}"),
        msg: msg.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 15 {
        return Err(bad("longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("reserved"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(bad("contains '/', ':', NUL or whitespace"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_text() {
        let m: MacAddr = "0a:58:0A:f4:00:02".parse().unwrap();
        assert_eq!(m.0, [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x02]);
        assert_eq!(m.to_string(), "0a:58:0a:f4:00:02");
        assert!("0a:58:0a:f4:00".parse::<MacAddr>().is_err());
        assert!("0a:58:0a:f4:00:02:03".parse::<MacAddr>().is_err());
        assert!("0a:58:0a:f4:00:2".parse::<MacAddr>().is_err());
        assert!("zz:58:0a:f4:00:02".parse::<MacAddr>().is_err());
    }

    #[test]
    fn ifname_rules_match_the_kernel() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("veth0123456789a").is_ok());
        assert!(validate_ifname("veth0123456789ab").is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
