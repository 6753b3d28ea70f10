//! Sysctls under `/proc/sys`, in this netns or (on a throwaway thread) in another.
//!
//! `/proc/sys/net` shows the network namespace of the thread that opens the file, so a write for
//! a container must happen on a thread that has joined its netns: [`sysctl_write_in`] does that.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::address::IpFamily;
use crate::error::{Error, Result};
use crate::link::validate_ifname;
use crate::netns::{run_in_netns, Netns};

/// Checks a key (`net/ipv4/ip_forward`, or dotted `net.ipv4.ip_forward`) and returns its path.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let invalid = |msg: &str| Error::Invalid {
        op: format!("using sysctl key {key:?}"),
        msg: msg.to_string(),
    };
    // Dotted keys are only unambiguous without a '/' (interface names may contain dots).
    let key_slashed = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    if key_slashed.is_empty() || key_slashed.starts_with('/') {
        return Err(invalid("must be relative to /proc/sys"));
    }
    if key_slashed.contains('\0') {
        return Err(invalid("contains NUL"));
    }
    if key_slashed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid("has an empty, '.' or '..' component"));
    }
    Ok(PathBuf::from("/proc/sys").join(key_slashed))
}

/// Reads a sysctl of the calling thread's netns, without the trailing newline.
pub fn sysctl_read(key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::from_io(format!("reading {}", path.display()), e))?;
    Ok(text.trim_end_matches('\n').to_string())
}

/// Writes a sysctl of the calling thread's netns.
pub fn sysctl_write(key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    let op = || format!("writing {value:?} to {}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::from_io(op(), e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| Error::from_io(op(), e))
}

/// Writes several sysctls inside `ns` with one thread hop; stops at the first failure.
pub fn sysctl_write_in(ns: &Netns, pairs: &[(&str, &str)]) -> Result<()> {
    let r = run_in_netns(ns, || {
        pairs.iter().try_for_each(|(k, v)| sysctl_write(k, v))
    })?;
    r.map_err(|e| in_netns(e, ns))
}

/// Reads a sysctl inside `ns`.
pub fn sysctl_read_in(ns: &Netns, key: &str) -> Result<String> {
    run_in_netns(ns, || sysctl_read(key))?.map_err(|e| in_netns(e, ns))
}

fn in_netns(e: Error, ns: &Netns) -> Error {
    let suffix = format!(" in {}", ns.path().display());
    match e {
        Error::NotFound { op, errno, detail } => Error::NotFound {
            op: op + &suffix,
            errno,
            detail,
        },
        Error::Kernel { op, errno, detail } => Error::Kernel {
            op: op + &suffix,
            errno,
            detail,
        },
        Error::Exists { op, detail } => Error::Exists {
            op: op + &suffix,
            detail,
        },
        Error::Io { op, source } => Error::Io {
            op: op + &suffix,
            source,
        },
        other => other,
    }
}

/// The key of a per-interface setting: `net/ipv4/conf/<ifname>/<leaf>` (or `ipv6`).
pub fn interface_sysctl_key(family: IpFamily, ifname: &str, leaf: &str) -> Result<String> {
    // The name becomes a path component: refuse anything that could climb out of it.
    validate_ifname(ifname)?;
    let fam = match family {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    };
    Ok(format!("net/{fam}/conf/{ifname}/{leaf}"))
}

/// Writes `net/<family>/conf/<ifname>/<leaf>` in the calling thread's netns.
pub fn set_interface_sysctl(family: IpFamily, ifname: &str, leaf: &str, value: &str) -> Result<()> {
    sysctl_write(&interface_sysctl_key(family, ifname, leaf)?, value)
}

/// Sets `net/ipv6/conf/<ifname>/accept_dad` (0 disables duplicate address detection).
pub fn set_accept_dad(ifname: &str, value: u8) -> Result<()> {
    set_interface_sysctl(IpFamily::V6, ifname, "accept_dad", &value.to_string())
}

/// Sets `net/ipv6/conf/<ifname>/accept_ra` (0 ignores router advertisements, CVE-2020-10749).
pub fn set_accept_ra(ifname: &str, value: u8) -> Result<()> {
    set_interface_sysctl(IpFamily::V6, ifname, "accept_ra", &value.to_string())
}

/// Sets `net/ipv4/conf/<ifname>/arp_notify` (1 sends gratuitous ARP when the link comes up).
pub fn set_arp_notify(ifname: &str, on: bool) -> Result<()> {
    set_interface_sysctl(
        IpFamily::V4,
        ifname,
        "arp_notify",
        if on { "1" } else { "0" },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_paths() {
        assert_eq!(
            sysctl_path("net/ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/arp_notify").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/arp_notify")
        );
    }

    #[test]
    fn escaping_keys_are_refused() {
        for bad in ["", "/etc/passwd", "net/../../etc", "net//x", "net/./x"] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
        assert!(interface_sysctl_key(IpFamily::V4, "..", "arp_notify").is_err());
        assert!(interface_sysctl_key(IpFamily::V4, "a/b", "arp_notify").is_err());
        assert_eq!(
            interface_sysctl_key(IpFamily::V6, "eth0", "accept_dad").unwrap(),
            "net/ipv6/conf/eth0/accept_dad"
        );
    }
}
