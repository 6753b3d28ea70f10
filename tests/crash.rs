//! Crash consistency: an ADD killed (SIGKILL) after any of its steps leaves nothing that DEL or
//! GC of the same attachment cannot remove, and a retried ADD works; leases survive a simulated
//! reboot and are released by DEL with a vanished netns or by GC with the runtime's list.
//!
//! The crash switch (`CNI_RS_CRASH_AFTER=<binary>:<step>`, see `cni_protocol::crash`) exists in
//! debug builds only, which is what `cargo test` runs against.

use cni_protocol::crash;
use cni_suite_tests::sandbox::{in_sandbox, privileged, sh, sh_ok, Netns};
use cni_suite_tests::{
    lease_names, our_bin_dir, our_plugin, reference_plugin, Call, REFERENCE_DIR,
};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NET: &str = "crashnet";
/// The first two addresses host-local hands out in [`SUBNET`]: the crashed ADD's and the retry's.
const SUBNET: &str = "10.77.0.0/24";
const POD_IPS: [&str; 2] = ["10.77.0.2", "10.77.0.3"];
/// The same for the IPv6 range set of a dual-stack network.
const SUBNET_V6: &str = "fd77::/64";
const POD_IPS_V6: [&str; 2] = ["fd77::2", "fd77::3"];

struct Network {
    data: tempfile::TempDir,
    conf: Value,
    bin: PathBuf,
    cni_path: String,
    dual_stack: bool,
}

impl Network {
    /// Every optional step on, so an ADD passes each crash point.
    fn new(backend: &str) -> Network {
        let data = tempfile::tempdir().expect("tempdir");
        let conf = json!({
            "cniVersion": "1.1.0",
            "name": NET,
            "type": "bridge",
            "bridge": "cni0",
            "isDefaultGateway": true,
            "ipMasq": true,
            "ipMasqBackend": backend,
            "macspoofchk": true,
            "ipam": { "type": "host-local", "subnet": SUBNET, "dataDir": data.path() },
        });
        Network {
            data,
            conf,
            bin: our_plugin("bridge"),
            cni_path: our_bin_dir().display().to_string(),
            dual_stack: false,
        }
    }

    /// [`Network::new`] with an IPv4 and an IPv6 range set.
    fn dual_stack(backend: &str) -> Network {
        let mut net = Network::new(backend);
        net.conf["ipam"] = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": SUBNET }], [{ "subnet": SUBNET_V6 }]],
            "dataDir": net.data.path(),
        });
        net.dual_stack = true;
        net
    }

    /// The addresses the first ADD gets, one per range set.
    fn first_ips(&self) -> Vec<&'static str> {
        let mut ips = vec![POD_IPS[0]];
        if self.dual_stack {
            ips.push(POD_IPS_V6[0]);
        }
        ips
    }

    /// With their prefix lengths, as `ip addr` shows them.
    fn first_addresses(&self) -> Vec<String> {
        self.first_ips()
            .iter()
            .map(|ip| format!("{ip}/{}", if ip.contains(':') { 64 } else { 24 }))
            .collect()
    }

    /// The same network run by the reference binaries (its host-local included); v1.1.1 has
    /// no `ipMasqBackend` (iptables only) and no `macspoofchk`.
    fn reference(bin: PathBuf) -> Network {
        let mut net = Network::new("iptables");
        if let Some(c) = net.conf.as_object_mut() {
            c.remove("ipMasqBackend");
            c.remove("macspoofchk");
        }
        net.conf["cniVersion"] = json!("1.0.0");
        net.bin = bin;
        net.cni_path = REFERENCE_DIR.to_string();
        net
    }

    fn call(&self, command: &str, id: &str, netns: &str) -> Call {
        Call::new(command, id, self.conf.to_string())
            .netns(netns)
            .cni_path(&self.cni_path)
    }

    fn gc(&self, valid: &[&str]) -> Outcome {
        let mut conf = self.conf.clone();
        conf["cni.dev/valid-attachments"] = valid
            .iter()
            .map(|id| json!({ "containerID": id, "ifname": "eth0" }))
            .collect();
        let call = Call::new("GC", "", conf.to_string()).cni_path(&self.cni_path);
        run(&call, &self.bin, None)
    }

    fn dir(&self) -> PathBuf {
        self.data.path().join(NET)
    }

    fn leases(&self) -> Vec<String> {
        lease_names(&self.dir())
    }

    /// The container id in each lease file, by address.
    fn lease_owners(&self) -> Vec<(String, String)> {
        self.leases()
            .into_iter()
            .map(|ip| {
                let text = std::fs::read_to_string(self.dir().join(&ip)).unwrap_or_default();
                let owner = text.split("\r\n").next().unwrap_or_default().to_string();
                (ip, owner)
            })
            .collect()
    }
}

/// How a plugin run ended: the exit status keeps death by signal apart from an exit code.
#[derive(Debug)]
struct Outcome {
    status: std::process::ExitStatus,
    stdout: String,
    /// Kept for the failure messages (`{:?}`).
    #[allow(dead_code)]
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> Value {
        assert!(self.status.success(), "plugin failed: {self:?}");
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }
}

/// Runs `bin` for `call`, with the crash switch set to `crash_after` if given.
fn run(call: &Call, bin: &Path, crash_after: Option<&str>) -> Outcome {
    let mut cmd = call.command(bin);
    if let Some(step) = crash_after {
        cmd.env(crash::ENV, step);
    }
    let mut child = cmd.spawn().expect("spawning the plugin");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(call.stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("waiting for the plugin");
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Processes still running for container `id` (their environment names it): a killed bridge
/// must not leave its IPAM delegate running, or that delegate could lease after the DEL.
fn processes_of(id: &str) -> Vec<u32> {
    let needle = format!("CNI_CONTAINERID={id}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

fn assert_no_orphans(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !processes_of(id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        processes_of(id),
        Vec::<u32>::new(),
        "{id}: orphaned processes"
    );
}

/// Every packet-filter rule in the sandbox, whichever tool made it.
fn firewall_state() -> String {
    let mut text = sh("nft list ruleset");
    for tool in ["iptables-save", "ip6tables-save"] {
        if sh_ok(&format!("command -v {tool}")) {
            text.push_str(&sh(tool));
        }
    }
    text
}

fn veths() -> Vec<String> {
    let links: Value =
        serde_json::from_str(&sh("ip -j link show type veth")).unwrap_or(Value::Null);
    links
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn global_addresses(ns: Option<&Netns>, dev: &str) -> Vec<String> {
    let cmd = format!("ip -j addr show dev {dev} scope global");
    let text = match ns {
        Some(ns) => ns.sh(&cmd),
        None => sh(&cmd),
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    // `ip` prints an empty entry for each address the scope filter hides.
    cni_suite_tests::link_addresses(&v[0])
        .into_iter()
        .filter(|a| !a.starts_with("/"))
        .collect()
}

/// Files in the network's data dir (index included) whose name or content names `id`.
fn data_mentioning(dir: &Path, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let named = entry.file_name().to_string_lossy().contains(id);
            let holds = std::fs::read_to_string(&path).is_ok_and(|t| t.contains(id));
            if named || holds {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Nothing of attachment `id` is left: no veth on either side, no lease or index entry, no
/// rule or chain naming its addresses or its container id.
fn assert_clean(net: &Network, id: &str, ns: &Netns, what: &str) {
    assert_eq!(veths(), Vec::<String>::new(), "{what}: host veths left");
    assert!(
        !ns.sh_ok("ip link show eth0"),
        "{what}: container eth0 left"
    );
    assert_eq!(net.leases(), Vec::<String>::new(), "{what}: leases left");
    assert_eq!(
        data_mentioning(&net.dir(), id),
        Vec::<String>::new(),
        "{what}: data dir still names {id}"
    );
    let rules = firewall_state();
    for needle in POD_IPS.iter().chain(&POD_IPS_V6).copied().chain([id]) {
        assert!(
            !rules.contains(needle),
            "{what}: firewall still mentions {needle}:\n{rules}"
        );
    }
}

/// Asserts the state that crashing after `BRIDGE_ADD[k]` proves was reached: every earlier
/// step's effect is there. IPAM runs alongside the link steps, so a crash after one of those
/// two says nothing about the other.
fn assert_reached(k: usize, net: &Network, id: &str, ns: &Netns, out: &Outcome, what: &str) {
    let steps = crash::BRIDGE_ADD;
    for (j, step) in steps.iter().enumerate().take(k + 1) {
        if k == 1 && j == 0 {
            continue;
        }
        match *step {
            "ipam-returned" => assert_eq!(net.leases(), net.first_ips(), "{what}"),
            "veth-created" => {
                assert_eq!(veths().len(), 1, "{what}: host veth");
                assert!(ns.sh_ok("ip link show eth0"), "{what}: container eth0");
            }
            "addressed" => assert_eq!(
                global_addresses(Some(ns), "eth0"),
                net.first_addresses(),
                "{what}"
            ),
            "routed" => {
                assert!(
                    ns.sh("ip route show default").contains("via 10.77.0.1"),
                    "{what}"
                );
                if net.dual_stack {
                    let routes = ns.sh("ip -6 route show default");
                    assert!(routes.contains("via fd77::1"), "{what}: {routes}");
                }
            }
            "gateway-set" => {
                let mut gateways = vec!["10.77.0.1/24"];
                if net.dual_stack {
                    gateways.push("fd77::1/64");
                }
                assert_eq!(global_addresses(None, "cni0"), gateways, "{what}")
            }
            "masquerade-set" => {
                let rules = firewall_state();
                for ip in net.first_ips() {
                    assert!(rules.contains(ip), "{what}: {ip} in {rules}");
                }
            }
            "macspoof-set" => assert!(
                firewall_state().contains(&format!("macspoofchk-{id}-eth0")),
                "{what}"
            ),
            crash::RESULT_PRINTED => assert_eq!(
                serde_json::from_str::<Value>(&out.stdout).unwrap_or(Value::Null)["ips"][0]
                    ["address"],
                format!("{}/24", POD_IPS[0]),
                "{what}: {out:?}"
            ),
            other => panic!("crash point {other:?} has no assertion here: add one"),
        }
    }
}

#[test]
fn a_bridge_add_killed_after_any_step_is_undone_by_del_and_can_be_retried() {
    if !privileged() {
        return;
    }
    let variants = [
        ("nftables", false),
        ("iptables", false),
        ("nftables", true),
        ("iptables", true),
    ];
    for (backend, dual_stack) in variants {
        for (k, step) in crash::BRIDGE_ADD.iter().enumerate() {
            in_sandbox(|| {
                let net = if dual_stack {
                    Network::dual_stack(backend)
                } else {
                    Network::new(backend)
                };
                let id = format!("crash-{step}");
                let family = if dual_stack { "dual-stack" } else { "IPv4" };
                let what = format!("{backend}, {family}, crash after {step}");
                let ns = Netns::new();
                let netns = ns.path_str();

                let out = run(
                    &net.call("ADD", &id, &netns),
                    &net.bin,
                    Some(&format!("bridge:{step}")),
                );
                assert!(out.killed(), "{what}: ADD must die by SIGKILL: {out:?}");
                assert_reached(k, &net, &id, &ns, &out, &what);
                assert_no_orphans(&id);

                run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
                assert_clean(&net, &id, &ns, &format!("{what}, after DEL"));

                // The runtime retries the same attachment: it works and is torn down again.
                let retry = run(&net.call("ADD", &id, &netns), &net.bin, None).ok();
                // Round robin moves on past the crashed ADD's lease, if it got one (after
                // `veth-created` the IPAM delegate may have been killed before leasing).
                let got = retry["ips"][0]["address"].as_str().unwrap_or_default();
                let expected: &[&str] = if *step == "veth-created" {
                    &POD_IPS
                } else {
                    &POD_IPS[1..]
                };
                assert!(
                    expected.iter().any(|ip| got == format!("{ip}/24")),
                    "{what}: retry got {got}"
                );
                assert!(
                    ns.sh_ok("ping -c1 -W2 10.77.0.1"),
                    "{what}: retried pod works"
                );
                run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
                assert_clean(&net, &id, &ns, &format!("{what}, after the retry's DEL"));
            });
        }
    }
}

#[test]
fn a_killed_ipam_delegate_fails_the_add_cleanly() {
    if !privileged() {
        return;
    }
    for step in crash::HOST_LOCAL_ADD {
        in_sandbox(|| {
            let net = Network::new("nftables");
            let id = format!("ipam-{step}");
            let what = format!("host-local killed after {step}");
            let ns = Netns::new();
            let netns = ns.path_str();

            // The bridge survives its delegate's death: ADD fails and rolls back at once.
            let out = run(
                &net.call("ADD", &id, &netns),
                &net.bin,
                Some(&format!("host-local:{step}")),
            );
            assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
            assert_no_orphans(&id);
            assert_clean(&net, &id, &ns, &format!("{what}, after the failed ADD"));

            run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
            let retry = run(&net.call("ADD", &id, &netns), &net.bin, None).ok();
            assert!(retry["ips"][0]["address"].is_string(), "{what}: {retry}");
            run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
            assert_clean(&net, &id, &ns, &format!("{what}, after the retry's DEL"));
        });
    }
}

#[test]
fn host_local_killed_after_any_step_keeps_its_store_consistent() {
    let host_local = our_plugin("host-local");
    for step in crash::HOST_LOCAL_ADD {
        let net = Network::new("nftables");
        let ipam = net.conf["ipam"].clone();
        let conf = json!({ "cniVersion": "1.1.0", "name": NET, "ipam": ipam }).to_string();
        let call = |command: &str, id: &str| Call::new(command, id, conf.clone());
        let what = format!("host-local killed after {step}");

        let out = run(
            &call("ADD", "pod-alpha"),
            &host_local,
            Some(&format!("host-local:{step}")),
        );
        assert!(out.killed(), "{what}: {out:?}");
        assert_eq!(
            net.lease_owners(),
            vec![(POD_IPS[0].into(), "pod-alpha".into())],
            "{what}"
        );

        // Another container gets another address; the crashed one's lease is its own.
        let beta = run(&call("ADD", "pod-beta"), &host_local, None).ok();
        assert_eq!(
            beta["ips"][0]["address"],
            format!("{}/24", POD_IPS[1]),
            "{what}"
        );
        // A second ADD of the crashed attachment is refused as a duplicate, as for any ADD
        // that was not deleted; DEL releases it, and then ADD works again.
        assert!(!run(&call("ADD", "pod-alpha"), &host_local, None)
            .status
            .success());
        run(&call("DEL", "pod-alpha"), &host_local, None).ok();
        assert_eq!(
            net.lease_owners(),
            vec![(POD_IPS[1].into(), "pod-beta".into())],
            "{what}"
        );
        run(&call("ADD", "pod-alpha"), &host_local, None).ok();
        run(&call("DEL", "pod-alpha"), &host_local, None).ok();
        run(&call("DEL", "pod-beta"), &host_local, None).ok();
        assert_eq!(net.leases(), Vec::<String>::new(), "{what}");
        for id in ["pod-alpha", "pod-beta"] {
            assert_eq!(
                data_mentioning(&net.dir(), id),
                Vec::<String>::new(),
                "{what}"
            );
        }
    }
}

#[test]
fn gc_with_no_valid_attachment_cleans_a_crashed_add_whose_del_never_came() {
    if !privileged() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        for step in crash::BRIDGE_ADD {
            in_sandbox(|| {
                // Dual stack, so both families' masquerade state must go.
                let net = Network::dual_stack(backend);
                let id = format!("never-deleted-{step}");
                let what = format!("{backend}, crash after {step}");
                let ns = Netns::new();
                let out = run(
                    &net.call("ADD", &id, &ns.path_str()),
                    &net.bin,
                    Some(&format!("bridge:{step}")),
                );
                assert!(out.killed(), "{what}: {out:?}");

                net.gc(&[]).ok();
                assert_eq!(net.leases(), Vec::<String>::new(), "{what}: leases");
                assert_eq!(
                    data_mentioning(&net.dir(), &id),
                    Vec::<String>::new(),
                    "{what}"
                );
                let rules = firewall_state();
                for needle in POD_IPS
                    .iter()
                    .chain(&POD_IPS_V6)
                    .copied()
                    .chain([id.as_str()])
                {
                    assert!(!rules.contains(needle), "{what}: {needle} in {rules}");
                }
                // The pair lives as long as the container's netns: GC does not touch
                // interfaces (the runtime tears the netns down), and it goes with the netns.
                assert!(veths().len() <= 1, "{what}");
                drop(ns);
                let deadline = Instant::now() + Duration::from_secs(5);
                while !veths().is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert_eq!(veths(), Vec::<String>::new(), "{what}");
            });
        }
    }
}

/// Pods made in a sandbox that then vanishes entirely (its bridge, veths, rules and container
/// netns), as a reboot would; the data dir outlives it. Returns each pod's (id, netns path).
fn boot_and_lose_pods(net: &Network, ids: &[&str]) -> Vec<(String, String)> {
    let mut pods = Vec::new();
    in_sandbox(|| {
        let namespaces: Vec<Netns> = ids.iter().map(|_| Netns::new()).collect();
        for (id, ns) in ids.iter().zip(&namespaces) {
            run(&net.call("ADD", id, &ns.path_str()), &net.bin, None).ok();
            pods.push((id.to_string(), ns.path_str()));
        }
    });
    for (_, path) in &pods {
        assert!(!Path::new(path).exists(), "{path} outlived the reboot");
    }
    pods
}

#[test]
fn leases_survive_a_reboot_and_del_or_gc_release_them() {
    if !privileged() {
        return;
    }
    let net = Network::new("nftables");
    let pods = boot_and_lose_pods(&net, &["kept", "deleted", "stale-1", "stale-2"]);
    assert_eq!(net.leases().len(), 4, "leases survive the reboot");

    in_sandbox(|| {
        // DEL of a container whose netns path is gone succeeds and releases its lease.
        let (id, gone) = &pods[1];
        run(&net.call("DEL", id, gone), &net.bin, None).ok();
        assert!(net.lease_owners().iter().all(|(_, o)| o != id));
        assert_eq!(net.leases().len(), 3);

        // GC with the runtime's list keeps the listed attachment and frees the others.
        net.gc(&["kept"]).ok();
        let owners = net.lease_owners();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].1, "kept");
        for (id, _) in &pods[1..] {
            assert_eq!(data_mentioning(&net.dir(), id), Vec::<String>::new());
        }

        // The node carries on: a new pod works and gets an address that is not kept's.
        let ns = Netns::new();
        let fresh = run(&net.call("ADD", "fresh", &ns.path_str()), &net.bin, None).ok();
        assert_ne!(
            fresh["ips"][0]["address"]
                .as_str()
                .map(|a| a.split('/').next()),
            Some(Some(owners[0].0.as_str()))
        );
        assert!(ns.sh_ok("ping -c1 -W2 10.77.0.1"));
        run(&net.call("DEL", "fresh", &ns.path_str()), &net.bin, None).ok();
        run(&net.call("DEL", "kept", &pods[0].1), &net.bin, None).ok();
        assert_eq!(net.leases(), Vec::<String>::new());
    });

    // The same reboot with the reference (Debian's v1.1.1): DEL with the vanished netns
    // releases the lease too, but it has no GC, so the leases of containers whose DEL never
    // comes stay until someone wipes the directory.
    let Some(reference) = reference_plugin("bridge") else {
        return;
    };
    let net = Network::reference(reference);
    let pods = boot_and_lose_pods(&net, &["kept", "deleted", "stale-1", "stale-2"]);
    assert_eq!(net.leases().len(), 4);
    in_sandbox(|| {
        let (id, gone) = &pods[1];
        run(&net.call("DEL", id, gone), &net.bin, None).ok();
        assert!(net.lease_owners().iter().all(|(_, o)| o != id));
        let mut conf = net.conf.clone();
        conf["cniVersion"] = json!("1.1.0");
        conf["cni.dev/valid-attachments"] = json!([{ "containerID": "kept", "ifname": "eth0" }]);
        let gc = run(
            &Call::new("GC", "", conf.to_string()).cni_path(REFERENCE_DIR),
            &net.bin,
            None,
        );
        assert_eq!(gc.status.code(), Some(1), "{gc:?}");
        assert!(gc.stdout.contains("missing containerID"), "{gc:?}");
        let owners: Vec<String> = net.lease_owners().into_iter().map(|(_, o)| o).collect();
        assert_eq!(
            owners,
            ["kept", "stale-1", "stale-2"],
            "the reference leaks"
        );
    });
}

/// Upstream issue #810: DEL after the container's netns is gone. Both binaries release the
/// lease; the reference returns before its masquerade teardown and leaves the rules, ours
/// removes them (and the reference's leftovers, when a node switched binaries).
#[test]
fn del_after_the_netns_vanished_removes_masquerade_unlike_the_reference() {
    if !privileged() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        in_sandbox(|| {
            let net = Network::new(backend);
            let mut ns = Netns::new();
            let path = ns.path_str();
            run(&net.call("ADD", "gone", &path), &net.bin, None).ok();
            assert!(firewall_state().contains(POD_IPS[0]));
            ns.delete();
            run(&net.call("DEL", "gone", &path), &net.bin, None).ok();
            assert_clean(&net, "gone", &Netns::new(), backend);
        });
    }
    let Some(reference) = reference_plugin("bridge") else {
        return;
    };
    in_sandbox(|| {
        let net = Network::reference(reference);
        let mut ns = Netns::new();
        let path = ns.path_str();
        run(&net.call("ADD", "gone", &path), &net.bin, None).ok();
        ns.delete();
        run(&net.call("DEL", "gone", &path), &net.bin, None).ok();
        assert_eq!(
            net.leases(),
            Vec::<String>::new(),
            "the reference releases the lease"
        );
        let rules = sh("iptables-save -t nat");
        assert!(
            rules.contains(&format!("-s {}/32", POD_IPS[0])) && rules.contains("gone"),
            "the reference leaves its masquerade rules: {rules}"
        );
        // Our DEL of the same attachment (the node switched binaries) removes them.
        let ours = Network::new("iptables");
        let mut conf = ours.conf.clone();
        conf["ipam"]["dataDir"] = json!(net.data.path());
        run(
            &Call::new("DEL", "gone", conf.to_string()).netns(&path),
            &ours.bin,
            None,
        )
        .ok();
        let rules = firewall_state();
        assert!(
            !rules.contains(POD_IPS[0]) && !rules.contains("gone"),
            "{rules}"
        );
    });
}

/// The runtime kills ADD while its IPAM delegate waits for the network's lock (another command
/// holds it). The delegate must die with it: left running, it would take the lease once the
/// lock is free, possibly after the runtime's DEL, and nothing but GC would ever free it.
#[test]
fn a_delegate_waiting_for_the_lock_dies_with_the_killed_plugin() {
    use fs2::FileExt;
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("nftables");
        std::fs::create_dir_all(net.dir()).expect("network dir");
        let lock = std::fs::File::create(net.dir().join("lock")).expect("lock file");
        lock.lock_exclusive().expect("holding the network's lock");
        let ns = Netns::new();
        let id = "killed-while-waiting";
        // Not through `run`: an orphan would keep the output pipes open, and reading them
        // would wait for it.
        let call = net.call("ADD", id, &ns.path_str());
        let mut cmd = call.command(&net.bin);
        cmd.env(crash::ENV, "bridge:veth-created")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawning bridge");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(call.stdin.as_bytes());
        }
        let status = child.wait().expect("waiting for bridge");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert_no_orphans(id);
        fs2::FileExt::unlock(&lock).expect("unlock");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(net.leases(), Vec::<String>::new(), "no lease appears later");
        run(&net.call("DEL", id, &ns.path_str()), &net.bin, None).ok();
        assert_clean(&net, id, &ns, "after DEL");
    });
}

/// GC frees only what the list does not name, and only on its own network: another network's
/// pod (its own bridge) keeps its lease, masquerade and MAC spoof check.
#[test]
fn gc_keeps_listed_attachments_and_other_networks_state() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("nftables");
        let mut other = Network::new("nftables");
        other.conf["name"] = json!("othernet");
        other.conf["bridge"] = json!("cni1");
        other.conf["ipam"]["subnet"] = json!("10.78.0.0/24");
        let (a1, a2, b1) = (Netns::new(), Netns::new(), Netns::new());
        run(&net.call("ADD", "listed", &a1.path_str()), &net.bin, None).ok();
        run(&net.call("ADD", "unlisted", &a2.path_str()), &net.bin, None).ok();
        run(
            &other.call("ADD", "elsewhere", &b1.path_str()),
            &other.bin,
            None,
        )
        .ok();

        net.gc(&["listed"]).ok();
        assert_eq!(
            net.lease_owners(),
            vec![(POD_IPS[0].into(), "listed".into())]
        );
        let rules = firewall_state();
        for kept in [
            "macspoofchk-listed-eth0",
            "macspoofchk-elsewhere-eth0",
            POD_IPS[0],
            "10.78.0.2",
        ] {
            assert!(rules.contains(kept), "{kept} kept: {rules}");
        }
        for gone in ["macspoofchk-unlisted-eth0", POD_IPS[1]] {
            assert!(!rules.contains(gone), "{gone} removed: {rules}");
        }
        assert_eq!(
            lease_names(&other.data.path().join("othernet")),
            ["10.78.0.2"]
        );
        // The listed pod still works and its DEL still cleans.
        assert!(a1.sh_ok("ping -c1 -W2 10.77.0.1"));
        run(&net.call("DEL", "listed", &a1.path_str()), &net.bin, None).ok();
        assert!(!firewall_state().contains("macspoofchk-listed-eth0"));
    });
}

/// The runtime kills DEL halfway (containerd then retries DEL until it succeeds): whatever the
/// killed DEL had removed, the next DEL exits 0 and removes the rest, and the attachment can
/// be added again.
#[test]
fn a_del_killed_after_any_step_is_finished_by_the_next_del() {
    if !privileged() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        for (k, step) in crash::BRIDGE_DEL.iter().enumerate() {
            in_sandbox(|| {
                let net = Network::new(backend);
                let id = format!("del-{step}");
                let what = format!("{backend}, DEL killed after {step}");
                let ns = Netns::new();
                let netns = ns.path_str();
                run(&net.call("ADD", &id, &netns), &net.bin, None).ok();

                let out = run(
                    &net.call("DEL", &id, &netns),
                    &net.bin,
                    Some(&format!("bridge:{step}")),
                );
                assert!(out.killed(), "{what}: DEL must die by SIGKILL: {out:?}");
                assert_no_orphans(&id);
                // What the killed DEL did, and what it had not done yet.
                let done = |s: &str| crash::BRIDGE_DEL[..=k].contains(&s);
                let rules = firewall_state();
                assert_eq!(
                    !rules.contains(POD_IPS[0]),
                    done("masquerade-removed"),
                    "{what}"
                );
                assert_eq!(veths().is_empty(), done("veth-deleted"), "{what}");
                assert_eq!(net.leases().is_empty(), done("ipam-released"), "{what}");
                let spoof = format!("macspoofchk-{id}-eth0");
                assert_eq!(!rules.contains(&spoof), done("macspoof-removed"), "{what}");

                run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
                assert_clean(&net, &id, &ns, &format!("{what}, after the next DEL"));
                run(&net.call("ADD", &id, &netns), &net.bin, None).ok();
                run(&net.call("DEL", &id, &netns), &net.bin, None).ok();
                assert_clean(&net, &id, &ns, &format!("{what}, after re-ADD and DEL"));
            });
        }
    }
}
