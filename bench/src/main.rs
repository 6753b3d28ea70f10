//! `cni-bench`: exec-level benchmarks of our CNI plugins against the reference binaries.
//!
//! Each subcommand execs the plugins exactly as a container runtime would (env vars + config on
//! stdin), times every call wall-clock from spawn to reaped exit, and prints one comparison table.

mod args;
mod bridge;
mod exec;
mod host_local;
mod startup;
mod stats;
mod tempdir;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cni-bench <subcommand> [options]

subcommands:
  host-local   benchmark the host-local IPAM plugin (ADD/DEL with background leases)
               options:
                 --n N              measured ADD/DEL iterations per size (default 100)
                 --warmup N         unmeasured ADD/DEL pairs per size (default 5)
                 --leases A,B,...   background lease counts (default 10,1000)
                 --ours PATH        our binary (default <workspace>/target/release/host-local)
                 --reference PATH   reference binary (default /usr/lib/cni/host-local)
                 --tmpdir DIR       where the data dirs go (default $TMPDIR or /tmp); the
                                    filesystem matters: use the one /var/lib/cni lives on
  bridge       benchmark the bridge plugin (+ host-local) against the reference and the kernel
               floor; run it through bench/bridge.sh, which sandboxes it (unshare --net --mount)
               options:
                 --n N              pods per sequential / parallel case (default 100)
                 --parallel N       concurrent callers in the parallel phase (default 8)
                 --warmup N         unmeasured ADD/DEL pairs before each sequential case (default 3)
                 --pods N           growth: pods on one bridge, 0 to skip (default 1000)
                 --window N         growth: compare ADD at #1-N with the last N (default 50)
                 --impls LIST       reference,ours-nft,ours-ipt,floor (default: these four;
                                    also floor-up: the floor plus the container end set up)
                 --scale-impls LIST growth implementations (default floor,floor-up,ours-nft;
                                    add reference for the reference's growth: slow)
                 --ours-dir DIR     our bridge + host-local (default <workspace>/target/release)
                 --reference-dir D  reference bridge + host-local (default /usr/lib/cni)
                 --tmpdir DIR       where host-local data dirs go (default $TMPDIR or /tmp)
                 --pod-ipv6 on|off  off disables IPv6 in the pod netns (no link-local traffic
                                    flooded over the bridge; default on)
  startup      size, VERSION exec time and peak RSS of each plugin, per build (bench/startup.sh
               compares the static release tarball, the glibc release build and the reference)
               options:
                 --dirs L=DIR,...   the builds to compare, as label=directory (required)
                 --n N              measured VERSION execs per binary (default 300)
  help         show this text
";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let sub = argv.next();
    let rest: Vec<String> = argv.collect();
    let result = match sub.as_deref() {
        Some("host-local") => host_local::run(&rest),
        Some("bridge") => bridge::run(&rest),
        Some("startup") => startup::run_startup(&rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown subcommand {other:?}\n\n{USAGE}")),
        None => Err(format!("missing subcommand\n\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("cni-bench: {msg}");
            ExitCode::from(2)
        }
    }
}
