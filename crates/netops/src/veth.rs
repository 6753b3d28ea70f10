//! Veth pairs created in one request, the peer born in the container netns.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::link::{addr_gen_mode_attr, link_msg, validate_ifname, AddrGenMode, Link, MacAddr};
use crate::netns::Netns;
use crate::rtnl::RouteSocket;

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethEnd {
    /// Interface name.
    pub name: String,
    /// MTU; kernel default when `None`.
    pub mtu: Option<u32>,
    /// Fixed MAC; random when `None`.
    pub mac: Option<MacAddr>,
    /// Bridge (or other master) index to enslave this end to at birth.
    pub master: Option<u32>,
    /// Bring this end up once created.
    pub up: bool,
    /// IPv6 address generation mode, applied before the end comes up.
    ///
    /// `Some(AddrGenMode::None)` on the host end of a bridge port keeps it free of a link-local
    /// address, so a new port adds no DAD/MLD/RS flood to every other port (DESIGN.md §8).
    pub addr_gen_mode: Option<AddrGenMode>,
}

impl VethEnd {
    /// An end named `name` with kernel defaults, left down.
    pub fn new(name: impl Into<String>) -> Self {
        VethEnd {
            name: name.into(),
            mtu: None,
            mac: None,
            master: None,
            up: false,
            addr_gen_mode: None,
        }
    }

    fn fill(&self, msg: &mut LinkMessage, up_now: bool) {
        if up_now {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        msg.attributes
            .push(LinkAttribute::IfName(self.name.clone()));
        if let Some(mtu) = self.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = self.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(m) = self.master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
    }
}

impl RouteSocket {
    /// Creates a veth pair in one `RTM_NEWLINK` (`ip link add H type veth peer name P netns N`).
    ///
    /// The host end lives in this socket's netns, enslaved to `host.master` at birth; the peer is
    /// born in `peer_netns` (or here when `None`), so nothing is moved afterwards. Returns the host
    /// end. A name clash is [`Error::Exists`].
    ///
    /// Kernel facts this follows (checked on 6.18): `IFLA_AF_SPEC` in a create request is refused
    /// (EAFNOSUPPORT), so a host end with an `addr_gen_mode` is created down and then gets the mode
    /// and `IFF_UP` in one `RTM_SETLINK` (the kernel applies the mode first, so no link-local
    /// address is ever made). A veth peer cannot be brought up inside the create request (the
    /// kernel answers ENOTCONN), so a peer in another netns must be brought up, and given its
    /// mode, through a socket opened there; asking for it here is [`Error::Invalid`].
    ///
    /// If a follow-up request fails, the pair stays in place: deleting the host end undoes it.
    pub fn create_veth(
        &mut self,
        host: &VethEnd,
        peer: &VethEnd,
        peer_netns: Option<&Netns>,
    ) -> Result<Link> {
        validate_ifname(&host.name)?;
        validate_ifname(&peer.name)?;
        if peer_netns.is_some() && (peer.up || peer.addr_gen_mode.is_some()) {
            return Err(Error::Invalid {
                op: format!("creating veth pair {} / {}", host.name, peer.name),
                msg: "a peer in another netns must be brought up (and given an addrgenmode) \
                      through a socket opened in that netns"
                    .into(),
            });
        }
        let host_up_now = host.up && host.addr_gen_mode.is_none();

        let mut peer_msg = LinkMessage::default();
        peer.fill(&mut peer_msg, false);
        // The fd stays open until the kernel has answered: `peer_netns` is borrowed for the
        // whole call, and the request completes before we return.
        if let Some(ns) = peer_netns {
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        }

        let mut msg = LinkMessage::default();
        host.fill(&mut msg, host_up_now);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let ns_label = peer_netns
            .map(|ns| format!(" (peer in {})", ns.path().display()))
            .unwrap_or_default();
        // NLM_F_ECHO returns the new link on recent kernels (6.18 here), saving a lookup; without
        // an echo we look it up.
        let replies = self.get_with_flags(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            |_| format!("creating veth pair {} / {}{ns_label}", host.name, peer.name),
        )?;
        let echoed = replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
            _ => None,
        });
        let echoed = echoed.filter(|l| l.name == host.name);
        let index = match &echoed {
            Some(l) => l.index,
            None => self.lookup_new(&host.name)?.index,
        };
        if let Some(mode) = host.addr_gen_mode {
            self.set_mode_and_up(index, mode, host.up)?;
        }
        if peer_netns.is_none() && (peer.up || peer.addr_gen_mode.is_some()) {
            let p = self.lookup_new(&peer.name)?;
            match peer.addr_gen_mode {
                Some(mode) => self.set_mode_and_up(p.index, mode, peer.up)?,
                None => self.set_link_up(p.index)?,
            }
        }
        // The echo is taken before the master is attached and before our follow-ups; report the
        // kernel's final view instead whenever those happened.
        match echoed {
            Some(l) if host.master.is_none() && host.addr_gen_mode.is_none() => Ok(l),
            _ => self.lookup_new(&host.name),
        }
    }

    fn lookup_new(&mut self, name: &str) -> Result<Link> {
        self.link_by_name(name)?.ok_or_else(|| {
            Error::from_errno(
                format!("looking up new veth end {name}{}", self.where_()),
                libc::ENODEV,
                Some("deleted right after creation".into()),
            )
        })
    }

    /// Sets the IPv6 addrgenmode and (optionally) `IFF_UP` in one request; the mode applies first.
    fn set_mode_and_up(&mut self, index: u32, mode: AddrGenMode, up: bool) -> Result<()> {
        let mut msg = link_msg(index);
        if up {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        msg.attributes.push(addr_gen_mode_attr(mode));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, move |s| {
            format!(
                "setting IPv6 addrgenmode {mode:?}{} on {}",
                if up { " and up" } else { "" },
                s.describe_link(index)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_fills_name_mtu_mac_master_and_up() {
        let mut end = VethEnd::new("veth1");
        end.mtu = Some(1400);
        end.mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        end.master = Some(7);
        let mut msg = LinkMessage::default();
        end.fill(&mut msg, true);
        assert!(msg.header.flags.contains(LinkFlags::Up));
        assert!(msg
            .attributes
            .contains(&LinkAttribute::IfName("veth1".into())));
        assert!(msg.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(msg.attributes.contains(&LinkAttribute::Controller(7)));
        assert!(msg
            .attributes
            .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1])));
    }
}
