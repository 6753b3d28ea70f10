//! nf_tables encoding: the kernel's constants, request messages and attribute parsing. The
//! transport (sending, sequence numbers, acknowledgements, dumps) is netops's.
//!
//! Constants are the values of the kernel's uapi headers `linux/netlink.h`,
//! `linux/netfilter/nfnetlink.h` and `linux/netfilter/nf_tables.h`.

pub(crate) const NFGENMSG_LEN: usize = 4;
pub(crate) const NLA_HDRLEN: usize = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(crate) const NFNL_BATCH_GENID: u16 = 1;

pub(crate) const NFPROTO_UNSPEC: u8 = 0;
pub(crate) const NFPROTO_INET: u8 = 1;
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_BRIDGE: u8 = 7;
pub(crate) const NFPROTO_IPV6: u8 = 10;

// Verdicts, chain hooks and priorities (`linux/netfilter.h`, `linux/netfilter_bridge.h`).
pub(crate) const NF_DROP: u32 = 0;
pub(crate) const NF_ACCEPT: u32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NF_INET_PRE_ROUTING: u32 = 0;
pub(crate) const NF_INET_LOCAL_OUT: u32 = 3;
pub(crate) const NF_INET_POST_ROUTING: u32 = 4;
pub(crate) const NF_BR_PRE_ROUTING: u32 = 0;
pub(crate) const NF_IP_PRI_NAT_DST: i32 = -100;
pub(crate) const NF_IP_PRI_NAT_SRC: i32 = 100;
/// `NF_BR_PRI_NAT_DST_BRIDGED`: before anything else on the bridge.
pub(crate) const NF_BR_PRI_NAT_DST_BRIDGED: i32 = -300;

// Sets.
pub(crate) const NFT_SET_MAP: u32 = 0x8;
pub(crate) const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// `nft`'s data type ids, so `nft list` prints keys as addresses, names, protocol . port.
pub(crate) const NFT_TYPE_IPADDR: u32 = 7;
pub(crate) const NFT_TYPE_IP6ADDR: u32 = 8;
pub(crate) const NFT_TYPE_IFNAME: u32 = 41;
/// `inet_proto . inet_service` (a concatenation: 6 bits per type).
pub(crate) const NFT_TYPE_PROTO_SERVICE: u32 = (12 << 6) | 13;
/// Set user data telling `nft` the key is a host-order string (`NFTNL_UDATA_SET_KEYBYTEORDER`).
pub(crate) const UDATA_SET_KEYBYTEORDER: u8 = 0;
pub(crate) const BYTEORDER_HOST_ENDIAN: u32 = 1;
pub(crate) const IFNAMSIZ: usize = 16;
/// `ether saddr`: 6 bytes at offset 6 of the link-layer header.
pub(crate) const ETHER_SADDR_OFFSET: u32 = 6;
pub(crate) const ETHER_ADDR_LEN: u32 = 6;

// Registers, expression keys and operators (`linux/netfilter/nf_tables.h`).
pub(crate) const NFT_REG_VERDICT: u32 = 0;
pub(crate) const NFT_REG_1: u32 = 1;
pub(crate) const NFT_REG_2: u32 = 2;
/// The 32-bit registers a concatenation is loaded into.
pub(crate) const NFT_REG32_00: u32 = 8;
pub(crate) const NFT_REG32_01: u32 = 9;
pub(crate) const NFT_META_MARK: u32 = 3;
pub(crate) const NFT_META_IIFNAME: u32 = 6;
pub(crate) const NFT_META_NFPROTO: u32 = 15;
pub(crate) const NFT_META_L4PROTO: u32 = 16;
pub(crate) const NFT_PAYLOAD_LL_HEADER: u32 = 0;
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
pub(crate) const NFT_CMP_EQ: u32 = 0;
pub(crate) const NFT_CMP_NEQ: u32 = 1;
pub(crate) const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
pub(crate) const NFTA_FIB_F_DADDR: u32 = 1 << 1;
pub(crate) const NFT_NAT_DNAT: u32 = 1;
/// `RTN_LOCAL` (`linux/rtnetlink.h`): what `fib daddr type local` compares with.
pub(crate) const RTN_LOCAL: u32 = 2;

/// `enum nf_tables_msg_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum MsgType {
    NewTable = 0,
    GetTable = 1,
    NewChain = 3,
    GetChain = 4,
    DelChain = 5,
    NewRule = 6,
    GetRule = 7,
    DelRule = 8,
    NewSet = 9,
    NewSetElem = 12,
    GetSetElem = 13,
    DelSetElem = 14,
    GetGen = 16,
}

impl MsgType {
    pub(crate) fn nlmsg_type(self) -> u16 {
        (NFNL_SUBSYS_NFTABLES << 8) | self as u16
    }
}

/// Attribute numbers, grouped per nf_tables object.
pub(crate) mod attr {
    pub const TABLE_NAME: u16 = 1;

    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;

    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const RULE_USERDATA: u16 = 7;
    pub const LIST_ELEM: u16 = 1;
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;

    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_FLAGS: u16 = 3;
    pub const SET_KEY_TYPE: u16 = 4;
    pub const SET_KEY_LEN: u16 = 5;
    pub const SET_DATA_TYPE: u16 = 6;
    pub const SET_ID: u16 = 10;
    pub const SET_USERDATA: u16 = 13;

    pub const SET_ELEM_LIST_TABLE: u16 = 1;
    pub const SET_ELEM_LIST_SET: u16 = 2;
    pub const SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub const SET_ELEM_KEY: u16 = 1;
    pub const SET_ELEM_DATA: u16 = 2;

    pub const DATA_VALUE: u16 = 1;
    pub const DATA_VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;

    pub const GEN_ID: u16 = 1;

    pub const META_DREG: u16 = 1;
    pub const META_KEY: u16 = 2;
    pub const META_SREG: u16 = 3;
    pub const CMP_SREG: u16 = 1;
    pub const CMP_OP: u16 = 2;
    pub const CMP_DATA: u16 = 3;
    pub const PAYLOAD_DREG: u16 = 1;
    pub const PAYLOAD_BASE: u16 = 2;
    pub const PAYLOAD_OFFSET: u16 = 3;
    pub const PAYLOAD_LEN: u16 = 4;
    pub const BITWISE_SREG: u16 = 1;
    pub const BITWISE_DREG: u16 = 2;
    pub const BITWISE_LEN: u16 = 3;
    pub const BITWISE_MASK: u16 = 4;
    pub const BITWISE_XOR: u16 = 5;
    pub const LOOKUP_SET: u16 = 1;
    pub const LOOKUP_SREG: u16 = 2;
    pub const LOOKUP_DREG: u16 = 3;
    pub const IMMEDIATE_DREG: u16 = 1;
    pub const IMMEDIATE_DATA: u16 = 2;
    pub const COUNTER_BYTES: u16 = 1;
    pub const COUNTER_PACKETS: u16 = 2;
    pub const FIB_DREG: u16 = 1;
    pub const FIB_RESULT: u16 = 2;
    pub const FIB_FLAGS: u16 = 3;
    pub const NAT_TYPE: u16 = 1;
    pub const NAT_FAMILY: u16 = 2;
    pub const NAT_REG_ADDR_MIN: u16 = 3;
    pub const NAT_REG_PROTO_MIN: u16 = 5;
}

/// Appends netlink messages and attributes to one buffer (a single datagram).
#[derive(Default)]
pub(crate) struct MsgBuf {
    buf: Vec<u8>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl MsgBuf {
    /// A message payload that starts with the nfgenmsg header (the transport adds the netlink
    /// header).
    pub(crate) fn nfgen(family: u8, res_id: u16) -> MsgBuf {
        let mut m = MsgBuf::default();
        m.put_nfgenmsg(family, res_id);
        m
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn put_nfgenmsg(&mut self, family: u8, res_id: u16) {
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Start a message with its nfgenmsg header; returns its offset for [`MsgBuf::end_msg`].
    pub(crate) fn begin_msg(
        &mut self,
        nlmsg_type: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end_msg
        self.buf.extend_from_slice(&nlmsg_type.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        self.put_nfgenmsg(family, res_id);
        start
    }

    /// Set the sequence number of the message that starts at `start`.
    pub(crate) fn set_seq(&mut self, start: usize, seq: u32) {
        if let Some(raw) = self.buf.get_mut(start + 8..start + 12) {
            raw.copy_from_slice(&seq.to_ne_bytes());
        }
    }

    /// Add `flag` to the header flags of the message that starts at `start`.
    pub(crate) fn set_flag(&mut self, start: usize, flag: u16) {
        if let Some(raw) = self.buf.get_mut(start + 6..start + 8) {
            let flags = u16::from_ne_bytes([raw[0], raw[1]]) | flag;
            raw.copy_from_slice(&flags.to_ne_bytes());
        }
    }

    pub(crate) fn end_msg(&mut self, start: usize) {
        self.pad();
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let aligned = align4(self.buf.len());
        self.buf.resize(aligned, 0);
    }

    pub(crate) fn put(&mut self, ty: u16, payload: &[u8]) {
        let len = (NLA_HDRLEN + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v);
    }

    pub(crate) fn put_be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    pub(crate) fn put_be64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }

    /// Open a nested attribute; close it with [`MsgBuf::end_nest`].
    pub(crate) fn begin_nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub(crate) fn end_nest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// A nested attribute whose content `f` writes.
    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut MsgBuf)) {
        let start = self.begin_nest(ty);
        f(self);
        self.end_nest(start);
    }
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Iterates attributes as `(type without flag bits, payload)`.
#[derive(Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }

    /// The payload of the first attribute of type `ty`.
    pub(crate) fn find(&self, ty: u16) -> Option<&'a [u8]> {
        self.clone().find_map(|(t, p)| (t == ty).then_some(p))
    }

    pub(crate) fn nested(&self, ty: u16) -> Option<Attrs<'a>> {
        self.find(ty).map(Attrs::new)
    }

    /// A NUL-terminated string attribute, without its terminator.
    pub(crate) fn str(&self, ty: u16) -> Option<&'a str> {
        let raw = self.find(ty)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        std::str::from_utf8(raw).ok()
    }

    pub(crate) fn be32(&self, ty: u16) -> Option<u32> {
        Some(u32::from_be_bytes(
            self.find(ty)?.get(..4)?.try_into().ok()?,
        ))
    }

    pub(crate) fn be64(&self, ty: u16) -> Option<u64> {
        Some(u64::from_be_bytes(
            self.find(ty)?.get(..8)?.try_into().ok()?,
        ))
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let b = self.rest;
        let len = ne_u16(b, 0)? as usize;
        if len < NLA_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let ty = ne_u16(b, 2)? & NLA_TYPE_MASK;
        let payload = b.get(NLA_HDRLEN..len)?;
        self.rest = b.get(align4(len).min(b.len())..).unwrap_or_default();
        Some((ty, payload))
    }
}

/// The attributes `build` writes, as a reply would carry them after the nfgenmsg header.
#[cfg(test)]
pub(crate) fn encoded(build: impl FnOnce(&mut MsgBuf)) -> Vec<u8> {
    let mut m = MsgBuf::default();
    build(&mut m);
    m.into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn built_attributes_parse_back() {
        let bytes = encoded(|m| {
            m.put_str(attr::TABLE_NAME, "abc");
            m.nest(attr::CHAIN_HOOK, |m| {
                m.put_be32(attr::HOOK_HOOKNUM, 4);
                m.put_be32(attr::HOOK_PRIORITY, 100);
            });
        });
        assert_eq!(bytes.len() % 4, 0);
        let attrs = Attrs::new(&bytes);
        assert_eq!(attrs.str(attr::TABLE_NAME), Some("abc"));
        let hook = attrs.nested(attr::CHAIN_HOOK);
        assert_eq!(hook.and_then(|h| h.be32(attr::HOOK_PRIORITY)), Some(100));
    }

    #[test]
    fn message_header_carries_type_flags_and_patched_seq() {
        let mut m = MsgBuf::default();
        let start = m.begin_msg(
            MsgType::NewTable.nlmsg_type(),
            NLM_F_CREATE,
            0,
            NFPROTO_INET,
            0,
        );
        m.put_str(attr::TABLE_NAME, "abc");
        m.end_msg(start);
        m.set_flag(start, NLM_F_ACK);
        m.set_seq(start, 7);
        let b = m.bytes();
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x0a00);
        let flags = u16::from_ne_bytes(b[6..8].try_into().unwrap());
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(Attrs::new(&b[20..]).str(attr::TABLE_NAME), Some("abc"));
    }

    #[test]
    fn truncated_input_stops_iteration() {
        assert_eq!(Attrs::new(&[200, 0, 1, 0, 0]).count(), 0);
    }
}
