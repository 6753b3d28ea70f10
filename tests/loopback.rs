//! Black-box tests of `loopback` inside sandbox network namespaces, asserting on the state of
//! `lo` as `ip -j` reports it.

use cni_suite_tests::sandbox::{in_sandbox, privileged, Netns};
use cni_suite_tests::{link_addresses, our_plugin, Call, Reply};
use serde_json::{json, Value};

fn conf(version: &str) -> String {
    json!({ "cniVersion": version, "name": "lo", "type": "loopback" }).to_string()
}

fn call(command: &str, ns: &str, version: &str) -> Reply {
    Call::new(command, "ctr1", conf(version))
        .netns(ns)
        .ifname("lo")
        .run(&our_plugin("loopback"))
}

/// `ip -j addr show dev lo` inside `ns`.
fn lo_state(ns: &Netns) -> Value {
    let out = ns.sh("ip -j addr show dev lo");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0].clone()
}

fn is_up(lo: &Value) -> bool {
    lo["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

/// A container netns whose `lo` starts down, as a runtime creates it.
fn fresh() -> Netns {
    let ns = Netns::new();
    ns.sh("ip link set lo down");
    ns
}

#[test]
fn add_brings_lo_up_and_reports_its_addresses() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        assert!(!is_up(&lo_state(&ns)));
        let r = call("ADD", &ns.path_str(), "1.0.0").ok();
        let lo = lo_state(&ns);
        assert!(is_up(&lo), "{lo}");
        assert_eq!(link_addresses(&lo), ["127.0.0.1/8", "::1/128"]);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{ "name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ns.path_str() }],
                "ips": [
                    { "interface": 0, "address": "127.0.0.1/8" },
                    { "interface": 0, "address": "::1/128" },
                ],
                "dns": {},
            })
        );
        assert!(ns.sh_ok("ping -c1 -W1 127.0.0.1"));
    });
}

#[test]
fn add_accepts_every_version_with_the_same_shape() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        for v in [
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
        ] {
            let r = call("ADD", &ns.path_str(), v).ok();
            assert_eq!(r["cniVersion"], v);
            // The reference's shape under every version: no ip4/ip6, no per-address version.
            assert_eq!(
                r["ips"][0],
                json!({ "interface": 0, "address": "127.0.0.1/8" }),
                "{v}"
            );
            assert_eq!(r["interfaces"][0]["name"], "lo");
        }
    });
}

#[test]
fn add_without_ipv6_reports_only_ipv4() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        ns.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1");
        let r = call("ADD", &ns.path_str(), "0.4.0").ok();
        assert!(is_up(&lo_state(&ns)));
        assert_eq!(
            r["ips"],
            json!([{ "interface": 0, "address": "127.0.0.1/8" }])
        );
    });
}

#[test]
fn add_ignores_ifname_and_passes_prev_result_through() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        let prev = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{ "name": "eth0", "sandbox": ns.path_str() }],
            "ips": [{ "version": "4", "address": "10.0.0.2/24", "interface": 0 }],
        });
        let stdin = json!({
            "cniVersion": "0.3.1", "name": "lo", "type": "loopback", "prevResult": prev,
        });
        let r = Call::new("ADD", "ctr1", stdin.to_string())
            .netns(&ns.path_str())
            .ifname("eth0")
            .run(&our_plugin("loopback"))
            .ok();
        assert!(is_up(&lo_state(&ns)));
        // Passed through as the reference re-marshals it: with `"dns": {}`.
        let mut want = prev.clone();
        want["dns"] = json!({});
        assert_eq!(r, want);
    });
}

#[test]
fn del_brings_lo_down_and_is_idempotent() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        call("ADD", &ns.path_str(), "1.0.0").ok();
        assert_eq!(call("DEL", &ns.path_str(), "1.0.0").ok(), Value::Null);
        let lo = lo_state(&ns);
        assert!(!is_up(&lo), "{lo}");
        assert!(!ns.sh_ok("ping -c1 -W1 127.0.0.1"));
        call("DEL", &ns.path_str(), "1.0.0").ok();
        assert!(!is_up(&lo_state(&ns)));
    });
}

#[test]
fn del_after_netns_removed_or_without_netns_succeeds() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let mut ns = fresh();
        let path = ns.path_str();
        call("ADD", &path, "1.0.0").ok();
        ns.delete();
        call("DEL", &path, "1.0.0").ok();
        call("DEL", "", "1.0.0").ok();
    });
}

#[test]
fn check_passes_while_lo_is_up_and_fails_once_it_is_down() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ns = fresh();
        call("ADD", &ns.path_str(), "1.0.0").ok();
        call("CHECK", &ns.path_str(), "1.0.0").ok();
        ns.sh("ip link set lo down");
        let err = call("CHECK", &ns.path_str(), "1.0.0").err(999);
        assert!(err["msg"].as_str().unwrap_or("").contains("down"), "{err}");
        // CHECK needs 0.4.0 or later, as for every plugin.
        call("CHECK", &ns.path_str(), "0.3.1").err(1);
    });
}

#[test]
fn add_without_netns_is_an_environment_error() {
    let r = Call::new("ADD", "ctr1", conf("1.0.0"))
        .unset("CNI_NETNS")
        .run(&our_plugin("loopback"));
    let err = r.err(4);
    assert!(
        err["msg"].as_str().unwrap_or("").contains("CNI_NETNS"),
        "{err}"
    );
}

#[test]
fn status_and_gc_succeed() {
    for cmd in ["STATUS", "GC"] {
        let r = Call::new(cmd, "", conf("1.1.0"))
            .unset("CNI_CONTAINERID")
            .unset("CNI_NETNS")
            .unset("CNI_IFNAME")
            .run(&our_plugin("loopback"));
        assert_eq!(r.ok(), Value::Null, "{cmd}");
    }
}
