//! bridge's stdin config (and CNI_ARGS after a NUL) through its own schema and loader.
//! Invariants: the canonical form is a fixpoint (see `canonical`) and loads the same.
#![no_main]

use bridge::config::{BridgeConf, SCHEMA};
use cni_fuzz::{canonical, split_args};
use cni_protocol::NetConf;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn load(raw: &Value, args: &str) -> Option<BridgeConf> {
    let net = NetConf::from_value(raw).ok()?;
    BridgeConf::load(raw, &net, args).ok()
}

fuzz_target!(|data: &[u8]| {
    let (stdin, args) = split_args(data);
    let Some(raw) = canonical(stdin, &SCHEMA) else {
        return;
    };
    let Some(conf) = load(&raw, &args) else {
        return;
    };
    let text = serde_json::to_vec(&raw).unwrap_or_default();
    let again = canonical(&text, &SCHEMA).and_then(|raw| load(&raw, &args));
    assert_eq!(
        again.as_ref(),
        Some(&conf),
        "re-rendered config loads differently"
    );
    if let Some(ipam) = &conf.ipam {
        assert!(!ipam.is_empty(), "an IPAM plugin with an empty name");
    }
});
