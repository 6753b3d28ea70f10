//! Every network configuration in `conf-examples/` run end to end through the chain runner,
//! each in its own sandbox: ADD, the pod has its addresses and reaches its gateway, CHECK, DEL
//! (twice), and nothing is left behind. Every file needs a companion `<name>.md` that explains
//! each key it uses. A plugin type we do not build makes its example fail, never skip.

use cni_suite_tests::chain::{Chain, NetworkList};
use cni_suite_tests::sandbox::{in_sandbox, kernel_has_vlan_filtering, privileged, sh, Netns};
use cni_suite_tests::{lease_names, link_addresses, our_bin_dir, our_plugin};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf-examples")
}

/// The `.conf` and `.conflist` files, sorted.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("conf-examples/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "conf" || x == "conflist")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in conf-examples/");
    files
}

fn companion(path: &Path) -> PathBuf {
    path.with_extension("md")
}

/// Every object key in `v`, at any depth.
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                out.insert(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn every_example_parses_and_has_a_companion_md_explaining_each_key() {
    for path in examples() {
        let list = NetworkList::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].contains(&list.cni_version.as_str()),
            "{}: unexpected cniVersion {}",
            path.display(),
            list.cni_version
        );
        let md_path = companion(&path);
        let md = std::fs::read_to_string(&md_path)
            .unwrap_or_else(|e| panic!("{} needs {}: {e}", path.display(), md_path.display()));
        let text: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut used = BTreeSet::new();
        keys(&text, &mut used);
        let missing: Vec<&String> = used
            .iter()
            .filter(|k| !md.contains(&format!("`{k}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "{} does not explain {missing:?}",
            md_path.display()
        );
    }
}

/// The example with the test-irrelevant paths moved into `data`: host-local's `dataDir`
/// (always set, so the machine's /var/lib/cni is never written).
fn sandboxed(list: &NetworkList, data: &Path) -> NetworkList {
    let mut list = list.clone();
    for plugin in &mut list.plugins {
        if let Some(ipam) = plugin.get_mut("ipam").and_then(Value::as_object_mut) {
            if ipam.get("type") == Some(&json!("host-local")) {
                ipam.insert("dataDir".into(), json!(data));
            }
        }
    }
    list
}

fn bridge_conf(list: &NetworkList) -> Option<&Value> {
    list.plugins.iter().find(|p| p["type"] == "bridge")
}

fn has_gateway(list: &NetworkList) -> bool {
    bridge_conf(list).is_some_and(|b| b["isGateway"] == true || b["isDefaultGateway"] == true)
}

fn uses_vlan(list: &NetworkList) -> bool {
    bridge_conf(list).is_some_and(|b| b.get("vlan").is_some() || b.get("vlanTrunk").is_some())
}

fn veths() -> Vec<String> {
    let v: Value = serde_json::from_str(&sh("ip -j link show type veth")).unwrap_or(json!([]));
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Addresses (`a.b.c.d/n`) on `dev` inside `ns`.
fn addresses_in(ns: &Netns, dev: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&ns.sh(&format!("ip -j addr show dev {dev}"))).unwrap_or(json!([]));
    link_addresses(&v[0])
}

/// Asserts each address of the result sits on its interface in the pod, and returns the
/// gateways the result names.
fn assert_addresses(result: &Value, ns: &Netns, name: &str) -> Vec<String> {
    let mut gateways = Vec::new();
    for ip in result["ips"].as_array().into_iter().flatten() {
        let address = ip["address"].as_str().unwrap_or_default();
        let iface = ip["interface"]
            .as_u64()
            .map(|i| &result["interfaces"][i as usize]);
        let dev = iface.and_then(|i| i["name"].as_str()).unwrap_or("eth0");
        assert!(
            addresses_in(ns, dev).iter().any(|a| a == address),
            "{name}: {address} is not on {dev} in the pod: {result}"
        );
        if let Some(gw) = ip["gateway"].as_str() {
            gateways.push(gw.to_string());
        }
    }
    gateways
}

/// One example through ADD, CHECK, DEL in a fresh sandbox.
fn run_example(path: &Path) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let original = NetworkList::load(path).unwrap_or_else(|e| panic!("{e}"));
    // Resolve every plugin first: one we do not build fails the example here, clearly.
    for kind in original.types() {
        our_plugin(kind);
    }
    in_sandbox(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let list = sandboxed(&original, data.path());
        let ns = Netns::new();
        let locate = |kind: &str| our_plugin(kind);
        let chain = Chain {
            list: &list,
            container_id: "confexample1".into(),
            netns: ns.path_str(),
            ifname: if list.types() == ["loopback"] {
                "lo"
            } else {
                "eth0"
            }
            .into(),
            runtime_config: json!({
                "portMappings": [{ "hostPort": 18080, "containerPort": 80, "protocol": "tcp" }],
            }),
            cni_path: our_bin_dir().display().to_string(),
            locate: &locate,
        };
        if uses_vlan(&list) && !kernel_has_vlan_filtering() {
            // This kernel lacks CONFIG_BRIDGE_VLAN_FILTERING: a clear refusal, nothing left.
            let err = chain
                .add()
                .expect_err("VLAN config on a kernel without VLAN filtering");
            let reply = err.reply.json();
            assert!(
                reply["msg"].as_str().unwrap_or("").contains("VLAN"),
                "{name}: {reply}"
            );
            assert!(veths().is_empty(), "{name}: veths left: {:?}", veths());
            assert!(lease_names(&data.path().join(&list.name)).is_empty());
            return;
        }
        let result = chain.add().unwrap_or_else(|e| panic!("{name}: ADD: {e}"));
        let gateways = assert_addresses(&result, &ns, &name);
        if bridge_conf(&list).is_some() {
            assert!(
                ns.sh_ok("ip link show dev eth0"),
                "{name}: no eth0 in the pod"
            );
        }
        if list.types() == ["loopback"] {
            assert!(ns.sh_ok("ping -c1 -W2 127.0.0.1"), "{name}: lo unusable");
        }
        if has_gateway(&list) {
            assert!(!gateways.is_empty(), "{name}: no gateway in {result}");
            for gw in &gateways {
                assert!(
                    ns.sh_ok(&format!("ping -c1 -W2 {gw}")),
                    "{name}: cannot ping {gw}"
                );
            }
        }
        if list.at_least("0.4.0") {
            chain
                .check(&result)
                .unwrap_or_else(|e| panic!("{name}: CHECK: {e}"));
        }
        chain
            .del(Some(&result))
            .unwrap_or_else(|e| panic!("{name}: DEL: {e}"));
        chain
            .del(Some(&result))
            .unwrap_or_else(|e| panic!("{name}: second DEL: {e}"));
        assert!(veths().is_empty(), "{name}: veths left: {:?}", veths());
        let leases = lease_names(&data.path().join(&list.name));
        assert!(leases.is_empty(), "{name}: leases left: {leases:?}");
    });
}

#[test]
fn every_example_adds_checks_and_deletes_in_a_sandbox() {
    if !privileged() {
        return;
    }
    let mut failed = Vec::new();
    for path in examples() {
        if let Err(panic) = std::panic::catch_unwind(|| run_example(&path)) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(failed.is_empty(), "examples failed:\n{}", failed.join("\n"));
}
