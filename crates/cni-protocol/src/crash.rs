//! Fault injection for crash-consistency tests, compiled into debug builds only.
//!
//! With `CNI_RS_CRASH_AFTER=<binary>:<step>` in its environment, a debug build of a plugin
//! SIGKILLs itself the moment it completes `<step>`: no destructor, rollback or flush runs, as
//! when a runtime kills a plugin on timeout or the node loses power. `<binary>` is the file name
//! of the running executable, so the variable (which delegates inherit) picks one process of
//! an ADD: `bridge:veth-created` kills the bridge plugin, `host-local:lease-written` its IPAM
//! delegate. Release builds ignore the variable entirely: [`point`] is an empty function there.
//!
//! Every step is listed in [`BRIDGE_ADD`], [`BRIDGE_DEL`], [`HOST_LOCAL_ADD`] or
//! [`HOST_LOCAL_BOOT`], in the order the command reaches them, so a test can crash at each one
//! in turn.

/// The environment variable naming the step to die after.
pub const ENV: &str = "CNI_RS_CRASH_AFTER";

/// Any plugin: the ADD result has been written to stdout and flushed (see [`crate::skel`]).
pub const RESULT_PRINTED: &str = "result-printed";

/// The bridge plugin's ADD steps. IPAM runs concurrently with the link steps, so
/// `ipam-returned` and `veth-created` may happen in either order.
pub const BRIDGE_ADD: &[&str] = &[
    // The IPAM delegate answered: its lease is on disk.
    "ipam-returned",
    // The veth pair exists, the host end on the bridge and the container end already inside
    // the container's netns (it is created there, there is no separate move).
    "veth-created",
    // The container interface has its addresses and is up.
    "addressed",
    // The container's routes are installed.
    "routed",
    // The gateway addresses are on the bridge and forwarding is on (isGateway).
    "gateway-set",
    // The masquerade state exists (ipMasq).
    "masquerade-set",
    // The MAC spoof check exists (macspoofchk).
    "macspoof-set",
    RESULT_PRINTED,
];

/// The bridge plugin's DEL steps: a killed DEL must leave a state the runtime's next DEL
/// finishes.
pub const BRIDGE_DEL: &[&str] = &[
    // Masquerade state removed (ipMasq).
    "masquerade-removed",
    // The veth pair deleted.
    "veth-deleted",
    // The IPAM delegate released the lease.
    "ipam-released",
    // The MAC spoof check removed (macspoofchk).
    "macspoof-removed",
];

/// host-local's ADD steps.
pub const HOST_LOCAL_ADD: &[&str] = &[
    // A lease file is linked into place; `last_reserved_ip` and the index are not updated yet.
    "lease-written",
    // `last_reserved_ip.<set>` is rewritten; the index and its stamp are not.
    "last-reserved-written",
    // The index entries are rewritten; the stamp is not (the index is not trusted yet).
    "index-written",
    RESULT_PRINTED,
];

/// host-local's release of the leases of an earlier boot, done by the first command of a boot.
pub const HOST_LOCAL_BOOT: &[&str] = &[
    // One lease of an earlier boot is gone; the new boot is not recorded yet.
    "stale-lease-released",
];

/// Dies by SIGKILL if `CNI_RS_CRASH_AFTER` names this executable and `step` (debug builds only).
#[inline]
pub fn point(step: &str) {
    #[cfg(debug_assertions)]
    if wanted(step) {
        die();
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

#[cfg(debug_assertions)]
fn wanted(step: &str) -> bool {
    debug_assert!(
        [BRIDGE_ADD, BRIDGE_DEL, HOST_LOCAL_ADD, HOST_LOCAL_BOOT]
            .iter()
            .any(|list| list.contains(&step)),
        "crash point {step:?} is not listed"
    );
    let Some(value) = std::env::var_os(ENV) else {
        return false;
    };
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    selects(value.to_str(), me.as_deref(), step)
}

/// Does the switch's `value` name this executable and `step`?
#[cfg(debug_assertions)]
fn selects(value: Option<&str>, exe: Option<&str>, step: &str) -> bool {
    match (value.and_then(|v| v.split_once(':')), exe) {
        (Some((binary, wanted_step)), Some(exe)) => binary == exe && wanted_step == step,
        _ => false,
    }
}

#[cfg(debug_assertions)]
fn die() -> ! {
    // SIGKILL cannot be caught, so the process (every thread) ends here.
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    // Not reached; SIGKILL to oneself is delivered before kill(2) returns to user space.
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique_and_plain() {
        for list in [BRIDGE_ADD, BRIDGE_DEL, HOST_LOCAL_ADD, HOST_LOCAL_BOOT] {
            for (i, step) in list.iter().enumerate() {
                assert!(!list[..i].contains(step), "{step} listed twice");
                assert!(step.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            }
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_switch_selects_one_binary_and_one_step() {
        let bridge = Some("bridge");
        assert!(selects(Some("bridge:routed"), bridge, "routed"));
        assert!(!selects(Some("bridge:routed"), bridge, "addressed"));
        assert!(!selects(Some("host-local:routed"), bridge, "routed"));
        assert!(!selects(Some("routed"), bridge, "routed"));
        assert!(!selects(None, bridge, "routed"));
        assert!(!selects(Some("bridge:routed"), None, "routed"));
    }

    /// Meaningful under `cargo test --release`: the switch, set for this very process, is
    /// ignored (a debug build would die here).
    #[cfg(not(debug_assertions))]
    #[test]
    fn release_builds_ignore_the_switch() {
        let me = std::env::current_exe().ok();
        let name = me
            .as_deref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::env::set_var(ENV, format!("{name}:{RESULT_PRINTED}"));
        point(RESULT_PRINTED);
    }
}
