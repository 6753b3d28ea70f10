//! host-local's stdin config (and CNI_ARGS after a NUL) through its own loader, in the version
//! the config negotiates. Invariants: the canonical form is a fixpoint and loads the same; the store part DEL/GC
//! read agrees; range sets are canonical (start <= end inside the subnet) and disjoint; the
//! requested addresses have no repeats.
#![no_main]

use cni_fuzz::{load_round_trip, split_args};
use cni_protocol::{version, NetConf};
use host_local::config::{load_store_conf, IpamConf, SCHEMA};
use host_local::range::to_u128;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn load(raw: &Value, args: &str) -> Option<IpamConf> {
    let net = NetConf::from_value(raw).ok()?;
    let (text, v) = version::negotiate(net.cni_version.as_deref(), &net.cni_versions).ok()?;
    IpamConf::load(raw, args, &text, v).ok()
}

fuzz_target!(|data: &[u8]| {
    let (stdin, args) = split_args(data);
    let Some((raw, conf)) = load_round_trip(stdin, &args, &SCHEMA, load) else {
        return;
    };
    assert_eq!(load_store_conf(&raw).ok().as_ref(), Some(&conf.store));
    for (i, set) in conf.range_sets.iter().enumerate() {
        assert!(!set.0.is_empty());
        for r in &set.0 {
            assert!(to_u128(r.start) <= to_u128(r.end), "{r} is backwards");
            assert!(
                r.subnet.contains(r.start) && r.subnet.contains(r.end),
                "{r} leaves its subnet"
            );
        }
        for other in &conf.range_sets[i + 1..] {
            assert!(!set.overlaps(other), "{set} overlaps {other}");
        }
    }
    for (i, ip) in conf.requested.iter().enumerate() {
        assert!(
            !conf.requested[i + 1..].contains(ip),
            "{ip} requested twice"
        );
    }
});
