//! Network sandboxes for privileged black-box tests.
//!
//! A test body runs on a fresh thread that has `unshare(CLONE_NEWNET)`ed: that thread is the
//! sandbox's "host", and every process it spawns (the plugins, `ip`, `nft`, `ping`) inherits
//! its netns. Containers and the "outside" world are `unshare --net sleep` processes whose
//! netns is reached through `/proc/<pid>/ns/net`. Nothing touches the machine's own network,
//! and everything vanishes with the thread and the processes, even when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn netns_id(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
}

/// True when privileged tests can run; outside CI a non-root run skips them with a notice.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(!crate::in_ci(), "CI must run the privileged tests as root");
    eprintln!("SKIP: not root, privileged sandbox tests need root");
    false
}

/// Whether the kernel has `feature`, probed with `probe` (a shell command in the sandbox) and
/// undone with `undo`. Tests use it to pick between the feature's path and its refusal path.
/// Where the kernel is known to have every feature (the kernel-matrix VM sets
/// `CNI_RS_FULL_KERNEL`), a missing one is a failure, not a reason to test the refusal.
pub fn kernel_has(feature: &str, probe: &str, undo: &str) -> bool {
    let ok = sh_ok(probe);
    let _ = sh_ok(undo);
    assert!(
        ok || std::env::var_os("CNI_RS_FULL_KERNEL").is_none(),
        "this kernel must have {feature}"
    );
    ok
}

/// CONFIG_BRIDGE_VLAN_FILTERING.
pub fn kernel_has_vlan_filtering() -> bool {
    kernel_has(
        "bridge VLAN filtering",
        "ip link add vlanprobe type bridge vlan_filtering 1",
        "ip link del vlanprobe",
    )
}

/// Runs `body` in a new network namespace on its own thread; panics propagate.
pub fn in_sandbox<F: FnOnce() + Send>(body: F) {
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let before = netns_id("/proc/thread-self/ns/net");
            // SAFETY: unshare only changes this thread's namespace membership.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            let after = netns_id("/proc/thread-self/ns/net");
            assert_ne!(before, after, "refusing to run outside a sandbox netns");
            assert_ne!(after, netns_id("/proc/self/ns/net"));
            sh("ip link set lo up");
            body();
        });
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Runs a shell command in the sandbox's host netns; panics with its output on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell command, returning whether it succeeded.
pub fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A network namespace kept alive by a sleeping process (a "container" or the "outside").
pub struct Netns {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Netns {
    pub fn new() -> Netns {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare --net sleep");
        let path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let mine = netns_id("/proc/thread-self/ns/net");
        // Wait until the child has entered its own netns.
        for _ in 0..2000 {
            if std::fs::read_link(&path).is_ok_and(|p| p.display().to_string() != mine) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let ns = Netns {
            child: Some(child),
            path,
        };
        ns.sh("ip link set lo up");
        ns
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// Runs a shell command inside this netns.
    pub fn sh(&self, cmd: &str) -> String {
        sh(&format!(
            "nsenter --net={} sh -c '{cmd}'",
            self.path.display()
        ))
    }

    pub fn sh_ok(&self, cmd: &str) -> bool {
        sh_ok(&format!(
            "nsenter --net={} sh -c '{cmd}'",
            self.path.display()
        ))
    }

    /// Ends the sleeping process: the netns disappears with it.
    pub fn delete(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}
