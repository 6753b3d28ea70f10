//! Differential tests: our `bridge` and the reference `/usr/lib/cni/bridge` given the same
//! config in twin sandboxes; results compared field by field (MACs and the random host veth
//! name masked), kernel state compared where it must match, and pods made by one binary torn
//! down by the other.

use cni_suite_tests::sandbox::{in_sandbox, privileged, sh, Netns};
use cni_suite_tests::{lease_names, our_bin_dir, reference_plugin, Call, Reply, REFERENCE_DIR};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Replaces values that are random per run (MACs, the reference's veth name) with markers.
fn masked(mut v: Value) -> Value {
    if let Some(ifaces) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for (i, iface) in ifaces.iter_mut().enumerate() {
            if iface.get("mac").is_some() {
                iface["mac"] = json!("<mac>");
            }
            if i == 1 {
                iface["name"] = json!("<host veth>");
            }
            if iface.get("sandbox").is_some() {
                iface["sandbox"] = json!("<netns>");
            }
        }
    }
    v
}

struct Side {
    bin: PathBuf,
    cni_path: String,
    data: tempfile::TempDir,
}

fn conf(version: &str, data: &Path, extra: &Value) -> String {
    let mut c = json!({
        "cniVersion": version,
        "name": "refnet",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": { "type": "host-local", "dataDir": data, "subnet": "10.44.0.0/24" },
    });
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if k == "ipam" {
                let mut ipam = v.clone();
                ipam["dataDir"] = json!(data);
                o.insert(k.clone(), ipam);
            } else {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    c.to_string()
}

fn sides() -> Option<(Side, Side)> {
    let reference = reference_plugin("bridge")?;
    let ours = Side {
        bin: our_bin_dir().join("bridge"),
        cni_path: our_bin_dir().display().to_string(),
        data: tempfile::tempdir().expect("tempdir"),
    };
    let theirs = Side {
        bin: reference,
        cni_path: REFERENCE_DIR.to_string(),
        data: tempfile::tempdir().expect("tempdir"),
    };
    Some((ours, theirs))
}

fn run(side: &Side, command: &str, id: &str, ns: &Netns, version: &str, extra: &Value) -> Reply {
    Call::new(command, id, conf(version, side.data.path(), extra))
        .netns(&ns.path_str())
        .cni_path(&side.cni_path)
        .run(&side.bin)
}

#[test]
fn results_match_the_reference_for_every_version() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let configs = [
        ("plain", json!({})),
        ("gateway", json!({ "isGateway": true })),
        (
            "default gateway + masquerade",
            json!({ "isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": "iptables" }),
        ),
        (
            "dual-stack",
            json!({
                "isDefaultGateway": true,
                "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.45.0.0/24" }], [{ "subnet": "fd00:45::/64" }]] }
            }),
        ),
        ("mtu + hairpin", json!({ "mtu": 1400, "hairpinMode": true })),
        (
            "routes",
            json!({ "ipam": { "type": "host-local", "subnet": "10.46.0.0/24", "routes": [{ "dst": "192.168.0.0/16" }] } }),
        ),
    ];
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        for (what, extra) in &configs {
            // Each binary in its own sandbox, so both see a fresh bridge.
            let mut replies = Vec::new();
            for side in [&ours, &theirs] {
                in_sandbox(|| {
                    let ns = Netns::new();
                    let reply = run(side, "ADD", "c1", &ns, version, extra);
                    if reply.status == 0 {
                        run(side, "DEL", "c1", &ns, version, extra).ok();
                    }
                    replies.push(reply);
                });
            }
            let (o, t) = (&replies[0], &replies[1]);
            assert_eq!(
                o.status, t.status,
                "{version} {what}: exit status\nours: {o:?}\nreference: {t:?}"
            );
            if t.status == 0 {
                assert_eq!(masked(o.json()), masked(t.json()), "{version} {what}");
            } else {
                assert_eq!(
                    o.json()["msg"]
                        .as_str()
                        .map(|m| m.contains("cannot convert")),
                    t.json()["msg"]
                        .as_str()
                        .map(|m| m.contains("cannot convert")),
                    "{version} {what}\nours: {o:?}\nreference: {t:?}"
                );
            }
        }
    }
}

#[test]
fn kernel_state_matches_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let extra = json!({ "isDefaultGateway": true, "mtu": 1450 });
    let mut states = Vec::new();
    for side in [&ours, &theirs] {
        in_sandbox(|| {
            let ns = Netns::new();
            run(side, "ADD", "c1", &ns, "1.0.0", &extra).ok();
            let bridge = sh("ip -4 -o addr show dev cni0 | awk '{print $4}'");
            let routes = ns.sh("ip -4 route show");
            let addrs = ns.sh("ip -o addr show dev eth0 scope global | awk \"{print \\$4}\"");
            let mtu = ns.sh("cat /sys/class/net/eth0/mtu");
            let forward = sh("cat /proc/sys/net/ipv4/ip_forward");
            states.push((bridge, routes, addrs, mtu, forward));
        });
    }
    assert_eq!(states[0], states[1]);
}

#[test]
fn pods_made_by_either_binary_are_torn_down_by_the_other() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    // One data dir and one sandbox for both: the node swapped binaries.
    let shared = tempfile::tempdir().expect("tempdir");
    let extra = json!({ "isGateway": true, "ipMasq": true, "ipMasqBackend": "iptables" });
    in_sandbox(|| {
        let (a, b) = (Netns::new(), Netns::new());
        let with = |side: &Side, command: &str, id: &str, ns: &Netns| {
            Call::new(command, id, conf("1.0.0", shared.path(), &extra))
                .netns(&ns.path_str())
                .cni_path(&side.cni_path)
                .run(&side.bin)
        };
        let ra = with(&theirs, "ADD", "made-by-reference", &a).ok();
        let rb = with(&ours, "ADD", "made-by-us", &b).ok();
        assert_ne!(ra["ips"][0]["address"], rb["ips"][0]["address"]);
        // Pods on one bridge reach each other whichever binary made them.
        let ip_a = ra["ips"][0]["address"]
            .as_str()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        assert!(b.sh_ok(&format!("ping -c1 -W2 {ip_a}")));

        with(&ours, "DEL", "made-by-reference", &a).ok();
        with(&theirs, "DEL", "made-by-us", &b).ok();
        let nat = sh("iptables -t nat -S");
        assert!(!nat.contains("CNI-"), "no masquerade chain left: {nat}");
        assert!(lease_names(&shared.path().join("refnet")).is_empty());
        assert!(!sh("ip -o link show").contains("veth"));
    });
}

/// Found by the conformance fuzzer: an L2-only attachment gets no container sysctls, and an
/// IPAM route with no gateway of its family is added with scope universe, as the reference does.
#[test]
fn l2_only_sysctls_and_gatewayless_routes_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let cases = [
        (
            "l2-only",
            json!({ "ipam": {} }),
            "sysctl -n net.ipv4.conf.eth0.arp_notify net.ipv6.conf.eth0.accept_dad",
        ),
        (
            "v6 range, v4 default route",
            json!({
                "isDefaultGateway": true,
                "ipam": { "type": "host-local", "ranges": [[{ "subnet": "fd00:47::/64" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
            }),
            "ip -4 route show; ip -6 route show | grep -v ^fe80",
        ),
    ];
    for (what, extra, probe) in cases {
        let mut seen = Vec::new();
        for side in [&ours, &theirs] {
            in_sandbox(|| {
                let ns = Netns::new();
                run(side, "ADD", "c1", &ns, "1.0.0", &extra).ok();
                seen.push(ns.sh(probe));
                run(side, "DEL", "c1", &ns, "1.0.0", &extra).ok();
            });
        }
        assert_eq!(seen[0], seen[1], "{what}: ours vs reference");
    }
}
