//! One side of the twin: a long-lived worker thread that runs each case in a fresh sandbox
//! (a new host netns for the thread, a new container netns, a new data dir) and records what
//! every step printed and what it left in the kernel and on disk, normalised.

use super::gen::{Case, NetnsKind, Step, DATA, NETNS};
use crate::sandbox::{sh, sh_ok, Netns};
use crate::{Call, Reply};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

/// Which binaries a side runs.
#[derive(Clone, Debug)]
pub struct SideSpec {
    pub bin_dir: PathBuf,
}

/// What one step gave, after normalisation.
#[derive(Clone, Debug, Default)]
pub struct StepObs {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// The stdin as sent (placeholders put back), for the reproducer.
    pub stdin: String,
    /// Parsed stdout (result or error object), `Null` when empty or not JSON.
    pub json: Value,
    /// Lease files of the network: name → content.
    pub leases: BTreeMap<String, String>,
    /// Kernel state: {"host": {...}, "ctr": {...}}, sections as sorted string lists.
    pub kernel: Value,
    /// The kernel state before this step (to tell "changed nothing" from "left state behind").
    pub kernel_before: Value,
}

#[derive(Debug, Default)]
pub struct CaseObs {
    pub steps: Vec<StepObs>,
    pub setup_error: Option<String>,
}

pub struct Worker {
    tx: Sender<Case>,
    rx: Receiver<CaseObs>,
}

impl Worker {
    pub fn spawn(spec: SideSpec) -> Worker {
        let (tx, case_rx) = channel::<Case>();
        let (obs_tx, rx) = channel::<CaseObs>();
        std::thread::spawn(move || {
            for case in case_rx {
                let obs = run_case(&spec, &case);
                if obs_tx.send(obs).is_err() {
                    break;
                }
            }
        });
        Worker { tx, rx }
    }

    pub fn start(&self, case: Case) {
        let _ = self.tx.send(case);
    }

    pub fn finish(&self) -> CaseObs {
        self.rx.recv().unwrap_or_else(|_| CaseObs {
            setup_error: Some("worker thread died".into()),
            ..CaseObs::default()
        })
    }
}

fn netns_id(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Moves this thread into a brand-new network namespace: the previous case's links, routes,
/// rules and sysctls go with the old one.
fn fresh_host() -> Result<(), String> {
    // SAFETY: unshare only changes this thread's namespace membership.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    let mine = netns_id("/proc/thread-self/ns/net");
    if mine.is_empty() || mine == netns_id("/proc/self/ns/net") {
        return Err("refusing to run outside a sandbox netns".into());
    }
    sh("ip link set lo up");
    Ok(())
}

const SNAPSHOT: &str = r#"
echo '@@link'; ip -j -d link show
echo '@@addr'; ip -j addr show
echo '@@route4'; ip -j -4 route show table all
echo '@@route6'; ip -j -6 route show table all
echo '@@sysctl'
grep -s -H . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/*/forwarding \
  /proc/sys/net/ipv4/conf/*/forwarding /proc/sys/net/ipv4/conf/*/route_localnet \
  /proc/sys/net/ipv6/conf/*/accept_ra /proc/sys/net/ipv6/conf/*/disable_ipv6 \
  /proc/sys/net/ipv4/conf/*/arp_notify /proc/sys/net/ipv6/conf/*/accept_dad
"#;

const FIREWALL: &str = r#"
echo '@@iptables'; iptables-save 2>/dev/null; echo '@@ip6tables'; ip6tables-save 2>/dev/null
"#;

fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            cur = name.to_string();
            out.insert(cur.clone(), String::new());
        } else if let Some(s) = out.get_mut(&cur) {
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

fn pick(o: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| o.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

const BRIDGE_KEYS: &[&str] = &[
    "stp_state",
    "vlan_filtering",
    "vlan_protocol",
    "mcast_snooping",
    "forward_delay",
    "ageing_time",
    "priority",
];
const PORT_KEYS: &[&str] = &[
    "hairpin",
    "learning",
    "flood",
    "guard",
    "root_block",
    "proxy_arp",
    "neigh_suppress",
    "isolated",
    "mcast_flood",
    "bcast_flood",
];

/// Links by name with the attributes that matter (timers, counters, indexes dropped).
fn links(json_text: &str) -> Value {
    let list: Vec<Value> = serde_json::from_str(json_text).unwrap_or_default();
    let mut out = Map::new();
    for l in list {
        let Some(o) = l.as_object() else { continue };
        let name = o
            .get("ifname")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let mut keep = pick(
            o,
            &[
                "link_type",
                "mtu",
                "master",
                "address",
                "promiscuity",
                "inet6_addr_gen_mode",
            ],
        );
        // Carrier flags follow the kernel's deferred link watch: racy, left out.
        let flags: Vec<Value> = o
            .get("flags")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter(|x| !matches!(x.as_str(), Some("LOWER_UP" | "NO-CARRIER" | "M-DOWN")))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        keep.insert("flags".into(), Value::Array(flags));
        if let Some(info) = o.get("linkinfo").and_then(Value::as_object) {
            keep.insert(
                "kind".into(),
                info.get("info_kind").cloned().unwrap_or(Value::Null),
            );
            if let Some(d) = info.get("info_data").and_then(Value::as_object) {
                keep.insert("data".into(), Value::Object(pick(d, BRIDGE_KEYS)));
            }
            if let Some(d) = info.get("info_slave_data").and_then(Value::as_object) {
                keep.insert("port".into(), Value::Object(pick(d, PORT_KEYS)));
            }
        }
        out.insert(name, Value::Object(keep));
    }
    Value::Object(out)
}

fn addrs(json_text: &str) -> Value {
    let list: Vec<Value> = serde_json::from_str(json_text).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for l in &list {
        let name = l["ifname"].as_str().unwrap_or("?");
        for a in l["addr_info"].as_array().into_iter().flatten() {
            // Link-local addresses appear when the kernel's deferred link watch sees carrier:
            // racy, and derived from random MACs anyway.
            if a["local"].as_str().is_some_and(|x| x.starts_with("fe80:")) {
                continue;
            }
            out.push(format!(
                "{} {}/{} scope {}",
                name,
                a["local"].as_str().unwrap_or(""),
                a["prefixlen"],
                a["scope"].as_str().unwrap_or("")
            ));
        }
    }
    out.sort();
    json!(out)
}

fn routes(json_text: &str) -> Value {
    let list: Vec<Value> = serde_json::from_str(json_text).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for r in &list {
        let Some(o) = r.as_object() else { continue };
        if o.get("table").and_then(Value::as_str) == Some("local")
            || o.get("dst").and_then(Value::as_str) == Some("fe80::/64")
        {
            continue;
        }
        let mut parts = Vec::new();
        for k in [
            "type", "dst", "gateway", "dev", "table", "protocol", "scope", "metric", "prefsrc",
        ] {
            if let Some(v) = o.get(k) {
                parts.push(format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                ));
            }
        }
        if let Some(hops) = o.get("nexthops") {
            parts.push(format!("nexthops={hops}"));
        }
        out.push(parts.join(" "));
    }
    out.sort();
    json!(out)
}

fn lines(text: &str, keep: impl Fn(&str) -> bool) -> Value {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && keep(l))
        .map(|l| {
            // Chain counters ("[0:0]") are traffic, not state.
            match l.find(" [") {
                Some(i) if l.starts_with(':') => l[..i].to_string(),
                _ => l.to_string(),
            }
        })
        .collect();
    out.sort();
    json!(out)
}

/// iptables-save text without the tables that hold nothing but built-in chains with an ACCEPT
/// policy: merely listing a table with iptables-nft creates it, so an empty table is no state.
fn without_empty_tables(text: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        block.push(line);
        if line == "COMMIT" {
            let empty = block.iter().all(|l| {
                l.starts_with('*')
                    || *l == "COMMIT"
                    || (l.starts_with(':') && l.contains(" ACCEPT"))
            });
            if !empty {
                for l in &block {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            block.clear();
        }
    }
    for l in block {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn ns_state(text: &str, firewall: bool) -> Value {
    let s = sections(text);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let mut v = json!({
        "links": links(&get("link")),
        "addrs": addrs(&get("addr")),
        "route4": routes(&get("route4")),
        "route6": routes(&get("route6")),
        "sysctl": lines(&get("sysctl"), |_| true),
    });
    if firewall {
        let rules = |l: &str| !l.starts_with('#');
        v["iptables"] = lines(&without_empty_tables(&get("iptables")), rules);
        v["ip6tables"] = lines(&without_empty_tables(&get("ip6tables")), rules);
    }
    v
}

fn run_sh(script: &str) -> String {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn kernel(ctr: &Netns) -> Value {
    let host = run_sh(&format!("{SNAPSHOT}{FIREWALL}"));
    let inside = run_sh(&format!(
        "nsenter --net={} sh -c '{}'",
        ctr.path.display(),
        SNAPSHOT.replace('\'', "'\\''")
    ));
    json!({ "host": ns_state(&host, true), "ctr": ns_state(&inside, false) })
}

/// Every file of every network directory under the data dir (lock and dot files aside).
fn leases(data: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for net in std::fs::read_dir(data).into_iter().flatten().flatten() {
        let net_name = net.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = f.file_name().to_string_lossy().into_owned();
            if n == "lock" || n.starts_with('.') {
                continue;
            }
            let content =
                std::fs::read_to_string(f.path()).unwrap_or_else(|_| "<unreadable>".into());
            out.insert(format!("{net_name}/{n}"), content);
        }
    }
    out
}

/// The stdin this side sends: placeholders filled, and the side's own ADD result as
/// `prevResult` when the step asks for it.
fn stdin_for(step: &Step, data: &str, ctr: &str, prev: Option<&String>) -> String {
    let mut text = step.stdin.replace(DATA, data).replace(NETNS, ctr);
    let (true, Some(prev)) = (step.with_prev, prev) else {
        return text;
    };
    // Replace a prevResult the config already has (a duplicated key would be a variation of
    // its own); configs given a duplicated key on purpose keep their text and get it appended.
    if !step.has_prefix("dup-key") {
        if let (Ok(mut v), Ok(p)) = (
            serde_json::from_str::<Value>(&text),
            serde_json::from_str::<Value>(prev),
        ) {
            if let Some(o) = v.as_object_mut() {
                o.insert("prevResult".into(), p);
                return v.to_string();
            }
        }
    }
    if let Some(i) = text.rfind('}') {
        text.insert_str(i, &format!(",\"prevResult\":{prev}"));
    }
    text
}

fn run_case(spec: &SideSpec, case: &Case) -> CaseObs {
    let mut obs = CaseObs::default();
    if let Err(e) = fresh_host() {
        obs.setup_error = Some(e);
        return obs;
    }
    for cmd in &case.setup {
        if !sh_ok(cmd) {
            obs.setup_error = Some(format!("setup `{cmd}` failed"));
            return obs;
        }
    }
    let ctr = Netns::new();
    let Ok(data) = tempfile::tempdir() else {
        obs.setup_error = Some("tempdir".into());
        return obs;
    };
    let data_path = data.path().display().to_string();
    let ctr_path = ctr.path_str();
    let bin = spec.bin_dir.join(case.plugin.binary());
    let cni_path = spec.bin_dir.display().to_string();
    let mut prev: BTreeMap<String, String> = BTreeMap::new();
    let mut before = kernel(&ctr);
    for step in &case.steps {
        let stdin = stdin_for(step, &data_path, &ctr_path, prev.get(&step.ifname));
        let mut call = Call::new(&step.verb, &step.container_id, stdin.clone())
            .ifname(&step.ifname)
            .args(&step.args)
            .netns(&step.netns.path(&ctr_path))
            .cni_path(&cni_path);
        if step.verb.is_empty() {
            call = call.unset("CNI_COMMAND");
        }
        let reply: Reply = call.run(&bin);
        if step.verb == "ADD" && reply.status == 0 && step.netns == NetnsKind::Container {
            prev.insert(step.ifname.clone(), reply.stdout.trim().to_string());
        }
        let json = serde_json::from_str(&reply.stdout).unwrap_or(Value::Null);
        let after = kernel(&ctr);
        obs.steps.push(StepObs {
            status: reply.status,
            stdout: reply.stdout,
            stderr: reply.stderr,
            stdin,
            json,
            leases: leases(data.path()),
            kernel: after.clone(),
            kernel_before: std::mem::replace(&mut before, after),
        });
    }
    normalise(
        &mut obs,
        &[
            (&data_path, "<data>"),
            (&ctr_path, "<netns>"),
            (&cni_path, "<cni_path>"),
        ],
    );
    obs
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Replaces every MAC address (other than all-zero and broadcast) with `<mac>`.
pub fn mask_macs(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if i + 17 <= b.len() && text.is_char_boundary(i) && text.is_char_boundary(i + 17) {
            let cand = &text[i..i + 17];
            let ok = cand
                .split(':')
                .map(|p| p.len() == 2 && is_hex(p))
                .filter(|x| *x)
                .count()
                == 6;
            let edge_ok = (i == 0 || !b[i - 1].is_ascii_hexdigit() && b[i - 1] != b':')
                && (i + 17 == b.len() || !b[i + 17].is_ascii_hexdigit() && b[i + 17] != b':');
            if ok && edge_ok {
                let low = cand.to_ascii_lowercase();
                if low == "00:00:00:00:00:00" || low == "ff:ff:ff:ff:ff:ff" {
                    out.push_str(cand);
                } else {
                    out.push_str("<mac>");
                }
                i += 17;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Replaces the interface part of IPv6 link-local addresses (derived from random MACs).
fn mask_link_local(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("fe80::") {
        out.push_str(&rest[..i + 6]);
        let tail = &rest[i + 6..];
        let n = tail
            .find(|c: char| !(c.is_ascii_hexdigit() || c == ':'))
            .unwrap_or(tail.len());
        if n > 0 {
            out.push_str("<ll>");
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Host-side veth names are random in the reference and hashed in ours: each is named by its
/// order of creation (ifindex order) instead.
fn veth_names(obs: &CaseObs) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for s in &obs.steps {
        if let Some(l) = s.kernel["host"]["links"].as_object() {
            for (name, v) in l {
                if v["kind"] == "veth" && name.starts_with("veth") && !seen.contains(name) {
                    seen.push(name.clone());
                }
            }
        }
        for i in s.json["interfaces"].as_array().into_iter().flatten() {
            if let Some(n) = i["name"].as_str() {
                if n.starts_with("veth")
                    && i.get("sandbox").is_none()
                    && !seen.iter().any(|x| x == n)
                {
                    seen.push(n.to_string());
                }
            }
        }
    }
    seen
}

fn normalise(obs: &mut CaseObs, paths: &[(&str, &str)]) {
    let mut vnames = veth_names(obs);
    let order: Vec<String> = vnames.clone();
    // Longest first, so no name is replaced inside a longer one.
    vnames.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let fix = |t: &str| -> String {
        let mut t = t.to_string();
        for (p, marker) in paths {
            if !p.is_empty() {
                t = t.replace(p, marker);
            }
        }
        for n in &vnames {
            let i = order.iter().position(|x| x == n).unwrap_or(0);
            t = t.replace(n.as_str(), &format!("<veth{i}>"));
        }
        mask_link_local(&mask_macs(&t))
    };
    for s in &mut obs.steps {
        s.stdout = fix(&s.stdout);
        s.stderr = fix(&s.stderr);
        s.stdin = fix(&s.stdin);
        s.json = serde_json::from_str(&s.stdout).unwrap_or(Value::Null);
        s.kernel = serde_json::from_str(&fix(&s.kernel.to_string())).unwrap_or(Value::Null);
        s.kernel_before =
            serde_json::from_str(&fix(&s.kernel_before.to_string())).unwrap_or(Value::Null);
        s.leases = s.leases.iter().map(|(k, v)| (fix(k), fix(v))).collect();
    }
}
