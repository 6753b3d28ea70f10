//! Request generation: configs drawn from the reference's schema for each plugin, Go-json
//! variations, environments valid and not, and the sequences a runtime sends.
//!
//! Paths that differ per side are placeholders (`@DATA@`, `@NETNS@`) that each side fills in.

use super::rng::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

pub const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];
pub const DATA: &str = "@DATA@";
pub const NETNS: &str = "@NETNS@";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plugin {
    Bridge,
    HostLocal,
    Portmap,
    Loopback,
}

impl Plugin {
    pub fn binary(self) -> &'static str {
        match self {
            Plugin::Bridge => "bridge",
            Plugin::HostLocal => "host-local",
            Plugin::Portmap => "portmap",
            Plugin::Loopback => "loopback",
        }
    }
}

/// What CNI_NETNS names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsKind {
    /// The case's container namespace.
    Container,
    /// A path that does not exist.
    Missing,
    /// The empty string.
    Empty,
    /// A file that is not a namespace.
    NotNetns,
    /// The plugin's own namespace (the sandbox's host).
    Own,
}

impl NetnsKind {
    pub fn path(self, container: &str) -> String {
        match self {
            NetnsKind::Container => container.to_string(),
            NetnsKind::Missing => "/var/run/netns/cni-fuzz-missing".to_string(),
            NetnsKind::Empty => String::new(),
            NetnsKind::NotNetns => "/proc/self/cmdline".to_string(),
            NetnsKind::Own => "/proc/self/ns/net".to_string(),
        }
    }
}

/// One plugin execution.
#[derive(Clone, Debug)]
pub struct Step {
    pub verb: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: NetnsKind,
    pub args: String,
    /// The stdin text, with placeholders; may hold a duplicated key, so it is not a `Value`.
    pub stdin: String,
    /// The config as a value (before the textual variations), for allow-list predicates.
    pub config: Value,
    /// Insert this side's last successful ADD result (same ifname) as `prevResult`.
    pub with_prev: bool,
    /// Variations applied, for classification and the allow-list ("key-case", "dup-key", …).
    pub tags: BTreeSet<String>,
}

impl Step {
    pub fn version(&self) -> String {
        self.config
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    pub fn has(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tags.iter().any(|t| t.starts_with(prefix))
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub index: u64,
    pub plugin: Plugin,
    pub shape: &'static str,
    /// Shell commands run in both host sandboxes before the steps (identical on both sides).
    pub setup: Vec<String>,
    pub steps: Vec<Step>,
}

const SUBNETS4: [&str; 4] = [
    "10.88.0.0/24",
    "10.89.0.0/28",
    "10.90.0.0/30",
    "172.30.0.0/16",
];
const SUBNETS6: [&str; 2] = ["fd00:88::/64", "fd00:89::/120"];

fn ranges_for(r: &mut Rng, subnet: &str) -> Value {
    let mut range = json!({ "subnet": subnet });
    if subnet == "10.88.0.0/24" {
        if r.chance(30) {
            range["rangeStart"] = json!(r.pick(&["10.88.0.10", "10.88.0.250", "10.88.0.0"]));
        }
        if r.chance(30) {
            range["rangeEnd"] = json!(r.pick(&["10.88.0.20", "10.88.0.254", "10.88.0.5"]));
        }
        if r.chance(30) {
            range["gateway"] = json!(r.pick(&["10.88.0.1", "10.88.0.254", "10.99.0.1"]));
        }
    }
    if subnet == "fd00:88::/64" && r.chance(30) {
        range["gateway"] = json!("fd00:88::1");
    }
    range
}

fn host_local_ipam(r: &mut Rng) -> Value {
    let mut ipam = json!({ "type": "host-local", "dataDir": DATA });
    match r.below(5) {
        0 | 1 => {
            let s = *r.pick(&SUBNETS4);
            let range = ranges_for(r, s);
            if let (Some(o), Some(src)) = (ipam.as_object_mut(), range.as_object()) {
                o.extend(src.clone());
            }
        }
        2 => {
            let s = *r.pick(&SUBNETS4);
            let mut set = vec![ranges_for(r, s)];
            if r.chance(25) {
                set.push(json!({ "subnet": "10.91.0.0/24" }));
            }
            ipam["ranges"] = json!([set]);
        }
        3 => {
            let s4 = *r.pick(&SUBNETS4);
            let s6 = *r.pick(&SUBNETS6);
            ipam["ranges"] = json!([[ranges_for(r, s4)], [ranges_for(r, s6)]]);
        }
        _ => {
            let s6 = *r.pick(&SUBNETS6);
            ipam["ranges"] = json!([[ranges_for(r, s6)]]);
        }
    }
    if r.chance(35) {
        let mut routes = Vec::new();
        if r.chance(60) {
            routes.push(json!({ "dst": "0.0.0.0/0" }));
        }
        if r.chance(40) {
            routes.push(
                json!({ "dst": "192.168.0.0/16", "gw": r.pick(&["10.88.0.7", "10.89.0.1"]) }),
            );
        }
        if r.chance(20) {
            routes.push(json!({ "dst": "::/0" }));
        }
        if r.chance(10) {
            routes.push(json!({ "dst": "not-a-cidr" }));
        }
        ipam["routes"] = json!(routes);
    }
    if r.chance(5) {
        ipam["resolvConf"] = json!("/nonexistent/resolv.conf");
    }
    ipam
}

fn requested_ips(r: &mut Rng) -> Value {
    json!([r.pick(&[
        "10.88.0.42",
        "10.88.0.42/24",
        "fd00:88::42/64",
        "10.77.0.1",
        "bogus"
    ])])
}

fn bridge_config(r: &mut Rng, version: &str, name: &str, tags: &mut BTreeSet<String>) -> Value {
    let mut c = json!({ "cniVersion": version, "name": name, "type": "bridge" });
    if r.chance(80) {
        c["bridge"] = json!(r.pick(&["cni0", "fzbr0", "br-fuzz1"]));
    }
    for key in [
        "isGateway",
        "isDefaultGateway",
        "forceAddress",
        "ipMasq",
        "hairpinMode",
        "promiscMode",
        "enabledad",
        "macspoofchk",
    ] {
        let p = if key == "macspoofchk" || key == "enabledad" {
            8
        } else {
            30
        };
        if r.chance(p) {
            c[key] = json!(r.chance(75));
        }
    }
    if c.get("ipMasq") == Some(&json!(true)) || r.chance(10) {
        match r.below(10) {
            0..=5 => c["ipMasqBackend"] = json!("iptables"),
            6 => c["ipMasqBackend"] = json!("nftables"),
            _ => {}
        }
    }
    if r.chance(20) {
        c["mtu"] = json!(r.pick(&[1400, 1500, 9000, 0, 70000]));
    }
    if r.chance(4) {
        c["vlan"] = json!(r.pick(&[0, 100, 5000]));
    }
    match r.below(20) {
        0 => {}
        1 => c["ipam"] = json!({}),
        2 => c["ipam"] = json!({ "type": "" }),
        _ => c["ipam"] = host_local_ipam(r),
    }
    if r.chance(10) {
        c["capabilities"] = json!({ "mac": true, "ips": true });
        let mut rc = json!({});
        if r.chance(50) {
            rc["mac"] = json!(r.pick(&["0a:58:0a:58:00:2a", "not-a-mac", "01:00:5e:00:00:01"]));
        }
        if r.chance(50) {
            rc["ips"] = requested_ips(r);
        }
        c["runtimeConfig"] = rc;
        tags.insert("runtimeConfig".into());
    }
    if r.chance(8) {
        c["args"] = json!({ "cni": { "ips": requested_ips(r), "mac": "0a:58:0a:58:00:2b" } });
        tags.insert("args".into());
    }
    c
}

/// host-local is run on its own, the way a main plugin delegates to it.
fn host_local_config(r: &mut Rng, version: &str, name: &str, tags: &mut BTreeSet<String>) -> Value {
    let mut c = json!({ "cniVersion": version, "name": name, "type": "bridge", "ipam": host_local_ipam(r) });
    if r.chance(15) {
        c["runtimeConfig"] = json!({ "ips": requested_ips(r) });
        tags.insert("runtimeConfig".into());
    }
    if r.chance(10) {
        c["runtimeConfig"] =
            json!({ "ipRanges": [[{ "subnet": r.pick(&["10.92.0.0/24", "fd00:92::/120"]) }]] });
        tags.insert("runtimeConfig".into());
    }
    if r.chance(8) {
        c["args"] = json!({ "cni": { "ips": requested_ips(r) } });
        tags.insert("args".into());
    }
    c
}

/// A prevResult of `version`'s shape, naming the host bridge `cni0` made by the case setup.
fn prev_result(r: &mut Rng, version: &str) -> Value {
    let old = version.starts_with("0.1") || version.starts_with("0.2");
    if old {
        return json!({ "cniVersion": version, "ip4": { "ip": "10.88.0.2/24", "gateway": "10.88.0.1" } });
    }
    let mut v = json!({
        "cniVersion": version,
        "interfaces": [ { "name": "cni0" }, { "name": "eth0", "sandbox": NETNS } ],
        "ips": [ { "address": "10.88.0.2/24", "gateway": "10.88.0.1", "interface": 1 } ],
    });
    if r.chance(40) {
        if let Some(a) = v["ips"].as_array_mut() {
            a.push(json!({ "address": "fd00:88::2/64", "gateway": "fd00:88::1", "interface": 1 }));
        }
    }
    if version.starts_with("0.") {
        if let Some(ips) = v["ips"].as_array_mut() {
            for ip in ips {
                let six = ip["address"].as_str().is_some_and(|a| a.contains(':'));
                ip["version"] = json!(if six { "6" } else { "4" });
            }
        }
    }
    if r.chance(20) {
        v["dns"] = json!({ "nameservers": ["10.88.0.1"] });
    }
    v
}

fn port_mapping(r: &mut Rng) -> Value {
    let mut m = json!({
        "hostPort": r.pick(&[8080, 8081, 53, 0, 70000]),
        "containerPort": r.pick(&[80, 53, 8080]),
        "protocol": r.pick(&["tcp", "udp", "sctp", "TCP", "icmp"]),
    });
    if r.chance(20) {
        m["hostIP"] = json!(r.pick(&["127.0.0.1", "10.88.0.1", "::1", "bogus"]));
    }
    m
}

fn portmap_config(r: &mut Rng, version: &str, name: &str, tags: &mut BTreeSet<String>) -> Value {
    let mut c = json!({ "cniVersion": version, "name": name, "type": "portmap" });
    if r.chance(90) {
        c["capabilities"] = json!({ "portMappings": true });
    }
    if r.chance(90) {
        let n = 1 + r.below(3);
        let maps: Vec<Value> = (0..n).map(|_| port_mapping(r)).collect();
        c["runtimeConfig"] = json!({ "portMappings": maps });
        tags.insert("runtimeConfig".into());
    }
    if r.chance(20) {
        c["snat"] = json!(r.chance(50));
    }
    if r.chance(10) {
        c["markMasqBit"] = json!(r.pick(&[13, 0, 31, 40]));
    }
    if r.chance(8) {
        c["externalSetMarkChain"] = json!(r.pick(&["KUBE-MARK-MASQ", "CNI-FUZZ-MARK"]));
    }
    if r.chance(8) {
        c["conditionsV4"] = json!(["!", "-s", "192.0.2.9"]);
    }
    match r.below(10) {
        0..=6 => c["backend"] = json!("iptables"),
        7 => c["backend"] = json!("nftables"),
        _ => {}
    }
    if r.chance(92) {
        c["prevResult"] = prev_result(r, version);
        tags.insert("prevResult".into());
    }
    c
}

fn loopback_config(r: &mut Rng, version: &str, name: &str, tags: &mut BTreeSet<String>) -> Value {
    let mut c = json!({ "cniVersion": version, "name": name, "type": "loopback" });
    if r.chance(15) {
        c["prevResult"] = prev_result(r, version);
        tags.insert("prevResult".into());
    }
    c
}

fn config(
    r: &mut Rng,
    plugin: Plugin,
    version: &str,
    name: &str,
    tags: &mut BTreeSet<String>,
) -> Value {
    match plugin {
        Plugin::Bridge => bridge_config(r, version, name, tags),
        Plugin::HostLocal => host_local_config(r, version, name, tags),
        Plugin::Portmap => portmap_config(r, version, name, tags),
        Plugin::Loopback => loopback_config(r, version, name, tags),
    }
}

/// Every object inside `v` with the path of keys leading to it ("" for the top).
fn objects(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            out.push(path.to_string());
            for (k, x) in o {
                objects(x, &format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                objects(x, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn object_at<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = match cur {
            Value::Object(o) => o.get_mut(part)?,
            Value::Array(a) => a.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    cur.as_object_mut()
}

/// Where in the config a variation landed: "top", "ipam", "runtimeConfig", "prevResult", "args".
fn region(path: &str) -> &'static str {
    let first = path.split('/').nth(1).unwrap_or("");
    match first {
        "" => "top",
        "ipam" => "ipam",
        "runtimeConfig" => "runtimeConfig",
        "prevResult" => "prevResult",
        "args" => "args",
        _ => "other",
    }
}

/// Changes the case of one letter or all letters of `key` (Go matches it anyway).
fn recased(r: &mut Rng, key: &str) -> String {
    if r.chance(50) {
        let mut chars: Vec<char> = key.chars().collect();
        if let Some(c) = chars.first_mut() {
            *c = if c.is_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
        }
        chars.into_iter().collect()
    } else {
        key.to_uppercase()
    }
}

/// Go-json variations on the value: key case, unknown keys, null, numbers vs strings.
fn vary(r: &mut Rng, c: &mut Value, tags: &mut BTreeSet<String>) {
    let mut paths = Vec::new();
    objects(c, "", &mut paths);
    let path = r.pick(&paths).clone();
    let at = region(&path);
    let Some(obj) = object_at(c, &path) else {
        return;
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    if keys.is_empty() {
        return;
    }
    let key = r.pick(&keys).clone();
    match r.below(4) {
        0 => {
            let new = recased(r, &key);
            if new != key && !obj.contains_key(&new) {
                if let Some(v) = obj.remove(&key) {
                    obj.insert(new, v);
                    tags.insert(format!("key-case:{at}"));
                    tags.insert(format!("key-case-key:{key}"));
                }
            }
        }
        1 => {
            obj.insert(
                r.pick(&["Documentation", "x-unknown", "cni.dev/unknown"])
                    .to_string(),
                json!({"a": [1, "b"]}),
            );
            tags.insert(format!("unknown-key:{at}"));
        }
        2 => {
            obj.insert(key.clone(), Value::Null);
            tags.insert(format!("null:{at}"));
            tags.insert(format!("null-key:{key}"));
        }
        _ => {
            if let Some(v) = obj.get_mut(&key) {
                let new = match v {
                    Value::Number(n) => Some(json!(n.to_string())),
                    Value::Bool(b) => Some(json!(b.to_string())),
                    Value::String(s) => s.parse::<i64>().ok().map(|n| json!(n)),
                    _ => None,
                };
                if let Some(n) = new {
                    *v = n;
                    tags.insert(format!("retyped:{at}"));
                    tags.insert(format!("retyped-key:{key}"));
                }
            }
        }
    }
}

/// The config as text; with `dup`, one top-level key is given twice (the other value first
/// or last: Go keeps the last).
fn render(r: &mut Rng, c: &Value, dup: bool, tags: &mut BTreeSet<String>) -> String {
    let Some(o) = c.as_object() else {
        return c.to_string();
    };
    let mut parts: Vec<String> = o
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
        .collect();
    if dup && !o.is_empty() {
        let keys: Vec<&String> = o.keys().collect();
        let key = (*r.pick(&keys)).clone();
        let other = match &o[&key] {
            Value::Bool(b) => json!(!b),
            Value::String(_) => json!("dup-value"),
            Value::Number(_) => json!(1),
            _ => json!(null),
        };
        let text = format!("{}:{}", Value::String(key.clone()), other);
        if r.chance(50) {
            parts.insert(0, text);
            tags.insert("dup-key:real-last".into());
        } else {
            parts.push(text);
            tags.insert("dup-key:other-last".into());
        }
        tags.insert(format!("dup-key-key:{key}"));
    }
    format!("{{{}}}", parts.join(","))
}

fn step(
    verb: &str,
    id: &str,
    ifname: &str,
    text: String,
    config: Value,
    tags: BTreeSet<String>,
) -> Step {
    Step {
        verb: verb.to_string(),
        container_id: id.to_string(),
        ifname: ifname.to_string(),
        netns: NetnsKind::Container,
        args: String::new(),
        stdin: text,
        config,
        with_prev: false,
        tags,
    }
}

/// A config with its variations, as (text, value, tags).
fn varied_config(
    r: &mut Rng,
    plugin: Plugin,
    version: &str,
    name: &str,
) -> (String, Value, BTreeSet<String>) {
    let mut tags = BTreeSet::new();
    let mut c = config(r, plugin, version, name, &mut tags);
    let n = if r.chance(30) { 1 + r.below(2) } else { 0 };
    for _ in 0..n {
        vary(r, &mut c, &mut tags);
    }
    let dup = r.chance(8);
    let text = render(r, &c, dup, &mut tags);
    (text, c, tags)
}

/// Bends one thing in the environment of `s`.
fn bad_env(r: &mut Rng, s: &mut Step) {
    match r.below(12) {
        0 => {
            s.args = r
                .pick(&[
                    "garbage",
                    "FOO=bar",
                    "K8S_POD_NAME=p;K8S_POD_NAMESPACE=n",
                    "=x",
                    "A=b=c",
                ])
                .to_string();
            s.tags.insert("env:args".into());
        }
        1 => {
            s.args = r
                .pick(&[
                    "IgnoreUnknown=1;FOO=bar",
                    "IgnoreUnknown=true;K8S_POD_NAME=p",
                    "IP=10.88.0.50",
                    "IP=10.88.0.50;IgnoreUnknown=1",
                    "MAC=0a:58:0a:58:00:09",
                    "IP=bogus",
                ])
                .to_string();
            s.tags.insert("env:args-valid".into());
        }
        2 => {
            s.ifname = r
                .pick(&["", "0123456789abcdefg", "a/b", "eth 0", ".", "lo"])
                .to_string();
            s.tags.insert("env:ifname".into());
        }
        3 => {
            s.container_id = r
                .pick(&["", "bad id!", "a..b", "-x", &"c".repeat(300)])
                .to_string();
            s.tags.insert("env:container-id".into());
        }
        4 => {
            s.netns = NetnsKind::Missing;
            s.tags.insert("netns:missing".into());
        }
        5 => {
            s.netns = NetnsKind::Empty;
            s.tags.insert("netns:empty".into());
        }
        6 => {
            s.netns = NetnsKind::NotNetns;
            s.tags.insert("netns:not-netns".into());
        }
        7 => {
            s.netns = NetnsKind::Own;
            s.tags.insert("netns:own".into());
        }
        8 => {
            s.verb = r
                .pick(&["VERSION", "GC", "STATUS", "FOO", "", "add"])
                .to_string();
            s.tags.insert("env:verb".into());
        }
        9 => {
            s.stdin = r
                .pick(&["", "{", "[]", "null", "{\"cniVersion\":\"1.0.0\"}"])
                .to_string();
            s.tags.insert("stdin:broken".into());
        }
        10 => {
            s.stdin = s.stdin.replacen(
                r.pick(&["\"cniVersion\":\"", "\"name\":\""]),
                "\"cniVersion\":\"9.9.9\",\"x\":\"",
                1,
            );
            s.tags.insert("stdin:edited".into());
            // Replacing "name" leaves cniVersion given twice.
            s.tags.insert("dup-key:edited".into());
        }
        _ => {
            // A config key made to hold the wrong type of value.
            s.stdin = s.stdin.replacen('}', ",\"mtu\":\"big\",\"ipMasq\":7}", 1);
            s.tags.insert("stdin:wrong-types".into());
        }
    }
}

/// The case `index` of the campaign seeded with `seed`.
pub fn case(seed: u64, index: u64) -> Case {
    let mut r = Rng::for_case(seed, index);
    let plugin = match r.below(100) {
        0..=44 => Plugin::Bridge,
        45..=69 => Plugin::HostLocal,
        70..=89 => Plugin::Portmap,
        _ => Plugin::Loopback,
    };
    let version = *r.pick(&VERSIONS);
    let name = *r.pick(&["fuzznet", "net-b", "Net_C"]);
    let mut setup = Vec::new();
    if plugin == Plugin::Portmap {
        setup.push("ip link add cni0 type bridge && ip addr add 10.88.0.1/24 dev cni0 && ip link set cni0 up".to_string());
    }
    let ifname = if plugin == Plugin::Loopback {
        "lo"
    } else {
        "eth0"
    };
    let (text, c, tags) = varied_config(&mut r, plugin, version, name);
    let base = step("ADD", "ctr-fuzz-1", ifname, text, c, tags);
    let mut steps = Vec::new();
    let shape = match r.below(10) {
        0..=3 => {
            // The runtime's life cycle of one attachment.
            let mut check = base.clone();
            check.verb = "CHECK".into();
            check.with_prev = true;
            let mut del = base.clone();
            del.verb = "DEL".into();
            del.with_prev = true;
            steps.extend([base.clone(), check, del.clone(), del]);
            "add-check-del-del"
        }
        4..=5 => {
            // Two attachments on one container: the same network again or a second one.
            let (text2, c2, tags2) = if r.chance(50) {
                (base.stdin.clone(), base.config.clone(), base.tags.clone())
            } else {
                varied_config(&mut r, plugin, version, "net-second")
            };
            let second = step("ADD", "ctr-fuzz-1", "eth1", text2, c2, tags2);
            let mut check1 = base.clone();
            check1.verb = "CHECK".into();
            check1.with_prev = true;
            let mut del2 = second.clone();
            del2.verb = "DEL".into();
            del2.with_prev = true;
            let mut del1 = base.clone();
            del1.verb = "DEL".into();
            del1.with_prev = true;
            steps.extend([base.clone(), second, check1.clone(), del2, check1, del1]);
            "two-attachments"
        }
        6..=7 => {
            // ADD after a failed ADD: the failure must leave nothing that trips the retry.
            let mut bad = base.clone();
            bad_env(&mut r, &mut bad);
            let mut del = base.clone();
            del.verb = "DEL".into();
            steps.extend([bad, base.clone(), del]);
            "add-after-failed-add"
        }
        _ => {
            let mut one = base.clone();
            one.verb = r.pick(&["ADD", "DEL", "CHECK"]).to_string();
            bad_env(&mut r, &mut one);
            let mut del = base.clone();
            del.verb = "DEL".into();
            steps.extend([one, del]);
            "odd-env-then-del"
        }
    };
    Case {
        index,
        plugin,
        shape,
        setup,
        steps,
    }
}
