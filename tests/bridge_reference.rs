//! Differential tests: our `bridge` and the reference `/usr/lib/cni/bridge` given the same
//! config in twin sandboxes; results compared field by field (MACs and the random host veth
//! name masked), kernel state compared where it must match, and pods made by one binary torn
//! down by the other.

use cni_suite_tests::sandbox::{in_sandbox, kernel_has_vlan_filtering, privileged, sh, Netns};
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
            if k == "ipam" && v.is_null() {
                // L2 only.
                o.remove(k);
            } else if k == "ipam" {
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
                let (oj, tj) = (o.json(), t.json());
                assert_eq!(
                    (&oj["code"], &oj["msg"]),
                    (&tj["code"], &tj["msg"]),
                    "{version} {what}"
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
            // Not /sys/class/net: sysfs shows the netns that mounted it, not the container's.
            let mtu = ns.sh("ip -o link show dev eth0 | grep -o \"mtu [0-9]*\"");
            assert_eq!(mtu.trim(), "mtu 1450");
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

/// The container's routes as `ip -j` reports them, both families, sorted so the order in
/// which the kernel lists equal-metric routes does not matter.
fn container_routes(ns: &Netns) -> Vec<Value> {
    let mut all = Vec::new();
    for family in ["-4", "-6"] {
        let text = ns.sh(&format!("ip {family} -j route show"));
        let routes: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        all.extend(routes.as_array().cloned().unwrap_or_default());
    }
    // Link-local and multicast routes are the kernel's, not ours.
    all.retain(|r| {
        let dst = r["dst"].as_str().unwrap_or("");
        !dst.starts_with("fe80") && !dst.starts_with("ff00") && !dst.starts_with("multicast")
    });
    all.sort_by_key(Value::to_string);
    all
}

/// `network` on bridge `bridge`, dual-stack, default gateway in both families.
fn dual_stack_network(network: &str, bridge: &str, n: u8, prev: Option<&Value>) -> Value {
    let mut extra = json!({
        "name": network,
        "bridge": bridge,
        "isDefaultGateway": true,
        "ipam": { "type": "host-local", "ranges": [
            [{ "subnet": format!("10.7{n}.0.0/24") }],
            [{ "subnet": format!("fd00:7{n}::/64") }]
        ] }
    });
    if let Some(p) = prev {
        extra["prevResult"] = p.clone();
    }
    extra
}

/// A container on two networks that both give it a default route (podman `network connect`,
/// `--network a,b`, Multus): both ADDs, both CHECKs and DEL of the second leave the same
/// routes as the reference, and DEL of eth1 leaves eth0 and its routes intact.
#[test]
fn two_networks_with_default_routes_on_one_container_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let mut observed = Vec::new();
    for side in [&ours, &theirs] {
        in_sandbox(|| {
            let ns = Netns::new();
            let call = |command: &str, ifname: &str, extra: &Value| {
                Call::new(command, "c1", conf("1.0.0", side.data.path(), extra))
                    .netns(&ns.path_str())
                    .ifname(ifname)
                    .cni_path(&side.cni_path)
                    .run(&side.bin)
            };
            let a = call("ADD", "eth0", &dual_stack_network("net-a", "cni0", 1, None)).ok();
            let b = call("ADD", "eth1", &dual_stack_network("net-b", "cni1", 2, None)).ok();
            let checks = [
                call(
                    "CHECK",
                    "eth0",
                    &dual_stack_network("net-a", "cni0", 1, Some(&a)),
                )
                .status,
                call(
                    "CHECK",
                    "eth1",
                    &dual_stack_network("net-b", "cni1", 2, Some(&b)),
                )
                .status,
            ];
            let both = container_routes(&ns);
            call(
                "DEL",
                "eth1",
                &dual_stack_network("net-b", "cni1", 2, Some(&b)),
            )
            .ok();
            let after_del = container_routes(&ns);
            let check_a = call(
                "CHECK",
                "eth0",
                &dual_stack_network("net-a", "cni0", 1, Some(&a)),
            )
            .status;
            assert!(ns.sh_ok("ping -c1 -W2 10.71.0.1"), "eth0 lost its network");
            observed.push((masked(a), masked(b), checks, both, after_del, check_a));
        });
    }
    let (o, t) = (&observed[0], &observed[1]);
    assert_eq!(o.0, t.0, "result of ADD eth0");
    assert_eq!(o.1, t.1, "result of ADD eth1");
    assert_eq!(o.3, t.3, "routes with both attachments");
    assert_eq!(o.4, t.4, "routes after DEL eth1");
    // Ours: every CHECK passes (the reference's are recorded for the README's comparison).
    assert_eq!(
        (o.2, o.5),
        ([0, 0], 0),
        "our CHECKs; reference: {:?}",
        (t.2, t.5)
    );
    // Both families keep a default route through eth0 after eth1 is gone.
    for family in ["10.71.0.1", "fd00:71::1"] {
        assert!(
            o.4.iter()
                .any(|r| r["dst"] == "default" && r["gateway"] == family && r["dev"] == "eth0"),
            "{family}: {:?}",
            o.4
        );
    }
    // With both attachments, both defaults are there (IPv6 as one multipath route).
    let both = serde_json::to_string(&o.3).unwrap_or_default();
    for gw in ["10.71.0.1", "10.72.0.1", "fd00:71::1", "fd00:72::1"] {
        assert!(both.contains(gw), "{gw} missing: {both}");
    }
}

/// Two IPAM routes to one destination through two gateways (ECMP) in one result.
#[test]
fn ecmp_routes_in_one_ipam_result_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let ipam = json!({ "type": "host-local", "ranges": [
        [{ "subnet": "10.73.0.0/24" }], [{ "subnet": "fd00:73::/64" }]
    ], "routes": [
        { "dst": "192.168.0.0/16", "gw": "10.73.0.1" },
        { "dst": "192.168.0.0/16", "gw": "10.73.0.254" },
        { "dst": "fd00:99::/64", "gw": "fd00:73::1" },
        { "dst": "fd00:99::/64", "gw": "fd00:73::fe" }
    ] });
    let mut observed = Vec::new();
    for side in [&ours, &theirs] {
        in_sandbox(|| {
            let ns = Netns::new();
            let extra = json!({ "isGateway": true, "ipam": ipam });
            let r = run(side, "ADD", "c1", &ns, "1.0.0", &extra).ok();
            let mut with_prev = extra.clone();
            with_prev["prevResult"] = r.clone();
            let check = run(side, "CHECK", "c1", &ns, "1.0.0", &with_prev);
            observed.push((masked(r), container_routes(&ns), check));
            run(side, "DEL", "c1", &ns, "1.0.0", &with_prev).ok();
        });
    }
    let (o, t) = (&observed[0], &observed[1]);
    assert_eq!(o.0, t.0, "results");
    assert_eq!(o.1, t.1, "routes");
    assert_eq!(o.2.status, 0, "our CHECK: {:?}", o.2);
    // The reference's CHECK misses IPv6 ECMP routes (the kernel lists them as one multipath
    // route, whose gateways it does not read): an intentional difference, in the README.
    let theirs = t.2.json();
    assert!(
        theirs["msg"]
            .as_str()
            .is_some_and(|m| m.contains("GW:fd00:73::1} not found in routing table")),
        "{theirs}"
    );
    let routes = serde_json::to_string(&o.1).unwrap_or_default();
    for gw in ["10.73.0.1", "10.73.0.254", "fd00:73::1", "fd00:73::fe"] {
        assert!(routes.contains(gw), "{gw} missing: {routes}");
    }
}

/// The bridge keeps the MAC it was created with (pinned when its gateway address is added),
/// not its first port's: the result reports it, a second pod does not change it, and the
/// reference's bridge behaves the same.
#[test]
fn the_bridge_keeps_its_creation_mac_as_the_reference_does() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let mac_of = |dev: &str| {
        sh(&format!("ip -br link show dev {dev} | awk '{{print $3}}'"))
            .trim()
            .to_string()
    };
    let extra = json!({ "isGateway": true });
    for side in [&ours, &theirs] {
        in_sandbox(|| {
            let (a, b) = (Netns::new(), Netns::new());
            let ra = run(side, "ADD", "c1", &a, "1.0.0", &extra).ok();
            let bridge = mac_of("cni0");
            let first_port = ra["interfaces"][1]["name"].as_str().unwrap_or_default();
            assert_ne!(
                bridge,
                mac_of(first_port),
                "{}: bridge took its port's MAC",
                side.bin.display()
            );
            assert_eq!(
                ra["interfaces"][0]["mac"],
                json!(bridge),
                "{}",
                side.bin.display()
            );
            let rb = run(side, "ADD", "c2", &b, "1.0.0", &extra).ok();
            assert_eq!(
                mac_of("cni0"),
                bridge,
                "{}: a second pod moved it",
                side.bin.display()
            );
            assert_eq!(rb["interfaces"][0]["mac"], json!(bridge));
            // Nor does the first pod leaving.
            run(side, "DEL", "c1", &a, "1.0.0", &extra).ok();
            assert_eq!(mac_of("cni0"), bridge);
            run(side, "DEL", "c2", &b, "1.0.0", &extra).ok();
        });
    }
}

/// An L2-only bridge (no ipam) at 0.1.0/0.2.0 has no result those versions can carry: the same
/// error as the reference (code 999, same text). The reference fails only after making the
/// attachment and leaves it behind; ours fails before making anything.
#[test]
fn an_l2_only_bridge_at_0_1_and_0_2_fails_as_the_reference_without_leaving_state() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let extra = json!({ "ipam": null });
    for version in ["0.1.0", "0.2.0"] {
        let mut errors = Vec::new();
        for side in [&ours, &theirs] {
            in_sandbox(|| {
                let ns = Netns::new();
                let reply = run(side, "ADD", "c1", &ns, version, &extra);
                let e = reply.err(999);
                errors.push((e["code"].clone(), e["msg"].clone()));
                let left = ns.sh("ip -o link show | grep -c eth0 || true");
                if side.bin == ours.bin {
                    assert_eq!(left.trim(), "0", "{version}: our ADD left eth0");
                    assert!(
                        !sh("ip -o link show").contains("veth"),
                        "{version}: veth left"
                    );
                } else {
                    assert_eq!(left.trim(), "1", "{version}: the reference now rolls back");
                }
            });
        }
        assert_eq!(errors[0], errors[1], "{version}");
        assert_eq!(errors[0].1, "cannot convert: no valid IP addresses");
    }
}

/// Go-cased keys and repeated keys (raw text: a `Value` cannot repeat a key) give the same
/// result and kernel state as the reference: the reference's Go decoder matches keys
/// case-insensitively and the last variant wins.
#[test]
fn go_cased_and_repeated_keys_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let template = r#"{"cniVersion":"1.0.0","Name":"refnet","Type":"bridge","Bridge":"br9",
        "IsGateway":false,"ISGATEWAY":true,"ipmasq":false,"IPMasq":true,"ipMasqBackend":"iptables",
        "MTU":1400,"Args":{"CNI":{"MAC":"02:00:00:00:00:09"}},
        "IPAM":{"Type":"host-local","Subnet":"10.48.0.0/24","DataDir":@DIR}}"#;
    let mut states = Vec::new();
    for side in [&ours, &theirs] {
        in_sandbox(|| {
            let ns = Netns::new();
            let conf = template.replace("@DIR", &json!(side.data.path()).to_string());
            let call = |command: &str| {
                Call::new(command, "c1", conf.as_str())
                    .netns(&ns.path_str())
                    .cni_path(&side.cni_path)
                    .run(&side.bin)
            };
            let result = masked(call("ADD").ok());
            let bridge = sh("ip -4 -o addr show dev br9 | awk '{print $4}'");
            let link = ns.sh("ip -o link show dev eth0");
            let after = |word: &str| {
                let mut it = link.split_whitespace().skip_while(|w| *w != word);
                it.nth(1).unwrap_or_default().to_string()
            };
            let eth0 = (after("mtu"), after("link/ether"));
            let masq = sh("iptables -t nat -S POSTROUTING").contains("CNI-");
            call("DEL").ok();
            states.push((result, bridge, eth0, masq));
        });
    }
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0].1.trim(), "10.48.0.1/24", "isGateway read");
    assert_eq!(states[0].2 .0, "1400", "MTU read");
    assert_eq!(states[0].2 .1, "02:00:00:00:00:09", "args.cni.mac read");
    assert!(states[0].3, "ipMasq read");
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

/// Interface names as a comparison sees them: veths are named at random by the reference and
/// derived by us, so every `veth…` name reads `<veth>`.
fn role(name: &str) -> String {
    if name.starts_with("veth") {
        "<veth>".into()
    } else {
        name.to_string()
    }
}

fn json_of(cmd: &str) -> Value {
    serde_json::from_str(&sh(cmd)).unwrap_or_else(|e| panic!("{cmd}: not JSON ({e})"))
}

/// The sandbox host's links (name, kind, master, MTU, up), global addresses and bridge VLAN
/// table, veth names masked and everything sorted, for comparing two sandboxes.
fn host_l2_state() -> Vec<String> {
    let mut state = Vec::new();
    for l in json_of("ip -j -d addr show")
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = l["ifname"].as_str().unwrap_or("");
        if name == "lo" {
            continue;
        }
        let mut addrs: Vec<String> = l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect();
        addrs.sort();
        state.push(format!(
            "link {} kind={} master={} mtu={} up={} vlan_filtering={} addrs={addrs:?}",
            role(name),
            l["linkinfo"]["info_kind"],
            role(l["master"].as_str().unwrap_or("-")),
            l["mtu"],
            l["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("UP"))),
            l["linkinfo"]["info_data"]["vlan_filtering"],
        ));
    }
    for port in json_of("bridge -j vlan show")
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut vlans: Vec<String> = port["vlans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!("{}{}", v["vlan"], v["flags"]))
            .collect();
        vlans.sort();
        state.push(format!(
            "vlans {} {vlans:?}",
            role(port["ifname"].as_str().unwrap_or(""))
        ));
    }
    state.sort();
    state
}

/// `vlan` networks, with and without a gateway: results, CHECK, the links, addresses and
/// bridge VLAN table they leave on the host (the gateway on `<bridge>.<vid>`), pods reaching
/// that gateway, and what stays after DEL, all as the reference does. v1.1.1 keeps VLAN 1 on
/// the port, which ours does with `preserveDefaultVlan` (our default follows v1.8: off).
#[test]
fn vlan_networks_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some((ours, theirs)) = sides() else {
        return;
    };
    let has_vlans = {
        let mut has = false;
        in_sandbox(|| has = kernel_has_vlan_filtering());
        has
    };
    let configs = [
        ("vlan", json!({ "vlan": 100, "preserveDefaultVlan": true })),
        (
            "vlan gateway",
            json!({ "vlan": 100, "isGateway": true, "preserveDefaultVlan": true }),
        ),
        (
            "vlan default gateway, dual stack, mtu",
            json!({
                "vlan": 42, "isDefaultGateway": true, "preserveDefaultVlan": true, "mtu": 1400,
                "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.45.0.0/24" }], [{ "subnet": "fd00:45::/64" }]] }
            }),
        ),
    ];
    for (what, extra) in &configs {
        let mut seen = Vec::new();
        for side in [&ours, &theirs] {
            in_sandbox(|| {
                let (a, b) = (Netns::new(), Netns::new());
                let ra = run(side, "ADD", "c1", &a, "1.0.0", extra);
                if !has_vlans {
                    // This kernel cannot filter VLANs: both refuse (texts differ, see README).
                    assert_ne!(ra.status, 0, "{what}: {ra:?}");
                    seen.push(vec![format!("refused with code {}", ra.json()["code"])]);
                    return;
                }
                let ra = ra.ok();
                // Before the next port: a bridge without an address takes its ports' lowest
                // MAC, so a later CHECK of the MAC in `ra` may fail (in both).
                let mut with_prev = extra.clone();
                with_prev["prevResult"] = ra.clone();
                run(side, "CHECK", "c1", &a, "1.0.0", &with_prev).ok();
                let rb = run(side, "ADD", "c2", &b, "1.0.0", extra).ok();
                let mut state = vec![
                    masked(ra.clone()).to_string(),
                    masked(rb.clone()).to_string(),
                    a.sh("ip -o route show"),
                ];
                state.extend(host_l2_state());
                if extra.get("isGateway").is_some() || extra.get("isDefaultGateway").is_some() {
                    let gw = ra["ips"][0]["gateway"].as_str().unwrap_or("").to_string();
                    assert!(
                        a.sh_ok(&format!("ping -c1 -W5 {gw}")),
                        "{what}: gateway {gw}"
                    );
                }
                let ip_b = rb["ips"][0]["address"]
                    .as_str()
                    .unwrap_or("")
                    .split('/')
                    .next();
                assert!(
                    a.sh_ok(&format!("ping -c1 -W5 {}", ip_b.unwrap_or(""))),
                    "{what}"
                );
                run(side, "DEL", "c1", &a, "1.0.0", extra).ok();
                run(side, "DEL", "c2", &b, "1.0.0", extra).ok();
                run(side, "DEL", "c2", &b, "1.0.0", extra).ok();
                // The bridge and any gateway interface stay, as the bridge always does.
                state.push("after DEL".into());
                state.extend(host_l2_state());
                seen.push(state);
            });
        }
        assert_eq!(seen[0], seen[1], "{what}: ours (left) vs reference (right)");
    }
}
