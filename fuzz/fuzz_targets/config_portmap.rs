//! portmap's stdin config through its own schema and parser. Invariants: the canonical form
//! is a fixpoint (see `canonical`) and parses the same.
#![no_main]

use cni_fuzz::canonical;
use libfuzzer_sys::fuzz_target;
use portmap::config::{PortmapConf, SCHEMA};

fuzz_target!(|data: &[u8]| {
    let Some(raw) = canonical(data, &SCHEMA) else {
        return;
    };
    let Ok(conf) = PortmapConf::parse(&raw) else {
        return;
    };
    let text = serde_json::to_vec(&raw).unwrap_or_default();
    let again = canonical(&text, &SCHEMA).and_then(|raw| PortmapConf::parse(&raw).ok());
    assert_eq!(
        again.as_ref(),
        Some(&conf),
        "re-rendered config parses differently"
    );
    assert!(conf.mark_masq_bit <= 31);
});
