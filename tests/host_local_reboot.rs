//! Leases from an earlier boot are released by the first host-local command of a new boot,
//! even when the runtime never calls GC. A reboot is simulated by bind-mounting another boot id
//! over /proc/sys/kernel/random/boot_id in a private mount namespace of the plugin process, and
//! leases "of the earlier boot" are lease files whose mtime is set before the running boot
//! started (what a real reboot leaves behind).

use cni_suite_tests::sandbox::privileged;
use cni_suite_tests::{lease_names, our_plugin, reference_plugin, Call, Reply};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const NET: &str = "rebootnet";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

struct Node {
    data: tempfile::TempDir,
    boot_file: PathBuf,
    ipam: Value,
}

impl Node {
    fn new(extra_ipam: Value) -> Node {
        let data = tempfile::tempdir().expect("tempdir");
        let boot_file = data.path().join("boot_id");
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": "10.77.0.0/24" }]],
            "dataDir": data.path().join("leases"),
        });
        if let (Some(i), Some(e)) = (ipam.as_object_mut(), extra_ipam.as_object()) {
            i.extend(e.clone());
        }
        let node = Node {
            data,
            boot_file,
            ipam,
        };
        node.reboot("boot-one");
        node
    }

    fn config(&self) -> String {
        self.config_at("1.1.0")
    }

    fn config_at(&self, version: &str) -> String {
        json!({ "cniVersion": version, "name": NET, "type": "bridge", "ipam": self.ipam })
            .to_string()
    }

    fn dir(&self) -> PathBuf {
        self.data.path().join("leases").join(NET)
    }

    /// The id every later command sees as the running boot.
    fn reboot(&self, id: &str) {
        fs::write(&self.boot_file, format!("{id}\n")).expect("writing boot id");
    }

    /// Runs `plugin` with the simulated boot id in place of the kernel's.
    fn run(&self, plugin: &Path, call: &Call) -> Reply {
        self.run_with(plugin, call, &[])
    }

    /// [`Node::run`] with extra environment variables (they pass through `unshare` and `sh`).
    fn run_with(&self, plugin: &Path, call: &Call, env: &[(&str, &str)]) -> Reply {
        let mut cmd = call.command(Path::new("unshare"));
        cmd.envs(env.iter().copied())
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount --bind \"$1\" \"$2\" && exec \"$0\"",
            ])
            .arg(plugin)
            .arg(&self.boot_file)
            .arg(BOOT_ID);
        call.finish(cmd.spawn().expect("spawning unshare"))
    }

    fn ours(&self, verb: &str, id: &str) -> Reply {
        self.run(
            &our_plugin("host-local"),
            &Call::new(verb, id, self.config()),
        )
    }

    fn add(&self, id: &str) -> String {
        let result = self.ours("ADD", id).ok();
        result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .expect("an address")
            .to_string()
    }

    /// Makes a lease look written during an earlier boot.
    fn backdate(&self, ip: &str) {
        let file = fs::File::options()
            .write(true)
            .open(self.dir().join(ip))
            .expect("opening lease");
        let before_boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        file.set_modified(before_boot).expect("backdating lease");
    }

    fn leases(&self) -> Vec<String> {
        lease_names(&self.dir())
    }
}

#[test]
fn the_first_command_of_a_new_boot_releases_leases_older_than_the_boot() {
    if !privileged() {
        return;
    }
    let node = Node::new(json!({}));
    let old = node.add("old");
    let fresh = node.add("fresh");
    node.backdate(&old);
    // Same boot: an old-looking lease is not touched (the boot is recorded already).
    node.ours("CHECK", "old").ok();
    assert_eq!(node.leases().len(), 2);

    node.reboot("boot-two");
    let third = node.add("third");
    let mut want = vec![fresh.clone(), third.clone()];
    want.sort();
    assert_eq!(node.leases(), want, "only the pre-boot lease is gone");
    // The index agrees with the files: the swept attachment holds nothing, the others theirs.
    node.ours("CHECK", "old").err(999);
    node.ours("CHECK", "fresh").ok();
    node.ours("DEL", "fresh").ok();
    assert_eq!(node.leases(), vec![third]);
    // The released address is free again.
    assert!(!node.leases().contains(&old));
}

#[test]
fn every_verb_sweeps_and_a_lease_of_this_boot_is_kept() {
    if !privileged() {
        return;
    }
    for verb in ["DEL", "CHECK", "GC", "STATUS", "ADD"] {
        let node = Node::new(json!({}));
        let old = node.add("old");
        let kept = node.add("kept");
        node.backdate(&old);
        node.reboot("boot-two");
        let mut call = Call::new(verb, "someone", node.config());
        if verb == "GC" {
            // A GC that lists both attachments: only the reboot can free `old`.
            let mut conf: Value = serde_json::from_str(&node.config()).expect("json");
            conf["cni.dev/valid-attachments"] = json!([
                {"containerID": "old", "ifname": "eth0"},
                {"containerID": "kept", "ifname": "eth0"}
            ]);
            call = Call::new(verb, "", conf.to_string()).unset("CNI_CONTAINERID");
        }
        let reply = node.run(&our_plugin("host-local"), &call);
        if verb == "CHECK" {
            reply.err(999);
        } else {
            reply.ok();
        }
        let leases = node.leases();
        assert!(!leases.contains(&old), "{verb} left {old}: {leases:?}");
        assert!(leases.contains(&kept), "{verb} released {kept}: {leases:?}");
    }
}

#[test]
fn the_reference_s_leases_of_an_earlier_boot_are_swept_too() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("host-local") else {
        return;
    };
    let node = Node::new(json!({}));
    // Debian's reference (v1.1.1) predates spec 1.1.0.
    let config = node.config_at("1.0.0");
    let theirs = node.run(&reference, &Call::new("ADD", "ref-old", config.clone()));
    let theirs = theirs.ok()["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .expect("reference address")
        .to_string();
    let theirs_now = node.run(&reference, &Call::new("ADD", "ref-new", config));
    theirs_now.ok();
    node.backdate(&theirs);
    node.reboot("boot-two");
    node.ours("DEL", "nobody").ok();
    let leases = node.leases();
    assert!(!leases.contains(&theirs), "{leases:?}");
    assert_eq!(leases.len(), 1, "the reference's lease of this boot stays");
}

#[test]
fn opting_out_keeps_every_lease() {
    if !privileged() {
        return;
    }
    let node = Node::new(json!({ "releaseOnReboot": false }));
    let old = node.add("old");
    node.backdate(&old);
    node.reboot("boot-two");
    node.ours("DEL", "nobody").ok();
    node.ours("CHECK", "old").ok();
    assert_eq!(node.leases(), vec![old]);
}

#[test]
fn a_sweep_killed_halfway_is_finished_by_the_next_command() {
    if !privileged() {
        return;
    }
    let node = Node::new(json!({}));
    let olds: Vec<String> = (0..3).map(|i| node.add(&format!("old{i}"))).collect();
    let kept = node.add("kept");
    for ip in &olds {
        node.backdate(ip);
    }
    node.reboot("boot-two");
    let del = Call::new("DEL", "nobody", node.config());
    let crash = [("CNI_RS_CRASH_AFTER", "host-local:stale-lease-released")];
    let killed = node.run_with(&our_plugin("host-local"), &del, &crash);
    assert_ne!(killed.status, 0, "the crash point did not fire: {killed:?}");
    assert_eq!(node.leases().len(), 3, "killed after the first release");
    node.run(&our_plugin("host-local"), &del).ok();
    assert_eq!(node.leases(), vec![kept.clone()]);
    // The index agrees with the files after the interrupted sweep.
    let next = node.add("next");
    assert_ne!(next, kept);
    assert_eq!(node.leases().len(), 2);
    node.ours("CHECK", "kept").ok();
    for i in 0..3 {
        node.ours("CHECK", &format!("old{i}")).err(999);
    }
}
