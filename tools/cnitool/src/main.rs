//! `cnitool add|check|del <network> <netns-path>`: run a network list from NETCONFPATH
//! against a network namespace, as a runtime would. Environment as the reference cnitool:
//! NETCONFPATH (default /etc/cni/net.d), CNI_PATH (default /opt/cni/bin), CNI_IFNAME (eth0),
//! CNI_CONTAINERID (derived from the netns path), CNI_ARGS, CAP_ARGS (JSON object of
//! capability arguments, e.g. {"portMappings":[...]}), and CNI_CACHE_DIR (default
//! /var/lib/cni/results) where ADD results are kept for CHECK and DEL.

use std::path::PathBuf;
use std::process::ExitCode;

use cnitool::{container_id_for, NetworkList, Runtime};

const USAGE: &str = "usage: cnitool add|check|del <network-name> <netns-path>";

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [verb, network, netns] = args.as_slice() else {
        return Err(USAGE.to_string());
    };
    let conf_dir = PathBuf::from(env_or("NETCONFPATH", "/etc/cni/net.d"));
    let list = NetworkList::find(&conf_dir, network)?;
    let cap_args = match std::env::var("CAP_ARGS") {
        Ok(text) if !text.is_empty() => {
            serde_json::from_str(&text).map_err(|e| format!("CAP_ARGS is not JSON: {e}"))?
        }
        _ => serde_json::Value::Object(Default::default()),
    };
    let runtime = Runtime {
        cni_path: std::env::split_paths(&env_or("CNI_PATH", "/opt/cni/bin")).collect(),
        container_id: env_or("CNI_CONTAINERID", &container_id_for(netns)),
        netns: netns.clone(),
        ifname: env_or("CNI_IFNAME", "eth0"),
        cni_args: env_or("CNI_ARGS", ""),
        cap_args,
        cache_dir: PathBuf::from(env_or("CNI_CACHE_DIR", "/var/lib/cni/results")),
    };
    match verb.as_str() {
        "add" => {
            let result = runtime.add(&list)?;
            let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
        "check" => runtime.check(&list),
        "del" => runtime.del(&list),
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cnitool: {e}");
            ExitCode::FAILURE
        }
    }
}
