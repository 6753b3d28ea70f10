//! `cni-bench bridge`: ADD/DEL latency, 8-parallel throughput and growth with the number of
//! bridge ports of our bridge (+ our host-local) against the reference bridge (+ reference
//! host-local), next to the kernel floor (`ip link add ... type veth` / `ip link del`), all in one
//! run.
//!
//! It creates bridges, veths, pod network namespaces and firewall rules, so it refuses to run
//! unless it is inside its own network *and* mount namespace (bench/bridge.sh re-executes itself
//! under `unshare --net --mount` and mounts a tmpfs on /run, where the pod netns files go).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::args::Opts;
use crate::exec::{self, is_executable, Outcome, MIN_PATH};
use crate::stats::{fmt_ms, fmt_ratio, median, ratio, Series};
use crate::tempdir::{self, TempDir};

const NETNS_DIR: &str = "/run/netns";
const IP_BIN: &str = "/usr/sbin/ip";
const IFNAME: &str = "eth0";
const DEFAULT_REFERENCE_DIR: &str = "/usr/lib/cni";
const MAX_REPORTED_ERRORS: usize = 5;

// The targets (issue #3 and DESIGN §8).
const ADD_VS_REF_GOAL: f64 = 0.20;
const MASQ_COST_GOAL: f64 = 1.30;
const DEL_VS_REF_GOAL: f64 = 0.15;
const DEL_OVER_FLOOR_GOAL_MS: f64 = 5.0;
const GROWTH_GOAL: f64 = 1.20;
const PARALLEL_GOAL: f64 = 150.0;

/// What is exec'd for one pod.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// /usr/lib/cni/bridge with /usr/lib/cni/host-local (masquerade via iptables).
    Reference,
    /// Ours with `ipMasqBackend: "nftables"` (our native backend).
    OursNft,
    /// Ours with `ipMasqBackend: "iptables"`.
    OursIpt,
    /// `ip link add <veth> up master <br> type veth peer name eth0 netns <pod>` / `ip link del`.
    Floor,
    /// [`Kind::Floor`] plus `ip -n <pod> link set eth0 up` (ADD timed over both execs): the
    /// container end up too, as every plugin leaves it, so its IPv6 link-local traffic (DAD,
    /// MLD, router solicitations) is flooded over the bridge like a plugin's pod's.
    FloorUp,
}

impl Kind {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reference" | "ref" => Ok(Self::Reference),
            "ours" | "ours-nft" => Ok(Self::OursNft),
            "ours-ipt" => Ok(Self::OursIpt),
            "floor" | "ip-link" => Ok(Self::Floor),
            "floor-up" => Ok(Self::FloorUp),
            _ => Err(format!(
                "unknown implementation {s:?} (reference, ours-nft, ours-ipt, floor, floor-up)"
            )),
        }
    }

    fn is_floor(self) -> bool {
        matches!(self, Self::Floor | Self::FloorUp)
    }

    fn label(self, masq: bool) -> &'static str {
        match (self, masq) {
            (Self::Reference, _) => "reference",
            (Self::OursNft, true) => "ours-nft",
            (Self::OursNft, false) | (Self::OursIpt, false) => "ours",
            (Self::OursIpt, true) => "ours-ipt",
            (Self::Floor, _) => "ip-link floor",
            (Self::FloorUp, _) => "ip-link+ctr-up floor",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Case {
    kind: Kind,
    masq: bool,
}

impl Case {
    /// The label without column padding, for messages.
    fn name(self) -> String {
        self.label()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn label(self) -> String {
        let masq = match (self.kind, self.masq) {
            (k, _) if k.is_floor() => "-",
            (_, true) => "masq",
            (_, false) => "nomasq",
        };
        format!("{masq:<6} {}", self.kind.label(self.masq))
    }
}

struct Setup {
    ours_dir: PathBuf,
    reference_dir: PathBuf,
    tmp_base: PathBuf,
    /// Networks created so far (bridge/subnet/data-dir index).
    nets: usize,
    errors: usize,
}

/// One bridge network: its own bridge, /16 subnet and host-local data dir.
struct Net {
    case: Case,
    idx: usize,
    bridge: String,
    config: Vec<u8>,
    /// Where bridge and host-local live (CNI_PATH); empty for the floor.
    cni_dir: PathBuf,
    cni_path: String,
    _data: Option<TempDir>,
}

/// A measured call: which pod and what happened.
struct Call {
    pod: usize,
    out: Outcome,
}

#[derive(Default)]
struct Measured {
    add: Series,
    del: Series,
    add_rss_kib: Vec<i64>,
    /// ADDs per second over the ADD phase's wall clock (parallel phase only).
    add_per_sec: Option<f64>,
}

pub fn run(args: &[String]) -> Result<bool, String> {
    let opts = Opts::parse(
        args,
        &[
            "n",
            "parallel",
            "warmup",
            "pods",
            "window",
            "impls",
            "scale-impls",
            "ours-dir",
            "reference-dir",
            "tmpdir",
            "pod-ipv6",
        ],
    )?;
    let pod_ipv6 = match opts.string("pod-ipv6").unwrap_or("on") {
        "on" => true,
        "off" => false,
        other => return Err(format!("--pod-ipv6: {other:?} is neither on nor off")),
    };
    let n = opts.usize_or("n", 100)?;
    let workers = opts.usize_or("parallel", 8)?;
    let warmup = opts.usize_or("warmup", 3)?;
    let pods = opts.usize_or("pods", 1000)?;
    let window = opts.usize_or("window", 50)?;
    if n == 0 || workers == 0 {
        return Err("--n and --parallel must be at least 1".into());
    }
    if pods > 0 && (window == 0 || 2 * window > pods) {
        return Err("--window must be between 1 and --pods / 2".into());
    }
    if pods.max(n).max(warmup) > 60000 {
        return Err("at most 60000 pods per network".into());
    }
    let impls = parse_kinds(
        opts.string("impls")
            .unwrap_or("reference,ours-nft,ours-ipt,floor"),
    )?;
    let scale_impls = parse_kinds(
        opts.string("scale-impls")
            .unwrap_or("floor,floor-up,ours-nft"),
    )?;

    check_sandbox()?;
    let started = Instant::now();

    let ours_dir = opts
        .string("ours-dir")
        .map_or_else(exec::release_dir, PathBuf::from);
    let reference_dir = PathBuf::from(
        opts.string("reference-dir")
            .unwrap_or(DEFAULT_REFERENCE_DIR),
    );
    let mut setup = Setup {
        ours_dir,
        reference_dir,
        tmp_base: opts
            .string("tmpdir")
            .map_or_else(std::env::temp_dir, PathBuf::from),
        nets: 0,
        errors: 0,
    };
    for kind in impls.iter().chain(&scale_impls) {
        if let Some(dir) = setup.plugin_dir(*kind) {
            for bin in ["bridge", "host-local"] {
                if !is_executable(&dir.join(bin)) {
                    return Err(format!(
                        "{} is missing or not executable (build with \
                         `cargo build --release -p bridge -p host-local`, or pass --ours-dir / \
                         --reference-dir)",
                        dir.join(bin).display()
                    ));
                }
            }
        }
    }

    // Cases: with masquerade, then without (ours' two backends are the same plugin without it).
    let mut cases = Vec::new();
    for masq in [true, false] {
        for &kind in &impls {
            let dup = !masq && kind == Kind::OursIpt && impls.contains(&Kind::OursNft);
            if (kind.is_floor() && !masq) || dup {
                continue;
            }
            cases.push(Case { kind, masq });
        }
    }
    // The floor has no masquerade; list it last.
    cases.sort_by_key(|c| c.kind.is_floor());

    let pool = n.max(pods).max(warmup);
    println!(
        "bridge bench: n={n} sequential and {workers}-parallel ADD+DEL per case (warmup {warmup}), \
         growth: fill one bridge to {pods} pods, compare #1-{window} with #{}-{pods}",
        pods.saturating_sub(window) + 1
    );
    println!(
        "  ours      {}/bridge + host-local",
        setup.ours_dir.display()
    );
    println!(
        "  reference {}/bridge + host-local",
        setup.reference_dir.display()
    );
    println!(
        "  host-local data dirs under {} ({}); pod netns files in {NETNS_DIR} ({})",
        setup.tmp_base.display(),
        tempdir::fs_type(&setup.tmp_base),
        tempdir::fs_type(Path::new(NETNS_DIR))
    );
    let t = Instant::now();
    make_pod_netns(pool, pod_ipv6)?;
    println!(
        "  setup (not timed in any call): {pool} pod netns (IPv6 {}) in {:.2} s",
        if pod_ipv6 { "on" } else { "disabled" },
        t.elapsed().as_secs_f64()
    );

    let mut seq: Vec<(Case, Measured)> = Vec::new();
    let mut par: Vec<(Case, Measured)> = Vec::new();
    for &case in &cases {
        eprintln!("[{}] sequential n={n}", case.name());
        let net = setup.net(case)?;
        for i in 0..warmup {
            let add = net.call("ADD", i, &format!("warm{i}"))?;
            setup.check_add(&net, &add, &mut HashSet::new());
            let del = net.call("DEL", i, &format!("warm{i}"))?;
            setup.check_del(&net, &del);
        }
        let m = setup.phase(&net, n, 1)?;
        setup.finish(&net)?;
        seq.push((case, m));
    }
    for &case in &cases {
        eprintln!("[{}] {workers}-parallel n={n}", case.name());
        let net = setup.net(case)?;
        let m = setup.phase(&net, n, workers)?;
        setup.finish(&net)?;
        par.push((case, m));
    }
    let mut scale: Vec<(Case, Growth)> = Vec::new();
    if pods > 0 {
        for &kind in &scale_impls {
            let case = Case {
                kind,
                masq: !kind.is_floor(),
            };
            eprintln!("[{}] filling one bridge to {pods} pods", case.name());
            let net = setup.net(case)?;
            let g = setup.growth(&net, pods, window)?;
            setup.finish(&net)?;
            scale.push((case, g));
        }
    }

    let delegates = setup.delegate_rss(&impls, n.min(20))?;
    print_report(&seq, &par, &scale, &delegates, workers, window, pods);
    println!(
        "errors: {} (every call checked: exit 0, a unique address in the subnet, no port left \
         on the bridge); total run time {:.0} s",
        setup.errors,
        started.elapsed().as_secs_f64()
    );
    Ok(setup.errors == 0)
}

fn parse_kinds(list: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let k = Kind::parse(s)?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Ok(kinds)
}

/// Refuses to run in the machine's own network or mount namespace: both must differ from pid 1's
/// (or, where /proc/1 is not readable, from the ones bench/bridge.sh recorded before `unshare`),
/// the network namespace must hold nothing but loopback, and /run/netns must be a tmpfs.
fn check_sandbox() -> Result<(), String> {
    for ns in ["net", "mnt"] {
        let ours = fs::metadata(format!("/proc/self/ns/{ns}"))
            .map_err(|e| format!("stat /proc/self/ns/{ns}: {e}"))?;
        let host = match fs::metadata(format!("/proc/1/ns/{ns}")) {
            Ok(m) => m.ino(),
            Err(_) => {
                let var = format!("CNI_BENCH_HOST_{}_NS", ns.to_uppercase());
                std::env::var(&var)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| {
                        format!(
                            "cannot tell whether this is the machine's own {ns} namespace \
                             (/proc/1/ns/{ns} unreadable, {var} unset); run through \
                             bench/bridge.sh"
                        )
                    })?
            }
        };
        if ours.ino() == host {
            return Err(format!(
                "refusing to run in the machine's own {ns} namespace: this benchmark creates \
                 bridges, veths and firewall rules; run it through bench/bridge.sh (unshare \
                 --net --mount)"
            ));
        }
    }
    let out = exec::run_args(
        Path::new(IP_BIN),
        &["-o", "link", "show"],
        &[("PATH", MIN_PATH)],
        b"",
    )?;
    let links: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .collect();
    if !out.success() || links.iter().any(|l| l != "lo") {
        return Err(format!(
            "refusing to run: this network namespace is not fresh (links {links:?}); run \
             through bench/bridge.sh"
        ));
    }
    if tempdir::fs_type(Path::new(NETNS_DIR)) != "tmpfs" {
        return Err(format!(
            "{NETNS_DIR} must be a directory on a private tmpfs (bench/bridge.sh mounts one on \
             /run)"
        ));
    }
    Ok(())
}

fn pod_name(i: usize) -> String {
    format!("p{i}")
}

/// Creates `count` empty network namespaces bound to files `/run/netns/p<i>` (so `ip ... netns
/// p<i>` and `CNI_NETNS=/run/netns/p<i>` both work), from one helper thread that unshares a fresh
/// netns per pod and bind-mounts it. Namespaces that already exist are kept.
fn make_pod_netns(count: usize, ipv6: bool) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), String> {
            let src = CString::new("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
            for i in 0..count {
                let path = format!("{NETNS_DIR}/{}", pod_name(i));
                if Path::new(&path).exists() {
                    continue;
                }
                fs::File::create(&path).map_err(|e| format!("create {path}: {e}"))?;
                let dst = CString::new(path.clone()).map_err(|e| e.to_string())?;
                // SAFETY: plain syscalls on this helper thread only (a per-thread netns switch);
                // the C strings outlive the calls.
                let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(format!(
                        "unshare(CLONE_NEWNET): {}",
                        std::io::Error::last_os_error()
                    ));
                }
                // SAFETY: as above; MS_BIND with null fstype/data is the documented bind form.
                let rc = unsafe {
                    libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                if rc != 0 {
                    return Err(format!(
                        "bind-mount netns on {path}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                if !ipv6 {
                    // /proc/sys/net is the opening thread's netns: the pod's, just unshared.
                    for conf in ["all", "default"] {
                        let knob = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                        fs::write(&knob, "1").map_err(|e| format!("{knob} in {path}: {e}"))?;
                    }
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| "netns helper thread panicked".to_string())?
    })
}

impl Setup {
    fn plugin_dir(&self, kind: Kind) -> Option<&Path> {
        match kind {
            Kind::Reference => Some(&self.reference_dir),
            Kind::OursNft | Kind::OursIpt => Some(&self.ours_dir),
            Kind::Floor | Kind::FloorUp => None,
        }
    }

    fn fail(&mut self, msg: String) {
        self.errors += 1;
        if self.errors <= MAX_REPORTED_ERRORS {
            eprintln!("error: {msg}");
        } else if self.errors == MAX_REPORTED_ERRORS + 1 {
            eprintln!("error: further errors only counted");
        }
    }

    /// A fresh network (bridge `cb<k>`, subnet 10.<k>.0.0/16, own data dir) for `case`.
    fn net(&mut self, case: Case) -> Result<Net, String> {
        self.nets += 1;
        let idx = self.nets;
        if idx > 250 {
            return Err("out of subnets".into());
        }
        let bridge = format!("cb{idx}");
        let cni_dir = self
            .plugin_dir(case.kind)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (config, data) = match self.plugin_dir(case.kind) {
            None => {
                let out = exec::run_args(
                    Path::new(IP_BIN),
                    &["link", "add", &bridge, "up", "type", "bridge"],
                    &[("PATH", MIN_PATH)],
                    b"",
                )?;
                if !out.success() {
                    return Err(format!(
                        "create bridge {bridge}: {}",
                        out.describe_failure()
                    ));
                }
                (Vec::new(), None)
            }
            Some(_) => {
                let data = TempDir::new_in(&self.tmp_base, &format!("bridge-{idx}"))?;
                let mut conf = serde_json::json!({
                    "cniVersion": "1.0.0",
                    "name": format!("benchnet{idx}"),
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": case.masq,
                    "ipam": {
                        "type": "host-local",
                        "subnet": format!("10.{idx}.0.0/16"),
                        "dataDir": data.path().to_string_lossy(),
                    }
                });
                // Named explicitly: without it ours follows the reference's default (iptables).
                match case.kind {
                    Kind::OursIpt => conf["ipMasqBackend"] = "iptables".into(),
                    Kind::OursNft => conf["ipMasqBackend"] = "nftables".into(),
                    _ => {}
                }
                let conf = serde_json::to_vec(&conf).map_err(|e| format!("encode config: {e}"))?;
                (conf, Some(data))
            }
        };
        Ok(Net {
            case,
            idx,
            bridge,
            config,
            cni_path: cni_dir.to_string_lossy().into_owned(),
            cni_dir,
            _data: data,
        })
    }

    /// ADD must exit 0 and (for plugins) return a unique address in the network's subnet.
    fn check_add(&mut self, net: &Net, out: &Outcome, seen: &mut HashSet<Ipv4Addr>) {
        let what = format!("{} ADD", net.case.name());
        if !out.success() {
            return self.fail(format!("{what}: {}", out.describe_failure()));
        }
        if net.case.kind.is_floor() {
            return;
        }
        let Some(ip) = first_address(&out.stdout) else {
            return self.fail(format!(
                "{what}: no ips[0].address in result: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        };
        let octets = ip.octets();
        if octets[0] != 10 || usize::from(octets[1]) != net.idx {
            return self.fail(format!(
                "{what}: address {ip} outside 10.{}.0.0/16",
                net.idx
            ));
        }
        if !seen.insert(ip) {
            self.fail(format!("{what}: duplicate address {ip}"));
        }
    }

    fn check_del(&mut self, net: &Net, out: &Outcome) {
        if !out.success() {
            self.fail(format!(
                "{} DEL: {}",
                net.case.name(),
                out.describe_failure()
            ));
        }
    }

    /// ADD pods 0..n with `workers` concurrent callers, then DEL them the same way.
    fn phase(&mut self, net: &Net, n: usize, workers: usize) -> Result<Measured, String> {
        let mut m = Measured::default();
        let pods: Vec<usize> = (0..n).collect();
        let (adds, wall) = net.batch("ADD", &pods, workers)?;
        if workers > 1 {
            m.add_per_sec = Some(n as f64 / wall.as_secs_f64().max(1e-9));
        }
        let mut seen = HashSet::new();
        for c in &adds {
            m.add.push(c.out.elapsed);
            m.add_rss_kib.push(c.out.maxrss_kib);
            self.check_add(net, &c.out, &mut seen);
        }
        let (dels, _) = net.batch("DEL", &pods, workers)?;
        for c in &dels {
            m.del.push(c.out.elapsed);
            self.check_del(net, &c.out);
        }
        Ok(m)
    }

    /// Fills one bridge to `pods` pods one by one, then deletes them newest first: ADD at
    /// #1-w vs #(pods-w+1)-pods, DEL with the bridge at pods..pods-w+1 ports vs w..1 ports.
    fn growth(&mut self, net: &Net, pods: usize, w: usize) -> Result<Growth, String> {
        let mut g = Growth::default();
        let mut seen = HashSet::new();
        for i in 0..pods {
            let out = net.call("ADD", i, &format!("c{i}"))?;
            self.check_add(net, &out, &mut seen);
            if i < w {
                g.add_first.push(out.elapsed);
            } else if i >= pods - w {
                g.add_last.push(out.elapsed);
            }
        }
        for i in (0..pods).rev() {
            let out = net.call("DEL", i, &format!("c{i}"))?;
            self.check_del(net, &out);
            if i < w {
                g.del_first.push(out.elapsed);
            } else if i >= pods - w {
                g.del_last.push(out.elapsed);
            }
        }
        Ok(g)
    }

    /// After all DELs: no port may be left on the bridge. Then the bridge goes.
    fn finish(&mut self, net: &Net) -> Result<(), String> {
        let out = exec::run_args(
            Path::new(IP_BIN),
            &["-o", "link", "show", "master", &net.bridge],
            &[("PATH", MIN_PATH)],
            b"",
        )?;
        let left = String::from_utf8_lossy(&out.stdout).lines().count();
        if !out.success() {
            self.fail(format!(
                "list ports of {}: {}",
                net.bridge,
                out.describe_failure()
            ));
        } else if left != 0 {
            self.fail(format!(
                "{}: {left} ports left on {} after DEL",
                net.case.name(),
                net.bridge
            ));
        }
        let out = exec::run_args(
            Path::new(IP_BIN),
            &["link", "del", &net.bridge],
            &[("PATH", MIN_PATH)],
            b"",
        )?;
        if !out.success() {
            self.fail(format!("delete {}: {}", net.bridge, out.describe_failure()));
        }
        Ok(())
    }

    /// Peak RSS of each implementation's host-local run on its own (what a bridge ADD's
    /// delegate costs), `n` ADD+DEL pairs.
    fn delegate_rss(&mut self, impls: &[Kind], n: usize) -> Result<Vec<(String, i64)>, String> {
        let mut rss = Vec::new();
        for &kind in impls {
            if kind.is_floor() || kind == Kind::OursIpt {
                continue;
            }
            let Some(dir) = self.plugin_dir(kind).map(Path::to_path_buf) else {
                continue;
            };
            let data = TempDir::new_in(&self.tmp_base, "delegate")?;
            let conf = serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "delegate",
                "type": "host-local",
                "ipam": {"type": "host-local", "subnet": "10.251.0.0/16",
                         "dataDir": data.path().to_string_lossy()}
            });
            let conf = serde_json::to_vec(&conf).map_err(|e| format!("encode config: {e}"))?;
            let bin = dir.join("host-local");
            let mut peak = Vec::new();
            for i in 0..n {
                let id = format!("d{i}");
                let netns = format!("{NETNS_DIR}/{}", pod_name(0));
                let dir_s = dir.to_string_lossy();
                let env = cni_env("ADD", &id, &netns, &dir_s);
                let out = exec::run(&bin, &env, &conf)?;
                if !out.success() {
                    self.fail(format!(
                        "delegate host-local ADD: {}",
                        out.describe_failure()
                    ));
                }
                peak.push(out.maxrss_kib);
                let env = cni_env("DEL", &id, &netns, &dir_s);
                let out = exec::run(&bin, &env, &conf)?;
                if !out.success() {
                    self.fail(format!(
                        "delegate host-local DEL: {}",
                        out.describe_failure()
                    ));
                }
            }
            if let Some(m) = median(&peak) {
                rss.push((
                    if kind == Kind::Reference {
                        "reference"
                    } else {
                        "ours"
                    }
                    .to_string(),
                    m,
                ));
            }
        }
        Ok(rss)
    }
}

#[derive(Default)]
struct Growth {
    add_first: Series,
    add_last: Series,
    del_first: Series,
    del_last: Series,
}

fn cni_env<'a>(
    command: &'a str,
    container_id: &'a str,
    netns: &'a str,
    cni_path: &'a str,
) -> [(&'a str, &'a str); 6] {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", IFNAME),
        ("CNI_PATH", cni_path),
        ("PATH", MIN_PATH),
    ]
}

impl Net {
    /// One exec for pod `pod` (container id `b<k>-<tag>`).
    fn call(&self, cmd: &str, pod: usize, tag: &str) -> Result<Outcome, String> {
        let pod_ns = pod_name(pod);
        match self.case.kind {
            Kind::Floor | Kind::FloorUp => {
                // Veth names must stay within 15 bytes: "f" + net + "x" + pod.
                let veth = format!("f{}x{pod}", self.idx);
                let ip = |args: &[&str]| {
                    exec::run_args(Path::new(IP_BIN), args, &[("PATH", MIN_PATH)], b"")
                };
                if cmd != "ADD" {
                    return ip(&["link", "del", &veth]);
                }
                let add = ip(&[
                    "link",
                    "add",
                    &veth,
                    "up",
                    "master",
                    &self.bridge,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    IFNAME,
                    "netns",
                    &pod_ns,
                ])?;
                if self.case.kind == Kind::Floor || !add.success() {
                    return Ok(add);
                }
                let mut up = ip(&["-n", &pod_ns, "link", "set", IFNAME, "up"])?;
                up.elapsed += add.elapsed;
                up.maxrss_kib = up.maxrss_kib.max(add.maxrss_kib);
                Ok(up)
            }
            _ => {
                let id = format!("b{}-{tag}", self.idx);
                let netns = format!("{NETNS_DIR}/{pod_ns}");
                let env = cni_env(cmd, &id, &netns, &self.cni_path);
                exec::run(&self.cni_dir.join("bridge"), &env, &self.config)
            }
        }
    }

    /// Runs `cmd` for every pod in `pods` with `workers` concurrent callers; returns the calls
    /// (in completion order) and the phase's wall clock.
    fn batch(
        &self,
        cmd: &str,
        pods: &[usize],
        workers: usize,
    ) -> Result<(Vec<Call>, Duration), String> {
        let next = AtomicUsize::new(0);
        let calls = Mutex::new(Vec::with_capacity(pods.len()));
        let start = Instant::now();
        std::thread::scope(|s| -> Result<(), String> {
            let handles: Vec<_> = (0..workers.min(pods.len()))
                .map(|_| {
                    s.spawn(|| -> Result<(), String> {
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&pod) = pods.get(k) else {
                                return Ok(());
                            };
                            let out = self.call(cmd, pod, &format!("c{pod}"))?;
                            calls
                                .lock()
                                .map_err(|_| "poisoned".to_string())?
                                .push(Call { pod, out });
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| "worker panicked".to_string())??;
            }
            Ok(())
        })?;
        let wall = start.elapsed();
        let mut calls = calls.into_inner().map_err(|_| "poisoned".to_string())?;
        calls.sort_by_key(|c| c.pod);
        Ok((calls, wall))
    }
}

/// The first IPv4 address in a CNI result, if any.
fn first_address(stdout: &[u8]) -> Option<Ipv4Addr> {
    let v: Value = serde_json::from_slice(stdout).ok()?;
    let addr = v.get("ips")?.get(0)?.get("address")?.as_str()?;
    addr.split_once('/')?.0.parse().ok()
}

fn find(list: &[(Case, Measured)], kind: Kind, masq: bool) -> Option<&Measured> {
    list.iter()
        .find(|(c, _)| c.kind == kind && (c.masq == masq || kind.is_floor()))
        .map(|(_, m)| m)
}

fn three(s: &Series) -> String {
    format!(
        "{:>8} {:>8} {:>8}",
        fmt_ms(s.p50()),
        fmt_ms(s.percentile(90.0)),
        fmt_ms(s.percentile(99.0))
    )
}

fn verdict(value: Option<f64>, goal: f64) -> &'static str {
    match value {
        Some(v) if v <= goal => "PASS",
        Some(_) => "FAIL",
        None => "n/a",
    }
}

/// One target line: `  <what>: <value> -> PASS|FAIL|n/a` (pass when value <= goal).
fn target(what: &str, value: Option<f64>, goal: f64) {
    println!("  {what}: {} -> {}", opt2(value), verdict(value, goal));
}

fn opt2(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

fn print_report(
    seq: &[(Case, Measured)],
    par: &[(Case, Measured)],
    scale: &[(Case, Growth)],
    delegates: &[(String, i64)],
    workers: usize,
    window: usize,
    pods: usize,
) {
    let par_label = format!("par{workers}");
    println!();
    println!("ms, wall clock per exec (spawn -> stdout read -> reaped); RSS = median ru_maxrss of an ADD");
    println!(
        "{:<5} {:<27} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>7} | {:>7}",
        "phase", "case", "ADD p50", "p90", "p99", "DEL p50", "p90", "p99", "ADD/s", "RSS KiB"
    );
    println!("{}", "-".repeat(113));
    for (phase, list) in [("seq", seq), (par_label.as_str(), par)] {
        for (case, m) in list {
            println!(
                "{:<5} {:<27} | {} | {} | {:>7} | {:>7}",
                phase,
                case.label(),
                three(&m.add),
                three(&m.del),
                m.add_per_sec
                    .map_or_else(|| "-".into(), |r| format!("{r:.1}")),
                median(&m.add_rss_kib).map_or_else(|| "-".into(), |r| r.to_string()),
            );
        }
    }
    println!();
    println!("p50 ratios ours / reference (same phase, same masquerade setting)");
    for (phase, list) in [("seq", seq), (par_label.as_str(), par)] {
        for (case, m) in list {
            if case.kind == Kind::Reference || case.kind.is_floor() {
                continue;
            }
            let Some(r) = find(list, Kind::Reference, case.masq) else {
                continue;
            };
            println!(
                "{:<5} {:<27} ADD {:>5}   DEL {:>5}",
                phase,
                case.label(),
                fmt_ratio(m.add.p50(), r.add.p50()),
                fmt_ratio(m.del.p50(), r.del.p50()),
            );
        }
    }
    if !scale.is_empty() {
        let last = format!("#{}-{pods}", pods - window + 1);
        let first = format!("#1-{window}");
        println!();
        println!(
            "growth on one bridge filled to {pods} pods: first = pods {first}, last = pods {last} \
             (DEL newest first: last = bridge at {pods}..{} ports)",
            pods - window + 1
        );
        println!(
            "{:<27} {:<4} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>9}",
            "case", "op", "1st p50", "p90", "p99", "last p50", "p90", "p99", "last/first"
        );
        for (case, g) in scale {
            for (op, a, b) in [
                ("ADD", &g.add_first, &g.add_last),
                ("DEL", &g.del_first, &g.del_last),
            ] {
                println!(
                    "{:<27} {:<4} | {} | {} | {:>9}",
                    case.label(),
                    op,
                    three(a),
                    three(b),
                    fmt_ratio(b.p50(), a.p50())
                );
            }
        }
    }
    println!();
    println!(
        "peak RSS: wait4's ru_maxrss of a bridge exec covers the bridge and the host-local it"
    );
    println!("waited for (the kernel reports the max over the process and its reaped children).");
    for (label, kib) in delegates {
        println!("  {label} host-local exec'd alone (its IPAM delegate): median {kib} KiB");
    }

    println!();
    println!("targets (p50; ours = ours-nft unless named)");
    let o = |list, masq| find(list, Kind::OursNft, masq);
    let r = |list, masq| find(list, Kind::Reference, masq);
    let p50 = |m: Option<&Measured>, del: bool| {
        m.and_then(|m| if del { m.del.p50() } else { m.add.p50() })
    };
    let add_vs_ref = ratio(p50(o(seq, true), false), p50(r(seq, true), false));
    target(
        &format!("ADD with ipMasq <= {ADD_VS_REF_GOAL:.2}x reference (seq)"),
        add_vs_ref,
        ADD_VS_REF_GOAL,
    );
    let ipt = find(seq, Kind::OursIpt, true);
    if ipt.is_some() {
        let v = ratio(p50(ipt, false), p50(r(seq, true), false));
        target("  ours-ipt (iptables backend)", v, ADD_VS_REF_GOAL);
    }
    let masq_cost = ratio(p50(o(seq, true), false), p50(o(seq, false), false));
    target(
        &format!("ipMasq costs <= {MASQ_COST_GOAL:.2}x ADD without it (seq)"),
        masq_cost,
        MASQ_COST_GOAL,
    );
    let del_vs_ref = ratio(p50(o(seq, true), true), p50(r(seq, true), true));
    target(
        &format!("DEL <= {DEL_VS_REF_GOAL:.2}x reference (seq, ipMasq)"),
        del_vs_ref,
        DEL_VS_REF_GOAL,
    );
    let floor_del = find(seq, Kind::Floor, false).and_then(|m| m.del.p50());
    let ours_del = o(seq, true).and_then(|m| m.del.p50());
    let over = match (ours_del, floor_del) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    println!(
        "  DEL <= ip-link-del floor + {DEL_OVER_FLOOR_GOAL_MS:.0} ms (DESIGN §8; seq, ipMasq): \
         {} ms vs floor {} ms (+{} ms) -> {}",
        fmt_ms(ours_del),
        fmt_ms(floor_del),
        opt2(over),
        verdict(over, DEL_OVER_FLOOR_GOAL_MS)
    );
    let growth = scale
        .iter()
        .find(|(c, _)| c.kind == Kind::OursNft)
        .and_then(|(_, g)| ratio(g.add_last.p50(), g.add_first.p50()));
    println!(
        "  ADD at #{}-{pods} <= {GROWTH_GOAL:.2}x ADD at #1-{window}: {} -> {}",
        pods.saturating_sub(window) + 1,
        opt2(growth),
        verdict(growth, GROWTH_GOAL)
    );
    for (case, g) in scale.iter().filter(|(c, _)| c.kind.is_floor()) {
        println!(
            "    same run, {}: {}",
            case.kind.label(false),
            fmt_ratio(g.add_last.p50(), g.add_first.p50())
        );
    }
    let rate = o(par, true).and_then(|m| m.add_per_sec);
    let rate_verdict = match rate {
        Some(v) if v >= PARALLEL_GOAL => "PASS",
        Some(_) => "FAIL",
        None => "n/a",
    };
    println!(
        "  {workers}-parallel ADD/s (ipMasq) >= {PARALLEL_GOAL:.0}: {} -> {rate_verdict}",
        rate.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
    );
}
