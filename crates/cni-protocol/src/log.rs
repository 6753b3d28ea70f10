//! Diagnostics. Stdout belongs to the protocol, so messages go to stderr, which runtimes pass
//! to their own log, and, when the network config names one (`"logFile": "/var/log/cni.log"`),
//! are appended to that file with a timestamp, the process id and the plugin's name and version, together
//! with one line per invocation saying what was asked and how it ended. Logging never fails a
//! command: a log file that cannot be written is reported once on stderr and ignored.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

struct Sink {
    plugin: String,
    file: Mutex<File>,
}

static SINK: OnceLock<Sink> = OnceLock::new();
/// The running plugin's name, prefixed to stderr lines.
static PLUGIN: OnceLock<String> = OnceLock::new();

/// Name the running plugin (the skel does this first thing).
pub fn set_plugin_name(plugin: &str) {
    let _ = PLUGIN.set(plugin.to_string());
}

/// Start appending to `path` for the rest of the process; `plugin` prefixes each line.
/// Only an absolute path is used (a relative one would depend on the runtime's cwd).
pub fn open_log_file(path: &str, plugin: &str) {
    if SINK.get().is_some() {
        return;
    }
    if !Path::new(path).is_absolute() {
        eprintln!("{plugin}: ignoring logFile {path:?}: not an absolute path");
        return;
    }
    let opened = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // A symlink planted at the path must not redirect our writes.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match opened {
        Ok(file) => {
            let _ = SINK.set(Sink {
                plugin: plugin.to_string(),
                file: Mutex::new(file),
            });
        }
        Err(e) => eprintln!("{plugin}: cannot append to logFile {path:?}: {e}"),
    }
}

/// `cni_log!("format", args..)`: [`log`] with `format!` syntax.
#[macro_export]
macro_rules! cni_log {
    ($($arg:tt)*) => {
        $crate::log::log(format_args!($($arg)*))
    };
}

/// Write `message` to stderr (after the plugin's name) and, if open, the log file.
pub fn log(message: impl Display) {
    let line = message.to_string();
    match PLUGIN.get() {
        Some(plugin) => eprintln!("{plugin}: {line}"),
        None => eprintln!("{line}"),
    }
    to_file(&line);
}

/// Write `message` to the log file only (per-invocation summaries runtimes do not need).
pub fn to_file(message: &str) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!(
        "{} [{}] {} v{}: {}\n",
        utc_timestamp(now.as_secs(), now.subsec_millis()),
        std::process::id(),
        sink.plugin,
        crate::RELEASE,
        message.trim_end()
    );
    // One write(2) per line on an O_APPEND file: lines of concurrent plugins do not interleave.
    if let Ok(mut file) = sink.file.lock() {
        let _ = file.write_all(line.as_bytes());
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for seconds since the epoch (proleptic Gregorian, UTC).
fn utc_timestamp(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            utc_timestamp(1_795_000_000, 999),
            "2026-11-18T11:06:40.999Z"
        );
    }
}
