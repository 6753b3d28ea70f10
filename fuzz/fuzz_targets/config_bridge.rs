//! bridge's stdin config (and CNI_ARGS after a NUL) through its own loader. Invariant: a config
//! that loads loads to the same thing after a JSON decode/re-encode.
#![no_main]

use bridge::config::BridgeConf;
use cni_fuzz::{rerender, split_args};
use cni_protocol::NetConf;
use libfuzzer_sys::fuzz_target;

fn load(stdin: &[u8], args: &str) -> Option<BridgeConf> {
    let net = NetConf::parse(stdin).ok()?;
    BridgeConf::load(stdin, &net, args).ok()
}

fuzz_target!(|data: &[u8]| {
    let (stdin, args) = split_args(data);
    let Some(conf) = load(stdin, &args) else {
        return;
    };
    let again = rerender(stdin).and_then(|re| load(&re, &args));
    assert_eq!(
        again.as_ref(),
        Some(&conf),
        "re-rendered config loads differently"
    );
    if let Some(ipam) = &conf.ipam {
        assert!(!ipam.is_empty(), "an IPAM plugin with an empty name");
    }
});
