//! A result in any version's shape (the first byte picks the version assumed when it has no
//! `cniVersion`), then every conversion: see `check_result`.
#![no_main]

use cni_fuzz::{check_result, versions};
use cni_protocol::result::CniResult;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let all = versions();
    let (_, default) = all[usize::from(*first) % all.len()];
    let Ok(v) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    if let Ok(r) = CniResult::parse(&v, default) {
        check_result(&r);
    }
});
