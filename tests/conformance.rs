//! The differential conformance fuzzer with CI's fixed budget: a few hundred generated
//! requests (bridge, host-local, portmap, loopback; every spec version; Go-json variations;
//! odd environments; runtime sequences) run against ours and the reference v1.1.1 in twin
//! sandboxes. Any difference not in `tests/support/conformance/allow.rs` fails the test and
//! prints its reproducer. `make conformance` runs the long campaign (FUZZ_REQUESTS, FUZZ_SEED;
//! FUZZ_CASE replays one case).

use cni_suite_tests::conformance::{run, Settings};
use cni_suite_tests::sandbox::privileged;
use cni_suite_tests::{our_bin_dir, our_plugin, reference_plugin};

/// Requests per side in CI (a couple of minutes with the kernel snapshots).
const CI_REQUESTS: usize = 300;

#[test]
fn generated_requests_match_the_reference() {
    if !privileged() {
        return;
    }
    let Some(reference) = reference_plugin("bridge") else {
        return;
    };
    for p in ["bridge", "host-local", "portmap", "loopback"] {
        our_plugin(p);
    }
    let reference_dir = reference
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let settings = Settings::from_env(CI_REQUESTS, our_bin_dir(), reference_dir);
    let report = run(&settings);
    println!("{}", report.table());
    let repro = report.reproducers(settings.reproducers_per_class);
    println!("{repro}");
    assert!(report.setup_errors.is_empty(), "{:?}", report.setup_errors);
    assert!(
        report.unexplained.is_empty(),
        "{} case(s) differ from the reference in ways the allow-list does not explain:\n{}\n{repro}",
        report.unexplained.len(),
        report.table()
    );
}
