//! The one backend seam: which implementation a feature (masquerade, port mapping) uses.
//!
//! Plugins pass what the configuration says (`ipMasqBackend` / `backend`, absent = `None`) to
//! [`Backend::resolve`], the only place the default is decided. The rule is the reference's
//! (`plugins/pkg/utils` since v1.6): iptables, unless iptables is unusable and nftables is
//! usable.
//!
//! "Usable" as the reference tests it:
//! - iptables: an `iptables` program on `PATH` that prints a version (`iptables --version`)
//!   and can read a chain (`iptables -t filter -S INPUT 1 --wait` exits 0, or 1 for "no such
//!   chain": only failing to run, or other exit codes, mean unusable);
//! - nftables: the reference runs `nft --check add table ...` because its backend execs `nft`;
//!   ours talks to the kernel directly, so here it means the kernel offers nf_tables to this
//!   network namespace (a ruleset generation can be read over NETLINK_NETFILTER).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A firewall implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Rules shaped exactly like the reference's iptables backend, via `iptables-restore`.
    Iptables,
    /// Our own nftables tables, over netlink, O(1) per pod.
    Nftables,
}

impl Backend {
    /// The configuration value naming this backend.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        }
    }

    /// Parse a configuration value (`"iptables"` / `"nftables"`); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "iptables" => Some(Backend::Iptables),
            "nftables" => Some(Backend::Nftables),
            _ => None,
        }
    }

    /// The configured backend, or the reference's default when none is configured.
    pub fn resolve(configured: Option<Backend>) -> Backend {
        configured.unwrap_or_else(|| Self::default_for(iptables_usable, nftables_usable))
    }

    /// The reference's default rule, with the probes as arguments (tests drive them). The
    /// nftables probe only runs when iptables is unusable, as in the reference.
    fn default_for(iptables: impl FnOnce() -> bool, nftables: impl FnOnce() -> bool) -> Backend {
        if !iptables() && nftables() {
            Backend::Nftables
        } else {
            Backend::Iptables
        }
    }
}

/// `iptables` as Go's `exec.LookPath` finds it: on `PATH` only, no fallback directories.
fn iptables_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("iptables"))
        .find(|p| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file())
}

/// Does `text` contain a version `v<n>.<n>.<n>`, as `iptables --version` prints it?
fn has_version(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace()).any(|word| {
        word.strip_prefix('v').is_some_and(|v| {
            let parts: Vec<&str> = v.splitn(3, '.').collect();
            parts.len() == 3
                && parts.iter().enumerate().all(|(i, p)| {
                    // The last part may be followed by anything ("9" of "1.8.9").
                    let digits = if i == 2 {
                        p.chars().take_while(char::is_ascii_digit).count()
                    } else {
                        p.len()
                    };
                    digits > 0 && p[..digits].chars().all(|c| c.is_ascii_digit())
                })
        })
    })
}

/// Can the reference's iptables backend work here? See the module documentation.
pub fn iptables_usable() -> bool {
    let Some(program) = iptables_on_path() else {
        return false;
    };
    let version = Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match version {
        Ok(out) if out.status.success() && has_version(&String::from_utf8_lossy(&out.stdout)) => {}
        _ => return false,
    }
    let status = Command::new(&program)
        .args(["-t", "filter", "-S", "INPUT", "1", "--wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    matches!(status.map(|s| s.code()), Ok(Some(0 | 1)))
}

/// Does the kernel offer nf_tables to this thread's network namespace?
pub fn nftables_usable() -> bool {
    crate::nft::available()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn default_is_iptables_unless_only_nftables_is_usable() {
        let pick = |ipt: bool, nft: bool| Backend::default_for(|| ipt, || nft);
        assert_eq!(pick(true, true), Backend::Iptables);
        assert_eq!(pick(true, false), Backend::Iptables);
        assert_eq!(pick(false, true), Backend::Nftables);
        // Neither: iptables, which then fails with its own error, as in the reference.
        assert_eq!(pick(false, false), Backend::Iptables);
    }

    #[test]
    fn nftables_is_not_probed_when_iptables_is_usable() {
        let pick = Backend::default_for(|| true, || panic!("probed"));
        assert_eq!(pick, Backend::Iptables);
    }

    #[test]
    fn configured_backend_wins_without_probing() {
        assert_eq!(Backend::resolve(Some(Backend::Nftables)), Backend::Nftables);
        assert_eq!(Backend::resolve(Some(Backend::Iptables)), Backend::Iptables);
    }

    #[test]
    fn names_round_trip() {
        for b in [Backend::Iptables, Backend::Nftables] {
            assert_eq!(Backend::from_name(b.name()), Some(b));
        }
        assert_eq!(Backend::from_name("pf"), None);
    }

    #[test]
    fn iptables_version_lines_are_recognised() {
        assert!(has_version("iptables v1.8.9 (nf_tables)\n"));
        assert!(has_version("iptables v1.4.21\n"));
        assert!(!has_version("iptables: command not found"));
        assert!(!has_version("v1.8"));
    }
}
