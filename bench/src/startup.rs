//! `cni-bench startup`: what a build costs before it does any work, per plugin binary: file
//! size, wall time of a `CNI_COMMAND=VERSION` exec (spawn to reaped, p50/p90) and its peak RSS,
//! plus the peak RSS of a host-local ADD (allocator and JSON work included). Compares builds
//! given as `label=dir` (e.g. the static musl tarball, the glibc release build, the reference).

use crate::exec::{run, MIN_PATH};
use crate::stats::{fmt_ms, median, Series};
use crate::tempdir::TempDir;
use std::path::Path;

const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "loopback"];

pub fn run_startup(args: &[String]) -> Result<bool, String> {
    let parsed = crate::args::Opts::parse(args, &["n", "dirs"])?;
    let n = parsed.usize_or("n", 300)?;
    let dirs: Vec<(String, String)> = parsed
        .string("dirs")
        .ok_or("--dirs label=DIR,label=DIR... is required")?
        .split(',')
        .map(|d| {
            d.split_once('=')
                .map(|(l, p)| (l.to_string(), p.to_string()))
                .ok_or(format!("--dirs entry {d:?} is not label=DIR"))
        })
        .collect::<Result<_, _>>()?;

    println!("{n} VERSION execs per binary (after 20 unmeasured); RSS = median ru_maxrss, KiB");
    println!(
        "{:<11} {:<10} {:>10} {:>9} {:>9} {:>9} {:>12}",
        "plugin", "build", "size B", "p50 ms", "p90 ms", "RSS KiB", "ADD RSS KiB"
    );
    for plugin in PLUGINS {
        for (label, dir) in &dirs {
            let path = Path::new(dir).join(plugin);
            let size = std::fs::metadata(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .len();
            let env = [("CNI_COMMAND", "VERSION"), ("PATH", MIN_PATH)];
            for _ in 0..20 {
                run(&path, &env, b"{}")?;
            }
            let (mut times, mut rss) = (Series::default(), Vec::new());
            for _ in 0..n {
                let out = run(&path, &env, b"{}")?;
                if !out.success() {
                    return Err(format!("{}: {}", path.display(), out.describe_failure()));
                }
                times.push(out.elapsed);
                rss.push(out.maxrss_kib);
            }
            let add_rss = if plugin == "host-local" {
                host_local_add_rss(&path)?.to_string()
            } else {
                "-".to_string()
            };
            println!(
                "{plugin:<11} {label:<10} {size:>10} {:>9} {:>9} {:>9} {add_rss:>12}",
                fmt_ms(times.p50()),
                fmt_ms(times.percentile(90.0)),
                median(&rss).unwrap_or(0),
            );
        }
    }
    Ok(true)
}

/// Median peak RSS of 20 host-local ADDs (each a fresh container) in a temp data dir.
fn host_local_add_rss(path: &Path) -> Result<i64, String> {
    let data = TempDir::new_in(&std::env::temp_dir(), "startup")?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "startup", "type": "bridge",
        "ipam": { "type": "host-local", "subnet": "10.99.0.0/16", "dataDir": data.path() },
    })
    .to_string();
    let mut rss = Vec::new();
    for i in 0..20 {
        let id = format!("c{i}");
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", id.as_str()),
            ("CNI_NETNS", "/var/run/netns/unused"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
            ("PATH", MIN_PATH),
        ];
        let out = run(path, &env, conf.as_bytes())?;
        if !out.success() {
            return Err(format!("{}: {}", path.display(), out.describe_failure()));
        }
        rss.push(out.maxrss_kib);
    }
    Ok(median(&rss).unwrap_or(0))
}
