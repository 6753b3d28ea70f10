//! A synchronous NETLINK_NETFILTER socket: single gets, dumps, and batched transactions.
//!
//! The socket belongs to the network namespace of the thread that opened it.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::wire::{
    Msg, MsgBuf, MsgType, Msgs, NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES, NFPROTO_UNSPEC, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
};
use crate::error::{Error, Result};

/// Dumps are sent in chunks of at most 32 KiB; a larger buffer never truncates.
const RX_BUF: usize = 64 * 1024;
/// Replies to a request are queued before `send` returns; this only guards against a kernel
/// that never answers. (Not `libc::time_t`: deprecated on musl, whose time_t changes width.)
const RX_TIMEOUT_SECS: u8 = 10;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
/// How often a transaction is tried when the ruleset keeps changing under it.
const ATTEMPTS: u32 = 16;
/// Upper bounds of the random pause after a lost race: doubles from the first to the last.
const BACKOFF_FIRST_US: u64 = 100;
const BACKOFF_MAX_US: u64 = 10_000;
/// Serializes this suite's nftables writers on the node. Without it, parallel ADDs keep
/// invalidating each other's ruleset generation and one can lose every retry; with it, only
/// foreign writers (nft, kube-proxy) can make a transaction retry. Held for one transaction.
const WRITER_LOCK: &str = "/run/cni-rs-nftables.lock";

pub(crate) struct NfSocket {
    sock: Socket,
    seq: u32,
    rx: Vec<u8>,
}

/// A transaction under construction: BEGIN, the commands, END — applied all or nothing.
pub(crate) struct Batch {
    buf: MsgBuf,
    first_seq: u32,
    next_seq: u32,
    /// What each command does, by sequence number, for error messages.
    labels: Vec<(u32, String)>,
    last_start: Option<usize>,
}

/// How a transaction failed.
#[derive(Debug)]
pub(crate) struct BatchError {
    /// The command the kernel refused, or "transaction" for failures of the whole batch.
    pub(crate) what: String,
    pub(crate) errno: i32,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Add one command; `what` names it in error messages ("adding chain inet t c").
    pub(crate) fn push(
        &mut self,
        ty: MsgType,
        flags: u16,
        family: u8,
        what: impl Into<String>,
        build: impl FnOnce(&mut MsgBuf),
    ) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let start = self.buf.begin_msg(ty.nlmsg_type(), flags, seq, family, 0);
        build(&mut self.buf);
        self.buf.end_msg(start);
        self.labels.push((seq, what.into()));
        self.last_start = Some(start);
    }

    fn label(&self, seq: u32) -> String {
        self.labels
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| "committing the transaction".to_string())
    }
}

fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` outlives the call and the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_rx_timeout(fd: libc::c_int) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: RX_TIMEOUT_SECS.into(),
        tv_usec: 0,
    };
    // SAFETY: `tv` outlives the call and the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl NfSocket {
    /// Open a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(Error::Socket)?;
        sock.bind_auto().map_err(Error::Socket)?;
        let fd = sock.as_raw_fd();
        // Errors then carry only the failing message's header, not its whole payload.
        setsockopt_int(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1).map_err(Error::Socket)?;
        set_rx_timeout(fd).map_err(Error::Socket)?;
        // A sequence start that differs between processes makes stray replies easy to spot.
        let seq = std::process::id().wrapping_mul(7919);
        Ok(NfSocket {
            sock,
            seq,
            rx: Vec::with_capacity(RX_BUF),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn recv(&mut self, flags: libc::c_int) -> io::Result<()> {
        self.rx.clear();
        let n = self.sock.recv(&mut self.rx, flags)?;
        if n > self.rx.len() {
            return Err(io::Error::other("netlink reply truncated"));
        }
        Ok(())
    }

    /// One request; returns the attributes of every reply message (several for a dump), or the
    /// kernel's errno.
    fn request(
        &mut self,
        ty: MsgType,
        flags: u16,
        family: u8,
        build: impl FnOnce(&mut MsgBuf),
    ) -> Result<Vec<Vec<u8>>, i32> {
        let seq = self.next_seq();
        let mut buf = MsgBuf::default();
        let start = buf.begin_msg(ty.nlmsg_type(), flags | NLM_F_ACK, seq, family, 0);
        build(&mut buf);
        buf.end_msg(start);
        self.sock
            .send(buf.bytes(), 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            self.recv(0)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            for msg in Msgs::new(&self.rx) {
                if msg.seq != seq {
                    continue; // a late reply to an earlier request
                }
                match msg.ty {
                    NLMSG_ERROR => match msg.error_code() {
                        Some(0) if !dump => return Ok(replies),
                        Some(0) => {}
                        Some(code) => return Err(-code),
                        None => return Err(libc::EBADMSG),
                    },
                    NLMSG_DONE => return Ok(replies),
                    // For a single get, the acknowledgement follows the object.
                    _ => replies.push(msg.nf_payload().to_vec()),
                }
            }
        }
    }

    /// Fetch one object; `Ok(None)` if it does not exist (ENOENT).
    pub(crate) fn get(
        &mut self,
        action: &str,
        ty: MsgType,
        family: u8,
        build: impl FnOnce(&mut MsgBuf),
    ) -> Result<Option<Vec<u8>>> {
        match self.request(ty, 0, family, build) {
            Ok(mut replies) if !replies.is_empty() => Ok(Some(replies.swap_remove(0))),
            Ok(_) => Err(Error::protocol(action, "no object in the reply")),
            Err(libc::ENOENT) => Ok(None),
            Err(errno) => Err(Error::netlink(action, errno)),
        }
    }

    /// Dump objects matching the filter attributes `build` writes; a missing table or chain
    /// gives an empty list.
    pub(crate) fn dump(
        &mut self,
        action: &str,
        ty: MsgType,
        family: u8,
        build: impl FnOnce(&mut MsgBuf),
    ) -> Result<Vec<Vec<u8>>> {
        match self.request(ty, NLM_F_DUMP, family, build) {
            Ok(replies) => Ok(replies),
            Err(libc::ENOENT) => Ok(Vec::new()),
            Err(errno) => Err(Error::netlink(action, errno)),
        }
    }

    /// The ruleset generation: a transaction started with it fails with ERESTART if anything
    /// changed the ruleset in between.
    pub(crate) fn generation(&mut self) -> Result<u32> {
        const ACTION: &str = "reading the nftables ruleset generation";
        let reply = self
            .get(ACTION, MsgType::GetGen, NFPROTO_UNSPEC, |_| {})?
            .ok_or_else(|| Error::protocol(ACTION, "no generation object"))?;
        super::wire::Attrs::new(&reply)
            .be32(super::wire::attr::GEN_ID)
            .ok_or_else(|| Error::protocol(ACTION, "generation id missing"))
    }

    /// Run `plan` (read state, build a transaction) and commit it tied to the generation read
    /// first; redo both if the ruleset changed in between. `plan` returning `None` means there
    /// is nothing to do. `action` prefixes error messages.
    pub(crate) fn transact(
        &mut self,
        action: &str,
        mut plan: impl FnMut(&mut NfSocket, u32) -> Result<Option<Batch>>,
    ) -> Result<()> {
        // Best effort: where /run is not writable we fall back to retries alone.
        let _lock = WriterLock::acquire();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt);
            }
            let genid = self.generation()?;
            let Some(batch) = plan(self, genid)? else {
                return Ok(());
            };
            match self.commit(batch) {
                Ok(()) => return Ok(()),
                Err(e) if e.errno == libc::ERESTART => continue,
                Err(e) => return Err(Error::netlink(format!("{action}: {}", e.what), e.errno)),
            }
        }
        Err(Error::Contended {
            action: action.to_string(),
            attempts: ATTEMPTS,
        })
    }

    /// Start a transaction, optionally bound to a ruleset generation.
    pub(crate) fn batch(&mut self, genid: Option<u32>) -> Batch {
        let begin_seq = self.next_seq();
        let mut buf = MsgBuf::default();
        let start = buf.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            0,
            begin_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        if let Some(genid) = genid {
            buf.put_be32(NFNL_BATCH_GENID, genid);
        }
        buf.end_msg(start);
        Batch {
            buf,
            first_seq: begin_seq,
            next_seq: begin_seq.wrapping_add(1),
            labels: Vec::new(),
            last_start: None,
        }
    }

    /// Send the transaction and wait for its outcome.
    ///
    /// Only the last command asks for an acknowledgement: kernels before 6.10 ignore the ACK
    /// flag on BEGIN/END, and the kernel reports every failing command anyway. The transaction
    /// was committed exactly when no error arrives and the last command is acknowledged.
    pub(crate) fn commit(&mut self, mut batch: Batch) -> Result<(), BatchError> {
        let Some(last_start) = batch.last_start else {
            return Ok(());
        };
        batch.buf.set_flag(last_start, NLM_F_ACK);
        let last_seq = batch.next_seq.wrapping_sub(1);
        let end_seq = batch.next_seq;
        let start = batch.buf.begin_msg(
            NFNL_MSG_BATCH_END,
            0,
            end_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        batch.buf.end_msg(start);
        self.seq = end_seq;

        let io_err = |what: &str, e: io::Error| BatchError {
            what: what.to_string(),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        };
        self.sock
            .send(batch.buf.bytes(), 0)
            .map_err(|e| io_err("sending the transaction", e))?;

        let in_batch =
            |seq: u32| seq.wrapping_sub(batch.first_seq) <= end_seq.wrapping_sub(batch.first_seq);
        let mut first_error: Option<BatchError> = None;
        let mut acked = false;
        loop {
            // Once the outcome is known, only drain what is already queued.
            let flags = if acked || first_error.is_some() {
                libc::MSG_DONTWAIT
            } else {
                0
            };
            match self.recv(flags) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && flags != 0 => break,
                Err(e) => return Err(io_err("reading the transaction's result", e)),
            }
            let rx = std::mem::take(&mut self.rx);
            for msg in Msgs::new(&rx) {
                let Some((seq, code)) = ack_of(&msg) else {
                    continue;
                };
                if !in_batch(seq) {
                    continue;
                }
                if code == 0 {
                    acked |= seq == last_seq;
                } else if first_error.is_none() {
                    first_error = Some(BatchError {
                        what: batch.label(seq),
                        errno: -code,
                    });
                }
            }
            self.rx = rx;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An exclusive `flock` on [`WRITER_LOCK`], released when the file is closed on drop (or when
/// the process dies).
struct WriterLock {
    _file: std::fs::File,
}

impl WriterLock {
    fn acquire() -> Option<WriterLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(WRITER_LOCK)
            .ok()?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Some(WriterLock { _file: file });
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return None;
            }
        }
    }
}

/// Sleep a random time below an exponentially growing bound, so writers that keep invalidating
/// each other's generation (parallel ADDs) fall out of step.
fn backoff(attempt: u32) {
    use std::hash::{BuildHasher, Hasher};
    let bound = BACKOFF_FIRST_US
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(BACKOFF_MAX_US);
    // RandomState is seeded per instance: a cheap source of jitter without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    std::thread::sleep(std::time::Duration::from_micros(random % (bound + 1)));
}

/// For an error/ack message: the request's sequence number and the error code.
fn ack_of(msg: &Msg) -> Option<(u32, i32)> {
    if msg.ty != NLMSG_ERROR {
        return None;
    }
    Some((msg.error_seq().unwrap_or(msg.seq), msg.error_code()?))
}
