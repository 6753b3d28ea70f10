//! Differential tests: our `loopback` and the reference `/usr/lib/cni/loopback` run on twin
//! container namespaces; results must be equal JSON values once the netns path is substituted.

use cni_suite_tests::sandbox::{in_sandbox, privileged, Netns};
use cni_suite_tests::{our_plugin, reference_plugin, Call};
use serde_json::{json, Value};
use std::path::Path;

/// The reference versions; 1.1.0 is ours alone (the reference refuses it).
const VERSIONS: [&str; 6] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Replaces `ns` with a marker wherever it appears; everything else, `"dns": {}` included, must
/// be equal.
fn normalized(v: Value, ns: &str) -> Value {
    let text = v.to_string().replace(ns, "<netns>");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn add(bin: &Path, ns: &Netns, stdin: &Value) -> Value {
    let r = Call::new("ADD", "ctr1", stdin.to_string())
        .netns(&ns.path_str())
        .ifname("lo")
        .run(bin)
        .ok();
    normalized(r, &ns.path_str())
}

/// Runs `stdin` through both binaries on fresh twins; `prepare` shapes each netns first.
fn compare(reference: &Path, stdin: &Value, prepare: &dyn Fn(&Netns)) {
    let (a, b) = (Netns::new(), Netns::new());
    prepare(&a);
    prepare(&b);
    let ours = add(&our_plugin("loopback"), &a, stdin);
    let theirs = add(reference, &b, stdin);
    assert_eq!(ours, theirs, "config {stdin}");
}

#[test]
fn results_match_the_reference_for_every_version() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("loopback") else {
        return;
    };
    in_sandbox(|| {
        for v in VERSIONS {
            let stdin = json!({ "cniVersion": v, "name": "lo", "type": "loopback" });
            compare(&reference, &stdin, &|ns| {
                ns.sh("ip link set lo down");
            });
        }
    });
}

#[test]
fn results_match_the_reference_without_ipv6() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("loopback") else {
        return;
    };
    in_sandbox(|| {
        for v in ["0.2.0", "1.0.0"] {
            let stdin = json!({ "cniVersion": v, "name": "lo", "type": "loopback" });
            compare(&reference, &stdin, &|ns| {
                ns.sh(
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1",
                );
            });
        }
    });
}

#[test]
fn chained_results_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("loopback") else {
        return;
    };
    in_sandbox(|| {
        let prevs = [
            json!({ "cniVersion": "0.3.1", "ips": [{ "version": "4", "address": "10.0.0.2/24" }] }),
            json!({ "cniVersion": "1.0.0",
                    "interfaces": [{ "name": "eth0", "mac": "0a:58:0a:00:00:02" }],
                    "ips": [{ "address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0 }],
                    "routes": [{ "dst": "0.0.0.0/0" }] }),
        ];
        for prev in prevs {
            let stdin = json!({
                "cniVersion": prev["cniVersion"], "name": "lo", "type": "loopback",
                "prevResult": prev,
            });
            compare(&reference, &stdin, &|_| {});
        }
    });
}

#[test]
fn del_and_check_agree_with_the_reference() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("loopback") else {
        return;
    };
    in_sandbox(|| {
        let stdin = json!({ "cniVersion": "1.0.0", "name": "lo", "type": "loopback" }).to_string();
        for bin in [our_plugin("loopback"), reference.clone()] {
            let ns = Netns::new();
            let call = |cmd: &str| {
                Call::new(cmd, "ctr1", stdin.clone())
                    .netns(&ns.path_str())
                    .ifname("lo")
                    .run(&bin)
            };
            call("ADD").ok();
            call("CHECK").ok();
            ns.sh("ip link set lo down");
            call("CHECK").err(999);
            call("DEL").ok();
            call("DEL").ok();
        }
    });
}

/// A prevResult with Go-cased keys is read as the reference's Go decoder reads it.
#[test]
fn go_cased_prev_result_matches_the_reference() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("loopback") else {
        return;
    };
    in_sandbox(|| {
        for v in ["0.4.0", "1.0.0"] {
            let mut ip = json!({ "Address": "10.1.0.5/24", "Gateway": "10.1.0.1", "Interface": 0 });
            if v == "0.4.0" {
                ip["Version"] = json!("4");
            }
            let stdin = json!({
                "CNIVersion": v, "Name": "lo", "Type": "loopback",
                "PrevResult": {
                    "CNIVersion": v,
                    "Interfaces": [{ "Name": "eth0", "Sandbox": "/var/run/netns/x" }],
                    "IPs": [ip],
                    "Routes": [{ "Dst": "0.0.0.0/0", "GW": "10.1.0.1" }],
                    "DNS": { "Nameservers": ["10.1.0.1"] }
                }
            });
            compare(&reference, &stdin, &|_| {});
        }
    });
}
