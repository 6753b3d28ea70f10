//! Executing a delegated plugin (IPAM): found by plain file name in CNI_PATH, given our
//! environment with CNI_COMMAND set and the exact stdin bytes we received; its error object is
//! passed upward with its own code.

use crate::env::{Command, Invocation};
use crate::error::{CniError, ErrorCode};
use crate::result::CniResult;
use crate::version::Version;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
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
        let Ok(meta) = candidate.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        // A config naming this very binary as its delegate (`"ipam":{"type":"bridge"}`) would
        // make each copy exec the next, without end.
        let me = std::fs::metadata("/proc/self/exe");
        if me.is_ok_and(|me| (me.dev(), me.ino()) == (meta.dev(), meta.ino())) {
            return Err(CniError::invalid_config(format!(
                "refusing to delegate to {plugin:?} ({}): it is this plugin itself",
                candidate.display()
            )));
        }
        return Ok(candidate);
    }
    let dirs: Vec<String> = cni_path.iter().map(|d| d.display().to_string()).collect();
    Err(CniError::invalid_config(format!(
        "failed to find plugin {plugin:?} in path [{}]",
        dirs.join(" ")
    )))
}

/// The CNI variables a delegate gets: our own, taken from `inv` (what our caller passed,
/// also when the skel runs in process with an injected environment).
fn cni_env(inv: &Invocation) -> Vec<(&'static str, Option<String>)> {
    let path: Vec<String> = inv.path.iter().map(|p| p.display().to_string()).collect();
    let text = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    vec![
        ("CNI_CONTAINERID", text(&inv.container_id)),
        (
            "CNI_NETNS",
            inv.netns.as_ref().map(|p| p.display().to_string()),
        ),
        ("CNI_IFNAME", text(&inv.ifname)),
        ("CNI_ARGS", text(&inv.args)),
        ("CNI_PATH", text(&path.join(":"))),
    ]
}

/// Runs `binary` for `command` and returns its stdout on success.
pub fn exec(
    binary: &Path,
    command: Command,
    inv: &Invocation,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    run(binary, command, inv, stdin).map_err(|f| f.error)
}

/// A failed delegation, and whether the delegate may have left state behind.
#[derive(Debug)]
pub struct Failure {
    pub error: CniError,
    /// The delegate ran but gave no usable answer (killed, crashed, unparseable output), so it
    /// may hold state for this attachment: a lease written before it died. A delegate that
    /// answered with an error object has cleaned up after itself, or holds state that is not
    /// ours (a duplicate ADD's lease), so it must not be undone.
    pub state_unknown: bool,
}

impl Failure {
    fn answered(error: CniError) -> Failure {
        Failure {
            error,
            state_unknown: false,
        }
    }

    fn unknown(error: CniError) -> Failure {
        Failure {
            error,
            state_unknown: true,
        }
    }
}

fn run(
    binary: &Path,
    command: Command,
    inv: &Invocation,
    stdin: &[u8],
) -> Result<Vec<u8>, Failure> {
    let mut attempt = 0;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut child = loop {
        let mut cmd = std::process::Command::new(binary);
        for (key, value) in cni_env(inv) {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd.env("CNI_COMMAND", command.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // A delegate must not outlive us: if the runtime kills us on timeout mid-ADD and then
        // calls DEL, an orphaned IPAM ADD could take its lease after that DEL ran, leaking it.
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
        // system calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died before the prctl: then the child was already re-parented.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        match spawned {
            Ok(child) => break child,
            // The binary is being replaced (an upgrade in progress): libcni retries too.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => {
                return Err(Failure::answered(CniError::internal(format!(
                    "failed to execute {}: {e}",
                    binary.display()
                ))));
            }
        }
    };
    if let Some(mut input) = child.stdin.take() {
        // A delegate may exit without reading stdin; its exit status tells what happened.
        let _ = input.write_all(stdin);
    }
    let output = child.wait_with_output().map_err(|e| {
        Failure::unknown(CniError::internal(format!(
            "failed to wait for {}: {e}",
            binary.display()
        )))
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    if let Some(err) = CniError::from_json(&output.stdout) {
        return Err(Failure::answered(err));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Err(Failure::unknown(CniError::internal(format!(
        "{} failed ({}) without an error object: {:?}",
        binary.display(),
        output.status,
        text.trim()
    ))))
}

/// ADD through the delegate; its result is parsed in the request's version. On failure, says
/// whether the caller must DEL through the delegate to undo what it may have done.
pub fn delegate_add(
    plugin: &str,
    inv: &Invocation,
    stdin: &[u8],
    version: Version,
) -> Result<CniResult, Failure> {
    let binary = find_plugin(plugin, &inv.path).map_err(Failure::answered)?;
    let out = run(&binary, Command::Add, inv, stdin)?;
    // It succeeded, so it holds state even when its result is unusable.
    // Go decodes the delegate's output straight into its result struct: document order.
    let value = crate::gojson::parse(&out, &crate::gojson::RESULT).map_err(|e| {
        Failure::unknown(CniError::new(
            ErrorCode::Decode,
            format!("cannot parse the result of IPAM plugin {plugin:?}: {e}"),
        ))
    })?;
    CniResult::parse(&value, version)
        .map_err(|e| Failure::unknown(e.context(format!("result of IPAM plugin {plugin:?}"))))
}

/// DEL, CHECK, GC or STATUS through the delegate (no output expected).
pub fn delegate(
    plugin: &str,
    command: Command,
    inv: &Invocation,
    stdin: &[u8],
) -> Result<(), CniError> {
    let binary = find_plugin(plugin, &inv.path)?;
    exec(&binary, command, inv, stdin).map(|_| ())
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
