//! A small blocking netlink transport, generic over the protocol family.
//!
//! One socket, one sequence counter, one receive buffer. A request either waits for its ACK (or
//! NACK) or, for dumps, collects every message up to `NLMSG_DONE`. Dumps interrupted by concurrent
//! changes (`NLM_F_DUMP_INTR`) are retried, as the Go reference does, because a half-consistent
//! list of links or routes is worse than a few microseconds more.
//!
//! The same type carries `NETLINK_NETFILTER` messages: [`RawMessage`] for requests and dumps
//! whose payload the caller encodes itself, [`NetlinkSocket::send_batch`] for transactions.

use std::io;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NlasIterator, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

use crate::error::Failure;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLMSG_HDRLEN: usize = 16;
/// Extended-ACK attribute carrying a human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Dump replies are at most 32 KiB per datagram; 64 KiB leaves room for any single message.
const RECV_BUF: usize = 64 * 1024;
/// How often an interrupted dump is restarted before giving up (the Go reference uses 10 too).
const DUMP_RETRIES: usize = 10;

/// A blocking netlink socket with sequence numbers, ACK and dump handling.
#[derive(Debug)]
pub struct NetlinkSocket {
    sock: Socket,
    seq: u32,
    port: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

/// A netlink message whose payload (everything after the netlink header) the caller encodes
/// and decodes: nf_tables and other families without a typed crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// `nlmsg_type` (for nfnetlink: subsystem << 8 | message).
    pub message_type: u16,
    /// The bytes after the netlink header.
    pub payload: Vec<u8>,
}

impl NetlinkSerializable for RawMessage {
    fn message_type(&self) -> u16 {
        self.message_type
    }

    fn buffer_len(&self) -> usize {
        self.payload.len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        if let Some(dst) = buffer.get_mut(..self.payload.len()) {
            dst.copy_from_slice(&self.payload);
        }
    }
}

impl NetlinkDeserializable for RawMessage {
    type Error = std::convert::Infallible;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        Ok(RawMessage {
            message_type: header.message_type,
            payload: payload.to_vec(),
        })
    }
}

/// One parsed message header plus its payload bytes.
struct Frame<'a> {
    header: NetlinkHeader,
    payload: &'a [u8],
}

impl NetlinkSocket {
    /// Opens a socket for `protocol` (a `netlink_sys::protocols` constant) in the calling thread's netns.
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut sock = Socket::new(protocol)?;
        let addr = sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Error replies echo only the request header, not the whole request.
        sock.set_cap_ack(true)?;
        // Ask for the kernel's explanation of a NACK ("Unknown device type", ...).
        sock.set_ext_ack(true)?;
        // Dump filters (ifindex, table) are applied by the kernel instead of being ignored.
        // Not every family supports it; the route family does since 4.20.
        let _ = sock.set_netlink_get_strict_chk(true);
        Ok(NetlinkSocket {
            sock,
            seq: 0,
            port: addr.port_number(),
            send_buf: Vec::with_capacity(4096),
            recv_buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Fail a receive that waits longer than `timeout` (`EAGAIN`) instead of blocking forever:
    /// a guard against a kernel that never answers.
    pub fn set_receive_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
        let tv = nix::sys::time::TimeVal::from(libc::timeval {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_usec: timeout.subsec_micros().into(),
        });
        setsockopt(&self.sock, ReceiveTimeout, &tv).map_err(io::Error::from)
    }

    /// Returns a fresh sequence number (for callers that build raw messages).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `inner` as a request that must be acknowledged; returns any messages sent before the ACK.
    ///
    /// `flags` are added to `NLM_F_REQUEST | NLM_F_ACK` (e.g. `NLM_F_CREATE | NLM_F_EXCL`).
    pub fn request<I>(&mut self, inner: I, flags: u16) -> Result<Vec<I>, Failure>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        let seq = self.send_inner(inner, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        let mut out = Vec::new();
        self.collect(seq, false, &mut out)?;
        Ok(out)
    }

    /// Runs a dump request built by `make` and returns every message, retrying interrupted dumps.
    pub fn dump<I, F>(&mut self, make: F) -> Result<Vec<I>, Failure>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
        F: Fn() -> I,
    {
        let mut attempt = 0;
        loop {
            let seq = self.send_inner(make(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let mut out = Vec::new();
            let interrupted = self.collect(seq, true, &mut out)?;
            if !interrupted {
                return Ok(out);
            }
            attempt += 1;
            if attempt >= DUMP_RETRIES {
                return Err(Failure::Errno(
                    libc::EINTR,
                    Some(format!(
                        "dump interrupted by concurrent changes {DUMP_RETRIES} times"
                    )),
                ));
            }
        }
    }

    /// Sends pre-encoded messages in one datagram and waits for their outcome.
    ///
    /// Meant for `NETLINK_NETFILTER` batches: the caller encodes BEGIN/…/END itself, using
    /// [`next_seq`](Self::next_seq), and lists the sequence numbers that carry `NLM_F_ACK`.
    /// Waiting ends when all of them are acknowledged or at the first NACK (a batch refused as a
    /// whole, e.g. a stale generation, answers only its BEGIN); replies already queued are then
    /// drained so the socket stays usable. Only replies to the datagram's own messages count.
    /// The first NACK is returned with its sequence number (0 for socket-level errors).
    pub fn send_batch(&mut self, datagram: &[u8], acks: &[u32]) -> Result<(), (u32, Failure)> {
        let mut ours = Vec::new();
        for_each_frame(datagram, |frame| {
            ours.push(frame.header.sequence_number);
            Ok(())
        })
        .map_err(|e| (0, e))?;
        self.sock
            .send(datagram, 0)
            .map_err(|e| (0, Failure::Io(e)))?;
        let mut pending: Vec<u32> = acks.to_vec();
        let mut first_err: Option<(u32, Failure)> = None;
        loop {
            let settled = pending.is_empty() || first_err.is_some();
            if settled {
                match self.recv_datagram_flags(libc::MSG_DONTWAIT) {
                    Ok(()) => {}
                    Err(Failure::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err((0, e)),
                }
            } else {
                self.recv_datagram().map_err(|e| (0, e))?;
            }
            let buf = std::mem::take(&mut self.recv_buf);
            let res = for_each_frame(&buf, |frame| {
                let seq = frame.header.sequence_number;
                if (frame.header.port_number != self.port && frame.header.port_number != 0)
                    || frame.header.message_type != NLMSG_ERROR
                    || !ours.contains(&seq)
                {
                    return Ok(());
                }
                pending.retain(|s| *s != seq);
                if let Some((errno, detail)) = parse_error(&frame)? {
                    if first_err.is_none() {
                        first_err = Some((seq, Failure::Errno(errno, detail)));
                    }
                }
                Ok(())
            });
            self.recv_buf = buf;
            res.map_err(|e| (0, e))?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send_inner<I>(&mut self, inner: I, flags: u16) -> Result<u32, Failure>
    where
        I: NetlinkSerializable,
    {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        msg.finalize();
        self.send_buf.clear();
        self.send_buf.resize(msg.buffer_len(), 0);
        msg.serialize(&mut self.send_buf);
        self.sock.send(&self.send_buf, 0).map_err(Failure::Io)?;
        Ok(seq)
    }

    fn recv_datagram(&mut self) -> Result<(), Failure> {
        self.recv_datagram_flags(0)
    }

    fn recv_datagram_flags(&mut self, flags: libc::c_int) -> Result<(), Failure> {
        loop {
            self.recv_buf.clear();
            match self.sock.recv(&mut self.recv_buf, libc::MSG_TRUNC | flags) {
                Ok(n) if n > self.recv_buf.capacity() => {
                    return Err(Failure::Decode(format!(
                        "netlink datagram of {n} bytes exceeds the {RECV_BUF}-byte buffer"
                    )))
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }

    /// Reads replies to `seq` into `out`; returns whether a dump was flagged as interrupted.
    fn collect<I>(&mut self, seq: u32, dump: bool, out: &mut Vec<I>) -> Result<bool, Failure>
    where
        I: NetlinkDeserializable,
    {
        let mut interrupted = false;
        loop {
            self.recv_datagram()?;
            let buf = std::mem::take(&mut self.recv_buf);
            let mut done = false;
            let res = for_each_frame(&buf, |frame| {
                // Leftovers from an earlier request that failed half-way belong to another seq.
                if done
                    || frame.header.sequence_number != seq
                    || (frame.header.port_number != self.port && frame.header.port_number != 0)
                {
                    return Ok(());
                }
                if frame.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match frame.header.message_type {
                    NLMSG_NOOP | NLMSG_OVERRUN => Ok(()),
                    NLMSG_ERROR => {
                        done = true;
                        match parse_error(&frame)? {
                            Some((errno, detail)) => Err(Failure::Errno(errno, detail)),
                            None => Ok(()),
                        }
                    }
                    NLMSG_DONE => {
                        done = true;
                        match done_errno(frame.payload) {
                            Some(errno) => Err(Failure::Errno(errno, None)),
                            None => Ok(()),
                        }
                    }
                    _ => {
                        let msg = I::deserialize(&frame.header, frame.payload)
                            .map_err(|e| Failure::Decode(e.to_string()))?;
                        out.push(msg);
                        Ok(())
                    }
                }
            });
            self.recv_buf = buf;
            res?;
            if done {
                return Ok(interrupted && dump);
            }
        }
    }
}

/// Walks the netlink messages packed in one datagram.
fn for_each_frame<F>(buf: &[u8], mut f: F) -> Result<(), Failure>
where
    F: FnMut(Frame<'_>) -> Result<(), Failure>,
{
    let mut off = 0usize;
    while off + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[off..off + NLMSG_HDRLEN];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(Failure::Decode(format!(
                "netlink message length {len} at offset {off} overruns a {}-byte datagram",
                buf.len()
            )));
        }
        let mut header = NetlinkHeader::default();
        header.length = len as u32;
        header.message_type = u16::from_ne_bytes([h[4], h[5]]);
        header.flags = u16::from_ne_bytes([h[6], h[7]]);
        header.sequence_number = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        header.port_number = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
        f(Frame {
            header,
            payload: &buf[off + NLMSG_HDRLEN..off + len],
        })?;
        off += (len + 3) & !3;
    }
    Ok(())
}

/// A dump that failed part-way reports its errno in the `NLMSG_DONE` payload.
fn done_errno(payload: &[u8]) -> Option<i32> {
    let b = payload.get(0..4)?;
    let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    (code < 0).then(|| errno_of(code))
}

/// The positive errno of a nonzero kernel error code. The kernel sends `-errno`; a corrupt
/// reply's positive code (or `i32::MIN`, which has no negation) still reads as a failure with
/// a positive errno rather than a negative one or an overflow.
fn errno_of(code: i32) -> i32 {
    i32::try_from(code.unsigned_abs()).unwrap_or(i32::MAX)
}

/// How one message of a reply datagram reads: its header and, for `NLMSG_ERROR`, the ACK
/// (`None`) or NACK, for `NLMSG_DONE` the errno of a failed dump.
#[doc(hidden)]
#[derive(Debug)]
pub struct DecodedFrame {
    pub header: NetlinkHeader,
    pub payload_len: usize,
    pub error: Option<Option<(i32, Option<String>)>>,
    pub done_errno: Option<i32>,
}

/// Decodes a reply datagram the way the socket does, without a socket: for the fuzz targets.
#[doc(hidden)]
pub fn decode_datagram(buf: &[u8]) -> Result<Vec<DecodedFrame>, Failure> {
    let mut out = Vec::new();
    for_each_frame(buf, |frame| {
        let (error, done) = match frame.header.message_type {
            NLMSG_ERROR => (Some(parse_error(&frame)?), None),
            NLMSG_DONE => (None, done_errno(frame.payload)),
            _ => (None, None),
        };
        out.push(DecodedFrame {
            header: frame.header,
            payload_len: frame.payload.len(),
            error,
            done_errno: done,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Decodes an `NLMSG_ERROR` payload: `None` for an ACK, `Some((errno, ext-ack message))` for a NACK.
fn parse_error(frame: &Frame<'_>) -> Result<Option<(i32, Option<String>)>, Failure> {
    let p = frame.payload;
    let Some(b) = p.get(0..4) else {
        return Err(Failure::Decode("truncated NLMSG_ERROR".into()));
    };
    let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    if code == 0 {
        return Ok(None);
    }
    let mut detail = None;
    if frame.header.flags & NLM_F_ACK_TLVS != 0 {
        // With NETLINK_CAP_ACK the echoed request is only its header; TLVs follow it.
        let echoed_len = p
            .get(4..8)
            .map(|l| u32::from_ne_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .unwrap_or(0);
        let capped = frame.header.flags & NLM_F_CAPPED != 0;
        let skip = 4 + if capped {
            NLMSG_HDRLEN
        } else {
            (echoed_len + 3) & !3
        };
        if let Some(tlvs) = p.get(skip..) {
            for nla in NlasIterator::new(tlvs).flatten() {
                if nla.kind() == NLMSGERR_ATTR_MSG {
                    let text = String::from_utf8_lossy(nla.value());
                    detail = Some(text.trim_end_matches('\0').to_string());
                }
            }
        }
    }
    Ok(Some((errno_of(code), detail)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame_bytes(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn nack_with_extended_ack_message_is_decoded() {
        // errno, then the capped echo of the request header, then NLMSGERR_ATTR_MSG.
        let mut payload = (-libc::EEXIST).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        let msg = b"Address already assigned\0";
        let nla_len = (4 + msg.len()) as u16;
        payload.extend_from_slice(&nla_len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(msg);
        let bytes = frame_bytes(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, &payload);
        let mut seen = None;
        for_each_frame(&bytes, |f| {
            seen = Some((f.header.sequence_number, parse_error(&f)?));
            Ok(())
        })
        .unwrap();
        let (seq, err) = seen.unwrap();
        assert_eq!(seq, 7);
        assert_eq!(
            err,
            Some((libc::EEXIST, Some("Address already assigned".to_string())))
        );
    }

    #[test]
    fn ack_is_not_an_error_and_frames_are_walked_in_order() {
        let mut bytes = frame_bytes(NLMSG_ERROR, 0, 1, &[0u8; 4 + NLMSG_HDRLEN]);
        bytes.extend(frame_bytes(NLMSG_DONE, 0, 2, &0i32.to_ne_bytes()));
        let mut seqs = Vec::new();
        for_each_frame(&bytes, |f| {
            if f.header.message_type == NLMSG_ERROR {
                assert_eq!(parse_error(&f)?, None);
            }
            seqs.push(f.header.sequence_number);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, [1, 2]);
    }

    // Found by the netlink_datagram fuzz target: a positive code came out as errno -512.
    #[test]
    fn corrupt_error_codes_still_give_a_positive_errno() {
        for (code, errno) in [
            (512, 512),
            (i32::MIN, i32::MAX),
            (-libc::EBUSY, libc::EBUSY),
        ] {
            let mut payload = code.to_ne_bytes().to_vec();
            payload.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
            let mut bytes = frame_bytes(NLMSG_ERROR, 0, 1, &payload);
            bytes.extend(frame_bytes(NLMSG_DONE, 0, 1, &code.to_ne_bytes()));
            let frames = decode_datagram(&bytes).unwrap();
            assert_eq!(frames[0].error, Some(Some((errno, None))), "code {code}");
            let done = (code < 0).then_some(errno);
            assert_eq!(frames[1].done_errno, done, "code {code}");
        }
    }

    #[test]
    fn overlong_length_is_a_decode_error_not_a_panic() {
        let mut bytes = frame_bytes(NLMSG_DONE, 0, 1, &[0u8; 4]);
        bytes[0] = 200; // claims 200 bytes in a 20-byte datagram
        let r = for_each_frame(&bytes, |_| Ok(()));
        assert!(matches!(r, Err(Failure::Decode(_))));
    }
}
