//! Differential tests: our `portmap` and the reference `/usr/lib/cni/portmap` (iptables
//! backend) given the same chained config; results must be equal (prevResult passthrough), and
//! our DEL removes what the reference's ADD made.

use cni_suite_tests::sandbox::{in_sandbox, privileged, sh};
use cni_suite_tests::{our_plugin, reference_plugin, Call};
use serde_json::{json, Value};
use std::path::Path;

fn prev(version: &str) -> Value {
    let mut v = json!({
        "cniVersion": version,
        "interfaces": [
            { "name": "br-ref" },
            { "name": "eth0", "sandbox": "/var/run/netns/pod" },
        ],
        "ips": [
            { "address": "10.7.0.2/24", "gateway": "10.7.0.1", "interface": 1 },
            { "address": "fd00:7::2/64", "gateway": "fd00:7::1", "interface": 1 },
        ],
        "routes": [{ "dst": "0.0.0.0/0", "gw": "10.7.0.1" }],
        "dns": { "nameservers": ["10.7.0.1"] },
    });
    if version.starts_with("0.") {
        // 0.x results carry each address's family.
        v["ips"][0]["version"] = json!("4");
        v["ips"][1]["version"] = json!("6");
    }
    v
}

fn conf(version: &str, port: u16) -> String {
    json!({
        "cniVersion": version,
        "name": "refnet",
        "type": "portmap",
        "capabilities": { "portMappings": true },
        "runtimeConfig": { "portMappings": [
            { "hostPort": port, "containerPort": 80, "protocol": "tcp" },
            { "hostPort": port, "containerPort": 80, "protocol": "udp" },
        ]},
        "prevResult": prev(version),
    })
    .to_string()
}

/// The host side a prevResult names, so both plugins can set route_localnet on it.
fn host_bridge() {
    sh("ip link add br-ref type bridge && ip addr add 10.7.0.1/24 dev br-ref && ip link set br-ref up");
}

/// Runs `body` with the reference binary in a sandbox holding the prevResult's bridge; skips
/// when not root or (outside CI) when the reference is not installed.
fn with_reference(body: impl FnOnce(&Path) + Send) {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("portmap") else {
        return;
    };
    in_sandbox(|| {
        host_bridge();
        body(&reference);
    });
}

#[test]
fn add_result_equals_the_reference() {
    with_reference(|reference| {
        for (i, version) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
            let port = 8100 + i as u16;
            let theirs = Call::new("ADD", &format!("ref-{i}"), conf(version, port))
                .run(reference)
                .ok();
            let ours = Call::new("ADD", &format!("our-{i}"), conf(version, port + 100))
                .run(&our_plugin("portmap"))
                .ok();
            assert_eq!(ours, theirs, "cniVersion {version}");
            assert_eq!(ours["ips"], prev(version)["ips"], "cniVersion {version}");
        }
    });
}

#[test]
fn our_del_removes_what_the_reference_added() {
    with_reference(|reference| {
        Call::new("ADD", "abc", conf("1.0.0", 8080))
            .run(reference)
            .ok();
        let before = sh("iptables-save -t nat");
        assert!(before.contains("CNI-DN-"), "{before}");
        assert!(before.contains("--to-destination 10.7.0.2:80"), "{before}");
        Call::new("DEL", "abc", conf("1.0.0", 8080))
            .run(&our_plugin("portmap"))
            .ok();
        for tool in ["iptables-save", "ip6tables-save"] {
            let after = sh(&format!("{tool} -t nat"));
            assert!(!after.contains("CNI-DN-"), "{tool}: {after}");
            assert!(!after.contains("--to-destination"), "{tool}: {after}");
        }
        // A second DEL finds nothing and succeeds.
        Call::new("DEL", "abc", conf("1.0.0", 8080))
            .run(&our_plugin("portmap"))
            .ok();
    });
}

/// `iptables -S` and `ip6tables -S` of the nat table after `setup` and one ADD by `plugin`.
fn nat_rules_after_add(plugin: &Path, conf: &str) -> Vec<String> {
    nat_rules_after(plugin, conf, "true", |_| {})
}

fn nat_rules_after(
    plugin: &Path,
    conf: &str,
    setup: &str,
    after_add: impl FnOnce(&Path) + Send,
) -> Vec<String> {
    let mut out = Vec::new();
    in_sandbox(|| {
        host_bridge();
        sh(setup);
        Call::new("ADD", "abc", conf).run(plugin).ok();
        after_add(plugin);
        for tool in ["iptables", "ip6tables"] {
            out.extend(
                sh(&format!("{tool} -w -t nat -S"))
                    .lines()
                    .map(|l| format!("{tool} {l}")),
            );
        }
    });
    out.sort();
    out
}

#[test]
fn our_iptables_backend_writes_the_reference_rules() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("portmap") else {
        return;
    };
    let conf = conf("1.0.0", 8080);
    let theirs = nat_rules_after_add(&reference, &conf);
    let mut ours_conf: Value = serde_json::from_str(&conf).expect("json");
    ours_conf["backend"] = json!("iptables");
    let ours = nat_rules_after_add(&our_plugin("portmap"), &ours_conf.to_string());
    assert_eq!(ours, theirs);
}

/// conditionsV4/V6 and externalSetMarkChain (iptables-only options): the same rules as the
/// reference, CHECK accepts them, DEL removes them.
#[test]
fn iptables_only_options_give_the_reference_rules() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("portmap") else {
        return;
    };
    let mut conf: Value = serde_json::from_str(&conf("1.0.0", 8080)).expect("json");
    conf["conditionsV4"] = json!([
        "!",
        "-s",
        "192.0.2.9",
        "-m",
        "addrtype",
        "--src-type",
        "UNICAST"
    ]);
    conf["conditionsV6"] = json!(["!", "-s", "2001:db8::9"]);
    conf["externalSetMarkChain"] = json!("KUBE-MARK-MASQ");
    let conf = conf.to_string();
    let setup = "iptables -w -t nat -N KUBE-MARK-MASQ && ip6tables -w -t nat -N KUBE-MARK-MASQ";
    let theirs = nat_rules_after(&reference, &conf, setup, |_| {});
    assert!(
        theirs.iter().any(|r| r.contains("! -s 192.0.2.9/32")),
        "{theirs:#?}"
    );
    let ours = nat_rules_after(&our_plugin("portmap"), &conf, setup, |ours| {
        Call::new("CHECK", "abc", &conf).run(ours).ok();
        Call::new("DEL", "abc", &conf).run(ours).ok();
        let left = sh("iptables-save -t nat; ip6tables-save -t nat");
        assert!(!left.contains("CNI-DN-"), "{left}");
        Call::new("ADD", "abc", &conf).run(ours).ok();
    });
    assert_eq!(ours, theirs);
}

#[test]
fn gc_removes_the_reference_chains_of_attachments_not_listed() {
    with_reference(|reference| {
        for id in ["keep", "drop"] {
            Call::new(
                "ADD",
                id,
                conf("1.0.0", if id == "keep" { 8080 } else { 8081 }),
            )
            .run(reference)
            .ok();
        }
        let mut gc: Value = serde_json::from_str(&conf("1.1.0", 8080)).expect("json");
        gc["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
        Call::new("GC", "", gc.to_string())
            .unset("CNI_CONTAINERID")
            .unset("CNI_IFNAME")
            .unset("CNI_NETNS")
            .run(&our_plugin("portmap"))
            .ok();
        let after = sh("iptables -w -t nat -S");
        assert!(after.contains("--dports 8080"), "{after}");
        assert!(!after.contains("--dports 8081"), "{after}");
        assert_eq!(after.matches("-N CNI-DN-").count(), 1, "{after}");
    });
}

/// prevResults with Go-cased and repeated keys, as raw text (a `Value` cannot repeat a key).
/// libcni decodes prevResult into a Go map and re-marshals it (keys sorted) before reading it,
/// so between case variants the byte-order-last one wins, not the document's last.
const GO_CASED_PREV: &[(&str, &str)] = &[
    (
        "1.0.0",
        r#"{"CNIVersion":"1.0.0","Interfaces":[{"Name":"eth0","Mac":"02:00:00:00:00:07",
            "Sandbox":"/var/run/netns/pod"}],"IPs":[{"Address":"10.7.0.3/24",
            "Gateway":"10.7.0.1","Interface":0}],"Routes":[{"Dst":"0.0.0.0/0","GW":"10.7.0.1"}],
            "DNS":{"Nameservers":["10.7.0.1"],"Domain":"d"}}"#,
    ),
    (
        "1.0.0",
        r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.2/24"}],"IPs":[{"address":"10.7.0.3/24"}],
            "DNS":{"domain":"a"},"dns":{"nameservers":["10.7.0.1"]},
            "routes":[{"dst":"0.0.0.0/0"}],"routes":[{"dst":"10.9.0.0/16"}]}"#,
    ),
    (
        "0.4.0",
        r#"{"cniVersion":"0.4.0","IPS":[{"Version":"4","Address":"10.7.0.3/24","GATEWAY":"10.7.0.1"}],
            "Interfaces":[{"NAME":"eth0"}]}"#,
    ),
    (
        "0.2.0",
        r#"{"cniVersion":"0.2.0","IP4":{"IP":"10.7.0.3/24","Gateway":"10.7.0.1",
            "Routes":[{"Dst":"0.0.0.0/0"}]},"Dns":{"Search":["s"]}}"#,
    ),
];

#[test]
fn go_cased_prev_results_pass_through_as_the_reference_reads_them() {
    with_reference(|reference| {
        for (i, (version, prev)) in GO_CASED_PREV.iter().enumerate() {
            let conf = format!(
                r#"{{"cniVersion":"{version}","name":"refnet","Type":"portmap","PrevResult":{prev}}}"#
            );
            let run = |bin: &Path| {
                Call::new("ADD", &format!("c{i}"), conf.as_str())
                    .run(bin)
                    .ok()
            };
            let theirs = run(reference);
            assert_eq!(run(&our_plugin("portmap")), theirs, "{prev}");
        }
    });
}

#[test]
fn go_cased_port_mappings_give_the_reference_rules() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("portmap") else {
        return;
    };
    // As containerd's go-cni marshals them, with a repeated key whose last variant wins.
    let conf = |extra: &str| {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"refnet","type":"portmap","snat":false,"SNAT":true,
            "RuntimeConfig":{{"PortMappings":[{{"HostPort":9,"HOSTPORT":8090,"ContainerPort":80,
            "Protocol":"udp"}}]}},{extra}"prevResult":{}}}"#,
            prev("1.0.0")
        )
    };
    let theirs = nat_rules_after_add(&reference, &conf(""));
    assert!(
        theirs
            .iter()
            .any(|r| r.contains("--dport 8090") && r.contains("-p udp")),
        "{theirs:#?}"
    );
    let ours = nat_rules_after_add(&our_plugin("portmap"), &conf(r#""Backend":"iptables","#));
    assert_eq!(ours, theirs);
}
