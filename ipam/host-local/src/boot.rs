//! Which boot this is. Every container network namespace dies with a reboot, so a lease
//! written before the running boot started belongs to nobody; the data dir survives reboots
//! (it is on disk), and runtimes such as containerd never call GC, so without this those
//! leases would pile up until the range is exhausted.

use std::io;
use std::time::{Duration, SystemTime};

/// The kernel's random id of the running boot. Read at this path so a test can bind-mount
/// another file over it to simulate a reboot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub id: String,
    /// Wall-clock time the boot started: now minus the time since boot (suspend included).
    pub started: SystemTime,
}

impl Boot {
    pub fn current() -> io::Result<Boot> {
        let id = std::fs::read_to_string(BOOT_ID_PATH)?.trim().to_string();
        if id.is_empty() || id.len() > 64 || id.contains(['/', '\0', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{BOOT_ID_PATH} holds no usable id"),
            ));
        }
        let since_boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map_err(io::Error::from)?;
        let since_boot = Duration::from(since_boot);
        let started = SystemTime::now()
            .checked_sub(since_boot)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Boot { id, started })
    }
}
