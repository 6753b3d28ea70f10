//! Timed exec of a plugin binary the way a runtime does it: cleared environment, config on
//! stdin, stdout/stderr captured, child reaped with `wait4` so its own rusage (peak RSS) is known.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// PATH given to the plugins: enough for anything they might legitimately exec.
pub const MIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `<workspace>/target/release`, where bench/*.sh build our plugins (bench/ sits one level below
/// the workspace root).
pub fn release_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("target/release")
}

pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Outcome of one exec.
pub struct Outcome {
    /// Wall clock from just before spawn until the child was reaped (stdout read to EOF).
    pub elapsed: Duration,
    /// Exit code, or `None` if killed by a signal.
    pub code: Option<i32>,
    /// Signal number if the child was killed by one.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Peak resident set size of this child, KiB (`ru_maxrss` from `wait4`).
    pub maxrss_kib: i64,
    /// CPU time of this child, user + system.
    pub cpu: Duration,
    /// Voluntary context switches of this child (how often it blocked).
    pub voluntary_switches: i64,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Short human description of a failed call, for error reports.
    pub fn describe_failure(&self) -> String {
        let status = match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown status".to_string(),
        };
        let out = String::from_utf8_lossy(&self.stdout);
        let err = String::from_utf8_lossy(&self.stderr);
        format!(
            "{status}; stdout: {}; stderr: {}",
            truncate(out.trim(), 300),
            truncate(err.trim(), 300)
        )
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Runs `program` with exactly `env` as its environment and `stdin` on its standard input.
pub fn run(program: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Result<Outcome, String> {
    run_args(program, &[], env, stdin)
}

/// [`run`] with command-line arguments.
pub fn run_args(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Result<Outcome, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", program.display()))?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading its stdin gives EPIPE here; that is its business,
        // the exit status tells the story.
        let _ = input.write_all(stdin);
    }
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout)
            .map_err(|e| format!("read stdout of {}: {e}", program.display()))?;
    }
    let mut stderr = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut stderr)
            .map_err(|e| format!("read stderr of {}: {e}", program.display()))?;
    }
    let (status, rusage) = wait4(child.id())?;
    let elapsed = start.elapsed();
    // `child` is dropped without `wait()`: it has been reaped above, and dropping a `Child`
    // neither waits nor kills.

    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(Outcome {
        elapsed,
        code,
        signal,
        stdout,
        stderr,
        maxrss_kib: rusage.ru_maxrss,
        cpu: timeval(rusage.ru_utime) + timeval(rusage.ru_stime),
        voluntary_switches: rusage.ru_nvcsw,
    })
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// Reaps `pid`, returning its wait status and its own resource usage.
fn wait4(pid: u32) -> Result<(libc::c_int, libc::rusage), String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child (std never waited on it); both out-pointers
        // point to live, writable locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return Ok((status, rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4({pid}): {err}"));
        }
    }
}
