//! The lease store on disk, in the reference's format so either implementation can take over
//! a node's leases:
//!
//! ```text
//! <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>", one file per lease
//! <dataDir>/<network>/last_reserved_ip.<i> last address handed out from range set i
//! <dataDir>/<network>/lock                 flock(2) serialising every command
//! <dataDir>/<network>/.index/<id>:<ifname> our index: the addresses of one attachment
//! <dataDir>/<network>/.index/stamp         the network dir's identity and times when we last
//!                                          wrote it
//! <dataDir>/<network>/.index/boot          the boot whose leases are the only live ones
//! ```
//!
//! Lease files are the source of truth. The index lets DEL, CHECK and the duplicate check read
//! one small file instead of every lease. It is trusted only while the stamp still matches
//! the directory: any lease created or removed behind our back (by the reference binary, by
//! hand, or by our own crash before the stamp was rewritten) changes the directory's
//! mtime/ctime, and the index is rebuilt from a full scan. Every indexed address is also checked
//! against its lease file before it is released.

use crate::boot::Boot;
use crate::store::{Attachment, Lease, LeaseStore, Owner, StoreError};
use cni_protocol::crash;
use fs2::FileExt;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

const INDEX_DIR: &str = ".index";
const STAMP: &str = "stamp";
const BOOT: &str = "boot";
const LOCK: &str = "lock";
const LAST_RESERVED: &str = "last_reserved_ip.";
/// Longest index file name we write; longer keys are simply not indexed (found by scan).
const MAX_KEY_LEN: usize = 250;

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what}: {e}"))
}

/// Index key: `:` can appear in neither a container id nor an interface name.
fn index_key(a: &Attachment) -> Option<String> {
    Some(format!("{}:{}", a.container_id, a.ifname)).filter(|k| k.len() <= MAX_KEY_LEN)
}

fn legacy_key(container_id: &str) -> Option<String> {
    Some(format!("{container_id}:")).filter(|k| k.len() <= MAX_KEY_LEN)
}

fn owner_key(owner: &Owner) -> Option<String> {
    match owner {
        Owner::Attachment(a) => index_key(a),
        Owner::Legacy(id) => legacy_key(id),
        Owner::Unknown => None,
    }
}

/// A lease file name is the canonical text of its address (what Go's `net.IP.String` prints).
pub fn lease_ip(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>()
        .ok()
        .filter(|ip| ip.to_string() == name)
}

/// An index file: one address per line; lines that are not an address are skipped (a torn
/// write is caught by the stamp, not here).
pub fn parse_index(text: &str) -> BTreeSet<IpAddr> {
    text.lines().filter_map(|l| l.parse().ok()).collect()
}

/// The content of an index file for `ips`, as [`parse_index`] reads it back.
pub fn render_index(ips: &BTreeSet<IpAddr>) -> String {
    ips.iter().map(|ip| format!("{ip}\n")).collect()
}

/// Gives an `O_TMPFILE` inode the name `dest` (fails with `AlreadyExists` if taken).
fn link_unnamed(file: &File, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    nix::unistd::linkat(
        None,
        from.as_path(),
        None,
        dest,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(std::io::Error::from)
}

/// Opens a regular file for reading; a symlink or special file (a planted FIFO would block the
/// open or the read forever) is an error.
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Reads a small file without following a symlink planted at its path.
fn read_small(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    open_nofollow(path)?.take(4096).read_to_string(&mut text)?;
    Ok(text)
}

pub struct DiskStore {
    dir: PathBuf,
    index_dir: PathBuf,
    _lock: File,
    /// Index entries loaded or changed in this command; `dirty` ones are written on commit.
    index: BTreeMap<String, BTreeSet<IpAddr>>,
    dirty: BTreeSet<String>,
    /// A nameless or temp file holding one owner's lease content, hard-linked into place on
    /// reservation so a lease appears complete or not at all; kept across addresses found taken.
    lease_template: Option<(Attachment, LeaseTemplate)>,
    /// The stamp as found on open, while it still matches the directory.
    stamp_on_open: Option<String>,
    /// Last address reserved per range set in this command, written on commit.
    last_reserved: BTreeMap<usize, IpAddr>,
    temp_seq: u32,
}

/// Where a lease's content waits before it is linked under the lease's name.
enum LeaseTemplate {
    /// An `O_TMPFILE` inode in the network dir: no directory entry to create or remove.
    Unnamed(File),
    /// A named temp file, for filesystems without `O_TMPFILE`.
    Named(PathBuf),
}

impl DiskStore {
    /// Opens (creating if needed) the network's directory and takes its lock, waiting at most
    /// `lock_timeout`. Refreshes the index if the directory changed behind our back.
    pub fn open(
        data_dir: &Path,
        network: &str,
        lock_timeout: Duration,
    ) -> Result<DiskStore, StoreError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir)
            .map_err(|e| io_err(format_args!("creating {}", dir.display()), e))?;
        let meta = fs::symlink_metadata(&dir)
            .map_err(|e| io_err(format_args!("inspecting {}", dir.display()), e))?;
        if !meta.is_dir() {
            return Err(StoreError::Io(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let lock = Self::lock(&dir.join(LOCK), lock_timeout)?;
        let index_dir = dir.join(INDEX_DIR);
        let mut store = DiskStore {
            dir,
            index_dir,
            _lock: lock,
            index: BTreeMap::new(),
            dirty: BTreeSet::new(),
            lease_template: None,
            stamp_on_open: None,
            last_reserved: BTreeMap::new(),
            temp_seq: 0,
        };
        store.ensure_index_dir()?;
        match store.matching_stamp() {
            Some(stamp) => store.stamp_on_open = Some(stamp),
            None => store.rebuild_index()?,
        }
        Ok(store)
    }

    /// Opens (creating) the network's lock file, never through a symlink.
    fn open_lock(path: &Path) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_err(format_args!("opening lock {}", path.display()), e))
    }

    fn lock(path: &Path, timeout: Duration) -> Result<File, StoreError> {
        let file = Self::open_lock(path)?;
        let held = || {
            StoreError::LockTimeout(format!(
                "{} is held by another process for more than {} ms",
                path.display(),
                timeout.as_millis()
            ))
        };
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_err(format_args!("locking {}", path.display()), e)),
        }
        if timeout.is_zero() {
            return Err(held());
        }
        // Block in a helper thread on a shared description of the same open file, so the
        // wait can be abandoned: the lock belongs to the description, which `file` keeps.
        let waiter = file
            .try_clone()
            .map_err(|e| io_err("duplicating lock descriptor", e))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(waiter.lock_exclusive());
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(file),
            Ok(Err(e)) => Err(io_err(format_args!("locking {}", path.display()), e)),
            Err(_) => Err(held()),
        }
    }

    fn ensure_index_dir(&self) -> Result<(), StoreError> {
        match fs::symlink_metadata(&self.index_dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            // Something else (a planted symlink, a file) sits there: it is ours to replace.
            Ok(_) => fs::remove_file(&self.index_dir).map_err(|e| io_err("replacing index", e))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspecting index", e)),
        }
        match fs::create_dir(&self.index_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err(
                format_args!("creating {}", self.index_dir.display()),
                e,
            )),
        }
    }

    /// The network directory's identity and change times: any entry created, removed or
    /// renamed in it moves mtime/ctime (kernels since 6.13 give a fine-grained time to the
    /// first change after a stat, so a change right after ours is still seen).
    fn current_stamp(&self) -> Result<String, StoreError> {
        let m = fs::symlink_metadata(&self.dir).map_err(|e| io_err("inspecting network dir", e))?;
        Ok(format!(
            "v1 {} {} {}.{} {}.{} {}",
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size()
        ))
    }

    /// The saved stamp, if it still describes the directory.
    fn matching_stamp(&self) -> Option<String> {
        let saved = read_small(&self.index_dir.join(STAMP)).ok()?;
        (self.current_stamp().ok()? == saved).then_some(saved)
    }

    fn temp_path(&mut self, what: &str) -> PathBuf {
        self.temp_seq += 1;
        self.index_dir.join(format!(
            ".tmp-{what}-{}-{}",
            std::process::id(),
            self.temp_seq
        ))
    }

    /// Overwrites `dest` in place (no new directory entry after the first write, which is
    /// what makes an ADD cheap on ext4). Only for files whose torn content is harmless: the
    /// stamp and index (a torn write never matches, see `commit`) and `last_reserved_ip.*` (a
    /// hint; the reference writes it the same way). A symlink or special file planted at
    /// `dest` is replaced, never followed.
    fn write_in_place(dest: &Path, content: &str) -> Result<(), StoreError> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                // O_NONBLOCK: opening a planted FIFO must fail, not hang.
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(dest)
        };
        let replace = || -> std::io::Result<File> {
            fs::remove_file(dest)?;
            open()
        };
        let write = || -> std::io::Result<()> {
            let mut file = match open() {
                Ok(f) if f.metadata()?.is_file() => f,
                Ok(_) => replace()?,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => replace()?,
                Err(e) => return Err(e),
            };
            file.write_all(content.as_bytes())
        };
        write().map_err(|e| io_err(format_args!("writing {}", dest.display()), e))
    }

    /// Reads every lease file: the source of truth.
    fn scan(&self) -> Result<Vec<Lease>, StoreError> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| io_err(format_args!("reading {}", self.dir.display()), e))?;
        let mut leases = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("reading network dir", e))?;
            let Some(ip) = entry.file_name().to_str().and_then(lease_ip) else {
                continue;
            };
            let owner = match read_small(&entry.path()) {
                Ok(text) => Owner::parse(&text),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                // Unreadable (e.g. a planted symlink): the name is taken, the owner unknown.
                Err(_) => Owner::Unknown,
            };
            leases.push(Lease { ip, owner });
        }
        Ok(leases)
    }

    /// Replaces the whole index with what the lease files say.
    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        let leases = self.scan()?;
        let mut fresh: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for lease in &leases {
            if let Some(key) = owner_key(&lease.owner) {
                fresh.entry(key).or_default().insert(lease.ip);
            }
        }
        if let Ok(entries) = fs::read_dir(&self.index_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != STAMP && name != BOOT && !fresh.contains_key(&name) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        self.dirty = fresh.keys().cloned().collect();
        self.index = fresh;
        self.commit()
    }

    /// An attachment's indexed addresses (`None`: this key cannot be indexed, scan instead).
    fn indexed(
        &mut self,
        key: Option<String>,
    ) -> Result<Option<&mut BTreeSet<IpAddr>>, StoreError> {
        let Some(key) = key else { return Ok(None) };
        if !self.index.contains_key(&key) {
            let ips = match read_small(&self.index_dir.join(&key)) {
                Ok(text) => parse_index(&text),
                Err(e) if e.kind() == ErrorKind::NotFound => BTreeSet::new(),
                Err(e) => return Err(io_err("reading index", e)),
            };
            self.index.insert(key.clone(), ips);
        }
        Ok(self.index.get_mut(&key))
    }

    fn index_add(&mut self, owner: &Owner, ip: IpAddr) -> Result<(), StoreError> {
        let key = owner_key(owner);
        if let Some(set) = self.indexed(key.clone())? {
            set.insert(ip);
        }
        self.dirty.extend(key);
        Ok(())
    }

    fn index_remove(&mut self, owner: &Owner, ip: IpAddr) -> Result<(), StoreError> {
        let key = owner_key(owner);
        if let Some(set) = self.indexed(key.clone())? {
            set.remove(&ip);
        }
        self.dirty.extend(key);
        Ok(())
    }

    fn owner_of(&self, ip: IpAddr) -> Option<Owner> {
        match read_small(&self.dir.join(ip.to_string())) {
            Ok(text) => Some(Owner::parse(&text)),
            Err(_) => None,
        }
    }

    /// Addresses the index lists for `owner` that its lease files confirm. An entry the files
    /// contradict means the index is stale: rebuild and ask again.
    fn confirmed(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, StoreError> {
        let listed: Vec<IpAddr> = match self.indexed(owner_key(owner))? {
            Some(set) => set.iter().copied().collect(),
            None => {
                return Ok(self
                    .scan()?
                    .into_iter()
                    .filter(|l| l.owner == *owner)
                    .map(|l| l.ip)
                    .collect());
            }
        };
        if listed
            .iter()
            .all(|ip| self.owner_of(*ip).as_ref() == Some(owner))
        {
            return Ok(listed);
        }
        self.rebuild_index()?;
        Ok(self
            .indexed(owner_key(owner))?
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default())
    }

    fn unlink_lease(&mut self, ip: IpAddr, owner: &Owner) -> Result<(), StoreError> {
        match fs::remove_file(self.dir.join(ip.to_string())) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format_args!("releasing {ip}"), e)),
        }
        self.index_remove(owner, ip)
    }

    fn lease_template(&mut self, owner: &Attachment) -> Result<&LeaseTemplate, StoreError> {
        if !matches!(&self.lease_template, Some((o, _)) if o == owner) {
            self.drop_template();
            let template = self.new_template(&owner.lease_content())?;
            self.lease_template = Some((owner.clone(), template));
        }
        match &self.lease_template {
            Some((_, template)) => Ok(template),
            None => Err(StoreError::Io("lease template vanished".to_string())),
        }
    }

    fn new_template(&mut self, content: &str) -> Result<LeaseTemplate, StoreError> {
        let unnamed = OpenOptions::new()
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&self.dir);
        if let Ok(mut file) = unnamed {
            file.write_all(content.as_bytes()).map_err(|e| {
                io_err(format_args!("writing a lease in {}", self.dir.display()), e)
            })?;
            return Ok(LeaseTemplate::Unnamed(file));
        }
        let path = self.temp_path("lease");
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)?;
            f.write_all(content.as_bytes())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&path);
            return Err(io_err(format_args!("writing {}", path.display()), e));
        }
        Ok(LeaseTemplate::Named(path))
    }

    fn drop_template(&mut self) {
        if let Some((_, LeaseTemplate::Named(path))) = self.lease_template.take() {
            let _ = fs::remove_file(path);
        }
    }

    /// Writes the changed index entries, then the stamp: after this the index describes the
    /// directory exactly. Until it runs, the old stamp no longer matches and the next command
    /// rebuilds, so a crash anywhere before this point cannot leave a lying index.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.drop_template();
        // Crash points mark the steps of an ADD, the only command that reserves.
        let reserved = !self.last_reserved.is_empty();
        for (set_index, ip) in std::mem::take(&mut self.last_reserved) {
            let path = self.dir.join(format!("{LAST_RESERVED}{set_index}"));
            Self::write_in_place(&path, &ip.to_string())?;
        }
        if reserved {
            crash::point("last-reserved-written");
        }
        let dirty = std::mem::take(&mut self.dirty);
        let stamp_path = self.index_dir.join(STAMP);
        // Index files are rewritten in place, so a crash may tear one. Normally this command
        // changed the directory and the saved stamp no longer matches; if it did not, void the
        // stamp first so a torn index can never be trusted.
        if !dirty.is_empty() && self.stamp_on_open.take() == self.current_stamp().ok() {
            Self::write_in_place(&stamp_path, "")?;
        }
        for key in dirty {
            let path = self.index_dir.join(&key);
            match self.index.get(&key).filter(|s| !s.is_empty()) {
                Some(ips) => {
                    Self::write_in_place(&path, &render_index(ips))?;
                }
                None => match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("updating index", e)),
                },
            }
        }
        if reserved {
            crash::point("index-written");
        }
        let stamp = self.current_stamp()?;
        Self::write_in_place(&stamp_path, &stamp)?;
        self.stamp_on_open = Some(stamp);
        Ok(())
    }

    /// Releases every lease written before `boot` started, whoever wrote it, the first time a
    /// command runs in a new boot; later commands of the same boot only read one small file.
    /// The boot is recorded only after the sweep, so a sweep cut short by a crash is finished
    /// by the next command. A lease of the running boot is never released: its file is newer
    /// than the boot's start.
    pub fn release_leases_of_earlier_boots(
        &mut self,
        boot: &Boot,
    ) -> Result<Vec<IpAddr>, StoreError> {
        let record = self.index_dir.join(BOOT);
        if read_small(&record).is_ok_and(|id| id.trim() == boot.id) {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| io_err(format_args!("reading {}", self.dir.display()), e))?;
        let mut released = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("reading network dir", e))?;
            let Some(ip) = entry.file_name().to_str().and_then(lease_ip) else {
                continue;
            };
            let Ok(written) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if written >= boot.started {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => released.push(ip),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format_args!("releasing {ip}"), e)),
            }
            crash::point("stale-lease-released");
        }
        if !released.is_empty() {
            self.rebuild_index()?;
        }
        Self::write_in_place(&record, &boot.id)?;
        released.sort();
        Ok(released)
    }

    /// Addresses leased in the network, from file names only (no file is read): cheap enough
    /// for STATUS.
    pub fn leased_addresses(dir: &Path) -> std::io::Result<Vec<IpAddr>> {
        let mut ips = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(ip) = entry?.file_name().to_str().and_then(lease_ip) {
                ips.push(ip);
            }
        }
        Ok(ips)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.drop_template();
    }
}

impl LeaseStore for DiskStore {
    fn reserve(
        &mut self,
        ip: IpAddr,
        owner: &Attachment,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        let dest = self.dir.join(ip.to_string());
        // link(2) fails with EEXIST whatever sits at the name, a symlink included: an atomic
        // O_EXCL create that never exposes a half-written lease.
        let linked = match self.lease_template(owner)? {
            LeaseTemplate::Unnamed(file) => link_unnamed(file, &dest),
            LeaseTemplate::Named(path) => fs::hard_link(path, &dest),
        };
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(format_args!("reserving {ip}"), e)),
        }
        crash::point("lease-written");
        // The inode now belongs to the lease; the next lease gets a file of its own.
        self.drop_template();
        self.index_add(&Owner::Attachment(owner.clone()), ip)?;
        self.last_reserved.insert(set_index, ip);
        Ok(true)
    }

    fn last_reserved(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        if let Some(ip) = self.last_reserved.get(&set_index) {
            return Ok(Some(*ip));
        }
        match read_small(&self.dir.join(format!("{LAST_RESERVED}{set_index}"))) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => {
                cni_protocol::cni_log!(
                    "ignoring unreadable last reserved address of range set {set_index}: {e}"
                );
                Ok(None)
            }
        }
    }

    fn leases_of(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError> {
        let mut ips = self.confirmed(&Owner::Attachment(a.clone()))?;
        ips.extend(self.confirmed(&Owner::Legacy(a.container_id.clone()))?);
        Ok(ips)
    }

    fn release(&mut self, ip: IpAddr, a: &Attachment) -> Result<(), StoreError> {
        let owner = Owner::Attachment(a.clone());
        if self.owner_of(ip).as_ref() == Some(&owner) {
            self.unlink_lease(ip, &owner)?;
        }
        Ok(())
    }

    fn release_attachment(&mut self, a: &Attachment) -> Result<Vec<IpAddr>, StoreError> {
        let mut owner = Owner::Attachment(a.clone());
        let mut ips = self.confirmed(&owner)?;
        if ips.is_empty() {
            owner = Owner::Legacy(a.container_id.clone());
            ips = self.confirmed(&owner)?;
        }
        for ip in &ips {
            self.unlink_lease(*ip, &owner)?;
        }
        Ok(ips)
    }

    fn leases(&mut self) -> Result<Vec<Lease>, StoreError> {
        self.scan()
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<(), StoreError> {
        self.unlink_lease(lease.ip, &lease.owner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn att(id: &str) -> Attachment {
        Attachment::new(id, "eth0")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn index_files_and_lease_names_read_back() {
        let ips: BTreeSet<IpAddr> = [ip("10.1.0.2"), ip("fd00::2")].into();
        assert_eq!(render_index(&ips), "10.1.0.2\nfd00::2\n");
        assert_eq!(parse_index(&render_index(&ips)), ips);
        assert_eq!(
            parse_index("10.1.0.2\ntorn\n\nfd00::"),
            [ip("10.1.0.2"), ip("fd00::")].into()
        );
        assert_eq!(lease_ip("10.1.0.2"), Some(ip("10.1.0.2")));
        assert_eq!(lease_ip("010.1.0.2"), None);
        assert_eq!(lease_ip("FD00::2"), None, "not the canonical text");
    }

    #[test]
    fn leases_are_written_in_the_reference_format() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        assert!(store.reserve(ip("10.0.0.2"), &att("c1"), 0).unwrap());
        assert!(!store.reserve(ip("10.0.0.2"), &att("c2"), 0).unwrap());
        assert!(store.reserve(ip("fd00::2"), &att("c1"), 1).unwrap());
        store.commit().unwrap();
        let dir = tmp.path().join("net");
        assert_eq!(
            fs::read_to_string(dir.join("10.0.0.2")).unwrap(),
            "c1\r\neth0"
        );
        assert_eq!(
            fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(),
            "fd00::2"
        );
        let meta = fs::metadata(dir.join("fd00::2")).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.nlink()), (0o600, 1));
        let leftovers: Vec<_> = fs::read_dir(dir.join(INDEX_DIR))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_lease_made_behind_our_back_invalidates_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        DiskStore::open(tmp.path(), "net", WAIT)
            .unwrap()
            .commit()
            .unwrap();
        // Another implementation writes a lease (no index entry).
        fs::write(dir.join("10.0.0.9"), "c9\r\neth0").unwrap();
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        assert_eq!(store.leases_of(&att("c9")).unwrap(), vec![ip("10.0.0.9")]);
        assert_eq!(
            store.release_attachment(&att("c9")).unwrap(),
            vec![ip("10.0.0.9")]
        );
        store.commit().unwrap();
        assert!(!dir.join("10.0.0.9").exists());
    }

    #[test]
    fn a_crash_before_commit_is_repaired_by_the_next_open() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
            assert!(store.reserve(ip("10.0.0.2"), &att("c1"), 0).unwrap());
            // Dropped without commit: as if the process died here.
        }
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        assert_eq!(
            store.release_attachment(&att("c1")).unwrap(),
            vec![ip("10.0.0.2")]
        );
    }

    #[test]
    fn a_removed_or_lying_index_falls_back_to_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        store.reserve(ip("10.0.0.2"), &att("c1"), 0).unwrap();
        store.reserve(ip("10.0.0.3"), &att("c2"), 0).unwrap();
        store.commit().unwrap();
        drop(store);
        fs::remove_dir_all(dir.join(INDEX_DIR)).unwrap();
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        assert_eq!(store.leases_of(&att("c2")).unwrap(), vec![ip("10.0.0.3")]);
        store.commit().unwrap();
        drop(store);
        // An index entry rewritten to claim someone else's address: verified, not trusted.
        fs::write(dir.join(INDEX_DIR).join("c1:eth0"), "10.0.0.3\n").unwrap();
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        assert_eq!(
            store.release_attachment(&att("c1")).unwrap(),
            vec![ip("10.0.0.2")]
        );
        store.commit().unwrap();
        assert!(dir.join("10.0.0.3").exists());
    }

    #[test]
    fn legacy_leases_are_released_only_without_current_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("10.0.0.5"), "c1").unwrap();
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        store.reserve(ip("10.0.0.6"), &att("c1"), 0).unwrap();
        assert_eq!(
            store.release_attachment(&att("c1")).unwrap(),
            vec![ip("10.0.0.6")]
        );
        assert_eq!(
            store.release_attachment(&att("c1")).unwrap(),
            vec![ip("10.0.0.5")]
        );
        assert!(store.release_attachment(&att("c1")).unwrap().is_empty());
    }

    #[test]
    fn symlinks_planted_in_the_network_dir_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, "precious").unwrap();
        let dir = tmp.path().join("data").join("net");
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("10.0.0.2")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("last_reserved_ip.0")).unwrap();
        let mut store = DiskStore::open(&tmp.path().join("data"), "net", WAIT).unwrap();
        assert!(!store.reserve(ip("10.0.0.2"), &att("c1"), 0).unwrap());
        assert!(store.reserve(ip("10.0.0.3"), &att("c1"), 0).unwrap());
        store.commit().unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "precious");
        assert!(fs::symlink_metadata(dir.join("last_reserved_ip.0"))
            .unwrap()
            .is_file());
    }

    #[test]
    fn leases_older_than_a_new_boot_are_released_once_per_boot() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let mut store = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        store.reserve(ip("10.0.0.2"), &att("old"), 0).unwrap();
        store.commit().unwrap();
        File::options()
            .write(true)
            .open(dir.join("10.0.0.2"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        let boot = |id: &str| Boot {
            id: id.to_string(),
            started: std::time::SystemTime::now(),
        };
        let first = boot("one");
        store.reserve(ip("10.0.0.3"), &att("new"), 0).unwrap();
        store.commit().unwrap();
        // 10.0.0.3 was written after `first` started only if the clock moved: make it so.
        let later = first.started + Duration::from_secs(5);
        File::options()
            .write(true)
            .open(dir.join("10.0.0.3"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            store.release_leases_of_earlier_boots(&first).unwrap(),
            vec![ip("10.0.0.2")]
        );
        assert!(store.leases_of(&att("old")).unwrap().is_empty());
        assert_eq!(store.leases_of(&att("new")).unwrap(), vec![ip("10.0.0.3")]);
        // The same boot again: nothing is looked at, even a lease that predates it.
        File::options()
            .write(true)
            .open(dir.join("10.0.0.3"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(store
            .release_leases_of_earlier_boots(&first)
            .unwrap()
            .is_empty());
        assert_eq!(
            store.release_leases_of_earlier_boots(&boot("two")).unwrap(),
            vec![ip("10.0.0.3")]
        );
    }

    #[test]
    fn a_held_lock_times_out_instead_of_hanging() {
        let tmp = tempfile::tempdir().unwrap();
        let _holder = DiskStore::open(tmp.path(), "net", WAIT).unwrap();
        let started = std::time::Instant::now();
        let err = DiskStore::open(tmp.path(), "net", Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::LockTimeout(_)));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
