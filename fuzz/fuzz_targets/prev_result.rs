//! `prevResult` as plugins read it: the whole stdin config, its negotiated version, then the
//! result in that version's shape. Invariants: see `check_result` (conversion round trips).
#![no_main]

use cni_fuzz::check_result;
use cni_protocol::result::CniResult;
use cni_protocol::{version, NetConf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(net) = NetConf::parse(data) else {
        return;
    };
    let Ok((_, v)) = version::negotiate(net.cni_version.as_deref(), &net.cni_versions) else {
        return;
    };
    let Some(prev) = net.prev_result.as_ref().filter(|p| !p.is_null()) else {
        return;
    };
    if let Ok(r) = CniResult::parse(prev, v) {
        check_result(&r);
    }
});
