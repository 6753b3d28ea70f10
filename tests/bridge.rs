//! Black-box tests of `bridge` + `host-local`, exec'd from CNI_PATH inside sandbox network
//! namespaces, asserting on real kernel state (`ip -j`, `bridge -j`, `nft`, ping).

use cni_suite_tests::sandbox::{
    in_sandbox, kernel_has_vlan_filtering, privileged, sh, sh_ok, Netns,
};
use cni_suite_tests::{lease_names, our_plugin, Call, Reply};
use serde_json::{json, Value};
use std::path::PathBuf;

const NET: &str = "podnet";

struct Network {
    data: tempfile::TempDir,
    conf: Value,
    bin: PathBuf,
}

impl Network {
    /// A bridge network with host-local on `subnet`, plus `extra` top-level keys.
    fn new(bridge: &str, subnet: &str, extra: Value) -> Network {
        let data = tempfile::tempdir().expect("tempdir");
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "bridge",
            "bridge": bridge,
            "ipam": { "type": "host-local", "subnet": subnet, "dataDir": data.path() },
        });
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        Network {
            data,
            conf,
            bin: our_plugin("bridge"),
        }
    }

    fn with_ipam(mut self, ipam: Value) -> Network {
        let mut ipam = ipam;
        if ipam.get("type").is_some() {
            ipam["dataDir"] = json!(self.data.path());
        }
        self.conf["ipam"] = ipam;
        self
    }

    fn call(&self, command: &str, id: &str, ns: &Netns) -> Call {
        Call::new(command, id, self.conf.to_string()).netns(&ns.path_str())
    }

    fn add(&self, id: &str, ns: &Netns) -> Value {
        self.call("ADD", id, ns).run(&self.bin).ok()
    }

    fn del(&self, id: &str, ns: &Netns) -> Reply {
        self.call("DEL", id, ns).run(&self.bin)
    }

    fn check(&self, id: &str, ns: &Netns, prev: &Value) -> Reply {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        Call::new("CHECK", id, conf.to_string())
            .netns(&ns.path_str())
            .run(&self.bin)
    }

    fn leases(&self) -> Vec<String> {
        lease_names(&self.data.path().join(NET))
    }
}

fn ip_json(cmd: &str) -> Value {
    serde_json::from_str(&sh(cmd)).unwrap_or(Value::Null)
}

fn link(name: &str) -> Value {
    ip_json(&format!("ip -d -j link show dev {name}"))[0].clone()
}

fn container_link(ns: &Netns, name: &str) -> Value {
    serde_json::from_str::<Value>(&ns.sh(&format!("ip -d -j addr show dev {name}")))
        .map(|v| v[0].clone())
        .unwrap_or(Value::Null)
}

fn addresses(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["scope"] == "global")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][1]["name"]
        .as_str()
        .expect("host veth name")
        .to_string()
}

fn pod_ip(result: &Value, i: usize) -> String {
    let addr = result["ips"][i]["address"].as_str().expect("address");
    addr.split('/').next().unwrap_or_default().to_string()
}

fn links_named(prefix: &str) -> Vec<String> {
    ip_json("ip -j link show")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_pods_ping_each_other_and_the_gateway() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("cni0", "10.1.0.0/24", json!({ "isGateway": true }));
        let (a, b) = (Netns::new(), Netns::new());
        let ra = net.add("pod-a", &a);
        let rb = net.add("pod-b", &b);

        // Result shape: bridge, host veth, container veth with sandbox; ips on interface 2.
        assert_eq!(ra["interfaces"][0]["name"], "cni0");
        assert_eq!(ra["interfaces"][2]["name"], "eth0");
        assert_eq!(ra["interfaces"][2]["sandbox"], a.path_str());
        assert_eq!(
            ra["ips"],
            json!([{ "interface": 2, "address": "10.1.0.2/24", "gateway": "10.1.0.1" }])
        );

        // Kernel state: the bridge has the gateway, the host veth is its port, the pod has its
        // address and is up.
        let bridge = ip_json("ip -j addr show dev cni0")[0].clone();
        assert_eq!(addresses(&bridge), vec!["10.1.0.1/24"]);
        let veth = link(&host_veth(&ra));
        assert_eq!(veth["master"], "cni0");
        assert_eq!(veth["linkinfo"]["info_kind"], "veth");
        let eth0 = container_link(&a, "eth0");
        assert_eq!(addresses(&eth0), vec!["10.1.0.2/24"]);
        assert_eq!(eth0["operstate"], "UP");
        assert_eq!(eth0["address"], ra["interfaces"][2]["mac"]);
        assert_eq!(sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");

        assert!(a.sh_ok(&format!("ping -c1 -W2 {}", pod_ip(&rb, 0))));
        assert!(b.sh_ok(&format!("ping -c1 -W2 {}", pod_ip(&ra, 0))));
        assert!(a.sh_ok("ping -c1 -W2 10.1.0.1"));

        net.del("pod-a", &a).ok();
        net.del("pod-b", &b).ok();
        assert!(links_named("veth").is_empty(), "{:?}", links_named("veth"));
        assert!(net.leases().is_empty());
    });
}

/// Runs `call` with a PATH on which no `iptables` is found: the reference's probe then calls
/// iptables unusable.
fn run_without_iptables(call: &Call, bin: &std::path::Path) -> Reply {
    let child = call
        .command(bin)
        .env("PATH", "/nonexistent")
        .spawn()
        .expect("spawning the plugin");
    call.finish(child)
}

/// Without `ipMasqBackend`, the reference's rule: iptables where iptables is usable, our
/// nftables table where only nftables is. DEL removes either, whatever the default is then.
#[test]
fn default_masquerade_backend_is_iptables_unless_only_nftables_is_usable() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("br-def", "10.5.0.0/24", json!({ "ipMasq": true }));
        let nat = || sh("iptables -w -t nat -S");
        let ours = || sh("nft list table inet cni_masquerade_rs 2>/dev/null || true");

        let a = Netns::new();
        let ra = net.add("pod-ipt", &a);
        let ip = pod_ip(&ra, 0);
        assert!(
            nat().contains(&format!("-s {ip}/32")),
            "iptables by default: {}",
            nat()
        );
        assert!(!ours().contains(&ip), "no nftables state: {}", ours());
        net.check("pod-ipt", &a, &ra).ok();
        net.del("pod-ipt", &a).ok();
        assert!(!nat().contains(&ip), "{}", nat());

        let b = Netns::new();
        let rb = run_without_iptables(&net.call("ADD", "pod-nft", &b), &net.bin).ok();
        let ip = pod_ip(&rb, 0);
        assert!(
            ours().contains(&ip),
            "nftables without iptables: {}",
            ours()
        );
        assert!(!nat().contains("CNI-"), "no iptables state: {}", nat());
        let mut check = net.call("CHECK", "pod-nft", &b);
        let mut conf = net.conf.clone();
        conf["prevResult"] = rb.clone();
        check.stdin = conf.to_string();
        run_without_iptables(&check, &net.bin).ok();
        // DEL under the iptables default still removes the nftables state.
        net.del("pod-nft", &b).ok();
        assert!(!ours().contains(&ip), "{}", ours());
    });
}

/// An "outside" netns reachable from the sandbox host by its own veth, with no route back to
/// the pods: a pod's ping only comes back if its source was masqueraded.
fn outside() -> Netns {
    let out = Netns::new();
    sh(&format!(
        "ip link add vout type veth peer name vin netns {} && ip addr add 192.0.2.1/24 dev vout \
         && ip link set vout up",
        out.path.display()
    ));
    out.sh("ip addr add 192.0.2.2/24 dev vin && ip link set vin up");
    out
}

#[test]
fn masquerade_lets_pods_reach_outside_and_only_when_on() {
    if !privileged() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        in_sandbox(|| {
            let _out = outside();
            let masq = Network::new(
                "br-masq",
                "10.2.0.0/24",
                json!({ "isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": backend }),
            );
            let plain = Network::new(
                "br-plain",
                "10.3.0.0/24",
                json!({ "isDefaultGateway": true }),
            );
            let (a, b) = (Netns::new(), Netns::new());
            let ra = masq.add("masq-pod", &a);
            plain.add("plain-pod", &b);
            assert!(
                a.sh_ok("ping -c1 -W2 192.0.2.2"),
                "{backend}: masqueraded pod reaches outside"
            );
            assert!(
                !b.sh_ok("ping -c1 -W1 192.0.2.2"),
                "{backend}: without masquerade the reply has no way back"
            );
            let rules = if backend == "nftables" {
                sh("nft list ruleset")
            } else {
                sh("iptables -t nat -S")
            };
            assert!(rules.contains(&pod_ip(&ra, 0)), "{backend}: {rules}");
            masq.check("masq-pod", &a, &ra).ok();

            masq.del("masq-pod", &a).ok();
            let rules = if backend == "nftables" {
                sh("nft list ruleset")
            } else {
                sh("iptables -t nat -S")
            };
            assert!(
                !rules.contains(&pod_ip(&ra, 0)),
                "{backend}: DEL removed the rule: {rules}"
            );
            masq.del("masq-pod", &a).ok();
        });
    }
}

#[test]
fn dual_stack_pods_get_both_families() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net =
            Network::new("cni0", "unused", json!({ "isDefaultGateway": true })).with_ipam(json!({
                "type": "host-local",
                "ranges": [[{ "subnet": "10.4.0.0/24" }], [{ "subnet": "fd00:4::/64" }]]
            }));
        let (a, b) = (Netns::new(), Netns::new());
        let ra = net.add("a", &a);
        let rb = net.add("b", &b);
        assert_eq!(
            addresses(&container_link(&a, "eth0")),
            vec!["10.4.0.2/24", "fd00:4::2/64"]
        );
        assert_eq!(
            ra["routes"],
            json!([
                { "dst": "0.0.0.0/0", "gw": "10.4.0.1" },
                { "dst": "::/0", "gw": "fd00:4::1" }
            ])
        );
        assert!(a.sh_ok(&format!("ping -c1 -W2 {}", pod_ip(&rb, 1))));
        assert!(a.sh_ok("ping -c1 -W2 fd00:4::1"));
        assert!(a.sh("ip -6 route show default").contains("fd00:4::1"));
        net.check("a", &a, &ra).ok();
    });
}

/// kubelet-style IPAM configs often list `0.0.0.0/0` without a gateway next to
/// `isDefaultGateway`; the reference adds that default twice (the second time an identical
/// route, "file exists") and fails every ADD, leaving eth0 behind; we add one default.
#[test]
fn an_ipam_default_route_next_to_is_default_gateway_gives_one_default() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net =
            Network::new("cni0", "unused", json!({ "isDefaultGateway": true })).with_ipam(json!({
                "type": "host-local",
                "subnet": "10.14.0.0/24",
                "routes": [{ "dst": "0.0.0.0/0" }],
            }));
        let a = Netns::new();
        let r = net.add("a", &a);
        assert_eq!(r["routes"], json!([{ "dst": "0.0.0.0/0" }]));
        let defaults = a.sh("ip -4 route show default");
        assert_eq!(
            defaults.trim(),
            "default via 10.14.0.1 dev eth0",
            "{defaults}"
        );
        net.check("a", &a, &r).ok();
        net.del("a", &a).ok();
    });
}

#[test]
fn mtu_applies_to_a_new_bridge_and_both_veth_ends() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("br-mtu", "10.5.0.0/24", json!({ "mtu": 1400 }));
        let a = Netns::new();
        let r = net.add("a", &a);
        assert_eq!(link("br-mtu")["mtu"], 1400);
        assert_eq!(link(&host_veth(&r))["mtu"], 1400);
        assert_eq!(container_link(&a, "eth0")["mtu"], 1400);
    });
}

#[test]
fn mac_comes_from_each_source_in_precedence_order() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let cases = [
            (
                json!({}),
                "IgnoreUnknown=1;MAC=02:00:00:00:00:01",
                "02:00:00:00:00:01",
            ),
            (
                json!({ "args": { "cni": { "mac": "02:00:00:00:00:02" } } }),
                "IgnoreUnknown=1;MAC=02:00:00:00:00:01",
                "02:00:00:00:00:02",
            ),
            (
                json!({
                    "args": { "cni": { "mac": "02:00:00:00:00:02" } },
                    "runtimeConfig": { "mac": "02:00:00:00:00:03" }
                }),
                "",
                "02:00:00:00:00:03",
            ),
        ];
        for (i, (extra, args, mac)) in cases.into_iter().enumerate() {
            let net = Network::new("cni0", "10.6.0.0/24", extra);
            let ns = Netns::new();
            let id = format!("mac{i}");
            let r = net.call("ADD", &id, &ns).args(args).run(&net.bin).ok();
            assert_eq!(r["interfaces"][2]["mac"], mac);
            assert_eq!(container_link(&ns, "eth0")["address"], mac);
            net.call("DEL", &id, &ns).args(args).run(&net.bin).ok();
        }
    });
}

#[test]
fn hairpin_and_port_isolation_are_set_on_the_port() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new(
            "cni0",
            "10.7.0.0/24",
            json!({ "hairpinMode": true, "portIsolation": true }),
        );
        let a = Netns::new();
        let r = net.add("a", &a);
        let port = &link(&host_veth(&r))["linkinfo"]["info_slave_data"];
        assert_eq!(port["hairpin"], true, "{port}");
        assert_eq!(port["isolated"], true, "{port}");
    });
}

#[test]
fn vlan_and_trunk_configure_the_port() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new(
            "br-vlan",
            "10.8.0.0/24",
            json!({ "vlan": 100, "vlanTrunk": [{ "minID": 200, "maxID": 202 }] }),
        );
        let a = Netns::new();
        if !kernel_has_vlan_filtering() {
            // Kernels built without it (like this CI's): a clear error and nothing left over.
            eprintln!("kernel lacks CONFIG_BRIDGE_VLAN_FILTERING: checking the refusal path");
            let err = net.call("ADD", "a", &a).run(&net.bin).err(999);
            assert!(err["msg"].as_str().unwrap_or("").contains("VLAN"), "{err}");
            assert!(net.leases().is_empty() && links_named("veth").is_empty());
            return;
        }
        let r = net.add("a", &a);
        assert_eq!(
            link("br-vlan")["linkinfo"]["info_data"]["vlan_filtering"],
            1
        );
        let vlans = ip_json(&format!("bridge -j vlan show dev {}", host_veth(&r)));
        let entries = &vlans[0]["vlans"];
        let vids: Vec<u64> = entries
            .as_array()
            .map(|v| v.iter().filter_map(|e| e["vlan"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(vids, vec![100, 200, 201, 202], "{vlans}");
        let native = entries
            .as_array()
            .and_then(|v| v.iter().find(|e| e["vlan"] == 100))
            .expect("native vlan");
        let flags = native["flags"].to_string();
        assert!(
            flags.contains("PVID") && flags.contains("Egress Untagged"),
            "{flags}"
        );
    });
}

/// `vlan` + `isGateway` with our default (`preserveDefaultVlan` off): the gateway address is
/// on `<bridge>.<vid>`, not the bridge; its port and the pods' ports are in VLAN 100 only; pods
/// reach the gateway and each other; the result lists it; DEL leaves it for the next pod.
#[test]
fn vlan_gateway_interface_carries_the_gateway() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new(
            "br-vg",
            "10.9.0.0/24",
            json!({ "vlan": 100, "isGateway": true }),
        );
        let (a, b) = (Netns::new(), Netns::new());
        if !kernel_has_vlan_filtering() {
            let err = net.call("ADD", "a", &a).run(&net.bin).err(999);
            assert!(err["msg"].as_str().unwrap_or("").contains("VLAN"), "{err}");
            assert!(net.leases().is_empty() && links_named("veth").is_empty());
            assert!(links_named("br-vg.").is_empty());
            return;
        }
        let ra = net.add("a", &a);
        let gateway = &ra["interfaces"][3];
        assert_eq!(gateway["name"], "br-vg.100", "{ra}");
        assert!(gateway.get("sandbox").is_none(), "{ra}");
        let gw_link = link_addrs("br-vg.100");
        assert_eq!(addresses(&gw_link), ["10.9.0.1/24"]);
        assert_eq!(gw_link["address"], gateway["mac"]);
        assert!(addresses(&link_addrs("br-vg")).is_empty());
        // Before the next port: a bridge without an address takes its ports' lowest MAC, so a
        // later CHECK of the MAC in `ra` may fail (as in the reference).
        net.check("a", &a, &ra).ok();
        let rb = net.add("b", &b);
        assert_eq!(rb["interfaces"][3]["name"], "br-vg.100", "{rb}");
        assert!(a.sh_ok("ping -c1 -W5 10.9.0.1"));
        assert!(a.sh_ok(&format!("ping -c1 -W5 {}", pod_ip(&rb, 0))));
        // Every port of the bridge: the two pods' and the gateway's, VLAN 100 untagged only.
        let table = ip_json("bridge -j vlan show");
        let ports: Vec<&Value> = table
            .as_array()
            .map(|t| t.iter().filter(|p| p["ifname"] != "br-vg").collect())
            .unwrap_or_default();
        assert_eq!(ports.len(), 3, "{table}");
        for port in ports {
            let vids: Vec<&Value> = port["vlans"].as_array().into_iter().flatten().collect();
            assert_eq!(vids.len(), 1, "{table}");
            assert_eq!(vids[0]["vlan"], 100, "{table}");
            let flags = vids[0]["flags"].to_string();
            assert!(
                flags.contains("PVID") && flags.contains("Egress Untagged"),
                "{table}"
            );
        }
        net.del("a", &a).ok();
        net.del("b", &b).ok();
        assert_eq!(addresses(&link_addrs("br-vg.100")), ["10.9.0.1/24"]);
        assert_eq!(
            links_named("veth").len(),
            1,
            "only the gateway's port is left"
        );
    });
}

fn link_addrs(name: &str) -> Value {
    ip_json(&format!("ip -d -j addr show dev {name}"))[0].clone()
}

#[test]
fn l2_only_and_disabled_container_interface() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let l2 = Network::new("br-l2", "unused", json!({})).with_ipam(json!({}));
        let a = Netns::new();
        let r = l2.add("a", &a);
        assert!(r
            .get("ips")
            .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty())));
        let eth0 = container_link(&a, "eth0");
        assert!(addresses(&eth0).is_empty());
        assert!(eth0["flags"].to_string().contains("\"UP\""), "{eth0}");
        l2.check("a", &a, &r).ok();

        let off = Network::new(
            "br-l2",
            "unused",
            json!({ "disableContainerInterface": true }),
        )
        .with_ipam(json!({}));
        let b = Netns::new();
        off.add("b", &b);
        let eth0 = container_link(&b, "eth0");
        assert!(!eth0["flags"].to_string().contains("\"UP\""), "{eth0}");
    });
}

#[test]
fn macspoofchk_drops_frames_with_a_foreign_source_mac() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        // isGateway pins the bridge MAC, which CHECK compares with the result.
        let net = Network::new(
            "cni0",
            "10.14.0.0/24",
            json!({ "macspoofchk": true, "isGateway": true }),
        );
        let (a, b) = (Netns::new(), Netns::new());
        let ra = net.add("a", &a);
        let rb = net.add("b", &b);
        let ip_b = pod_ip(&rb, 0);
        assert!(a.sh_ok(&format!("ping -c1 -W2 {ip_b}")));
        let rules = sh("nft list table bridge cni_macspoof_rs");
        assert!(rules.contains(&host_veth(&ra)), "{rules}");
        assert!(rules.contains("macspoofchk-a-eth0"), "{rules}");
        net.check("a", &a, &ra).ok();

        // The pod takes another MAC: its frames no longer cross the bridge.
        a.sh_ok("ip link set eth0 address 0a:58:00:00:00:99");
        a.sh("ip neigh flush all");
        b.sh("ip neigh flush all");
        assert!(!a.sh_ok(&format!("ping -c1 -W1 {ip_b}")));
        let rules = sh("nft list table bridge cni_macspoof_rs");
        let rule_a = rules
            .lines()
            .find(|l| l.contains("macspoofchk-a-eth0"))
            .unwrap_or_default();
        assert!(!rule_a.contains("packets 0 "), "drops are counted: {rules}");

        // Its own MAC back: traffic flows again.
        let mac = ra["interfaces"][2]["mac"].as_str().unwrap_or_default();
        a.sh_ok(&format!("ip link set eth0 address {mac}"));
        assert!(a.sh_ok(&format!("ping -c1 -W2 {ip_b}")));

        // DEL removes only that attachment's check; CHECK of a removed check names it.
        net.del("a", &a).ok();
        let rules = sh("nft list table bridge cni_macspoof_rs");
        assert!(!rules.contains("macspoofchk-a-eth0"), "{rules}");
        assert!(rules.contains("macspoofchk-b-eth0"), "{rules}");
        sh("nft flush chain bridge cni_macspoof_rs prerouting");
        let err = net.check("b", &b, &rb).err(999);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("macspoofchk"),
            "{err}"
        );
        net.del("b", &b).ok();
        net.del("b", &b).ok();
    });
}

#[test]
fn check_passes_then_names_what_drifted() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("cni0", "10.9.0.0/24", json!({ "isDefaultGateway": true }));
        let a = Netns::new();
        let r = net.add("a", &a);
        net.check("a", &a, &r).ok();
        a.sh("ip route del default");
        let err = net.check("a", &a, &r).err(999);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("0.0.0.0/0"),
            "{err}"
        );

        let b = Netns::new();
        let rb = net.add("b", &b);
        b.sh("ip addr del 10.9.0.3/24 dev eth0");
        let err = net.check("b", &b, &rb).err(999);
        assert!(
            err["msg"].as_str().unwrap_or("").contains("10.9.0.3"),
            "{err}"
        );
    });
}

#[test]
fn del_is_idempotent_and_survives_a_deleted_netns() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("cni0", "10.10.0.0/24", json!({ "ipMasq": true }));
        let mut a = Netns::new();
        let r = net.add("a", &a);
        assert_eq!(net.leases(), vec!["10.10.0.2"]);
        net.del("a", &a).ok();
        net.del("a", &a).ok();
        assert!(net.leases().is_empty());

        let mut b = Netns::new();
        net.add("b", &b);
        b.delete();
        net.del("b", &b).ok();
        assert!(
            net.leases().is_empty(),
            "lease released after the netns is gone"
        );
        assert!(!sh("nft list ruleset").contains(&pod_ip(&r, 0)));
        // An empty CNI_NETNS (containerd's later DELs) also succeeds.
        net.call("DEL", "b", &a).netns("").run(&net.bin).ok();
        a.delete();
    });
}

#[test]
fn a_failed_add_after_ipam_rolls_everything_back() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        // The bridge already has another IPv4 address and forceAddress is off: ADD fails at
        // the gateway step, after the veth and the lease exist.
        sh("ip link add cni0 type bridge && ip addr add 192.168.77.1/24 dev cni0");
        let net = Network::new(
            "cni0",
            "10.11.0.0/24",
            json!({ "isGateway": true, "ipMasq": true }),
        );
        let a = Netns::new();
        let reply = net.call("ADD", "a", &a).run(&net.bin);
        let err = reply.err(7);
        assert!(
            err["msg"]
                .as_str()
                .unwrap_or("")
                .contains("already has an IP address"),
            "{err}"
        );
        assert!(links_named("veth").is_empty(), "host veth rolled back");
        assert!(
            !a.sh("ip -j link show").contains("eth0"),
            "container veth rolled back"
        );
        assert!(net.leases().is_empty(), "lease rolled back");
        // Nothing stops a retry once the conflict is gone.
        let net = Network::new(
            "cni0",
            "10.11.0.0/24",
            json!({ "isGateway": true, "forceAddress": true }),
        );
        net.add("a", &a);
        assert_eq!(
            addresses(&ip_json("ip -j addr show dev cni0")[0]),
            vec!["10.11.0.1/24"]
        );
    });
}

#[test]
fn a_non_bridge_with_the_bridge_name_is_refused() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        sh("ip link add cni0 type veth peer name cni0-peer");
        let net = Network::new("cni0", "10.12.0.0/24", json!({}));
        let a = Netns::new();
        let err = net.call("ADD", "a", &a).run(&net.bin).err(7);
        assert!(
            err["msg"]
                .as_str()
                .unwrap_or("")
                .contains("is not a bridge"),
            "{err}"
        );
        assert!(net.leases().is_empty());
    });
}

#[test]
fn bad_netns_and_bad_config_are_refused_with_codes() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let net = Network::new("cni0", "10.13.0.0/24", json!({}));
        let a = Netns::new();
        let bin = &net.bin;
        net.call("ADD", "a", &a)
            .netns("/proc/no-such/ns/net")
            .run(bin)
            .err(4);
        net.call("ADD", "a", &a)
            .netns("/etc/hostname")
            .run(bin)
            .err(4);
        assert!(net.leases().is_empty());
        for bad in [
            json!({ "vlan": 5000 }),
            json!({ "hairpinMode": true, "promiscMode": true }),
        ] {
            let mut conf = net.conf.clone();
            if let (Some(c), Some(e)) = (conf.as_object_mut(), bad.as_object()) {
                c.extend(e.clone());
            }
            Call::new("ADD", "a", conf.to_string())
                .netns(&a.path_str())
                .run(bin)
                .err(7);
        }
        assert!(
            !sh_ok("ip link show cni0"),
            "nothing created for a refused config"
        );
    });
}

#[test]
fn status_and_gc_delegate_to_ipam_and_clean_masquerade() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let mut net = Network::new("cni0", "10.14.0.0/30", json!({ "ipMasq": true }));
        net.conf["cniVersion"] = json!("1.1.0");
        let status = |net: &Network| Call::new("STATUS", "", net.conf.to_string()).run(&net.bin);
        status(&net).ok();
        let a = Netns::new();
        let r = net.add("a", &a);
        // The /30 has one address and it is taken: full is not unusable (ADD reports it).
        status(&net).ok();
        let mut conf = net.conf.clone();
        conf["cni.dev/valid-attachments"] = json!([]);
        Call::new("GC", "", conf.to_string()).run(&net.bin).ok();
        assert!(net.leases().is_empty());
        assert!(!sh("nft list ruleset").contains(&pod_ip(&r, 0)));
        status(&net).ok();
    });
}

/// Every object key's first letter upper-cased, as a Go struct without json tags marshals it.
fn go_cased(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let mut k = k.clone();
                    k[..1].make_ascii_uppercase();
                    (k, go_cased(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(go_cased).collect()),
        other => other.clone(),
    }
}

/// Keys as Go reads them: Go-cased and repeated keys in the config (the last variant wins), a
/// Go-cased prevResult for CHECK.
#[test]
fn go_cased_and_repeated_keys_are_read_as_go_reads_them() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","Name":"{NET}","Type":"bridge","Bridge":"brgo",
                "isgateway":false,"IsGateway":true,"ipMasq":false,"IPMasq":true,"MTU":1400,
                "IPAM":{{"Type":"host-local","Subnet":"10.9.0.0/24","DataDir":{}}}}}"#,
            json!(data.path())
        );
        let ns = Netns::new();
        let call = |command: &str, stdin: &str| {
            Call::new(command, "go", stdin)
                .netns(&ns.path_str())
                .run(&our_plugin("bridge"))
        };
        let result = call("ADD", &conf).ok();
        let bridge = ip_json("ip -j addr show dev brgo")[0].clone();
        assert_eq!(addresses(&bridge), vec!["10.9.0.1/24"]);
        assert_eq!(container_link(&ns, "eth0")["mtu"], 1400);
        let rules = sh("nft list ruleset; iptables -t nat -S");
        assert!(rules.contains(&pod_ip(&result, 0)), "masquerade: {rules}");

        let prev = go_cased(&result);
        assert!(prev.get("Ips").is_some(), "{prev}");
        let with_prev = |prev: &Value| conf.replacen('{', &format!("{{\"PrevResult\":{prev},"), 1);
        call("CHECK", &with_prev(&prev)).ok();
        // The Go-cased address is really read: a wrong one fails CHECK.
        let mut wrong = prev.clone();
        wrong["Ips"][0]["Address"] = json!("10.9.0.77/24");
        assert_ne!(call("CHECK", &with_prev(&wrong)).status, 0);

        call("DEL", &conf).ok();
        assert!(lease_names(&data.path().join(NET)).is_empty());
        let rules = sh("nft list ruleset; iptables -t nat -S");
        assert!(!rules.contains(&pod_ip(&result, 0)), "{rules}");
    });
}
