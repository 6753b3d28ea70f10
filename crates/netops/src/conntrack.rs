//! Connection-tracking entries over `NETLINK_NETFILTER` (the ctnetlink subsystem).
//!
//! Only what a port-mapping plugin needs: dump one family's entries (or all) and delete some.
//! A delete names the entry by its original tuple, zone and kernel id, exactly as dumped, so an
//! entry replaced between the dump and the delete is left alone (the kernel answers ENOENT).
//! Every reply is parsed with bounds checks: garbage is a decode error, never a panic.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NetlinkSerializable};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::address::IpFamily;
use crate::error::{Error, Failure, Result};
use crate::netlink::NetlinkSocket;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NFNETLINK_V0: u8 = 0;
/// `struct nfgenmsg`: family, version, resource id (big endian).
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
/// Attribute type bits without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
// enum ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
// enum ctattr_l4proto
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// One direction of a tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IANA protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Source port, for protocols that have ports.
    pub src_port: Option<u16>,
    /// Destination port, for protocols that have ports.
    pub dst_port: Option<u16>,
}

/// A dumped conntrack entry: its two tuples and what a delete of exactly it must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry {
    /// The original direction (as the first packet was seen, before NAT).
    pub orig: CtTuple,
    /// The reply direction (after NAT: a DNATed entry's reply source is the real server).
    pub reply: Option<CtTuple>,
    family: u8,
    /// `CTA_TUPLE_ORIG`, `CTA_ZONE` and `CTA_ID` as dumped, each padded to 4 bytes.
    key: Vec<u8>,
}

/// A ctnetlink message as it travels: type, nfgenmsg family and the attribute bytes.
#[derive(Debug)]
struct CtMessage {
    message_type: u16,
    family: u8,
    attrs: Vec<u8>,
}

impl NetlinkSerializable for CtMessage {
    fn message_type(&self) -> u16 {
        self.message_type
    }

    fn buffer_len(&self) -> usize {
        NFGENMSG_LEN + self.attrs.len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        // `buffer` is exactly buffer_len() long (the trait's contract); zip never overruns.
        let head = [self.family, NFNETLINK_V0, 0, 0];
        for (dst, src) in buffer.iter_mut().zip(head.iter().chain(&self.attrs)) {
            *dst = *src;
        }
    }
}

impl NetlinkDeserializable for CtMessage {
    type Error = Infallible;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Infallible> {
        // Parsing happens later, where a malformed entry can be reported with context.
        Ok(CtMessage {
            message_type: header.message_type,
            family: payload.first().copied().unwrap_or(0),
            attrs: payload.get(NFGENMSG_LEN..).unwrap_or_default().to_vec(),
        })
    }
}

fn ct_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | msg
}

fn af(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => libc::AF_INET as u8,
        IpFamily::V6 => libc::AF_INET6 as u8,
    }
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

/// Walks the attributes in `buf`, calling `f(type, value, whole attribute)` for each.
fn walk<'a>(buf: &'a [u8], mut f: impl FnMut(u16, &'a [u8], &'a [u8])) -> Result<(), String> {
    let mut off = 0usize;
    while off < buf.len() {
        let Some(h) = buf.get(off..off + NLA_HDRLEN) else {
            return Err(format!("attribute header at offset {off} is truncated"));
        };
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let ty = u16::from_ne_bytes([h[2], h[3]]) & NLA_TYPE_MASK;
        let Some(whole) = buf.get(off..off + len).filter(|_| len >= NLA_HDRLEN) else {
            return Err(format!(
                "attribute {ty} at offset {off} claims {len} bytes of {}",
                buf.len() - off
            ));
        };
        f(ty, &whole[NLA_HDRLEN..], whole);
        off += (len + 3) & !3;
    }
    Ok(())
}

fn be16(v: &[u8]) -> Result<u16, String> {
    match v {
        [a, b] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(format!("a port of {} bytes", v.len())),
    }
}

fn ip(v: &[u8]) -> Result<IpAddr, String> {
    if let Ok(b) = <[u8; 4]>::try_from(v) {
        return Ok(IpAddr::V4(Ipv4Addr::from(b)));
    }
    if let Ok(b) = <[u8; 16]>::try_from(v) {
        return Ok(IpAddr::V6(Ipv6Addr::from(b)));
    }
    Err(format!("an address of {} bytes", v.len()))
}

fn parse_tuple(buf: &[u8]) -> Result<CtTuple, String> {
    let (mut ip_attrs, mut proto_attrs) = (None, None);
    walk(buf, |ty, v, _| match ty {
        CTA_TUPLE_IP => ip_attrs = Some(v),
        CTA_TUPLE_PROTO => proto_attrs = Some(v),
        _ => {}
    })?;
    let (mut src, mut dst) = (None, None);
    let mut bad = None;
    walk(ip_attrs.ok_or("tuple without addresses")?, |ty, v, _| {
        let slot = match ty {
            CTA_IP_V4_SRC | CTA_IP_V6_SRC => &mut src,
            CTA_IP_V4_DST | CTA_IP_V6_DST => &mut dst,
            _ => return,
        };
        match ip(v) {
            Ok(a) => *slot = Some(a),
            Err(e) => bad = Some(e),
        }
    })?;
    let (mut protocol, mut src_port, mut dst_port) = (None, None, None);
    walk(proto_attrs.ok_or("tuple without protocol")?, |ty, v, _| {
        let r = match ty {
            CTA_PROTO_NUM => match v {
                [p] => {
                    protocol = Some(*p);
                    Ok(())
                }
                _ => Err(format!("a protocol number of {} bytes", v.len())),
            },
            CTA_PROTO_SRC_PORT => be16(v).map(|p| src_port = Some(p)),
            CTA_PROTO_DST_PORT => be16(v).map(|p| dst_port = Some(p)),
            _ => Ok(()),
        };
        if let Err(e) = r {
            bad = Some(e);
        }
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    Ok(CtTuple {
        src: src.ok_or("tuple without source address")?,
        dst: dst.ok_or("tuple without destination address")?,
        protocol: protocol.ok_or("tuple without protocol number")?,
        src_port,
        dst_port,
    })
}

fn pad(out: &mut Vec<u8>, attr: &[u8]) {
    out.extend_from_slice(attr);
    out.resize((out.len() + 3) & !3, 0);
}

/// Parses the attributes of one dumped entry (everything after its nfgenmsg).
fn parse_entry(family: u8, attrs: &[u8]) -> Result<CtEntry, String> {
    let (mut orig, mut reply) = (None, None);
    let mut key = Vec::new();
    walk(attrs, |ty, v, whole| match ty {
        CTA_TUPLE_ORIG => {
            orig = Some(v);
            pad(&mut key, whole);
        }
        CTA_TUPLE_REPLY => reply = Some(v),
        CTA_ZONE | CTA_ID => pad(&mut key, whole),
        _ => {}
    })?;
    Ok(CtEntry {
        orig: parse_tuple(orig.ok_or("entry without an original tuple")?)?,
        reply: reply.map(parse_tuple).transpose()?,
        family,
        key,
    })
}

/// Decodes one dumped entry from its whole payload (nfgenmsg, then attributes), as
/// [`Conntrack::entries`] does for each reply: for the fuzz targets.
#[doc(hidden)]
pub fn parse_reply(payload: &[u8]) -> std::result::Result<CtEntry, String> {
    parse_entry(
        payload.first().copied().unwrap_or(0),
        payload.get(NFGENMSG_LEN..).unwrap_or_default(),
    )
}

/// The conntrack table of the network namespace the socket was opened in.
#[derive(Debug)]
pub struct Conntrack {
    nl: NetlinkSocket,
}

impl Conntrack {
    /// Opens a ctnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        NetlinkSocket::open(NETLINK_NETFILTER)
            .map(|nl| Conntrack { nl })
            .map_err(|e| Error::from_io("opening a NETLINK_NETFILTER socket", e))
    }

    /// Every entry of `family`, or of every family (one walk of the table) for `None`.
    pub fn entries(&mut self, family: Option<IpFamily>) -> Result<Vec<CtEntry>> {
        let op = || match family {
            Some(f) => format!("listing {} conntrack entries", family_name(f)),
            None => "listing conntrack entries".to_string(),
        };
        let fam = family.map_or(libc::AF_UNSPEC as u8, af);
        let msgs = self
            .nl
            .dump(|| CtMessage {
                message_type: ct_type(IPCTNL_MSG_CT_GET),
                family: fam,
                attrs: Vec::new(),
            })
            .map_err(|e| e.at(op()))?;
        msgs.iter()
            // Entries come back as IPCTNL_MSG_CT_NEW, like events.
            .filter(|m| m.message_type == ct_type(IPCTNL_MSG_CT_NEW))
            .map(|m| parse_entry(m.family, &m.attrs).map_err(|msg| Error::Decode { op: op(), msg }))
            .collect()
    }

    /// Deletes `entry`; returns false when it was already gone (expired, or replaced since the
    /// dump), which is not an error.
    pub fn delete(&mut self, entry: &CtEntry) -> Result<bool> {
        let msg = CtMessage {
            message_type: ct_type(IPCTNL_MSG_CT_DELETE),
            family: entry.family,
            attrs: entry.key.clone(),
        };
        match self.nl.request(msg, 0) {
            Ok(_) => Ok(true),
            Err(Failure::Errno(libc::ENOENT, _)) => Ok(false),
            Err(e) => Err(e.at(format!("deleting conntrack entry {}", entry.orig))),
        }
    }

    /// Deletes the entries of `families` whose original tuple is `protocol` to one of
    /// `dst_ports` (any address); returns how many were deleted.
    ///
    /// Each dump walks the kernel's whole (node-wide) conntrack hash, ~8 ms of CPU for the
    /// default 262144 buckets even when empty, so both families share one walk, and a netns
    /// whose table is empty is not walked at all.
    pub fn delete_by_orig_dst_port(
        &mut self,
        families: &[IpFamily],
        protocol: u8,
        dst_ports: &[u16],
    ) -> Result<usize> {
        if families.is_empty() || dst_ports.is_empty() || table_is_empty() {
            return Ok(0);
        }
        let which = match families {
            [one] => Some(*one),
            _ => None,
        };
        let mut deleted = 0;
        for entry in self.entries(which)? {
            let hit = entry.family().is_some_and(|f| families.contains(&f))
                && entry.orig.protocol == protocol
                && entry.orig.dst_port.is_some_and(|p| dst_ports.contains(&p));
            if hit && self.delete(&entry)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// True only when the calling thread's netns certainly tracks nothing; unknown (no conntrack
/// sysctls) is false, so the caller goes on and reports whatever the kernel says.
fn table_is_empty() -> bool {
    crate::sysctl::sysctl_read("net/netfilter/nf_conntrack_count").is_ok_and(|n| n.trim() == "0")
}

impl CtEntry {
    /// The payload [`Conntrack::delete`] sends for this entry (nfgenmsg, then the key).
    #[doc(hidden)]
    pub fn delete_payload(&self) -> Vec<u8> {
        let mut out = vec![self.family, NFNETLINK_V0, 0, 0];
        out.extend_from_slice(&self.key);
        out
    }

    /// The entry's address family.
    pub fn family(&self) -> Option<IpFamily> {
        match i32::from(self.family) {
            libc::AF_INET => Some(IpFamily::V4),
            libc::AF_INET6 => Some(IpFamily::V6),
            _ => None,
        }
    }
}

impl std::fmt::Display for CtTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proto {} {}", self.protocol, self.src)?;
        if let Some(p) = self.src_port {
            write!(f, " sport {p}")?;
        }
        write!(f, " -> {}", self.dst)?;
        if let Some(p) = self.dst_port {
            write!(f, " dport {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut v = ((NLA_HDRLEN + value.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(value);
        v.resize((v.len() + 3) & !3, 0);
        v
    }

    const NESTED: u16 = 0x8000;

    fn tuple(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let ips = [nla(CTA_IP_V4_SRC, &src), nla(CTA_IP_V4_DST, &dst)].concat();
        let l4 = [
            nla(CTA_PROTO_NUM, &[proto]),
            nla(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
            nla(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ]
        .concat();
        [
            nla(CTA_TUPLE_IP | NESTED, &ips),
            nla(CTA_TUPLE_PROTO | NESTED, &l4),
        ]
        .concat()
    }

    /// A dumped UDP entry 192.0.2.2:40000 -> 192.0.2.1:9053, DNATed to 10.9.0.2:53.
    fn dumped() -> (Vec<u8>, Vec<u8>) {
        let orig = nla(
            CTA_TUPLE_ORIG | NESTED,
            &tuple([192, 0, 2, 2], [192, 0, 2, 1], 17, 40000, 9053),
        );
        let reply = nla(
            CTA_TUPLE_REPLY | NESTED,
            &tuple([10, 9, 0, 2], [192, 0, 2, 2], 17, 53, 40000),
        );
        let status = nla(3, &0x18eu32.to_be_bytes());
        let id = nla(CTA_ID, &0xdead_beefu32.to_be_bytes());
        let attrs = [orig.clone(), reply, status, id.clone()].concat();
        (attrs, [orig, id].concat())
    }

    #[test]
    fn dumped_entry_is_parsed_and_its_delete_key_is_tuple_and_id() {
        let (attrs, key) = dumped();
        let e = parse_entry(libc::AF_INET as u8, &attrs).unwrap();
        assert_eq!(
            e.orig,
            CtTuple {
                src: "192.0.2.2".parse().unwrap(),
                dst: "192.0.2.1".parse().unwrap(),
                protocol: 17,
                src_port: Some(40000),
                dst_port: Some(9053),
            }
        );
        assert_eq!(
            e.reply.as_ref().unwrap().src,
            "10.9.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            e.key, key,
            "status and reply tuple are not part of a delete"
        );
        assert_eq!(
            e.orig.to_string(),
            "proto 17 192.0.2.2 sport 40000 -> 192.0.2.1 dport 9053"
        );
    }

    #[test]
    fn a_parsed_reply_gives_a_delete_payload_that_parses_to_the_same_key() {
        let (attrs, key) = dumped();
        let payload = [vec![libc::AF_INET as u8, NFNETLINK_V0, 0, 0], attrs].concat();
        let e = parse_reply(&payload).unwrap();
        assert_eq!(e.family(), Some(IpFamily::V4));
        let del = e.delete_payload();
        assert_eq!(del[NFGENMSG_LEN..], key[..]);
        let back = parse_reply(&del).unwrap();
        assert_eq!((back.orig, back.reply), (e.orig, None));
        assert!(parse_reply(&[]).is_err());
    }

    #[test]
    fn requests_encode_type_nfgenmsg_and_attributes() {
        let (attrs, key) = dumped();
        let e = parse_entry(libc::AF_INET6 as u8, &attrs).unwrap();
        let del = CtMessage {
            message_type: ct_type(IPCTNL_MSG_CT_DELETE),
            family: e.family,
            attrs: e.key.clone(),
        };
        // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
        assert_eq!(del.message_type(), 0x0102);
        assert_eq!(del.buffer_len(), 4 + key.len());
        let mut buf = vec![0xffu8; del.buffer_len()];
        del.serialize(&mut buf);
        assert_eq!(buf[..4], [libc::AF_INET6 as u8, 0, 0, 0]);
        assert_eq!(buf[4..], key[..]);
        assert_eq!(ct_type(IPCTNL_MSG_CT_GET), 0x0101);
        // A round trip through the deserializer keeps family and attributes.
        let mut header = NetlinkHeader::default();
        header.message_type = 0x0101;
        let back = CtMessage::deserialize(&header, &buf).unwrap();
        assert_eq!((back.family, back.attrs), (libc::AF_INET6 as u8, key));
    }

    #[test]
    fn v6_tuple_and_portless_protocols_parse() {
        let a: Ipv6Addr = "fd00:9::2".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        let ips = [
            nla(CTA_IP_V6_SRC, &a.octets()),
            nla(CTA_IP_V6_DST, &b.octets()),
        ]
        .concat();
        let t = [
            nla(CTA_TUPLE_IP | NESTED, &ips),
            nla(CTA_TUPLE_PROTO | NESTED, &nla(CTA_PROTO_NUM, &[58])),
        ]
        .concat();
        let e = parse_entry(10, &nla(CTA_TUPLE_ORIG | NESTED, &t)).unwrap();
        assert_eq!(e.orig.src, IpAddr::V6(a));
        assert_eq!((e.orig.protocol, e.orig.dst_port), (58, None));
        assert!(e.reply.is_none());
    }

    #[test]
    fn truncated_and_garbage_replies_are_errors_not_panics() {
        let (attrs, _) = dumped();
        for cut in 0..attrs.len() {
            // Every prefix either parses (cut at an attribute boundary after the orig tuple) or
            // is reported; none panics.
            let _ = parse_entry(2, &attrs[..cut]);
        }
        assert!(parse_entry(2, &attrs[..attrs.len() - 2]).is_err());
        assert!(parse_entry(2, &[]).is_err(), "no original tuple");
        // Lengths below the header, beyond the buffer, and wrong-sized values.
        assert!(parse_entry(2, &[2, 0, 1, 0]).is_err());
        assert!(parse_entry(2, &[200, 0, 1, 0, 0, 0, 0, 0]).is_err());
        let bad_port = nla(
            CTA_TUPLE_ORIG,
            &[
                nla(
                    CTA_TUPLE_IP,
                    &[nla(1, &[1, 2, 3, 4]), nla(2, &[1, 2, 3, 4])].concat(),
                ),
                nla(CTA_TUPLE_PROTO, &[nla(1, &[17]), nla(3, &[1])].concat()),
            ]
            .concat(),
        );
        assert!(parse_entry(2, &bad_port).is_err());
        // Every byte of a valid entry set to values that stress lengths, types and nesting.
        for i in 0..attrs.len() {
            for v in [0u8, 1, 3, 4, 5, 0x7f, 0x80, 0xff] {
                let mut m = attrs.clone();
                m[i] = v;
                let _ = parse_entry(2, &m);
            }
        }
        // Pseudo-random garbage of many lengths.
        let mut x = 0x1234_5678u32;
        for len in 0..512 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_entry(2, &buf);
            let _ = CtMessage::deserialize(&NetlinkHeader::default(), &buf);
        }
    }
}
