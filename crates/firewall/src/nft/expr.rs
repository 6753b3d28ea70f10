//! The nf_tables expressions our rules use, written to netlink, and a rule parser that reads
//! back what masquerade and port mapping rules do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::wire::{
    attr, Attrs, MsgBuf, NFPROTO_IPV4, NFPROTO_IPV6, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_META_NFPROTO,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_REG_1, NFT_REG_VERDICT,
};
/// Rule user data is a list of (type, length, value); type 0 is the comment `nft` shows.
const UDATA_RULE_COMMENT: u8 = 0;
/// `nft` keeps comments below 256 bytes (the length field is one byte).
const COMMENT_MAX: usize = 254;

/// Where an address family keeps its addresses in the network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub(crate) fn nfproto(self) -> u8 {
        match self {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        }
    }

    pub(crate) fn addr_len(self) -> u32 {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    pub(crate) fn saddr_offset(self) -> u32 {
        match self {
            Family::V4 => 12,
            Family::V6 => 8,
        }
    }

    pub(crate) fn daddr_offset(self) -> u32 {
        match self {
            Family::V4 => 16,
            Family::V6 => 24,
        }
    }

    /// Multicast destinations are never masqueraded: pods talk multicast on their own segment.
    pub(crate) fn multicast(self) -> IpNetwork {
        match self {
            Family::V4 => IpNetwork::V4(
                ipnetwork::Ipv4Network::new(Ipv4Addr::new(224, 0, 0, 0), 4)
                    .unwrap_or_else(|_| ipnetwork::Ipv4Network::from(Ipv4Addr::UNSPECIFIED)),
            ),
            Family::V6 => IpNetwork::V6(
                ipnetwork::Ipv6Network::new(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8)
                    .unwrap_or_else(|_| ipnetwork::Ipv6Network::from(Ipv6Addr::UNSPECIFIED)),
            ),
        }
    }
}

pub(crate) fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn addr_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

pub(crate) fn expr(m: &mut MsgBuf, name: &str, data: impl FnOnce(&mut MsgBuf)) {
    m.nest(attr::LIST_ELEM, |m| {
        m.put_str(attr::EXPR_NAME, name);
        m.nest(attr::EXPR_DATA, data);
    });
}

pub(crate) fn cmp(m: &mut MsgBuf, op: u32, value: &[u8]) {
    expr(m, "cmp", |m| {
        m.put_be32(attr::CMP_SREG, NFT_REG_1);
        m.put_be32(attr::CMP_OP, op);
        m.nest(attr::CMP_DATA, |m| m.put(attr::DATA_VALUE, value));
    });
}

/// Load `len` bytes at `offset` of the header `base` into register `dreg`.
pub(crate) fn load_payload(m: &mut MsgBuf, base: u32, dreg: u32, offset: u32, len: u32) {
    expr(m, "payload", |m| {
        m.put_be32(attr::PAYLOAD_DREG, dreg);
        m.put_be32(attr::PAYLOAD_BASE, base);
        m.put_be32(attr::PAYLOAD_OFFSET, offset);
        m.put_be32(attr::PAYLOAD_LEN, len);
    });
}

/// Network-header bytes into register 1.
pub(crate) fn payload(m: &mut MsgBuf, offset: u32, len: u32) {
    load_payload(m, NFT_PAYLOAD_NETWORK_HEADER, NFT_REG_1, offset, len);
}

/// Load the packet's meta `key` into register `dreg`.
pub(crate) fn load_meta(m: &mut MsgBuf, key: u32, dreg: u32) {
    expr(m, "meta", |m| {
        m.put_be32(attr::META_DREG, dreg);
        m.put_be32(attr::META_KEY, key);
    });
}

/// Set the packet's meta `key` from register `sreg`.
pub(crate) fn set_meta(m: &mut MsgBuf, key: u32, sreg: u32) {
    expr(m, "meta", |m| {
        m.put_be32(attr::META_KEY, key);
        m.put_be32(attr::META_SREG, sreg);
    });
}

/// Register 1 = (register 1 & `mask`) ^ `xor`, over `mask.len()` bytes.
pub(crate) fn bitwise(m: &mut MsgBuf, mask: &[u8], xor: &[u8]) {
    expr(m, "bitwise", |m| {
        m.put_be32(attr::BITWISE_SREG, NFT_REG_1);
        m.put_be32(attr::BITWISE_DREG, NFT_REG_1);
        m.put_be32(attr::BITWISE_LEN, mask.len() as u32);
        m.nest(attr::BITWISE_MASK, |m| m.put(attr::DATA_VALUE, mask));
        m.nest(attr::BITWISE_XOR, |m| m.put(attr::DATA_VALUE, xor));
    });
}

/// Register `dreg` = `value`.
pub(crate) fn immediate(m: &mut MsgBuf, dreg: u32, value: &[u8]) {
    expr(m, "immediate", |m| {
        m.put_be32(attr::IMMEDIATE_DREG, dreg);
        m.nest(attr::IMMEDIATE_DATA, |m| m.put(attr::DATA_VALUE, value));
    });
}

/// The verdict `code` (`NF_DROP`, ...).
pub(crate) fn verdict(m: &mut MsgBuf, code: u32) {
    expr(m, "immediate", |m| {
        m.put_be32(attr::IMMEDIATE_DREG, NFT_REG_VERDICT);
        m.nest(attr::IMMEDIATE_DATA, |m| {
            m.nest(attr::DATA_VERDICT, |m| m.put_be32(attr::VERDICT_CODE, code));
        });
    });
}

/// `vmap @<map>` keyed by register `sreg`.
pub(crate) fn vmap(m: &mut MsgBuf, map: &str, sreg: u32) {
    expr(m, "lookup", |m| {
        m.put_str(attr::LOOKUP_SET, map);
        m.put_be32(attr::LOOKUP_SREG, sreg);
        m.put_be32(attr::LOOKUP_DREG, NFT_REG_VERDICT);
    });
}

/// `meta nfproto ipv4|ipv6`: an inet chain sees both families.
pub(crate) fn match_family(m: &mut MsgBuf, fam: Family) {
    load_meta(m, NFT_META_NFPROTO, NFT_REG_1);
    cmp(m, NFT_CMP_EQ, &[fam.nfproto()]);
}

/// `ip daddr != <net>` (or `ip6 daddr`).
pub(crate) fn daddr_not_in(m: &mut MsgBuf, fam: Family, net: IpNetwork) {
    match_prefix(m, fam, fam.daddr_offset(), net, NFT_CMP_NEQ);
}

/// Compare the address at `offset` of the network header with `net` (`op`: equal or not),
/// encoded the way `nft` encodes it: a byte-aligned prefix loads only the prefix bytes; other
/// prefixes mask the whole address.
pub(crate) fn match_prefix(m: &mut MsgBuf, fam: Family, offset: u32, net: IpNetwork, op: u32) {
    let prefix = u32::from(net.prefix());
    let network = addr_bytes(net.network());
    if prefix % 8 == 0 && prefix > 0 {
        let len = prefix / 8;
        payload(m, offset, len);
        cmp(m, op, network.get(..len as usize).unwrap_or(&network));
        return;
    }
    payload(m, offset, fam.addr_len());
    let mask = addr_bytes(net.mask());
    bitwise(m, &mask, &vec![0u8; mask.len()]);
    cmp(m, op, &network);
}

/// The pod's own subnet: the address with its host bits cleared.
pub(crate) fn subnet_of(address: IpNetwork) -> IpNetwork {
    IpNetwork::new(address.network(), address.prefix()).unwrap_or(address)
}

pub(crate) fn comment_udata(comment: &str) -> Vec<u8> {
    let mut text = comment.as_bytes().to_vec();
    text.truncate(COMMENT_MAX);
    let mut out = Vec::with_capacity(text.len() + 3);
    out.push(UDATA_RULE_COMMENT);
    out.push((text.len() + 1) as u8);
    out.extend_from_slice(&text);
    out.push(0);
    out
}

pub(crate) fn comment_from_udata(udata: &[u8]) -> Option<Vec<u8>> {
    let mut rest = udata;
    while let [ty, len, tail @ ..] = rest {
        let value = tail.get(..*len as usize)?;
        if *ty == UDATA_RULE_COMMENT {
            return Some(value.strip_suffix(&[0]).unwrap_or(value).to_vec());
        }
        rest = tail.get(*len as usize..)?;
    }
    None
}

/// What a rule in the kernel does, as far as masquerading is concerned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ObservedRule {
    pub(crate) handle: u64,
    /// `ip saddr == X` / `ip6 saddr == X`.
    pub(crate) saddr: Option<IpAddr>,
    /// Destinations excluded with `daddr != net`.
    pub(crate) daddr_not: Vec<IpNetwork>,
    /// Sets or maps looked up (`vmap @name`).
    pub(crate) lookups: Vec<String>,
    /// (packets, bytes) of the rule's counter.
    pub(crate) counter: Option<(u64, u64)>,
    pub(crate) masquerade: bool,
    pub(crate) comment: Option<Vec<u8>>,
}

impl ObservedRule {
    /// Does this rule masquerade `address` for destinations outside its subnet and multicast?
    pub(crate) fn masquerades(&self, address: IpNetwork) -> bool {
        let fam = Family::of(address.ip());
        self.masquerade
            && self.saddr == Some(address.ip())
            && self.daddr_not.contains(&subnet_of(address))
            && self.daddr_not.contains(&fam.multicast())
    }
}

/// What register 1 holds while parsing a rule.
#[derive(Debug, Clone, Copy)]
enum Loaded {
    NfProto,
    Network { offset: u32, len: u32 },
}

/// Record `ip saddr == X` or `ip daddr != net` from a comparison of network-header bytes.
fn observe_address_cmp(
    rule: &mut ObservedRule,
    fam: Family,
    offset: u32,
    len: u32,
    op: Option<u32>,
    value: &[u8],
    mask: Option<&[u8]>,
) {
    let full = fam.addr_len();
    if len == 0 || len > full || value.len() != len as usize {
        return;
    }
    let mut bytes = value.to_vec();
    bytes.resize(full as usize, 0);
    let Some(addr) = addr_from_bytes(&bytes) else {
        return;
    };
    if op == Some(NFT_CMP_EQ) && offset == fam.saddr_offset() && len == full && mask.is_none() {
        rule.saddr = Some(addr);
    } else if op == Some(NFT_CMP_NEQ) && offset == fam.daddr_offset() {
        let prefix = match mask {
            Some(m) => m.iter().map(|b| b.count_ones()).sum::<u32>(),
            None => len * 8,
        };
        if let Ok(net) = IpNetwork::new(addr, prefix as u8) {
            rule.daddr_not.push(net);
        }
    }
}

/// Parse the attributes of a rule message (`NFT_MSG_NEWRULE` from a dump).
/// A rule message's handle and comment (from its user data).
pub(crate) fn rule_identity(attrs: &Attrs) -> (u64, Option<Vec<u8>>) {
    (
        attrs.be64(attr::RULE_HANDLE).unwrap_or(0),
        attrs.find(attr::RULE_USERDATA).and_then(comment_from_udata),
    )
}

/// A `cmp` expression's operator and the value it compares with.
pub(crate) fn cmp_operands<'a>(data: &Attrs<'a>) -> (Option<u32>, &'a [u8]) {
    let value = data
        .nested(attr::CMP_DATA)
        .and_then(|d| d.find(attr::DATA_VALUE))
        .unwrap_or_default();
    (data.be32(attr::CMP_OP), value)
}

/// A rule message's expressions, in order, as (name, data attributes).
pub(crate) fn rule_expressions<'a>(
    attrs: &Attrs<'a>,
) -> impl Iterator<Item = (&'a str, Attrs<'a>)> {
    let exprs = attrs.nested(attr::RULE_EXPRESSIONS).into_iter().flatten();
    exprs.map(|(_, elem)| {
        let elem = Attrs::new(elem);
        let name = elem.str(attr::EXPR_NAME).unwrap_or_default();
        (
            name,
            elem.nested(attr::EXPR_DATA).unwrap_or(Attrs::new(&[])),
        )
    })
}

pub(crate) fn parse_rule(attrs: Attrs) -> ObservedRule {
    let mut rule = ObservedRule::default();
    (rule.handle, rule.comment) = rule_identity(&attrs);
    // The family matched so far (`meta nfproto`), the last thing loaded into register 1, and a
    // mask applied to it.
    let mut fam: Option<Family> = None;
    let mut loaded: Option<Loaded> = None;
    let mut mask: Option<Vec<u8>> = None;
    for (name, data) in rule_expressions(&attrs) {
        match name {
            "meta" => {
                loaded = (data.be32(attr::META_KEY) == Some(NFT_META_NFPROTO))
                    .then_some(Loaded::NfProto);
                mask = None;
            }
            "payload" if data.be32(attr::PAYLOAD_BASE) == Some(NFT_PAYLOAD_NETWORK_HEADER) => {
                loaded = data
                    .be32(attr::PAYLOAD_OFFSET)
                    .zip(data.be32(attr::PAYLOAD_LEN))
                    .map(|(offset, len)| Loaded::Network { offset, len });
                mask = None;
            }
            "bitwise" => {
                mask = data
                    .nested(attr::BITWISE_MASK)
                    .and_then(|d| d.find(attr::DATA_VALUE))
                    .map(<[u8]>::to_vec);
            }
            "cmp" => {
                let (op, value) = cmp_operands(&data);
                match loaded {
                    Some(Loaded::NfProto) if op == Some(NFT_CMP_EQ) => {
                        fam = match value.first() {
                            Some(&NFPROTO_IPV4) => Some(Family::V4),
                            Some(&NFPROTO_IPV6) => Some(Family::V6),
                            _ => None,
                        };
                    }
                    Some(Loaded::Network { offset, len }) => {
                        if let Some(f) = fam {
                            observe_address_cmp(
                                &mut rule,
                                f,
                                offset,
                                len,
                                op,
                                value,
                                mask.as_deref(),
                            );
                        }
                    }
                    _ => {}
                }
                loaded = None;
                mask = None;
            }
            "lookup" => {
                if let Some(set) = data.str(attr::LOOKUP_SET) {
                    rule.lookups.push(set.to_string());
                }
            }
            "counter" => {
                rule.counter = Some((
                    data.be64(attr::COUNTER_PACKETS).unwrap_or(0),
                    data.be64(attr::COUNTER_BYTES).unwrap_or(0),
                ));
            }
            "masq" => rule.masquerade = true,
            _ => {}
        }
    }
    rule
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    #[test]
    fn long_comments_are_cut_to_fit_the_length_byte() {
        let udata = comment_udata(&"c".repeat(400));
        assert_eq!(
            comment_from_udata(&udata).map(|c| c.len()),
            Some(COMMENT_MAX)
        );
    }
}
