use std::io;

/// Everything that can go wrong while installing, checking or removing masquerade state.
/// Each variant says what was being attempted (`action`) and on which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The NETLINK_NETFILTER socket could not be opened or configured.
    #[error("opening a NETLINK_NETFILTER socket: {0}")]
    Socket(#[source] io::Error),

    /// The kernel refused a request or a transaction (errno in `source`).
    #[error("{action}: {source}")]
    Netlink {
        action: String,
        #[source]
        source: io::Error,
    },

    /// Another writer changed the ruleset between our read and our transaction, every time.
    #[error("{action}: the nftables ruleset kept changing under us ({attempts} attempts)")]
    Contended { action: String, attempts: u32 },

    /// A kernel reply did not have the expected shape.
    #[error("{action}: unexpected netlink reply: {detail}")]
    Protocol { action: String, detail: String },

    /// An `iptables`/`iptables-restore` run failed or could not be started.
    #[error("{action}: running {command}: {detail}")]
    Command {
        action: String,
        command: String,
        detail: String,
    },

    /// CHECK found the state incomplete; the message names what is missing or different.
    #[error("masquerade state for {attachment}: {what}")]
    Missing { attachment: String, what: String },

    /// CHECK found the macspoofchk state incomplete; the message names what is missing.
    #[error("macspoofchk state for {attachment}: {what}")]
    SpoofCheckMissing { attachment: String, what: String },

    /// CHECK found the port mapping state incomplete; the message names what is missing.
    #[error("port mapping state for {attachment}: {what}")]
    PortmapMissing { attachment: String, what: String },

    /// A host port is already mapped by another attachment.
    #[error("host port {port} is already mapped by {owner}")]
    PortConflict { port: String, owner: String },

    /// An argument cannot be expressed in nftables (e.g. an interface name over 15 bytes).
    #[error("{action}: {detail}")]
    Invalid { action: String, detail: String },

    /// Several independent cleanups failed; every one is listed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

impl Error {
    /// Combine the failures of independent steps: `Ok` if there were none, the error itself if
    /// there was one (so its errno stays visible), otherwise all of them as [`Error::Many`].
    pub fn all(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// The errno behind a kernel refusal, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } | Error::Socket(source) => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn netlink(action: impl Into<String>, errno: i32) -> Self {
        Error::Netlink {
            action: action.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    pub(crate) fn protocol(action: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Protocol {
            action: action.into(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
