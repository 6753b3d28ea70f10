//! Network namespace handles and running code inside one without moving the calling thread.
//!
//! Namespaces belong to threads. Work that must happen "inside" a netns (creating a netlink socket
//! there, writing `/proc/sys/net/...`) runs on a throwaway thread that `setns`es and then exits, so
//! no thread ever has to switch back and the caller's thread never changes namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, FsType};

use crate::error::{Error, Result};

/// `NSFS_MAGIC` from `linux/magic.h` (nix does not export it).
const NSFS_MAGIC: FsType = FsType(0x6e73_6673);

// `NS_GET_NSTYPE` = _IO(0xb7, 0x3) from `linux/nsfs.h`.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// An open network namespace file (`/proc/<pid>/ns/net`, `/run/netns/<name>`, ...).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens `path` and checks that it really is a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            Error::from_io(format!("opening network namespace {}", path.display()), e)
        })?;
        let ns = Netns {
            file,
            path: path.to_path_buf(),
        };
        ns.verify()?;
        Ok(ns)
    }

    /// Opens the network namespace of the calling thread (path `/proc/thread-self/ns/net`).
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    fn verify(&self) -> Result<()> {
        let not_netns = || Error::NotANetns {
            path: self.path.clone(),
        };
        let st = fstatfs(&self.file).map_err(|e| {
            Error::from_errno(
                format!("checking network namespace {}", self.path.display()),
                e as i32,
                None,
            )
        })?;
        // Namespace files live on nsfs since Linux 3.19. The Go reference also accepts procfs
        // (for older kernels), which lets any /proc file such as /proc/self/status through;
        // we do not.
        if st.filesystem_type() != NSFS_MAGIC {
            return Err(not_netns());
        }
        // nsfs holds every namespace type (mnt, pid, ...): ask which one this is.
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which `self.file` keeps open.
        match unsafe { ns_get_nstype(self.file.as_raw_fd()) } {
            Ok(t) if t == libc::CLONE_NEWNET => Ok(()),
            Ok(_) => Err(not_netns()),
            // Kernels before 4.11 lack the ioctl (ENOTTY), and user-mode emulators such as
            // qemu-user do not pass it on (ENOSYS): nsfs magic is the best we can do there.
            Err(nix::errno::Errno::ENOTTY | nix::errno::Errno::ENOSYS) => Ok(()),
            Err(e) => Err(Error::from_errno(
                format!("checking network namespace {}", self.path.display()),
                e as i32,
                None,
            )),
        }
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's inode number: equal inodes (on the nsfs device) mean the same namespace.
    pub fn inode(&self) -> Result<u64> {
        let md = self.file.metadata().map_err(|e| {
            Error::from_io(
                format!("reading inode of network namespace {}", self.path.display()),
                e,
            )
        })?;
        Ok(md.ino())
    }

    /// True when both handles refer to the same namespace.
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        let (a, b) = (self.id()?, other.id()?);
        Ok(a == b)
    }

    fn id(&self) -> Result<(u64, u64)> {
        let md = self.file.metadata().map_err(|e| {
            Error::from_io(
                format!("reading network namespace {}", self.path.display()),
                e,
            )
        })?;
        Ok((md.dev(), md.ino()))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Runs `f` on a throwaway thread that has joined `ns`; the calling thread never changes netns.
///
/// The thread exits when `f` returns, taking its namespace membership with it. A panic in `f` is
/// propagated to the caller.
pub fn run_in_netns<T, F>(ns: &Netns, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let fd = ns.as_fd();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(scope, move || -> Result<T> {
                setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::from_errno(
                        format!("entering network namespace {}", ns.path().display()),
                        e as i32,
                        None,
                    )
                })?;
                Ok(f())
            })
            .map_err(|e| {
                Error::from_io(
                    format!(
                        "starting a thread for network namespace {}",
                        ns.path().display()
                    ),
                    e,
                )
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}
