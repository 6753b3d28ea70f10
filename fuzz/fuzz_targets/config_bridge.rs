//! bridge's stdin config (and CNI_ARGS after a NUL) through its own schema and loader.
//! Invariants: the canonical form is a fixpoint (see `canonical`) and loads the same.
#![no_main]

use bridge::config::{BridgeConf, SCHEMA};
use cni_fuzz::{load_round_trip, split_args};
use cni_protocol::NetConf;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn load(raw: &Value, args: &str) -> Option<BridgeConf> {
    let net = NetConf::from_value(raw).ok()?;
    BridgeConf::load(raw, &net, args).ok()
}

fuzz_target!(|data: &[u8]| {
    let (stdin, args) = split_args(data);
    let Some((_, conf)) = load_round_trip(stdin, &args, &SCHEMA, load) else {
        return;
    };
    if let Some(ipam) = &conf.ipam {
        assert!(!ipam.is_empty(), "an IPAM plugin with an empty name");
    }
});
