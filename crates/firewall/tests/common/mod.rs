//! Shared by the kernel test binaries: a sandbox network namespace per test, running commands
//! and reading what `nft` reports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Sandbox

/// Whether this runs under CI, where a skipped privileged test is a failure.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Run `body` on a new thread that has unshared its network namespace. Without root the test
/// is skipped with a notice, or fails under CI.
pub fn in_netns(name: &str, body: impl FnOnce() + Send + 'static) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if ci() {
            panic!("{name}: kernel tests need root (CI is set, so this is a failure)");
        }
        eprintln!("skipping {name}: kernel tests need root");
        return;
    }
    // The namespace the process started in (the calling test thread never unshares), and
    // init's where it is readable.
    let before = fs::metadata("/proc/self/ns/net").unwrap().ino();
    let init = fs::metadata("/proc/1/ns/net").ok().map(|m| m.ino());
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare affects only the calling thread's namespaces.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let mine = fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        assert_ne!(mine, before, "still in the process's network namespace");
        assert_ne!(Some(mine), init, "in init's network namespace");
        // Commands started from this thread must land in the same namespace.
        let child = run("readlink", &["/proc/self/ns/net"]);
        assert_eq!(
            child.trim(),
            format!("net:[{mine}]"),
            "child process left the sandbox"
        );
        body();
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

pub fn run_status(program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn run(program: &str, args: &[&str]) -> String {
    let (ok, out, err) = run_status(program, args, None);
    assert!(ok, "{program} {args:?} failed: {err}");
    out
}

pub fn nft_apply(script: &str) {
    let (ok, _, err) = run_status("nft", &["-f", "-"], Some(script));
    assert!(ok, "nft -f failed: {err}\n{script}");
}

pub fn ruleset_text() -> String {
    run("nft", &["list", "ruleset"])
}

pub fn ruleset_json() -> Vec<Value> {
    let v: Value = serde_json::from_str(&run("nft", &["-j", "list", "ruleset"])).unwrap();
    v["nftables"].as_array().cloned().unwrap_or_default()
}
/// The objects of one kind ("rule", "chain", "map", ...) in table `table` of `family` (any
/// family when `None`).
pub fn objects(family: Option<&str>, kind: &str, table: &str) -> Vec<Value> {
    ruleset_json()
        .iter()
        .filter_map(|o| o.get(kind))
        .filter(|o| o["table"] == table && family.is_none_or(|f| o["family"] == f))
        .cloned()
        .collect()
}

/// Names of the chains of one table, sorted.
pub fn chain_names(family: Option<&str>, table: &str) -> Vec<String> {
    let mut names: Vec<String> = objects(family, "chain", table)
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Where the Go reference's bridge plugin is installed (Debian's containernetworking-plugins).
const REFERENCE_BRIDGE: &str = "/usr/lib/cni/bridge";

/// Whether the reference bridge plugin is installed; under CI its absence is a failure.
pub fn reference_available() -> bool {
    if std::path::Path::new(REFERENCE_BRIDGE).is_file() {
        return true;
    }
    if ci() {
        panic!("{REFERENCE_BRIDGE} is missing (install containernetworking-plugins)");
    }
    eprintln!("skipping: {REFERENCE_BRIDGE} is not installed");
    false
}

/// Keep a thread alive in a network namespace of its own (a stand-in container) and return
/// its namespace path; the thread exits when the returned sender is dropped.
pub fn container_netns() -> (String, std::sync::mpsc::Sender<()>) {
    let (path_tx, path_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread; gettid has no preconditions.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0);
        let tid = unsafe { libc::gettid() };
        path_tx
            .send(format!("/proc/{}/task/{tid}/ns/net", std::process::id()))
            .unwrap();
        let _ = stop_rx.recv();
    });
    (path_rx.recv().unwrap(), stop_tx)
}

/// Run the reference bridge's ADD for `container_id` (ifname eth0) into `netns`, with network
/// "mynet" on bridge `bridge`, host-local on 10.88.0.0/16 and the extra top-level keys
/// `extra` (JSON members without braces); returns its result. Its lease dir is removed after.
pub fn reference_add(bridge: &str, extra: &str, container_id: &str, netns: &str) -> Value {
    use std::io::Write;
    let data_dir = std::env::temp_dir().join(format!(
        "masquerade-oracle-{}-{}",
        std::process::id(),
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    ));
    let config = format!(
        r#"{{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"{bridge}",{extra},
        "ipam":{{"type":"host-local","subnet":"10.88.0.0/16","dataDir":"{}"}}}}"#,
        data_dir.display()
    );
    let mut child = Command::new(REFERENCE_BRIDGE)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = fs::remove_dir_all(&data_dir);
    assert!(
        out.status.success(),
        "reference ADD failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Pod ids `pod0..` for a cost measurement: 300, or the count in environment variable `var`.
pub fn bench_pod_ids(var: &str) -> Vec<String> {
    let n: usize = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    (0..n).map(|i| format!("pod{i}")).collect()
}

/// The median of some timings.
pub fn median(v: &[u128]) -> u128 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The comments of the rules of `chain` in `table` (of `family`, or every family).
pub fn rule_comments(family: Option<&str>, table: &str, chain: &str) -> Vec<String> {
    objects(family, "rule", table)
        .iter()
        .filter(|r| r["chain"] == chain)
        .map(|r| r["comment"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// (key, jump target) of each element of verdict map `map` in `table`, as `nft -j` shows them;
/// empty when the map does not exist.
pub fn map_jumps(family: Option<&str>, table: &str, map: &str) -> Vec<(Value, String)> {
    let Some(set) = objects(family, "map", table)
        .into_iter()
        .find(|m| m["name"] == map)
    else {
        return Vec::new();
    };
    set["elem"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let target = e[1]["jump"]["target"].as_str().unwrap_or("?");
            (e[0].clone(), target.to_string())
        })
        .collect()
}
