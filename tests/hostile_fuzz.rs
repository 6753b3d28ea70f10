//! Property tests over hostile input, with a fixed budget so CI time is bounded.
//!
//! In process: each plugin's entry point (`skel::run`, what `main` calls) gets generated
//! environments and stdins (arbitrary JSON, mutated valid configs with hostile CNI_ARGS and
//! prevResults of every version, raw bytes), and the library parsers get the same material
//! directly. Property: no panic; a failure is exit 1 with exactly one spec error object on
//! stdout (a known code, a message).
//!
//! Out of process: every real binary is exec'd with generated inputs that each carry at least
//! one fatal defect; it must fail cleanly and create nothing (no lease, no link).
//!
//! Everything runs in a sandbox netns; host-local's `dataDir` is always forced to a temp dir,
//! and the in-process runs also get a private mount namespace with a tmpfs over `/var/lib`,
//! so a config that escaped confinement still could not write to the machine.

use cni_protocol::args::CniArgs;
use cni_protocol::config::parse_config;
use cni_protocol::result::CniResult;
use cni_protocol::{skel, version, CniError, NetConf, Plugin, Version};
use cni_suite_tests::sandbox::{in_sandbox, privileged, sh, Netns};
use cni_suite_tests::{lease_names, our_plugin, Call};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The codes a plugin may answer with: the spec's, plus the reference's 999 for
/// failures the spec has no code for.
const ALLOWED_CODES: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999];

/// Cases per in-process run of one plugin (each may exec the IPAM delegate).
const IN_PROCESS_CASES: u32 = 1000;
/// Cases per pure parser property.
const PARSER_CASES: u32 = 2000;
/// Generated hostile invocations per real binary.
const EXEC_CASES: usize = 250;

const HOSTILE: &[&str] = &[
    "",
    ".",
    "..",
    "../",
    "../../etc/passwd",
    "/",
    "a/b",
    "\0",
    "a\0b",
    "é",
    "网络",
    "\u{202e}txt",
    "\u{feff}",
    " ",
    "\t",
    "\n",
    "eth0:1",
    "0123456789abcdef",
    "0123456789abcde",
    "-x",
    "_x",
    "x\n",
    "%s%n",
    "$(id)",
    "10.0.0.0/24",
    "10.9.0.0/30",
    "10.9.0.1/24",
    "fd00::/64",
    "fd00::/127",
    "0.0.0.0/0",
    "::/0",
    "10.9.0.1",
    "10.9.0.300",
    "255.255.255.255/32",
    "1.0.0",
    "0.4.0",
    "0.3.1",
    "0.2.0",
    "0.1.0",
    "1.1.0",
    "9.9.9",
    "1.2.3.4",
    "x.y.z",
    "-1",
    "4294967296",
    "18446744073709551616",
    "null",
    "{}",
    "[]",
    "IgnoreUnknown=1",
    "IP=10.9.0.5",
    "K=V;",
    "=;=",
    ";;",
    "lo",
    "eth0",
    "host-local",
    "bridge",
    "tcp",
    "sctp",
    "nftables",
    "iptables",
    "00:11:22:33:44:55",
    "01:00:00:00:00:00",
    "/dev/zero",
    "/dev/null",
    "/proc/self/fd/0",
];

const KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "ipam",
    "subnet",
    "ranges",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "routes",
    "dst",
    "gw",
    "dns",
    "nameservers",
    "prevResult",
    "runtimeConfig",
    "portMappings",
    "hostPort",
    "containerPort",
    "protocol",
    "hostIP",
    "ips",
    "ip",
    "ip4",
    "ip6",
    "interfaces",
    "interface",
    "address",
    "version",
    "args",
    "cni",
    "bridge",
    "isGateway",
    "isDefaultGateway",
    "ipMasq",
    "ipMasqBackend",
    "mtu",
    "vlan",
    "vlanTrunk",
    "hairpinMode",
    "promiscMode",
    "mac",
    "macspoofchk",
    "snat",
    "markMasqBit",
    "externalSetMarkChain",
    "backend",
    "ipRanges",
    "resolvConf",
    "lockTimeoutMs",
    "cni.dev/valid-attachments",
    "containerID",
    "ifname",
    "sandbox",
    "enabledad",
    "disableContainerInterface",
    "minID",
    "maxID",
    "id",
];

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(HOSTILE).prop_map(str::to_string),
        2 => "[a-zA-Z0-9_./:;= -]{0,20}",
        1 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
        1 => (16usize..3000).prop_map(|n| "a".repeat(n)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(KEYS).prop_map(str::to_string), 1 => hostile_text()]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-70000i64..70000).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn version_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(version::SUPPORTED_VERSIONS).prop_map(str::to_string),
        1 => hostile_text(),
    ]
}

/// A prevResult in any version's shape, with hostile values here and there.
fn prev_result() -> impl Strategy<Value = Value> {
    let ip = prop_oneof![
        select(&["10.9.0.5/24", "fd00::5/64", "10.9.0.5", "300.1.1.1/24", ""][..])
            .prop_map(str::to_string),
        hostile_text(),
    ];
    let legacy = (ip.clone(), hostile_text(), json_value())
        .prop_map(|(ip, gw, routes)| json!({"ip": ip, "gateway": gw, "routes": routes}))
        .boxed();
    let entry = (ip, json_value(), hostile_text(), json_value()).prop_map(
        |(address, interface, gateway, version)| {
            json!({"address": address, "interface": interface, "gateway": gateway,
                   "version": version})
        },
    );
    let iface = (hostile_text(), hostile_text(), json_value()).prop_map(|(name, sandbox, mtu)| {
        json!({"name": name, "sandbox": sandbox, "mtu": mtu, "mac": "aa:bb:cc:dd:ee:ff"})
    });
    prop_oneof![
        (version_text(), legacy.clone(), legacy, json_value()).prop_map(
            |(v, ip4, ip6, dns)| json!({"cniVersion": v, "ip4": ip4, "ip6": ip6, "dns": dns})
        ),
        (
            version_text(),
            prop::collection::vec(iface, 0..4),
            prop::collection::vec(entry, 0..4),
            json_value()
        )
            .prop_map(|(v, interfaces, ips, routes)| json!({
                "cniVersion": v, "interfaces": interfaces, "ips": ips, "routes": routes,
                "dns": {"nameservers": ["10.9.0.1"]}
            })),
        json_value(),
    ]
}

fn cni_args() -> impl Strategy<Value = String> {
    let pair = prop_oneof![
        (
            select(&["IP", "IgnoreUnknown", "K8S_POD_NAME", "MAC", "X"][..]),
            hostile_text()
        )
            .prop_map(|(k, v)| format!("{k}={v}")),
        hostile_text(),
    ];
    prop::collection::vec(pair, 0..4).prop_map(|p| p.join(";"))
}

/// The plugins under test, with a valid base config for each.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bridge,
    HostLocal,
    Portmap,
    Loopback,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Bridge, Kind::HostLocal, Kind::Portmap, Kind::Loopback];

    fn binary(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::HostLocal => "host-local",
            Kind::Portmap => "portmap",
            Kind::Loopback => "loopback",
        }
    }

    fn plugin(self) -> &'static dyn Plugin {
        match self {
            Kind::Bridge => &bridge::Bridge,
            Kind::HostLocal => &host_local::plugin::HostLocal,
            Kind::Portmap => &portmap::Portmap,
            Kind::Loopback => &loopback::Loopback,
        }
    }

    fn base(self) -> Value {
        let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                          "routes": [{"dst": "0.0.0.0/0"}]});
        match self {
            Kind::Bridge => json!({"cniVersion": "1.0.0", "name": "fuzz", "type": "bridge",
                "bridge": "fz0", "isGateway": true, "ipam": ipam}),
            Kind::HostLocal => json!({"cniVersion": "1.0.0", "name": "fuzz", "type": "bridge",
                "ipam": ipam}),
            Kind::Portmap => json!({"cniVersion": "1.0.0", "name": "fuzz", "type": "portmap",
                "capabilities": {"portMappings": true},
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                "prevResult": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "sandbox": "/x"}],
                    "ips": [{"address": "10.9.0.5/24", "interface": 0}]}}),
            Kind::Loopback => json!({"cniVersion": "1.0.0", "name": "fuzz", "type": "loopback"}),
        }
    }
}

/// One edit of a config: at the `at`-th node (pre-order), delete it, replace it, or insert
/// a key into it.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Replace(usize, Value),
    Insert(usize, String, Value),
    PrevResult(Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), json_value()).prop_map(|(a, v)| Edit::Replace(a, v)),
        (any::<usize>(), key(), json_value()).prop_map(|(a, k, v)| Edit::Insert(a, k, v)),
        prev_result().prop_map(Edit::PrevResult),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `f` to the `n`-th node (pre-order) and its parent slot.
fn at_node(v: &mut Value, n: &mut usize, f: &mut dyn FnMut(&mut Value) -> bool) -> bool {
    if *n == 0 {
        return f(v);
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| at_node(c, n, f)),
        Value::Object(o) => o.values_mut().any(|c| at_node(c, n, f)),
        _ => false,
    }
}

fn apply(config: &mut Value, e: &Edit) {
    let total = count_nodes(config);
    match e {
        Edit::Delete(at) => {
            // Delete a child of the chosen node: its first key or element.
            let mut n = at % total;
            at_node(config, &mut n, &mut |v| {
                match v {
                    Value::Object(o) => {
                        let first = o.keys().next().cloned();
                        if let Some(k) = first {
                            o.remove(&k);
                        }
                    }
                    Value::Array(a) if !a.is_empty() => {
                        a.remove(0);
                    }
                    _ => {}
                }
                true
            });
        }
        Edit::Replace(at, new) => {
            let mut n = (at % total).max(1);
            at_node(config, &mut n, &mut |v| {
                *v = new.clone();
                true
            });
        }
        Edit::Insert(at, k, new) => {
            let mut n = at % total;
            at_node(config, &mut n, &mut |v| match v {
                Value::Object(o) => {
                    o.insert(k.clone(), new.clone());
                    true
                }
                _ => false,
            });
        }
        Edit::PrevResult(prev) => {
            if let Some(o) = config.as_object_mut() {
                o.insert("prevResult".into(), prev.clone());
            }
        }
    }
}

/// Keeps every data dir inside `data`, whatever the edits did to `ipam`.
fn confine(config: &mut Value, data: &Path) {
    if let Some(ipam) = config.get_mut("ipam").and_then(Value::as_object_mut) {
        ipam.insert("dataDir".into(), json!(data));
    }
}

#[derive(Clone, Debug)]
enum Stdin {
    Json(Value),
    Raw(Vec<u8>),
}

fn stdin_for(kind: Kind) -> impl Strategy<Value = Stdin> {
    prop_oneof![
        5 => prop::collection::vec(edit(), 0..4).prop_map(move |edits| {
            let mut c = kind.base();
            for e in &edits {
                apply(&mut c, e);
            }
            Stdin::Json(c)
        }),
        2 => json_value().prop_map(Stdin::Json),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Stdin::Raw),
    ]
}

/// The CNI_* environment; `None` leaves a variable unset. Netns and path values only ever
/// name the sandbox's container netns or paths that are not namespaces.
#[derive(Clone, Debug)]
struct Env {
    command: Option<String>,
    container_id: Option<String>,
    netns: Option<NetnsChoice>,
    ifname: Option<String>,
    args: Option<String>,
    path: Option<PathChoice>,
}

#[derive(Clone, Debug)]
enum NetnsChoice {
    Sandbox,
    /// An existing path that is not a netns: a directory, a regular file, /dev/null.
    NotNetns(usize),
    Text(String),
}

#[derive(Clone, Debug)]
enum PathChoice {
    /// The directory holding the built plugins.
    Plugins,
    /// An empty directory.
    Empty,
    Text(String),
}

fn env() -> impl Strategy<Value = Env> {
    // Mostly valid, so that many inputs get past the skel into the plugins.
    let command = prop::option::weighted(
        0.97,
        prop_oneof![
            8 => Just("ADD".to_string()),
            3 => Just("DEL".to_string()),
            2 => Just("CHECK".to_string()),
            1 => select(&["GC", "STATUS", "VERSION"][..]).prop_map(str::to_string),
            1 => hostile_text(),
        ],
    );
    let id = prop::option::weighted(
        0.97,
        prop_oneof![8 => Just("fuzz-c1".to_string()), 1 => hostile_text()],
    );
    let netns = prop::option::weighted(
        0.95,
        prop_oneof![
            8 => Just(NetnsChoice::Sandbox),
            1 => (0usize..3).prop_map(NetnsChoice::NotNetns),
            1 => hostile_text().prop_map(NetnsChoice::Text),
        ],
    );
    let ifname = prop::option::weighted(
        0.97,
        prop_oneof![8 => Just("eth0".to_string()), 1 => hostile_text()],
    );
    let args = prop::option::weighted(0.2, cni_args());
    let path = prop::option::weighted(
        0.97,
        prop_oneof![
            8 => Just(PathChoice::Plugins),
            1 => Just(PathChoice::Empty),
            1 => hostile_text().prop_map(PathChoice::Text),
        ],
    );
    (command, id, netns, ifname, args, path).prop_map(
        |(command, container_id, netns, ifname, args, path)| Env {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        },
    )
}

/// Text that names an existing file could reach something real: only nonexistent paths
/// (and the sandbox's own netns) are used.
fn harmless_path(text: &str) -> String {
    let exists = text
        .split(':')
        .any(|p| !p.is_empty() && Path::new(p).exists());
    if exists || text.contains("/proc") {
        "/nonexistent/fuzz".to_string()
    } else {
        text.to_string()
    }
}

/// A CNI_PATH directory holding only our four plugins (not cnitool or the benches).
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for kind in Kind::ALL {
        std::os::unix::fs::symlink(our_plugin(kind.binary()), dir.path().join(kind.binary()))
            .expect("symlink plugin");
    }
    dir
}

struct World {
    data: tempfile::TempDir,
    empty: tempfile::TempDir,
    plugins: tempfile::TempDir,
    netns: Netns,
    not_netns: std::path::PathBuf,
}

impl World {
    fn new() -> World {
        let data = tempfile::tempdir().expect("tempdir");
        let not_netns = data.path().join("not-a-netns");
        std::fs::write(&not_netns, "x").expect("write");
        World {
            data,
            not_netns,
            empty: tempfile::tempdir().expect("tempdir"),
            plugins: plugin_dir(),
            netns: Netns::new(),
        }
    }

    fn vars(&self, env: &Env) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                vars.insert(k.to_string(), v);
            }
        };
        put("CNI_COMMAND", env.command.clone());
        put("CNI_CONTAINERID", env.container_id.clone());
        put(
            "CNI_NETNS",
            env.netns.as_ref().map(|n| match n {
                NetnsChoice::Sandbox => self.netns.path_str(),
                NetnsChoice::NotNetns(0) => self.empty.path().display().to_string(),
                NetnsChoice::NotNetns(1) => "/dev/null".to_string(),
                NetnsChoice::NotNetns(_) => self.not_netns.display().to_string(),
                NetnsChoice::Text(t) => harmless_path(t),
            }),
        );
        put("CNI_IFNAME", env.ifname.clone());
        put("CNI_ARGS", env.args.clone());
        put(
            "CNI_PATH",
            env.path.as_ref().map(|p| match p {
                PathChoice::Plugins => self.plugins.path().display().to_string(),
                PathChoice::Empty => self.empty.path().display().to_string(),
                PathChoice::Text(t) => harmless_path(t),
            }),
        );
        vars
    }

    fn stdin(&self, stdin: &Stdin) -> Vec<u8> {
        match stdin {
            Stdin::Json(v) => {
                let mut v = v.clone();
                confine(&mut v, self.data.path());
                v.to_string().into_bytes()
            }
            Stdin::Raw(b) => b.clone(),
        }
    }
}

/// Checks a failure's stdout: exactly one error object in the spec's shape.
fn check_error_json(stdout: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("stdout is not one JSON value ({e}): {stdout:?}"))?;
    let o = v.as_object().ok_or("error is not an object")?;
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "cniVersion" | "code" | "msg" | "details"))
    {
        return Err(format!("unexpected key {k:?} in {v}"));
    }
    let code = o.get("code").and_then(Value::as_u64).ok_or("no code")?;
    if !ALLOWED_CODES.contains(&code) {
        return Err(format!("code {code} is not a spec code: {v}"));
    }
    if o.get("msg")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(format!("empty msg: {v}"));
    }
    if !o.get("cniVersion").is_some_and(Value::is_string) {
        return Err(format!("no cniVersion: {v}"));
    }
    if o.get("details").is_some_and(|d| !d.is_string()) {
        return Err(format!("details not a string: {v}"));
    }
    Ok(())
}

/// The in-process property for one plugin.
/// Returns the outcome ("ok" or the error code) for the tally.
fn run_in_process(kind: Kind, world: &World, env: &Env, stdin: &Stdin) -> Result<String, String> {
    let vars = world.vars(env);
    let input = world.stdin(stdin);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        skel::run(
            kind.plugin(),
            "fuzz",
            &|k| vars.get(k).cloned(),
            &mut input.as_slice(),
            &mut out,
            &mut err,
        )
    }))
    .map_err(|_| format!("{kind:?} panicked on env {vars:?}"))?;
    match status {
        0 if out.is_empty() => Ok("ok".into()),
        0 => serde_json::from_slice::<Value>(&out)
            .map(|_| "ok".into())
            .map_err(|e| format!("success output is not JSON ({e}): {out:?}")),
        1 => {
            check_error_json(&out).map_err(|e| format!("{kind:?} {vars:?}: {e}"))?;
            let v: Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
            if std::env::var_os("FUZZ_SHOW").is_some() {
                eprintln!("FUZZ {kind:?} {} {}", v["code"], v["msg"]);
            }
            Ok(format!("code {}", v["code"]))
        }
        s => Err(format!("exit status {s}")),
    }
}

/// Runs the test body in a sandbox netns with a private mount namespace whose `/var/lib`
/// is a tmpfs (the default data dir lives there).
fn in_private_sandbox<F: FnOnce() + Send>(body: F) {
    in_sandbox(|| {
        // SAFETY: unshare only changes this thread's namespace membership.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNS)");
        sh("mount --make-rprivate / && mount -t tmpfs fuzz /var/lib");
        body();
    });
}

/// The generator for the in-process and exec'd runs: fixed, so CI sees the same inputs each
/// time; `FUZZ_SEED=<n>` picks another sequence for a local hunt.
fn rng() -> TestRng {
    match std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        Some(n) => {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&n.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        // Shrinking re-execs plugins many times; the first counterexample is reported as is.
        max_shrink_iters: 64,
        ..Config::default()
    }
}

fn fuzz_in_process(kind: Kind) {
    if !privileged() {
        return;
    }
    let cases = AtomicUsize::new(0);
    let tally = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    in_private_sandbox(|| {
        let world = World::new();
        let mut runner = TestRunner::new_with_rng(config(IN_PROCESS_CASES), rng());
        let outcome = runner.run(&(env(), stdin_for(kind)), |(env, stdin)| {
            cases.fetch_add(1, Ordering::Relaxed);
            let outcome =
                run_in_process(kind, &world, &env, &stdin).map_err(TestCaseError::fail)?;
            // Successes by verb: how many inputs got all the way through.
            let key = match env.command.as_deref() {
                Some(c @ ("ADD" | "DEL" | "CHECK" | "GC" | "STATUS")) if outcome == "ok" => {
                    format!("{c} ok")
                }
                _ => outcome,
            };
            if let Ok(mut t) = tally.lock() {
                *t.entry(key).or_default() += 1;
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{kind:?}: {e}");
        }
        // Whatever succeeded or failed, no lease is half-written and no temp file is left.
        for net in std::fs::read_dir(world.data.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for name in lease_names(&net.path()) {
                let content = std::fs::read_to_string(net.path().join(&name)).unwrap_or_default();
                assert!(
                    content.contains("\r\n") && !content.starts_with('\r'),
                    "lease {name} holds {content:?}"
                );
            }
            let index = std::fs::read_dir(net.path().join(".index"))
                .into_iter()
                .flatten();
            for entry in index.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                assert!(!file.starts_with(".tmp-"), "temp file left: {file}");
            }
        }
    });
    eprintln!(
        "{kind:?}: {} in-process inputs, no panic, every failure a spec error; outcomes {:?}",
        cases.load(Ordering::Relaxed),
        tally.lock().map(|t| t.clone()).unwrap_or_default()
    );
}

#[test]
fn bridge_entry_point_survives_hostile_input() {
    fuzz_in_process(Kind::Bridge);
}

#[test]
fn host_local_entry_point_survives_hostile_input() {
    fuzz_in_process(Kind::HostLocal);
}

#[test]
fn portmap_entry_point_survives_hostile_input() {
    fuzz_in_process(Kind::Portmap);
}

#[test]
fn loopback_entry_point_survives_hostile_input() {
    fuzz_in_process(Kind::Loopback);
}

fn spec_error(e: &CniError) -> Result<(), TestCaseError> {
    prop_assert!(ALLOWED_CODES.contains(&u64::from(e.code.number())), "{e:?}");
    prop_assert!(!e.msg.is_empty(), "{e:?}");
    let printed =
        serde_json::to_vec(&e.to_json("1.0.0")).map_err(|x| TestCaseError::fail(x.to_string()))?;
    check_error_json(&printed).map_err(TestCaseError::fail)?;
    let back = CniError::from_json(&printed);
    prop_assert_eq!(back.as_ref(), Some(e));
    Ok(())
}

fn parser_config(kind: Kind) -> impl Strategy<Value = (Vec<u8>, String)> {
    (stdin_for(kind), prop::option::of(cni_args())).prop_map(|(stdin, args)| {
        let bytes = match stdin {
            Stdin::Json(mut v) => {
                confine(&mut v, Path::new("/nonexistent"));
                v.to_string().into_bytes()
            }
            Stdin::Raw(b) => b,
        };
        (bytes, args.unwrap_or_default())
    })
}

proptest! {
    #![proptest_config(config(PARSER_CASES))]

    #[test]
    fn config_parsers_answer_spec_errors((stdin, args) in parser_config(Kind::Bridge)) {
        let net = match NetConf::parse(&stdin) {
            Ok(net) => net,
            Err(e) => return spec_error(&e),
        };
        if let Err(e) = version::negotiate(net.cni_version.as_deref(), &net.cni_versions) {
            spec_error(&e)?;
        }
        let raw = |schema| parse_config(&stdin, schema);
        if let Err(e) = raw(&bridge::config::SCHEMA).and_then(|r| bridge::config::BridgeConf::load(&r, &net, &args)) {
            spec_error(&e)?;
        }
        if let Err(e) = raw(&portmap::config::SCHEMA).and_then(|r| portmap::config::PortmapConf::parse(&r)) {
            spec_error(&e)?;
        }
        let hl = match raw(&host_local::config::SCHEMA) {
            Ok(hl) => hl,
            Err(e) => return spec_error(&e),
        };
        for v in [Version::new(0, 2, 0), Version::V0_4_0, Version::V1_0_0] {
            if let Err(e) = host_local::config::IpamConf::load(&hl, &args, &v.to_string(), v) {
                spec_error(&e)?;
            }
        }
        if let Err(e) = host_local::config::load_store_conf(&hl) {
            spec_error(&e)?;
        }
    }

    #[test]
    fn mutated_plugin_configs_answer_spec_errors(
        (kind, (stdin, args)) in select(&Kind::ALL[..]).prop_flat_map(|k| (Just(k), parser_config(k)))
    ) {
        let Ok(net) = NetConf::parse(&stdin) else { return Ok(()) };
        let raw = |schema| parse_config(&stdin, schema);
        match kind {
            Kind::Bridge => if let Err(e) = raw(&bridge::config::SCHEMA).and_then(|r| bridge::config::BridgeConf::load(&r, &net, &args)) {
                spec_error(&e)?;
            },
            Kind::Portmap => if let Err(e) = raw(&portmap::config::SCHEMA).and_then(|r| portmap::config::PortmapConf::parse(&r)) {
                spec_error(&e)?;
            },
            Kind::HostLocal | Kind::Loopback => {
                if let Err(e) = raw(&host_local::config::SCHEMA).and_then(|r| host_local::config::IpamConf::load(&r, &args, "1.0.0", Version::V1_0_0)) {
                    spec_error(&e)?;
                }
            }
        }
    }

    #[test]
    fn cni_args_answer_spec_errors(raw in cni_args(), known in prop::collection::vec(select(&["IP", "MAC", "K8S_POD_NAME"][..]), 0..3)) {
        if let Err(e) = CniArgs::parse(&raw, &known) {
            spec_error(&e)?;
        }
    }

    #[test]
    fn prev_results_of_any_version_answer_spec_errors(prev in prev_result(), v in select(version::SUPPORTED_VERSIONS)) {
        let version = Version::parse(v).map_err(|e| TestCaseError::fail(e.msg))?;
        match CniResult::parse(&prev, version) {
            Err(e) => spec_error(&e)?,
            // What parses renders back in every version, or refuses with a spec error.
            Ok(result) => for (text, ver) in version::SUPPORTED_VERSIONS.iter().filter_map(|t| Version::parse(t).ok().map(|v| (*t, v))) {
                if let Err(e) = result.render(text, ver) {
                    spec_error(&e)?;
                }
            },
        }
    }

    #[test]
    fn environments_answer_spec_errors(
        vars in prop::collection::btree_map(
            select(&["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"][..]),
            hostile_text(), 0..6)
    ) {
        match cni_protocol::Invocation::from_env(&|k| vars.get(k).cloned()) {
            Err(e) => spec_error(&e)?,
            Ok(Some(inv)) => if let Err(e) = inv.validate_identity() {
                spec_error(&e)?;
            },
            Ok(None) => {}
        }
    }
}

/// An invocation that must fail: a valid one with at least one fatal defect.
#[derive(Clone, Debug)]
enum Defect {
    ContainerId(String),
    Ifname(String),
    Name(String),
    Version(String),
    Command(String),
    Args(String),
    Unset(&'static str),
    BrokenJson(usize),
    Subnet(String),
    NotAnObject(Value),
}

fn defect() -> impl Strategy<Value = Defect> {
    let bad_name = prop_oneof![
        select(
            &[
                "",
                "../x",
                "a/b",
                "\0",
                "é",
                ".hidden",
                "-x",
                "a b",
                "../../etc"
            ][..]
        )
        .prop_map(str::to_string),
        "[^a-zA-Z0-9_.-]{1,4}".prop_map(|s| format!("x{s}")),
    ];
    prop_oneof![
        bad_name.clone().prop_map(Defect::ContainerId),
        prop_oneof![
            select(&["", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef", "\t"][..])
                .prop_map(str::to_string),
            (16usize..64).prop_map(|n| "i".repeat(n)),
        ]
        .prop_map(Defect::Ifname),
        bad_name.prop_map(Defect::Name),
        select(&["9.9.9", "x", "1.2.3.4", "", "0.9.0", "-1"][..])
            .prop_map(|s| Defect::Version(s.to_string())),
        select(&["add", "FROB", "ADD ", "\u{0130}"][..])
            .prop_map(|s| Defect::Command(s.to_string())),
        select(
            &[
                "FOO=1",
                "garbage",
                "IP=1;",
                "IgnoreUnknown=maybe",
                "=",
                "IP=a=b"
            ][..]
        )
        .prop_map(|s| Defect::Args(s.to_string())),
        select(&["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH", "CNI_NETNS"][..])
            .prop_map(Defect::Unset),
        any::<usize>().prop_map(Defect::BrokenJson),
        select(
            &[
                "10.0.0.1/24",
                "10.0.0.0/31",
                "300.0.0.0/8",
                "x",
                "",
                "fd00::/128"
            ][..]
        )
        .prop_map(|s| Defect::Subnet(s.to_string())),
        prop_oneof![
            Just(json!([])),
            Just(json!(null)),
            Just(json!("x")),
            Just(json!(7))
        ]
        .prop_map(Defect::NotAnObject),
    ]
}

/// Builds the failing call for `kind`, or `None` when `defect` does not apply to it.
fn hostile_call(kind: Kind, defect: &Defect, noise: &[Edit], world: &ExecWorld) -> Option<Call> {
    let mut conf = kind.base();
    // Noise only where it cannot repair the defect: in keys the defect does not touch.
    for e in noise {
        if let Edit::Insert(_, k, v) = e {
            if !KEYS.contains(&k.as_str()) {
                if let Some(o) = conf.as_object_mut() {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
    }
    confine(&mut conf, world.data.path());
    let mut call = Call::new("ADD", "fuzz-c1", "").netns(&world.netns.path_str());
    match defect {
        Defect::ContainerId(id) if !id.contains('\0') => call.container_id = id.clone(),
        Defect::Ifname(n) if !matches!(kind, Kind::Portmap | Kind::Loopback) || !n.is_empty() => {
            // Empty is "missing": every plugin refuses it. Loopback and portmap do not use
            // the name, but the skel validates it for ADD/DEL/CHECK.
            call = call.ifname(n)
        }
        Defect::Name(n) => conf["name"] = json!(n),
        Defect::Version(v) => conf["cniVersion"] = json!(v),
        Defect::Command(c) => call.command = c.clone(),
        Defect::Args(a) if matches!(kind, Kind::Bridge | Kind::HostLocal) => call = call.args(a),
        Defect::Unset(var) => call = call.unset(var),
        Defect::BrokenJson(at) => {
            let text = conf.to_string();
            let cut = at % text.len().max(1);
            call.stdin = text[..cut].to_string();
            return Some(call);
        }
        Defect::Subnet(s) if matches!(kind, Kind::Bridge | Kind::HostLocal) => {
            conf["ipam"]["ranges"][0][0]["subnet"] = json!(s)
        }
        Defect::NotAnObject(v) => {
            call.stdin = v.to_string();
            return Some(call);
        }
        _ => return None,
    }
    call.stdin = conf.to_string();
    Some(call)
}

struct ExecWorld {
    data: tempfile::TempDir,
    netns: Netns,
}

/// Link names in the sandbox host, but for the base config's bridge: like the reference,
/// a failed ADD keeps the bridge it made (other attachments share it).
fn links() -> String {
    sh("ip -o link show | cut -d: -f2 | grep -vx ' fz0' | sort")
}

#[test]
fn real_binaries_refuse_hostile_invocations_cleanly() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let world = ExecWorld {
            data: tempfile::tempdir().expect("tempdir"),
            netns: Netns::new(),
        };
        let host_before = links();
        let container_before = world.netns.sh("ip -o link show | cut -d: -f2 | sort");
        let mut runner = TestRunner::new_with_rng(config(1), rng());
        let strategy = (defect(), prop::collection::vec(edit(), 0..3));
        let mut total = 0;
        for kind in Kind::ALL {
            let bin = our_plugin(kind.binary());
            let mut ran = 0;
            while ran < EXEC_CASES {
                let (defect, noise) = strategy.new_tree(&mut runner).expect("generate").current();
                let Some(call) = hostile_call(kind, &defect, &noise, &world) else {
                    continue;
                };
                ran += 1;
                let reply = call.run(&bin);
                let context = || format!("{kind:?} {defect:?}: {reply:?}");
                assert_eq!(reply.status, 1, "{}", context());
                if let Err(e) = check_error_json(reply.stdout.as_bytes()) {
                    panic!("{e}: {}", context());
                }
                assert!(!reply.stderr.contains("panicked"), "panic: {}", context());
            }
            total += ran;
        }
        assert_eq!(links(), host_before, "no link left on the host");
        assert_eq!(
            world.netns.sh("ip -o link show | cut -d: -f2 | sort"),
            container_before,
            "no link left in the container"
        );
        assert!(lease_names(&world.data.path().join("fuzz")).is_empty());
        eprintln!("{total} hostile invocations of the real binaries, all refused cleanly");
    });
}
