//! `cni-bench`: exec-level benchmarks of our CNI plugins against the reference binaries.
//!
//! Each subcommand execs the plugins exactly as a container runtime would (env vars + config on
//! stdin), times every call wall-clock from spawn to reaped exit, and prints one comparison table.

mod args;
mod exec;
mod host_local;
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
  help         show this text
";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let sub = argv.next();
    let rest: Vec<String> = argv.collect();
    let result = match sub.as_deref() {
        Some("host-local") => host_local::run(&rest),
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
