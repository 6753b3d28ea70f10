//! Shared support for the black-box tests in `tests/`: locating the built plugin binaries and
//! the reference binaries, and executing a plugin the way a runtime does (cleared environment,
//! CNI_* variables, config on stdin).

pub mod chain;
pub mod conformance;
pub mod sandbox;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's `containernetworking-plugins` puts the Go reference binaries.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// True when running under CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The directory holding our built binaries: `target/debug` for `cargo test`, or
/// `CNI_TEST_BIN_DIR` when set (`make dist-check` runs the black-box tests on the release
/// tarball's static binaries that way).
pub fn our_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps")
        .to_path_buf()
}

/// Path of one of our plugin binaries; panics with advice when it has not been built.
pub fn our_plugin(name: &str) -> PathBuf {
    let path = our_bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (or `make test`) first",
        path.display()
    );
    path
}

/// Path of a reference binary, or `None` outside CI when it is not installed (callers then
/// skip their differential half with a notice). In CI a missing reference is a failure.
pub fn reference_plugin(name: &str) -> Option<PathBuf> {
    let path = Path::new(REFERENCE_DIR).join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{} is missing: CI must install containernetworking-plugins",
        path.display()
    );
    eprintln!(
        "SKIP: {} not installed (apt-get install containernetworking-plugins)",
        path.display()
    );
    None
}

/// The release a plugin says it is ("v0.1.0" from "CNI bridge plugin v0.1.0", its about text
/// printed when CNI_COMMAND is unset); the version log-file lines carry too.
pub fn release_of(plugin: &Path) -> String {
    let reply = Call::new("", "", "").unset("CNI_COMMAND").run(plugin);
    let first = reply.stderr.lines().next().unwrap_or_default().to_string();
    let name = plugin.file_name().unwrap_or_default().to_string_lossy();
    let release = first
        .strip_prefix(&format!("CNI {name} plugin "))
        .unwrap_or_else(|| panic!("no about text from {}: {reply:?}", plugin.display()));
    assert!(release.starts_with('v'), "{first}");
    release.to_string()
}

/// What a plugin printed and how it exited.
#[derive(Debug)]
pub struct Reply {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    /// Stdout parsed as JSON; panics (with the whole reply) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the result JSON (empty stdout gives `Value::Null`).
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 0, "plugin failed: {self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure with a CNI error of `code` and returns the error JSON.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(
            self.status, 0,
            "plugin succeeded, expected code {code}: {self:?}"
        );
        let v = self.json();
        assert_eq!(v["code"], code, "wrong error code: {self:?}");
        assert!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {self:?}"
        );
        v
    }
}

/// One plugin invocation: the CNI environment and the stdin config.
#[derive(Clone, Debug)]
pub struct Call {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub cni_path: String,
    pub stdin: String,
    /// Variables to leave out entirely (to test missing-variable errors).
    pub unset: Vec<&'static str>,
    /// A program the plugin runs under (`qemu-aarch64-static` for the arm64 release binaries).
    pub runner: Option<PathBuf>,
}

impl Call {
    pub fn new(command: &str, container_id: &str, stdin: impl Into<String>) -> Call {
        Call {
            command: command.to_string(),
            container_id: container_id.to_string(),
            netns: "/var/run/netns/unused".to_string(),
            ifname: "eth0".to_string(),
            args: String::new(),
            cni_path: our_bin_dir().display().to_string(),
            stdin: stdin.into(),
            unset: Vec::new(),
            runner: None,
        }
    }

    pub fn under(mut self, runner: &Path) -> Call {
        self.runner = Some(runner.to_path_buf());
        self
    }

    pub fn ifname(mut self, ifname: &str) -> Call {
        self.ifname = ifname.to_string();
        self
    }

    pub fn args(mut self, args: &str) -> Call {
        self.args = args.to_string();
        self
    }

    pub fn netns(mut self, netns: &str) -> Call {
        self.netns = netns.to_string();
        self
    }

    pub fn cni_path(mut self, path: &str) -> Call {
        self.cni_path = path.to_string();
        self
    }

    pub fn unset(mut self, var: &'static str) -> Call {
        self.unset.push(var);
        self
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("CNI_COMMAND", self.command.as_str()),
            ("CNI_CONTAINERID", self.container_id.as_str()),
            ("CNI_NETNS", self.netns.as_str()),
            ("CNI_IFNAME", self.ifname.as_str()),
            ("CNI_ARGS", self.args.as_str()),
            ("CNI_PATH", self.cni_path.as_str()),
        ];
        all.into_iter()
            .filter(|(k, _)| !self.unset.contains(k))
            .collect()
    }

    /// Prepares the process without starting it (for concurrent runs).
    pub fn command(&self, plugin: &Path) -> Command {
        let mut cmd = match &self.runner {
            Some(runner) => {
                let mut cmd = Command::new(runner);
                cmd.arg(plugin);
                cmd
            }
            None => Command::new(plugin),
        };
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `plugin` to completion.
    pub fn run(&self, plugin: &Path) -> Reply {
        let child = self
            .command(plugin)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", plugin.display()));
        self.finish(child)
    }

    /// Feeds stdin to a spawned child and collects its reply.
    pub fn finish(&self, mut child: std::process::Child) -> Reply {
        if let Some(mut input) = child.stdin.take() {
            // A plugin may exit before reading stdin; its exit status tells the story.
            let _ = input.write_all(self.stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("waiting for plugin");
        Reply {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Lease file names (addresses) in a host-local network directory, sorted.
pub fn lease_names(network_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(network_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    names.sort();
    names
}

/// The addresses (`a.b.c.d/n`) of one link object of `ip -j addr show`.
pub fn link_addresses(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}
