//! The crate's one error type: every variant says what was attempted on which object.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed kernel operation, with the operation described in words (`op`).
///
/// `op` reads like "adding 10.1.0.5/24 to eth0 in /run/netns/x"; `Display` appends the errno text
/// and, when the kernel sent one, its extended-ACK message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object to create already exists (EEXIST).
    #[error("{op}: {}{}", errno_text(libc::EEXIST), ext(.detail))]
    Exists {
        /// What was attempted.
        op: String,
        /// The kernel's extended-ACK message, if any.
        detail: Option<String>,
    },
    /// The object (link, address, route, sysctl key) does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    #[error("{op}: {}{}", errno_text(*.errno), ext(.detail))]
    NotFound {
        /// What was attempted.
        op: String,
        /// The errno the kernel reported.
        errno: i32,
        /// The kernel's extended-ACK message, if any.
        detail: Option<String>,
    },
    /// Any other errno from the kernel (netlink NACK or a failed syscall).
    #[error("{op}: {}{}", errno_text(*.errno), ext(.detail))]
    Kernel {
        /// What was attempted.
        op: String,
        /// The errno the kernel reported.
        errno: i32,
        /// The kernel's extended-ACK message, if any.
        detail: Option<String>,
    },
    /// An I/O failure that carries no single errno (thread spawn, short write, ...).
    #[error("{op}: {source}")]
    Io {
        /// What was attempted.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path handed to us as a network namespace is something else.
    #[error("{} is not a network namespace", .path.display())]
    NotANetns {
        /// The offending path.
        path: PathBuf,
    },
    /// A link exists under the wanted name but is of another kind (e.g. a veth named like the bridge).
    #[error("{name} already exists but is {}, not a {expected}", found.as_deref().map_or_else(|| "a device of no kind".to_string(), |k| format!("a {k}")))]
    WrongKind {
        /// The link name.
        name: String,
        /// The kind we wanted.
        expected: String,
        /// The kind found (None for plain devices such as `lo` or physical NICs).
        found: Option<String>,
    },
    /// The kernel sent something we could not decode.
    #[error("{op}: undecodable netlink reply: {msg}")]
    Decode {
        /// What was attempted.
        op: String,
        /// The decoder's complaint.
        msg: String,
    },
    /// A caller-supplied value cannot be used (bad sysctl key, interface name, ...).
    #[error("{op}: {msg}")]
    Invalid {
        /// What was attempted.
        op: String,
        /// Why the input is unusable.
        msg: String,
    },
}

fn errno_text(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn ext(detail: &Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

impl Error {
    /// Builds the right variant for `errno` observed while doing `op`.
    pub fn from_errno(op: impl Into<String>, errno: i32, detail: Option<String>) -> Self {
        let op = op.into();
        match errno {
            libc::EEXIST => Error::Exists { op, detail },
            libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL => {
                Error::NotFound { op, errno, detail }
            }
            _ => Error::Kernel { op, errno, detail },
        }
    }

    /// Builds the right variant for an `io::Error` observed while doing `op`.
    pub fn from_io(op: impl Into<String>, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(errno) => Self::from_errno(op, errno, None),
            None => Error::Io {
                op: op.into(),
                source,
            },
        }
    }

    /// The errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Exists { .. } => Some(libc::EEXIST),
            Error::NotFound { errno, .. } | Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the object to create already existed.
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists { .. })
    }

    /// True when the object operated on does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// A transport-level failure before the operation is known; [`Failure::at`] names the operation.
#[derive(Debug)]
pub enum Failure {
    /// The kernel answered with a negative errno (and maybe an extended-ACK message).
    Errno(i32, Option<String>),
    /// A socket-level I/O error.
    Io(io::Error),
    /// A reply could not be decoded.
    Decode(String),
}

impl Failure {
    /// Attaches the description of the attempted operation.
    pub fn at(self, op: impl Into<String>) -> Error {
        match self {
            Failure::Errno(errno, detail) => Error::from_errno(op, errno, detail),
            Failure::Io(e) => Error::from_io(op, e),
            Failure::Decode(msg) => Error::Decode { op: op.into(), msg },
        }
    }

    /// The errno behind this failure, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Failure::Errno(e, _) => Some(*e),
            Failure::Io(e) => e.raw_os_error(),
            Failure::Decode(_) => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Errno(errno, detail) => write!(f, "{}{}", errno_text(*errno), ext(detail)),
            Failure::Io(e) => e.fmt(f),
            Failure::Decode(m) => write!(f, "undecodable netlink reply: {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_object_and_errno() {
        let e = Error::from_errno("adding 10.1.0.5/24 to eth0", libc::EEXIST, None);
        assert!(e.is_exists());
        assert_eq!(
            e.to_string(),
            "adding 10.1.0.5/24 to eth0: File exists (os error 17)"
        );
        let e = Error::from_errno(
            "creating bridge cni0",
            libc::EINVAL,
            Some("bad attr".into()),
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert_eq!(
            e.to_string(),
            "creating bridge cni0: Invalid argument (os error 22) (bad attr)"
        );
    }

    #[test]
    fn enodev_and_esrch_are_not_found() {
        assert!(Error::from_errno("x", libc::ENODEV, None).is_not_found());
        assert!(Error::from_errno("x", libc::ESRCH, None).is_not_found());
        assert!(!Error::from_errno("x", libc::EPERM, None).is_not_found());
    }

    #[test]
    fn wrong_kind_reads_naturally() {
        let e = Error::WrongKind {
            name: "cni0".into(),
            expected: "bridge".into(),
            found: Some("veth".into()),
        };
        assert_eq!(
            e.to_string(),
            "cni0 already exists but is a veth, not a bridge"
        );
        let e = Error::WrongKind {
            name: "lo".into(),
            expected: "bridge".into(),
            found: None,
        };
        assert_eq!(
            e.to_string(),
            "lo already exists but is a device of no kind, not a bridge"
        );
    }
}
