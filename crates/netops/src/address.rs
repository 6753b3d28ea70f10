//! Interface addresses (`ip addr add/replace/del/show`).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::route::Scope;
use crate::rtnl::RouteSocket;

/// An IP family, for filtering lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }

    pub(crate) fn af(self) -> AddressFamily {
        match self {
            IpFamily::V4 => AddressFamily::Inet,
            IpFamily::V6 => AddressFamily::Inet6,
        }
    }
}

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface index.
    pub index: u32,
    /// Address and prefix length (`10.1.0.5/24`).
    pub network: IpNetwork,
    /// Address scope (`global` unless set otherwise).
    pub scope: Scope,
    /// IPv6: skip duplicate address detection (`IFA_F_NODAD`), usable at once.
    pub nodad: bool,
    /// IPv6: still undergoing DAD (read-only; ignored when adding).
    pub tentative: bool,
    /// IPv6: DAD found a duplicate (read-only; ignored when adding).
    pub dad_failed: bool,
}

impl IfAddr {
    /// `network` on link `index`, global scope, with DAD.
    pub fn new(index: u32, network: IpNetwork) -> Self {
        IfAddr {
            index,
            network,
            scope: Scope::Universe,
            nodad: false,
            tentative: false,
            dad_failed: false,
        }
    }

    /// The same address with IPv6 DAD skipped.
    pub fn without_dad(mut self) -> Self {
        self.nodad = true;
        self
    }

    fn to_message(self) -> AddressMessage {
        let mut msg = AddressMessage::default();
        let ip = self.network.ip();
        msg.header.family = IpFamily::of(&ip).af();
        msg.header.prefix_len = self.network.prefix();
        msg.header.index = self.index;
        msg.header.scope = AddressScope::from(u8::from(self.scope));
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if let IpNetwork::V4(v4) = self.network {
            // Like `ip addr add ... brd +`; /31 and /32 have no broadcast address.
            if v4.prefix() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        if self.nodad && self.network.is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        msg
    }

    fn from_message(msg: AddressMessage) -> Option<IfAddr> {
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
        for a in msg.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                AddressAttribute::Flags(f) => flags = f,
                _ => {}
            }
        }
        // For point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours when present.
        let ip = local.or(address)?;
        let network = IpNetwork::new(ip, msg.header.prefix_len).ok()?;
        Some(IfAddr {
            index: msg.header.index,
            network,
            scope: Scope::from(u8::from(msg.header.scope)),
            nodad: flags.contains(AddressFlags::Nodad),
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
        })
    }
}

impl RouteSocket {
    /// Adds an address (`ip addr add`); [`Error::Exists`] if the link already has it.
    pub fn add_address(&mut self, addr: &IfAddr) -> Result<()> {
        self.put_address(addr, NLM_F_CREATE | NLM_F_EXCL, "adding")
    }

    /// Adds or updates an address (`ip addr replace`).
    pub fn replace_address(&mut self, addr: &IfAddr) -> Result<()> {
        self.put_address(addr, NLM_F_CREATE | NLM_F_REPLACE, "replacing")
    }

    fn put_address(&mut self, addr: &IfAddr, flags: u16, verb: &str) -> Result<()> {
        let a = *addr;
        let r = self.ack(
            RouteNetlinkMessage::NewAddress(a.to_message()),
            flags,
            |s| format!("{verb} {} to {}", a.network, s.describe_link(a.index)),
        );
        match r {
            // The kernel answers EACCES for IPv6 addresses when IPv6 is disabled on the link.
            Err(Error::Kernel { op, errno, detail })
                if errno == libc::EACCES && a.network.is_ipv6() =>
            {
                Err(Error::Kernel {
                    op,
                    errno,
                    detail: Some(detail.unwrap_or_else(|| {
                        "is IPv6 disabled on this link (disable_ipv6=1)?".into()
                    })),
                })
            }
            other => other,
        }
    }

    /// Removes an address (`ip addr del`); `Ok(false)` if the link did not have it.
    pub fn delete_address(&mut self, index: u32, network: IpNetwork) -> Result<bool> {
        let msg = IfAddr::new(index, network).to_message();
        let r = self.ack(RouteNetlinkMessage::DelAddress(msg), 0, |s| {
            format!("removing {network} from {}", s.describe_link(index))
        });
        crate::link::absent_is_false(r)
    }

    /// Lists addresses, optionally of one link and/or one family (`ip addr show [dev X]`).
    pub fn list_addresses(
        &mut self,
        index: Option<u32>,
        family: Option<IpFamily>,
    ) -> Result<Vec<IfAddr>> {
        let replies = self.dump(
            || {
                let mut msg = AddressMessage::default();
                if let Some(f) = family {
                    msg.header.family = f.af();
                }
                // With NETLINK_GET_STRICT_CHK the kernel filters by index itself.
                msg.header.index = index.unwrap_or(0);
                RouteNetlinkMessage::GetAddress(msg)
            },
            |s| match index {
                Some(i) => format!("listing addresses of {}", s.describe_link(i)),
                None => "listing addresses".into(),
            },
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => IfAddr::from_message(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| IpFamily::of(&a.network.ip()) == f))
            .collect())
    }
}
