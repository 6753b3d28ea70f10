//! Netlink framing for nf_tables: building request messages and walking replies.
//!
//! Constants are the values of the kernel's uapi headers `linux/netlink.h`,
//! `linux/netfilter/nfnetlink.h` and `linux/netfilter/nf_tables.h`.

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NFGENMSG_LEN: usize = 4;
pub(crate) const NLA_HDRLEN: usize = 4;

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
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
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
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
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
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

/// One netlink message of a reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub(crate) ty: u16,
    pub(crate) seq: u32,
    /// Everything after the netlink header.
    pub(crate) payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes after the nfgenmsg header, for nf_tables messages.
    #[cfg(test)]
    pub(crate) fn nf_attrs(&self) -> Attrs<'a> {
        Attrs::new(self.nf_payload())
    }

    /// The bytes after the nfgenmsg header.
    pub(crate) fn nf_payload(&self) -> &'a [u8] {
        self.payload.get(NFGENMSG_LEN..).unwrap_or_default()
    }

    /// For an `NLMSG_ERROR` message: the (negative) errno, 0 for an acknowledgement.
    pub(crate) fn error_code(&self) -> Option<i32> {
        let raw: [u8; 4] = self.payload.get(..4)?.try_into().ok()?;
        Some(i32::from_ne_bytes(raw))
    }

    /// For an `NLMSG_ERROR` message: the sequence number of the request it answers.
    pub(crate) fn error_seq(&self) -> Option<u32> {
        // struct nlmsgerr { int error; struct nlmsghdr msg; }: seq sits at 4 + 8.
        let raw: [u8; 4] = self.payload.get(12..16)?.try_into().ok()?;
        Some(u32::from_ne_bytes(raw))
    }
}

/// Iterates the netlink messages of one datagram; stops at the first malformed header.
pub(crate) struct Msgs<'a> {
    rest: &'a [u8],
}

impl<'a> Msgs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Msgs { rest: buf }
    }
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Msg<'a>;

    fn next(&mut self) -> Option<Msg<'a>> {
        let b = self.rest;
        let len = ne_u32(b, 0)? as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let msg = Msg {
            ty: ne_u16(b, 4)?,
            seq: ne_u32(b, 8)?,
            payload: b.get(NLMSG_HDRLEN..len)?,
        };
        self.rest = b.get(align4(len).min(b.len())..).unwrap_or_default();
        Some(msg)
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn built_message_parses_back() {
        let mut m = MsgBuf::default();
        let start = m.begin_msg(
            MsgType::NewTable.nlmsg_type(),
            NLM_F_CREATE,
            7,
            NFPROTO_INET,
            0,
        );
        m.put_str(attr::TABLE_NAME, "abc");
        m.nest(attr::CHAIN_HOOK, |m| {
            m.put_be32(attr::HOOK_HOOKNUM, 4);
            m.put_be32(attr::HOOK_PRIORITY, 100);
        });
        m.end_msg(start);
        assert_eq!(m.bytes().len() % 4, 0);

        let msgs: Vec<_> = Msgs::new(m.bytes()).collect();
        assert_eq!(msgs.len(), 1);
        let msg = msgs[0];
        assert_eq!(msg.seq, 7);
        let attrs = msg.nf_attrs();
        assert_eq!(attrs.str(attr::TABLE_NAME), Some("abc"));
        let hook = attrs.nested(attr::CHAIN_HOOK);
        assert_eq!(hook.and_then(|h| h.be32(attr::HOOK_PRIORITY)), Some(100));
    }

    #[test]
    fn truncated_input_stops_iteration() {
        assert_eq!(Msgs::new(&[1, 2, 3]).count(), 0);
        assert_eq!(Attrs::new(&[200, 0, 1, 0, 0]).count(), 0);
    }
}
