//! `cni-bench host-local`: ADD/DEL latency of our host-local against the reference, with a
//! background of pre-existing leases written directly in the shared on-disk format.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::args::Opts;
use crate::exec::{self, is_executable, Outcome, MIN_PATH};
use crate::stats::{fmt_ms, fmt_ratio, median, ratio, Series};
use crate::tempdir::{self, TempDir};

const NETWORK: &str = "benchnet";
const SUBNET: &str = "10.128.0.0/16";
const SUBNET_BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);
/// Usable addresses in the /16 after network, gateway (.0.1) and broadcast.
const SUBNET_CAPACITY: usize = 65536 - 3;
const IFNAME: &str = "eth0";
const CNI_PATH: &str = "/usr/lib/cni";
/// host-local never opens CNI_NETNS, but it must not name the plugin's own netns: ADD and DEL
/// are refused then (code 8, as the reference's skel).
const NETNS: &str = "/var/run/netns/host-local-bench";
const DEFAULT_REFERENCE: &str = "/usr/lib/cni/host-local";
const FLOOR_BIN: &str = "/bin/true";
/// Failures printed in full per implementation; the rest are only counted.
const MAX_REPORTED_ERRORS: usize = 5;
/// The growth goal for our DEL (DEL with many leases vs. few).
const DEL_GROWTH_GOAL: f64 = 1.20;

struct Impl {
    label: &'static str,
    bin: PathBuf,
    errors: usize,
    /// `ru_maxrss` of every ADD, KiB.
    add_rss_kib: Vec<i64>,
}

/// One implementation at one background size: its own data dir and samples.
struct Run {
    _tmp: TempDir,
    net_dir: PathBuf,
    config: Vec<u8>,
    add: Series,
    del: Series,
    /// CPU time (user+sys) of each measured call.
    add_cpu: Series,
    del_cpu: Series,
    /// Voluntary context switches of each measured call.
    add_vcsw: Vec<i64>,
    del_vcsw: Vec<i64>,
}

pub fn run(args: &[String]) -> Result<bool, String> {
    let opts = Opts::parse(
        args,
        &["n", "warmup", "leases", "ours", "reference", "tmpdir"],
    )?;
    let n = opts.usize_or("n", 100)?;
    let warmup = opts.usize_or("warmup", 5)?;
    let sizes = opts.usize_list_or("leases", &[10, 1000])?;
    if n == 0 {
        return Err("--n must be at least 1".into());
    }
    if sizes.is_empty() {
        return Err("--leases needs at least one size".into());
    }
    if let Some(&big) = sizes.iter().max() {
        if big + warmup + n + 1 > SUBNET_CAPACITY {
            return Err(format!(
                "{big} leases + {} calls do not fit in {SUBNET}",
                warmup + n
            ));
        }
    }

    let ours = opts.string("ours").map_or_else(default_ours, PathBuf::from);
    if !is_executable(&ours) {
        return Err(format!(
            "our binary {} is missing or not executable; build it with \
             `cargo build --release -p host-local` or pass --ours PATH",
            ours.display()
        ));
    }
    let reference = PathBuf::from(opts.string("reference").unwrap_or(DEFAULT_REFERENCE));
    let tmp_base = opts
        .string("tmpdir")
        .map_or_else(std::env::temp_dir, PathBuf::from);

    let mut impls = vec![Impl::new("ours", ours)];
    if is_executable(&reference) {
        impls.push(Impl::new("reference", reference));
    } else {
        println!(
            "note: reference binary {} not found; benchmarking ours only",
            reference.display()
        );
    }

    println!(
        "host-local bench: n={n} ADD+DEL per size (warmup {warmup}), leases {sizes:?}, \
         subnet {SUBNET}"
    );
    println!(
        "  data dirs under {} ({})",
        tmp_base.display(),
        tempdir::fs_type(&tmp_base)
    );
    for imp in &impls {
        println!("  {:<9} {}", imp.label, imp.bin.display());
    }

    // runs[size_idx][impl_idx]
    let mut runs: Vec<Vec<Run>> = Vec::new();
    for &size in &sizes {
        eprintln!("[leases={size}] preparing data dirs, warming up");
        let mut row = Vec::new();
        for imp in &impls {
            row.push(Run::prepare(&tmp_base, imp.label, size)?);
        }
        for k in 0..warmup {
            for (imp, run) in impls.iter_mut().zip(row.iter_mut()) {
                let id = format!("warmup-{k}");
                add_del(imp, run, &id, false)?;
            }
        }
        eprintln!("[leases={size}] measuring {n} iterations");
        for i in 0..n {
            let id = format!("bench-{i}");
            // Alternate which implementation goes first so drift hits both equally.
            let mut order: Vec<usize> = (0..impls.len()).collect();
            if i % 2 == 1 {
                order.reverse();
            }
            for j in order {
                add_del(&mut impls[j], &mut row[j], &id, true)?;
            }
        }
        // Every bench container was deleted again: exactly the background must remain.
        for (imp, run) in impls.iter_mut().zip(row.iter()) {
            let left = count_leases(&run.net_dir)?;
            if left != size {
                imp.fail(format!(
                    "after leases={size} run, {left} lease files remain (expected {size})"
                ));
            }
        }
        runs.push(row);
    }

    eprintln!("measuring exec floor ({FLOOR_BIN} x {n})");
    let floor = measure_floor(n, runs.first().and_then(|r| r.first()))?;

    print_report(&impls, &sizes, &runs, &floor);
    Ok(impls.iter().all(|i| i.errors == 0))
}

impl Impl {
    fn new(label: &'static str, bin: PathBuf) -> Self {
        Self {
            label,
            bin,
            errors: 0,
            add_rss_kib: Vec::new(),
        }
    }

    fn fail(&mut self, msg: String) {
        self.errors += 1;
        if self.errors <= MAX_REPORTED_ERRORS {
            eprintln!("error ({}): {msg}", self.label);
        } else if self.errors == MAX_REPORTED_ERRORS + 1 {
            eprintln!("error ({}): further errors only counted", self.label);
        }
    }
}

impl Run {
    /// Fresh data dir with `size` leases pre-filled in the shared on-disk format.
    fn prepare(base: &Path, label: &str, size: usize) -> Result<Self, String> {
        let tmp = TempDir::new_in(base, &format!("host-local-{label}-{size}"))?;
        let net_dir = tmp.path().join(NETWORK);
        prefill(&net_dir, size)?;
        let config = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "type": "host-local",
            "ipam": {
                "type": "host-local",
                "subnet": SUBNET,
                "dataDir": tmp.path().to_string_lossy(),
            }
        });
        let config = serde_json::to_vec(&config).map_err(|e| format!("encode config: {e}"))?;
        Ok(Self {
            _tmp: tmp,
            net_dir,
            config,
            add: Series::default(),
            del: Series::default(),
            add_cpu: Series::default(),
            del_cpu: Series::default(),
            add_vcsw: Vec::new(),
            del_vcsw: Vec::new(),
        })
    }
}

/// The `j`-th background lease address: 10.128.0.2, 10.128.0.3, ... (skips network and gateway).
fn lease_ip(j: usize) -> Ipv4Addr {
    let offset = u32::try_from(j + 2).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(SUBNET_BASE).saturating_add(offset))
}

fn prefill(net_dir: &Path, size: usize) -> Result<(), String> {
    fs::create_dir_all(net_dir).map_err(|e| format!("mkdir {}: {e}", net_dir.display()))?;
    let mut last = None;
    for j in 0..size {
        let ip = lease_ip(j);
        write_file(
            &net_dir.join(ip.to_string()),
            format!("prefill-{j}\r\n{IFNAME}").as_bytes(),
        )?;
        last = Some(ip);
    }
    if let Some(ip) = last {
        write_file(
            &net_dir.join("last_reserved_ip.0"),
            ip.to_string().as_bytes(),
        )?;
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8]) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    f.write_all(content)
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Lease files in the network dir: regular files whose name is an IP address.
fn count_leases(net_dir: &Path) -> Result<usize, String> {
    let entries = fs::read_dir(net_dir).map_err(|e| format!("read {}: {e}", net_dir.display()))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", net_dir.display()))?;
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let is_ip = entry
            .file_name()
            .to_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok());
        if is_file && is_ip {
            count += 1;
        }
    }
    Ok(count)
}

fn cni_env<'a>(command: &'a str, container_id: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", NETNS),
        ("CNI_IFNAME", IFNAME),
        ("CNI_PATH", CNI_PATH),
        ("PATH", MIN_PATH),
    ]
}

/// One ADD then one DEL of `id`; records timings when `measure`, counts every failure.
/// Returns `Err` only for harness failures (could not spawn, I/O on the pipes).
fn add_del(imp: &mut Impl, run: &mut Run, id: &str, measure: bool) -> Result<(), String> {
    let add = exec::run(&imp.bin, &cni_env("ADD", id), &run.config)?;
    if measure {
        run.add.push(add.elapsed);
        run.add_cpu.push(add.cpu);
        run.add_vcsw.push(add.voluntary_switches);
        imp.add_rss_kib.push(add.maxrss_kib);
    }
    if let Err(msg) = check_add(&add, &run.net_dir, id) {
        imp.fail(format!("ADD {id}: {msg}"));
    }

    let del = exec::run(&imp.bin, &cni_env("DEL", id), &run.config)?;
    if measure {
        run.del.push(del.elapsed);
        run.del_cpu.push(del.cpu);
        run.del_vcsw.push(del.voluntary_switches);
    }
    if !del.success() {
        imp.fail(format!("DEL {id}: {}", del.describe_failure()));
    } else if let Some(ip) = lease_of(&add) {
        if run.net_dir.join(ip.to_string()).exists() {
            imp.fail(format!("DEL {id}: lease file {ip} still present"));
        }
    }
    Ok(())
}

/// The first IPv4 address in an ADD result, if any.
fn lease_of(add: &Outcome) -> Option<Ipv4Addr> {
    let v: Value = serde_json::from_slice(&add.stdout).ok()?;
    let addr = v.get("ips")?.get(0)?.get("address")?.as_str()?;
    addr.split_once('/')?.0.parse().ok()
}

/// ADD must exit 0, print a result with an address in the subnet, and leave the lease file.
fn check_add(add: &Outcome, net_dir: &Path, id: &str) -> Result<(), String> {
    if !add.success() {
        return Err(add.describe_failure());
    }
    let Some(ip) = lease_of(add) else {
        return Err(format!(
            "no ips[0].address in result: {}",
            String::from_utf8_lossy(&add.stdout).trim()
        ));
    };
    if u32::from(ip) >> 16 != u32::from(SUBNET_BASE) >> 16 {
        return Err(format!("address {ip} outside {SUBNET}"));
    }
    let file = net_dir.join(ip.to_string());
    match fs::read(&file) {
        Ok(content) if content == format!("{id}\r\n{IFNAME}").as_bytes() => Ok(()),
        Ok(content) => Err(format!(
            "lease file {ip} holds {:?}, expected \"{id}\\r\\n{IFNAME}\"",
            String::from_utf8_lossy(&content)
        )),
        Err(e) => Err(format!("lease file {}: {e}", file.display())),
    }
}

/// `/bin/true` exec'd n times with the same env/stdin plumbing as the plugins.
fn measure_floor(n: usize, any_run: Option<&Run>) -> Result<Series, String> {
    let mut floor = Series::default();
    let stdin = any_run.map(|r| r.config.clone()).unwrap_or_default();
    let bin = Path::new(FLOOR_BIN);
    for i in 0..n {
        let id = format!("floor-{i}");
        let out = exec::run(bin, &cni_env("ADD", &id), &stdin)?;
        if !out.success() {
            return Err(format!("{FLOOR_BIN}: {}", out.describe_failure()));
        }
        floor.push(out.elapsed);
    }
    Ok(floor)
}

fn print_report(impls: &[Impl], sizes: &[usize], runs: &[Vec<Run>], floor: &Series) {
    let ours = 0;
    let reference = impls.iter().position(|i| i.label == "reference");
    let empty = Series::default();
    let series = |size_idx: usize, imp: Option<usize>, op: &str| -> &Series {
        match imp.and_then(|j| runs.get(size_idx).and_then(|r| r.get(j))) {
            Some(run) if op == "ADD" => &run.add,
            Some(run) => &run.del,
            None => &empty,
        }
    };

    println!();
    println!(
        "ms, wall clock per exec (spawn -> stdout read -> reaped), n={} per cell",
        runs.first()
            .and_then(|r| r.first())
            .map_or(0, |r| r.add.len())
    );
    println!(
        "{:<4} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>8}",
        "op", "leases", "ours p50", "p90", "p99", "ref p50", "p90", "p99", "ours/ref"
    );
    println!("{}", "-".repeat(4 + 1 + 6 + 3 + 26 + 3 + 26 + 3 + 8));
    for op in ["ADD", "DEL"] {
        for (si, size) in sizes.iter().enumerate() {
            let o = series(si, Some(ours), op);
            let r = series(si, reference, op);
            println!(
                "{:<4} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>8}",
                op,
                size,
                fmt_ms(o.p50()),
                fmt_ms(o.percentile(90.0)),
                fmt_ms(o.percentile(99.0)),
                fmt_ms(r.p50()),
                fmt_ms(r.percentile(90.0)),
                fmt_ms(r.percentile(99.0)),
                fmt_ratio(o.p50(), r.p50()),
            );
        }
    }
    println!();

    // Growth: largest background vs. smallest.
    let lo = sizes.iter().enumerate().min_by_key(|(_, s)| **s);
    let hi = sizes.iter().enumerate().max_by_key(|(_, s)| **s);
    if let (Some((li, lsize)), Some((hi_i, hsize))) = (lo, hi) {
        if lsize != hsize {
            for op in ["DEL", "ADD"] {
                for (label, imp) in [("ours", Some(ours)), ("reference", reference)] {
                    if imp.is_none() {
                        continue;
                    }
                    let g = ratio(series(hi_i, imp, op).p50(), series(li, imp, op).p50());
                    let goal = if op == "DEL" && label == "ours" {
                        let verdict = match g {
                            Some(g) if g <= DEL_GROWTH_GOAL => "met",
                            Some(_) => "NOT met",
                            None => "n/a",
                        };
                        format!(" (goal <= {DEL_GROWTH_GOAL:.2}: {verdict})")
                    } else {
                        String::new()
                    };
                    println!(
                        "{op}@{hsize} / {op}@{lsize} ({label} p50): {}{goal}",
                        g.map_or_else(|| "-".to_string(), |g| format!("{g:.2}"))
                    );
                }
            }
        }
    }
    println!();
    println!("per call, p50: CPU ms (user+sys) / voluntary context switches (blocking waits)");
    for op in ["ADD", "DEL"] {
        for (si, size) in sizes.iter().enumerate() {
            let mut line = format!("{op:<4} {size:>6}");
            for (j, imp) in impls.iter().enumerate() {
                let Some(run) = runs.get(si).and_then(|r| r.get(j)) else {
                    continue;
                };
                let (cpu, vcsw) = if op == "ADD" {
                    (&run.add_cpu, &run.add_vcsw)
                } else {
                    (&run.del_cpu, &run.del_vcsw)
                };
                line.push_str(&format!(
                    " | {:<9} {:>6} / {:>4}",
                    imp.label,
                    fmt_ms(cpu.p50()),
                    median(vcsw).map_or_else(|| "-".to_string(), |v| v.to_string())
                ));
            }
            println!("{line}");
        }
    }
    println!();
    println!(
        "exec floor {FLOOR_BIN}: p50 {} ms, p90 {} ms, p99 {} ms",
        fmt_ms(floor.p50()),
        fmt_ms(floor.percentile(90.0)),
        fmt_ms(floor.percentile(99.0))
    );
    for imp in impls {
        match (median(&imp.add_rss_kib), imp.add_rss_kib.iter().max()) {
            (Some(med), Some(max)) => println!(
                "peak RSS of one ADD ({}): median {} KiB, max {} KiB",
                imp.label, med, max
            ),
            _ => println!("peak RSS of one ADD ({}): -", imp.label),
        }
    }
    let errors: Vec<String> = impls
        .iter()
        .map(|i| format!("{} {}", i.label, i.errors))
        .collect();
    println!("errors: {}", errors.join(", "));
}

fn default_ours() -> PathBuf {
    exec::release_dir().join("host-local")
}
