//! The one helper every kernel test uses: a private network namespace per test, plus a second
//! one playing the container, so nothing here can touch the machine's own network.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;

use netops::{Netns, RouteSocket};
use nix::sched::{unshare, CloneFlags};

/// A fresh "host" netns (the test's own thread) and a fresh "container" netns.
pub struct Sandbox {
    /// Socket in the host sandbox netns (the test thread's own).
    pub host: RouteSocket,
    /// The host sandbox netns.
    pub host_ns: Netns,
    /// The container netns (kept alive by a parked thread, so its /proc path stays valid).
    pub container_ns: Netns,
    /// Socket opened inside the container netns.
    pub container: RouteSocket,
    keeper: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.keeper.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn netns_inode(path: &str) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

/// Moves the calling thread into a new netns and proves it is not the machine's.
fn unshare_and_verify() {
    let before = netns_inode("/proc/thread-self/ns/net");
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let after = netns_inode("/proc/thread-self/ns/net");
    assert_ne!(after, before, "unshare did not change the thread's netns");
    // PID 1's netns may be unreadable (user namespaces); compare when we can.
    if let Ok(md) = std::fs::metadata("/proc/1/ns/net") {
        assert_ne!(after, md.ino(), "thread is in PID 1's netns");
    }
    // And the process's main netns (what every other thread of the test binary uses).
    let main_ns = format!("/proc/{}/ns/net", std::process::id());
    assert_ne!(
        after,
        netns_inode(&main_ns),
        "thread is in the test process's netns"
    );
}

/// True when the test may run; false (after a notice) when it must be skipped.
/// Without root the test FAILS when `CI` is set: a privileged suite never passes by skipping.
fn privileged(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{name}: kernel tests need root and CI is set; refusing to skip");
    }
    eprintln!("SKIPPED {name}: kernel tests need root (set CI=1 to make this a failure)");
    false
}

/// Runs `body` on a thread inside a brand-new netns, with a second netns as the container.
pub fn run<F>(name: &str, body: F)
where
    F: FnOnce(&mut Sandbox) + Send,
{
    if !privileged(name) {
        return;
    }
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, || {
                unshare_and_verify();
                let mut sb = Sandbox::new();
                body(&mut sb);
            })
            .expect("spawn sandbox thread");
        if let Err(p) = h.join() {
            std::panic::resume_unwind(p);
        }
    });
}

impl Sandbox {
    fn new() -> Sandbox {
        let host_ns = Netns::current().expect("open own netns");
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            unshare_and_verify();
            tid_tx
                .send(nix::unistd::gettid().as_raw())
                .expect("send tid");
            // Park until the sandbox is dropped (the sender goes away).
            let _ = stop_rx.recv();
        });
        let tid = tid_rx.recv().expect("container thread started");
        let path = format!("/proc/{}/task/{tid}/ns/net", std::process::id());
        let container_ns = Netns::open(&path).expect("open container netns");
        assert!(!container_ns.same_as(&host_ns).expect("compare netns"));
        let host = RouteSocket::open().expect("host socket");
        let container = RouteSocket::open_in(&container_ns).expect("container socket");
        Sandbox {
            host,
            host_ns,
            container_ns,
            container,
            keeper: Some((stop_tx, handle)),
        }
    }
}

/// Runs `ip -j ARGS` inside `ns` (via nsenter on the netns path) and parses its JSON.
pub fn ip_json(ns: &Netns, args: &[&str]) -> serde_json::Value {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns_path(ns)))
        .arg("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("run nsenter ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
}

/// A path other processes can open for `ns`: the fd of our open handle.
fn ns_path(ns: &Netns) -> String {
    use std::os::fd::{AsFd, AsRawFd};
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_fd().as_raw_fd())
}
