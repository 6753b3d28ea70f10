//! Executing a delegated plugin (IPAM): found by plain file name in CNI_PATH, given our
//! environment with CNI_COMMAND set and the exact stdin bytes we received; its error object is
//! passed upward with its own code.

use crate::env::Command;
use crate::error::{CniError, ErrorCode};
use crate::result::CniResult;
use crate::version::Version;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Finds `plugin` in the CNI_PATH directories. The name must be a plain file name: a `type`
/// containing a path would let a config run any binary (CVE-2021-20206).
pub fn find_plugin(plugin: &str, cni_path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin.is_empty() {
        return Err(CniError::invalid_config("no plugin name provided"));
    }
    if plugin.contains('/') || plugin == "." || plugin == ".." || plugin.contains('\0') {
        return Err(CniError::invalid_config(format!(
            "invalid plugin name: {plugin}"
        )));
    }
    for dir in cni_path {
        let candidate = dir.join(plugin);
        if candidate.metadata().is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    let dirs: Vec<String> = cni_path.iter().map(|d| d.display().to_string()).collect();
    Err(CniError::invalid_config(format!(
        "failed to find plugin {plugin:?} in path [{}]",
        dirs.join(" ")
    )))
}

/// Makes the child die with the thread that spawned it (which waits for it, so: with us).
/// A runtime that times a plugin out kills that process only; an IPAM delegate left running
/// would still take its lease once the network's lock frees, for an ADD the runtime already
/// counted as failed. Delegates are crash-safe (host-local's leases are atomic), so SIGKILL is
/// no worse than the crash the runtime caused.
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // syscalls (prctl, getppid), touching no memory shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Runs `binary` for `command` and returns its stdout on success.
pub fn exec(binary: &Path, command: Command, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let mut attempt = 0;
    let mut child = loop {
        let mut cmd = std::process::Command::new(binary);
        cmd.env("CNI_COMMAND", command.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let spawned = cmd.spawn();
        match spawned {
            Ok(child) => break child,
            // The binary is being replaced (an upgrade in progress): libcni retries too.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => {
                return Err(CniError::internal(format!(
                    "failed to execute {}: {e}",
                    binary.display()
                )));
            }
        }
    };
    if let Some(mut input) = child.stdin.take() {
        // A delegate may exit without reading stdin; its exit status tells what happened.
        let _ = input.write_all(stdin);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| CniError::internal(format!("failed to wait for {}: {e}", binary.display())))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    if let Some(err) = CniError::from_json(&output.stdout) {
        return Err(err);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Err(CniError::internal(format!(
        "{} failed ({}) without an error object: {:?}",
        binary.display(),
        output.status,
        text.trim()
    )))
}

/// ADD through the delegate; its result is parsed in the request's version.
pub fn delegate_add(
    plugin: &str,
    cni_path: &[PathBuf],
    stdin: &[u8],
    version: Version,
) -> Result<CniResult, CniError> {
    let binary = find_plugin(plugin, cni_path)?;
    let out = exec(&binary, Command::Add, stdin)?;
    let value: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("cannot parse the result of IPAM plugin {plugin:?}: {e}"),
        )
    })?;
    CniResult::parse(&value, version)
        .map_err(|e| e.context(format!("result of IPAM plugin {plugin:?}")))
}

/// DEL, CHECK, GC or STATUS through the delegate (no output expected).
pub fn delegate(
    plugin: &str,
    command: Command,
    cni_path: &[PathBuf],
    stdin: &[u8],
) -> Result<(), CniError> {
    let binary = find_plugin(plugin, cni_path)?;
    exec(&binary, command, stdin).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_with_paths_are_refused() {
        let path = vec![PathBuf::from("/bin")];
        assert_eq!(
            find_plugin("../sh", &path).unwrap_err().msg,
            "invalid plugin name: ../sh"
        );
        assert_eq!(
            find_plugin("", &path).unwrap_err().msg,
            "no plugin name provided"
        );
        assert!(find_plugin("sh", &path).is_ok());
        assert!(find_plugin("no-such-plugin", &path)
            .unwrap_err()
            .msg
            .contains("failed to find plugin"));
    }
}
