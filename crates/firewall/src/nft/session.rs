//! nf_tables requests and transactions over netops's netlink transport: single gets, dumps,
//! the ruleset generation, and batches committed tied to it.
//!
//! The session belongs to the network namespace of the thread that opened it.

use std::time::Duration;

use netlink_sys::protocols::NETLINK_NETFILTER;
use netops::{Failure, NetlinkSocket, RawMessage};

use super::wire::{
    attr, Attrs, MsgBuf, MsgType, NFGENMSG_LEN, NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFPROTO_UNSPEC, NLM_F_ACK,
};
use crate::error::{Error, Result};

/// Replies to a request are queued before `send` returns; this only guards against a kernel
/// that never answers.
const RX_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a transaction is tried when the ruleset keeps changing under it.
const ATTEMPTS: u32 = 16;
/// Upper bounds of the random pause after a lost race: doubles from the first to the last.
const BACKOFF_FIRST_US: u64 = 100;
const BACKOFF_MAX_US: u64 = 10_000;
/// Serializes this suite's nftables writers on the node. Without it, parallel ADDs keep
/// invalidating each other's ruleset generation and one can lose every retry; with it, only
/// foreign writers (nft, kube-proxy) can make a transaction retry. Held for one transaction.
const WRITER_LOCK: &str = "/run/cni-rs-nftables.lock";

pub(crate) struct Session {
    sock: NetlinkSocket,
}

/// A transaction under construction: BEGIN, the commands, END — applied all or nothing.
/// Sequence numbers are given when it is committed.
pub(crate) struct Batch {
    buf: MsgBuf,
    /// Where each command starts in `buf` and what it does, for error messages.
    commands: Vec<(usize, String)>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.commands.is_empty()
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
        let start = self.buf.begin_msg(ty.nlmsg_type(), flags, 0, family, 0);
        build(&mut self.buf);
        self.buf.end_msg(start);
        self.commands.push((start, what.into()));
    }
}

/// A kernel reply's nf_tables attributes: what follows the nfgenmsg header.
fn nf_attrs(reply: RawMessage) -> Vec<u8> {
    let mut payload = reply.payload;
    payload.drain(..NFGENMSG_LEN.min(payload.len()));
    payload
}

impl Session {
    /// Open a session in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self> {
        let sock = NetlinkSocket::open(NETLINK_NETFILTER).map_err(Error::Socket)?;
        sock.set_receive_timeout(RX_TIMEOUT)
            .map_err(Error::Socket)?;
        Ok(Session { sock })
    }

    fn message(ty: MsgType, family: u8, build: impl FnOnce(&mut MsgBuf)) -> RawMessage {
        let mut buf = MsgBuf::nfgen(family, 0);
        build(&mut buf);
        RawMessage {
            message_type: ty.nlmsg_type(),
            payload: buf.into_bytes(),
        }
    }

    /// Fetch one object (its attributes); `Ok(None)` if it does not exist (ENOENT).
    pub(crate) fn get(
        &mut self,
        action: &str,
        ty: MsgType,
        family: u8,
        build: impl FnOnce(&mut MsgBuf),
    ) -> Result<Option<Vec<u8>>> {
        match self.sock.request(Self::message(ty, family, build), 0) {
            Ok(mut replies) if !replies.is_empty() => Ok(Some(nf_attrs(replies.swap_remove(0)))),
            Ok(_) => Err(Error::protocol(action, "no object in the reply")),
            Err(Failure::Errno(libc::ENOENT, _)) => Ok(None),
            Err(failure) => Err(Error::transport(action, failure)),
        }
    }

    /// Dump objects matching the filter attributes `build` writes (their attributes); a missing
    /// table or chain gives an empty list. Interrupted dumps are retried by the transport.
    pub(crate) fn dump(
        &mut self,
        action: &str,
        ty: MsgType,
        family: u8,
        build: impl FnOnce(&mut MsgBuf),
    ) -> Result<Vec<Vec<u8>>> {
        let request = Self::message(ty, family, build);
        match self.sock.dump(|| request.clone()) {
            Ok(replies) => Ok(replies.into_iter().map(nf_attrs).collect()),
            Err(Failure::Errno(libc::ENOENT, _)) => Ok(Vec::new()),
            Err(failure) => Err(Error::transport(action, failure)),
        }
    }

    /// The ruleset generation: a transaction started with it fails with ERESTART if anything
    /// changed the ruleset in between.
    pub(crate) fn generation(&mut self) -> Result<u32> {
        const ACTION: &str = "reading the nftables ruleset generation";
        let reply = self
            .get(ACTION, MsgType::GetGen, NFPROTO_UNSPEC, |_| {})?
            .ok_or_else(|| Error::protocol(ACTION, "no generation object"))?;
        Attrs::new(&reply)
            .be32(attr::GEN_ID)
            .ok_or_else(|| Error::protocol(ACTION, "generation id missing"))
    }

    /// Run `plan` (read state, build a transaction) and commit it tied to the generation read
    /// first; redo both if the ruleset changed in between. `plan` returning `None` means there
    /// is nothing to do. `action` prefixes error messages.
    pub(crate) fn transact(
        &mut self,
        action: &str,
        mut plan: impl FnMut(&mut Session, u32) -> Result<Option<Batch>>,
    ) -> Result<()> {
        // Best effort: where /run is not writable we fall back to retries alone.
        let _lock = writer_lock();
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
                Err((_, Failure::Errno(libc::ERESTART, _))) => continue,
                Err((what, failure)) => {
                    return Err(Error::transport(format!("{action}: {what}"), failure))
                }
            }
        }
        Err(Error::Contended {
            action: action.to_string(),
            attempts: ATTEMPTS,
        })
    }

    /// Start a transaction, optionally bound to a ruleset generation.
    pub(crate) fn batch(&mut self, genid: Option<u32>) -> Batch {
        let mut buf = MsgBuf::default();
        let start = buf.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            0,
            0,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        if let Some(genid) = genid {
            buf.put_be32(NFNL_BATCH_GENID, genid);
        }
        buf.end_msg(start);
        Batch {
            buf,
            commands: Vec::new(),
        }
    }

    /// Send the transaction and wait for its outcome; on failure, the command the kernel
    /// refused (or "committing the transaction") and why.
    ///
    /// Only the last command asks for an acknowledgement: kernels before 6.10 ignore the ACK
    /// flag on BEGIN/END, and the kernel reports every failing command anyway. The transaction
    /// was committed exactly when no error arrives and the last command is acknowledged.
    fn commit(&mut self, mut batch: Batch) -> Result<(), (String, Failure)> {
        let Some(&(last_start, _)) = batch.commands.last() else {
            return Ok(());
        };
        batch.buf.set_flag(last_start, NLM_F_ACK);
        let end = batch.buf.begin_msg(
            NFNL_MSG_BATCH_END,
            0,
            0,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        batch.buf.end_msg(end);
        // BEGIN at offset 0, the commands, END: numbered in order.
        let mut labels = Vec::with_capacity(batch.commands.len());
        batch.buf.set_seq(0, self.sock.next_seq());
        for (start, what) in batch.commands {
            let seq = self.sock.next_seq();
            batch.buf.set_seq(start, seq);
            labels.push((seq, what));
        }
        let last_seq = labels.last().map_or(0, |(seq, _)| *seq);
        batch.buf.set_seq(end, self.sock.next_seq());
        self.sock
            .send_batch(batch.buf.bytes(), &[last_seq])
            .map_err(|(seq, failure)| {
                let what = labels
                    .iter()
                    .find(|(s, _)| *s == seq)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_else(|| "committing the transaction".to_string());
                (what, failure)
            })
    }
}

/// An exclusive `flock` on [`WRITER_LOCK`], released when dropped (or when the process dies).
fn writer_lock() -> Option<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(WRITER_LOCK)
        .ok()?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Some(lock),
            Err((f, nix::errno::Errno::EINTR)) => file = f,
            Err(_) => return None,
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
    std::thread::sleep(Duration::from_micros(random % (bound + 1)));
}

impl Error {
    /// A failure of the netlink transport while doing `action`.
    pub(crate) fn transport(action: impl Into<String>, failure: Failure) -> Self {
        let action = action.into();
        match failure {
            Failure::Errno(errno, None) => Error::netlink(action, errno),
            // The kernel's extended-ACK text says which attribute or object it refused.
            Failure::Errno(errno, Some(detail)) => {
                Error::netlink(format!("{action} ({detail})"), errno)
            }
            Failure::Io(source) => Error::Netlink { action, source },
            Failure::Decode(detail) => Error::protocol(action, detail),
        }
    }
}
