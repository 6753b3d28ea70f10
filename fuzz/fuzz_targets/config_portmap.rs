//! portmap's stdin config through its own parser. Invariant: re-rendered JSON parses the same.
#![no_main]

use cni_fuzz::rerender;
use libfuzzer_sys::fuzz_target;
use portmap::config::PortmapConf;

fuzz_target!(|data: &[u8]| {
    let Ok(conf) = PortmapConf::parse(data) else {
        return;
    };
    let again = rerender(data).and_then(|re| PortmapConf::parse(&re).ok());
    assert_eq!(
        again.as_ref(),
        Some(&conf),
        "re-rendered config parses differently"
    );
    assert!(conf.mark_masq_bit <= 31);
});
