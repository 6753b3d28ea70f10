//! Explicit hostile cases, black-box against the built binaries: names that could escape the
//! data dir, oversized stdin, symlinks planted in the data dir, a read-only and a full data dir
//! (a tmpfs mounted in a private mount namespace of a child `unshare --mount`), and an IPAM
//! delegate that is missing or misbehaves. Each failure must be one clean error object, and
//! nothing may be left behind.

use cni_suite_tests::sandbox::{in_sandbox, privileged, sh, Netns};
use cni_suite_tests::{lease_names, our_plugin, Call, Reply};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "hostile";
const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "loopback"];

/// Asserts a failure is exactly one error object with `code`, and no panic on stderr.
fn refused(reply: &Reply, code: u64) -> Value {
    assert!(!reply.stderr.contains("panicked"), "panic: {reply:?}");
    reply.err(code)
}

fn config(data: &Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "hb0",
        "ipam": { "type": "host-local", "subnet": subnet, "dataDir": data },
        "prevResult": { "cniVersion": "1.0.0",
            "interfaces": [{ "name": "eth0", "sandbox": "/x" }],
            "ips": [{ "address": "10.77.0.5/24", "interface": 0 }] },
        "runtimeConfig": { "portMappings": [{ "hostPort": 8080, "containerPort": 80 }] },
    })
}

/// Every entry under `dir`, recursively, as relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn link_names() -> String {
    sh("ip -o link show | cut -d: -f2 | sort")
}

#[test]
fn names_with_traversal_nul_unicode_or_overlong_are_refused_by_every_plugin() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let ns = Netns::new();
        let base = config(data.path(), "10.77.0.0/24");
        let links = link_names();
        let mut cases = 0;
        for plugin in PLUGINS {
            let bin = our_plugin(plugin);
            let call =
                |conf: &Value| Call::new("ADD", "c1", conf.to_string()).netns(&ns.path_str());
            // The network name becomes a directory under the data dir: code 7. JSON can carry
            // a NUL ("\u0000") where the environment cannot.
            for name in [
                "../x",
                "../../etc",
                "a/b",
                "/abs",
                "\0",
                "a\0b",
                "é",
                "网络",
                "",
                " ",
                ".",
                "..",
            ] {
                let mut conf = base.clone();
                conf["name"] = json!(name);
                refused(&call(&conf).run(&bin), 7);
                cases += 1;
            }
            // Container ids name lease owners and chains: code 4; empty is "missing" (4).
            for id in ["../x", "a/b", "/", "é", "a b", "-x", ".", ""] {
                refused(
                    &Call::new("ADD", id, base.to_string())
                        .netns(&ns.path_str())
                        .run(&bin),
                    4,
                );
                cases += 1;
            }
            // Interface names: 1-15 bytes (not characters), no `/`, `:` or whitespace.
            for ifname in [
                "../x",
                "a/b",
                ".",
                "..",
                "0123456789abcdef",
                "éééééééé",
                "a:b",
                "a b",
                // U+16FE0 holds the byte 0xA0, which the kernel takes for whitespace.
                "x\u{16fe0}",
                "",
            ] {
                refused(&call(&base).ifname(ifname).run(&bin), 4);
                cases += 1;
            }
        }
        // A NUL inside other strings that reach the kernel or the file system.
        let hl = our_plugin("host-local");
        let mut conf = base.clone();
        conf["ipam"]["dataDir"] = json!(format!("{}/x\0y", data.path().display()));
        refused(&Call::new("ADD", "c1", conf.to_string()).run(&hl), 5);
        let br = our_plugin("bridge");
        for (key, value) in [("bridge", "br\0x"), ("bridge", "../x")] {
            let mut conf = base.clone();
            conf[key] = json!(value);
            refused(
                &Call::new("ADD", "c1", conf.to_string())
                    .netns(&ns.path_str())
                    .run(&br),
                7,
            );
        }
        let mut conf = base.clone();
        conf["ipam"]["type"] = json!("host\0local");
        refused(
            &Call::new("ADD", "c1", conf.to_string())
                .netns(&ns.path_str())
                .run(&br),
            7,
        );
        // The environment itself cannot carry a NUL: the runtime's exec refuses it.
        let spawned = Command::new(&hl).env("CNI_CONTAINERID", "a\0b").output();
        assert!(spawned.is_err(), "a NUL in an env var cannot be passed");

        assert!(
            tree(data.path()).is_empty(),
            "data dir: {:?}",
            tree(data.path())
        );
        assert_eq!(link_names(), links, "no link created");
        assert_eq!(
            ns.sh("ip -o link show | wc -l").trim(),
            "1",
            "container has only lo"
        );
        eprintln!("{cases} hostile names refused by the four plugins");
    });
}

/// Execs `plugin` with `stdin_len` bytes of a JSON string on stdin; returns its reply, the
/// time it took and its peak RSS in KiB.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_with_huge_stdin(plugin: &Path, stdin_len: usize) -> (Reply, Duration, i64) {
    let call = Call::new("ADD", "c1", "");
    let started = Instant::now();
    let mut child = call.command(plugin).spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let _ = input.write_all(b"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"x\":\"");
        let mut left = stdin_len;
        while left > 0 {
            let n = left.min(chunk.len());
            // The plugin stops reading at its cap: EPIPE ends the writer.
            if input.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
        let _ = input.write_all(b"\"}");
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let elapsed = started.elapsed();
    let _ = writer.join();
    let reply = Reply {
        status: libc::WEXITSTATUS(status),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    (reply, elapsed, usage.ru_maxrss)
}

#[test]
fn a_64_mib_stdin_is_refused_quickly_without_reading_it_all() {
    for plugin in PLUGINS {
        let (reply, elapsed, rss_kib) = run_with_huge_stdin(&our_plugin(plugin), 64 << 20);
        let err = refused(&reply, 6);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("larger than"),
            "{err}"
        );
        assert!(elapsed < Duration::from_secs(10), "{plugin}: {elapsed:?}");
        // The cap is 8 MiB; reading all 64 MiB would show in the peak RSS.
        assert!(rss_kib < 40 * 1024, "{plugin}: peak RSS {rss_kib} KiB");
        eprintln!("{plugin}: 64 MiB stdin refused in {elapsed:?}, peak RSS {rss_kib} KiB");
    }
}

#[test]
fn deeply_nested_json_is_a_decode_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let obj = format!(
        "{{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"x\":{}{}}}",
        "{\"a\":".repeat(100_000),
        "1}".repeat(100_000)
    );
    for plugin in PLUGINS {
        let bin = our_plugin(plugin);
        refused(&Call::new("ADD", "c1", deep.clone()).run(&bin), 6);
        refused(&Call::new("ADD", "c1", obj.clone()).run(&bin), 6);
    }
}

/// A host-local network in a temp data dir, with a victim file outside it.
struct Planted {
    data: tempfile::TempDir,
    outside: tempfile::TempDir,
    conf: String,
}

impl Planted {
    fn new(subnet: &str) -> Planted {
        let data = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("victim"), "precious").expect("victim");
        let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "ipam": { "type": "host-local", "subnet": subnet, "dataDir": data.path() } })
        .to_string();
        fs::create_dir(data.path().join(NET)).expect("network dir");
        Planted {
            data,
            outside,
            conf,
        }
    }

    fn dir(&self) -> PathBuf {
        self.data.path().join(NET)
    }

    fn victim(&self) -> PathBuf {
        self.outside.path().join("victim")
    }

    fn plant(&self, name: &str, target: &Path) {
        std::os::unix::fs::symlink(target, self.dir().join(name)).expect("symlink");
    }

    fn run(&self, command: &str, id: &str) -> Reply {
        Call::new(command, id, self.conf.clone()).run(&our_plugin("host-local"))
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(
            fs::read_to_string(self.victim()).ok().as_deref(),
            Some("precious")
        );
        assert_eq!(tree(self.outside.path()), vec!["victim"]);
    }
}

#[test]
fn a_symlink_planted_at_a_lease_path_is_never_followed() {
    let p = Planted::new("10.78.0.0/29");
    // .2 is the first address handed out: a symlink sits there.
    p.plant("10.78.0.2", &p.victim());
    let got = p.run("ADD", "a").ok();
    assert_ne!(got["ips"][0]["address"], "10.78.0.2/29", "{got}");
    p.assert_outside_untouched();
    // DEL and GC (which reads every lease) do not follow it either.
    p.run("DEL", "a").ok();
    p.run("DEL", p.victim().to_str().unwrap_or("x")).err(4);
    let gc = json!({ "cniVersion": "1.1.0", "name": NET, "type": "bridge",
        "ipam": { "type": "host-local", "subnet": "10.78.0.0/29", "dataDir": p.data.path() },
        "cni.dev/valid-attachments": [] });
    Call::new("GC", "", gc.to_string())
        .run(&our_plugin("host-local"))
        .ok();
    p.assert_outside_untouched();
}

#[test]
fn a_symlink_planted_as_the_lock_file_is_refused_not_followed() {
    let p = Planted::new("10.79.0.0/24");
    p.plant("lock", &p.victim());
    let err = refused(&p.run("ADD", "a"), 5);
    assert!(err["msg"].as_str().unwrap_or("").contains("lock"), "{err}");
    refused(&p.run("DEL", "a"), 5);
    p.assert_outside_untouched();
    assert!(lease_names(&p.dir()).is_empty());
    // Dangling: the target must not be created either.
    fs::remove_file(p.dir().join("lock")).expect("unplant");
    p.plant("lock", &p.outside.path().join("created"));
    refused(&p.run("ADD", "a"), 5);
    p.assert_outside_untouched();
}

#[test]
fn symlinked_network_and_index_dirs_do_not_lead_outside() {
    let p = Planted::new("10.80.0.0/24");
    fs::remove_dir(p.dir()).expect("rmdir");
    std::os::unix::fs::symlink(p.outside.path(), p.dir()).expect("symlink");
    refused(&p.run("ADD", "a"), 5);
    p.assert_outside_untouched();

    let q = Planted::new("10.80.0.0/24");
    q.plant(".index", q.outside.path());
    q.run("ADD", "a").ok();
    q.run("DEL", "a").ok();
    q.assert_outside_untouched();
    assert!(lease_names(&q.dir()).is_empty());
}

/// Runs `script` under `sh -e` in a child `unshare --mount` (private propagation, so its
/// mounts never reach the machine), with `$PLUGIN`, `$DATA`, `$CONF` and `$OUT` set.
fn in_mount_namespace(script: &str, data: &Path, conf: &str, out: &Path) -> String {
    let conf_file = out.join("conf.json");
    fs::write(&conf_file, conf).expect("conf");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", script])
        .env("PLUGIN", our_plugin("host-local"))
        .env("DATA", data)
        .env("CONF", &conf_file)
        .env("OUT", out)
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "script failed: {text}");
    text
}

/// Shell function: `hl CMD ID NAME` runs host-local, its stdout into `$OUT/NAME.json`, its
/// exit status into `$OUT/NAME.rc`, stderr into `$OUT/NAME.err`.
const HL: &str = r#"
hl() {
  rc=0
  env -i CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS=/x CNI_IFNAME=eth0 CNI_PATH=/x \
    "$PLUGIN" <"$CONF" >"$OUT/$3.json" 2>"$OUT/$3.err" || rc=$?
  echo $rc >"$OUT/$3.rc"
}
"#;

fn step(out: &Path, name: &str) -> Reply {
    let read =
        |ext: &str| fs::read_to_string(out.join(format!("{name}.{ext}"))).unwrap_or_default();
    Reply {
        status: read("rc").trim().parse().unwrap_or(-1),
        stdout: read("json"),
        stderr: read("err"),
    }
}

#[test]
fn a_read_only_data_dir_gives_a_clear_error_and_keeps_existing_leases() {
    if !privileged() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
        "ipam": { "type": "host-local", "subnet": "10.81.0.0/24", "dataDir": data.path() } });
    let script = format!(
        "{HL}
mount -t tmpfs -o size=1m hostile-ro \"$DATA\"
hl ADD a first
mount -o remount,ro \"$DATA\"
hl ADD b second
hl DEL a del
ls -A \"$DATA/{NET}\" >\"$OUT/listing\"
cat \"$DATA/{NET}/10.81.0.2\" >\"$OUT/lease\"
"
    );
    in_mount_namespace(&script, data.path(), &conf.to_string(), out.path());
    step(out.path(), "first").ok();
    let err = refused(&step(out.path(), "second"), 5);
    assert!(
        err["msg"].as_str().unwrap_or("").contains("Read-only"),
        "{err}"
    );
    refused(&step(out.path(), "del"), 5);
    let listing = fs::read_to_string(out.path().join("listing")).unwrap_or_default();
    assert!(listing.contains("10.81.0.2"), "{listing}");
    assert!(!listing.contains("10.81.0.3"), "{listing}");
    assert_eq!(
        fs::read_to_string(out.path().join("lease")).unwrap_or_default(),
        "a\r\neth0"
    );
    assert!(
        tree(data.path()).is_empty(),
        "the tmpfs never reached the host"
    );
}

#[test]
fn a_full_data_dir_leaves_no_half_written_lease() {
    if !privileged() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
        "ipam": { "type": "host-local", "subnet": "10.82.0.0/24", "dataDir": data.path() } });
    // Out of blocks, then out of inodes.
    let script = format!(
        "{HL}
mount -t tmpfs -o size=256k hostile-full \"$DATA\"
hl ADD a first
dd if=/dev/zero of=\"$DATA/fill\" bs=4k 2>/dev/null || true
hl ADD b blocks
ls -A \"$DATA/{NET}\" \"$DATA/{NET}/.index\" >\"$OUT/blocks-listing\"
cat \"$DATA/{NET}/10.82.0.2\" >\"$OUT/lease\"
truncate -s -4096 \"$DATA/fill\"
hl ADD b page
ls -A \"$DATA/{NET}\" >\"$OUT/page-listing\"
rm \"$DATA/fill\"
hl ADD b after
umount \"$DATA\"
mount -t tmpfs -o size=1m,nr_inodes=16 hostile-inodes \"$DATA\"
hl ADD a ifirst
i=0; while touch \"$DATA/f$i\" 2>/dev/null; do i=$((i+1)); done
hl ADD b inodes
ls -A \"$DATA/{NET}\" \"$DATA/{NET}/.index\" >\"$OUT/inodes-listing\"
"
    );
    in_mount_namespace(&script, data.path(), &conf.to_string(), out.path());
    step(out.path(), "first").ok();
    let blocks = step(out.path(), "blocks");
    eprintln!("ADD on a full tmpfs: {blocks:?}");
    let listing = fs::read_to_string(out.path().join("blocks-listing")).unwrap_or_default();
    assert_eq!(
        fs::read_to_string(out.path().join("lease")).unwrap_or_default(),
        "a\r\neth0",
        "the existing lease is intact"
    );
    assert!(!listing.contains(".tmp-"), "no temp file left: {listing}");
    // One page left: room for the lease but not for its index entry. The ADD fails and
    // takes the lease back.
    let page = step(out.path(), "page");
    eprintln!("ADD with one page left: {page:?}");
    let page_listing = fs::read_to_string(out.path().join("page-listing")).unwrap_or_default();
    if page.status != 0 {
        refused(&page, 5);
        assert!(
            !page_listing.contains("10.82.0.3"),
            "lease taken back: {page_listing}"
        );
    }
    if blocks.status == 0 {
        // Small writes may still fit in a page the file system had: then it is a whole lease.
        assert!(listing.contains("10.82.0.3"), "{listing}");
    } else {
        let err = refused(&blocks, 5);
        assert!(err["msg"].as_str().unwrap_or("").contains("space"), "{err}");
        assert!(
            !listing.contains("10.82.0.3"),
            "no half-written lease: {listing}"
        );
        // With space back, the same ADD works (no leftover makes it a duplicate).
        step(out.path(), "after").ok();
    }
    step(out.path(), "ifirst").ok();
    let inodes = step(out.path(), "inodes");
    eprintln!("ADD with no inodes left: {inodes:?}");
    let listing = fs::read_to_string(out.path().join("inodes-listing")).unwrap_or_default();
    assert!(!listing.contains(".tmp-"), "no temp file left: {listing}");
    if inodes.status != 0 {
        refused(&inodes, 5);
        assert!(
            !listing.contains("10.82.0.3"),
            "no half-written lease: {listing}"
        );
    }
    assert!(
        tree(data.path()).is_empty(),
        "the tmpfs never reached the host"
    );
}

/// A CNI_PATH directory with `host-local` replaced by a script, which logs each command it
/// gets to `log`.
fn fake_ipam(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let path = dir.path().join("host-local");
    let script = format!(
        "#!/bin/sh\necho \"$CNI_COMMAND\" >>'{}'\ncat >/dev/null\n{body}\n",
        log.display()
    );
    fs::write(&path, script).expect("script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, log)
}

#[test]
fn bridge_with_a_missing_or_misbehaving_ipam_fails_cleanly_and_rolls_back() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let ns = Netns::new();
        let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "bridge": "hb1", "isGateway": true, "ipMasq": true,
            "ipam": { "type": "host-local", "subnet": "10.83.0.0/24", "dataDir": data.path() } });
        let bridge = our_plugin("bridge");
        let host_before = link_names();
        let container_before = ns.sh("ip -o addr show; ip -o link show");
        let add = |cni_path: &str| {
            Call::new("ADD", "c1", conf.to_string())
                .netns(&ns.path_str())
                .cni_path(cni_path)
                .run(&bridge)
        };

        // Missing: named in the error, and nothing is created, not even the bridge.
        let empty = tempfile::tempdir().expect("tempdir");
        let err = refused(&add(&empty.path().display().to_string()), 7);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("host-local"),
            "{err}"
        );
        assert_eq!(link_names(), host_before, "nothing created");

        let garbage = [
            ("non-JSON output", "echo 'this is not json'", 6, true),
            ("no output at all", "exit 0", 6, true),
            (
                "a result in an unknown version",
                r#"echo '{"cniVersion":"9.9.9","ips":[{"address":"10.83.0.9/24"}]}'"#,
                1,
                true,
            ),
            (
                "a 1.0 result claiming to be 0.2.0",
                r#"echo '{"cniVersion":"0.2.0","ips":[{"address":"10.83.0.9/24"}]}'"#,
                999,
                true,
            ),
            (
                "an address that is not one",
                r#"echo '{"cniVersion":"1.0.0","ips":[{"address":"10.83.0.300/24"}]}'"#,
                6,
                true,
            ),
            // No error object: it may have died after taking a lease, so it is undone too.
            ("garbage and exit 1", "echo 'oops'; exit 1", 999, true),
            (
                "an error object",
                r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"busy"}'; exit 1"#,
                11,
                false,
            ),
        ];
        for (what, body, code, undone) in garbage {
            let (dir, log) = fake_ipam(body);
            let reply = add(&dir.path().display().to_string());
            refused(&reply, code);
            let calls = fs::read_to_string(&log).unwrap_or_default();
            // A delegate that gave no usable answer may hold a lease: the rollback releases it.
            // One that answered with an error object is not undone.
            let expected = if undone { "ADD\nDEL\n" } else { "ADD\n" };
            assert_eq!(calls, expected, "{what}: {reply:?}");
            let host_now: Vec<String> = link_names()
                .lines()
                .filter(|l| l.trim() != "hb1")
                .map(str::to_string)
                .collect();
            let host_then: Vec<String> = host_before.lines().map(str::to_string).collect();
            assert_eq!(host_now, host_then, "{what}: no veth left on the host");
            assert_eq!(
                ns.sh("ip -o addr show; ip -o link show"),
                container_before,
                "{what}: the container netns is untouched"
            );
        }
        assert!(tree(data.path()).is_empty());
        // No masquerade rule was left either.
        let rules = sh("nft list ruleset 2>/dev/null; iptables-save -t nat 2>/dev/null");
        assert!(!rules.contains("10.83.0"), "{rules}");
    });
}

#[test]
fn a_resolv_conf_that_is_a_fifo_or_a_device_is_refused_without_hanging() {
    let data = tempfile::tempdir().expect("tempdir");
    let fifo = data.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success()));
    let hl = our_plugin("host-local");
    for path in [fifo.as_path(), Path::new("/dev/zero"), Path::new("/")] {
        let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "ipam": { "type": "host-local", "subnet": "10.84.0.0/24", "dataDir": data.path(),
                      "resolvConf": path } });
        let started = Instant::now();
        refused(&Call::new("ADD", "c1", conf.to_string()).run(&hl), 7);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            path.display()
        );
    }
    assert!(lease_names(&data.path().join(NET)).is_empty());
}

#[test]
fn bridge_refuses_to_delegate_to_itself() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = Netns::new();
        let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "bridge": "hb2", "ipam": { "type": "bridge" } });
        let started = Instant::now();
        let reply = Call::new("ADD", "c1", conf.to_string())
            .netns(&ns.path_str())
            .run(&our_plugin("bridge"));
        let err = refused(&reply, 7);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("itself"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(ns.sh("ip -o link show | wc -l").trim(), "1");
    });
}

/// CNI_NETNS naming the plugin's own namespace (here the sandbox standing in for the host):
/// every plugin refuses ADD and DEL with code 8 before making or deleting anything, as the
/// reference's skel does since v1.1.1 (Debian's v1.1.1 build lacks the check);
/// `CNI_NETNS_OVERRIDE=1|true` lets it through.
#[test]
fn cni_netns_naming_the_plugins_own_netns_is_refused_before_any_state() {
    if !privileged() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    in_sandbox(|| {
        let links = link_names();
        let conf = config(data.path(), "10.77.0.0/24");
        // The plugin reads the path in its own process: its own netns, the sandbox's.
        for netns in ["/proc/self/ns/net", "/proc/thread-self/ns/net"] {
            for plugin in PLUGINS {
                for command in ["ADD", "DEL"] {
                    let mut conf = conf.clone();
                    conf["type"] = json!(plugin);
                    let reply = Call::new(command, "c1", conf.to_string())
                        .netns(netns)
                        .run(&our_plugin(plugin));
                    let e = refused(&reply, 8);
                    assert_eq!(
                        e["msg"], "plugin's netns and netns from CNI_NETNS should not be the same",
                        "{plugin} {command}"
                    );
                }
            }
        }
        assert_eq!(link_names(), links, "a link was made or deleted");
        assert!(tree(data.path()).is_empty(), "{:?}", tree(data.path()));
        // The override lets loopback bring up this namespace's lo.
        for over in ["1", "true", "TRUE"] {
            sh("ip link set lo down");
            let conf = json!({ "cniVersion": "1.0.0", "name": NET, "type": "loopback" });
            let call = Call::new("ADD", "c1", conf.to_string()).netns("/proc/self/ns/net");
            let mut cmd = call.command(&our_plugin("loopback"));
            cmd.env("CNI_NETNS_OVERRIDE", over);
            call.finish(cmd.spawn().expect("spawn loopback")).ok();
            assert!(sh("ip -o link show lo").contains(",UP"), "{over}");
        }
    });
}
