//! The plugin entry point: read the environment and stdin, check versions and names, dispatch
//! the verb, print the result or error object. Nothing but protocol JSON goes to stdout.

use crate::config::{parse_config, NetConf, MAX_STDIN_BYTES};
use crate::env::{validate_network_name, Command, Invocation};
use crate::error::{CniError, ErrorCode};
use crate::gojson;
use crate::log;
use crate::result::CniResult;
use crate::version::{self, Version, CURRENT_VERSION, SUPPORTED_VERSIONS};
use std::io::{Read, Write};
use std::path::Path;

/// One verb handler per CNI command; VERSION is answered here.
pub trait Plugin {
    /// The shape of this plugin's config as the reference's Go structs declare it: which keys
    /// match case-insensitively (see [`gojson`]). Plugins reading only the common keys keep
    /// the default.
    fn schema(&self) -> &'static gojson::Node {
        &gojson::NETCONF
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, req: &Request) -> Result<(), CniError>;
    fn gc(&self, req: &Request) -> Result<(), CniError>;
    fn status(&self, req: &Request) -> Result<(), CniError>;

    /// The JSON printed for a successful ADD: [`Plugin::add`]'s result rendered in the request's
    /// version. A plugin overrides this only when it must print a shape the renderer does not
    /// produce (loopback echoes the reference's unconverted result).
    fn add_output(&self, req: &Request) -> Result<serde_json::Value, CniError> {
        self.add(req)?.render(&req.version_text, req.version)
    }
}

/// A validated invocation with its configuration.
#[derive(Debug, Clone)]
pub struct Request {
    pub invocation: Invocation,
    /// The exact stdin bytes, forwarded unchanged to delegates.
    pub stdin: Vec<u8>,
    /// stdin parsed once with Go's key rules against [`Plugin::schema`]: the plugin reads its
    /// own keys from here by their canonical names.
    pub raw: serde_json::Value,
    pub config: NetConf,
    /// The negotiated version as text (echoed in results) and parsed.
    pub version_text: String,
    pub version: Version,
}

impl Request {
    /// `prevResult` parsed in the request's version, if the runtime sent one.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.config.prev_result {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => CniResult::parse(v, self.version)
                .map(Some)
                .map_err(|e| e.context("invalid prevResult")),
        }
    }
}

/// Runs `plugin` against the process environment and stdio and exits.
pub fn main(plugin: &dyn Plugin, about: &str) -> ! {
    let env = |k: &str| std::env::var(k).ok();
    let code = run(
        plugin,
        about,
        &env,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code)
}

/// Testable core of [`main`]: returns the exit status.
pub fn run(
    plugin: &dyn Plugin,
    about: &str,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let started = std::time::Instant::now();
    log::set_plugin_name(plugin_name(about));
    let mut said = Said {
        reply_version: CURRENT_VERSION.to_string(),
        context: String::new(),
    };
    let outcome = dispatch(plugin, about, env, stdin, stdout, stderr, &mut said);
    let Said {
        reply_version,
        context,
    } = said;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Some(output)) => {
            if write_json(stdout, &output).is_err() {
                log::to_file(&format!("{context} -> cannot write the result to stdout"));
                return 1;
            }
            // Only ADD prints a result: the runtime may have read it, but sees the plugin die.
            crate::crash::point(crate::crash::RESULT_PRINTED);
            log::to_file(&format!("{context} -> ok ({elapsed:.2} ms)"));
            0
        }
        Ok(None) => {
            if !context.is_empty() {
                log::to_file(&format!("{context} -> ok ({elapsed:.2} ms)"));
            }
            0
        }
        Err(err) => {
            let _ = writeln!(stderr, "{about}: {err}");
            let _ = write_json(stdout, &err.to_json(&reply_version));
            log::to_file(&format!(
                "{context} -> error {}: {} ({elapsed:.2} ms)",
                err.code.number(),
                err.msg
            ));
            1
        }
    }
}

/// What dispatch learnt before it finished, for the reply and the log.
struct Said {
    /// The version an error object is rendered in.
    reply_version: String,
    /// "ADD network ... container ... ifname ..." once known and a log file is open.
    context: String,
}

/// "bridge" from "CNI bridge plugin v0.1.0".
fn plugin_name(about: &str) -> &str {
    about.split_whitespace().nth(1).unwrap_or(about)
}

/// Go's `json.MarshalIndent(v, "", "    ")`: 4-space indent, no trailing newline.
fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> std::io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    serde::Serialize::serialize(value, &mut ser).map_err(std::io::Error::other)?;
    out.flush()
}

fn dispatch(
    plugin: &dyn Plugin,
    about: &str,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    said: &mut Said,
) -> Result<Option<serde_json::Value>, CniError> {
    let Some(invocation) = Invocation::from_env(env)? else {
        let _ = writeln!(stderr, "{about}");
        let _ = writeln!(
            stderr,
            "CNI protocol versions supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        );
        return Ok(None);
    };
    if invocation.command == Command::Version {
        // Runtimes probe with arbitrary stdin; it is not read. Compact with a newline, as Go's
        // encoder prints it.
        let _ = writeln!(stdout, "{}", version::version_reply());
        return Ok(None);
    }
    let mut bytes = Vec::new();
    stdin
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CniError::io(format!("error reading from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err(CniError::new(
            ErrorCode::Decode,
            format!("network config on stdin is larger than {MAX_STDIN_BYTES} bytes"),
        ));
    }
    let raw = parse_config(&bytes, plugin.schema())?;
    let config = NetConf::from_value(&raw)?;
    if let Some(path) = config.log_file.as_ref().and_then(|v| v.as_str()) {
        log::open_log_file(path, plugin_name(about));
        said.context = format!(
            "{} network {:?} container {:?} ifname {:?}",
            invocation.command.as_str(),
            config.name,
            invocation.container_id,
            invocation.ifname
        );
    }
    if let Some(v) = &config.cni_version {
        said.reply_version.clone_from(v);
    }
    let (version_text, version) =
        version::negotiate(config.cni_version.as_deref(), &config.cni_versions)?;
    said.reply_version.clone_from(&version_text);
    validate_network_name(&config.name)?;
    invocation.validate_identity()?;
    let min = match invocation.command {
        Command::Check => Some(Version::V0_4_0),
        Command::Gc | Command::Status => Some(Version::V1_1_0),
        _ => None,
    };
    if let Some(min) = min {
        if version < min {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "config version does not allow {}",
                    invocation.command.as_str()
                ),
            ));
        }
    }
    if matches!(invocation.command, Command::Add | Command::Del)
        && !netns_override(env("CNI_NETNS_OVERRIDE").as_deref())
        && invocation
            .netns
            .as_deref()
            .is_some_and(|ns| same_file(ns, Path::new(OWN_NETNS)))
    {
        // The reference's skel (after v1.1.1) checks this too, but after running the verb; we
        // refuse before anything is made in (or deleted from) the host's namespace.
        return Err(CniError::new(
            ErrorCode::InvalidNetns,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        ));
    }
    let req = Request {
        invocation,
        stdin: bytes,
        raw,
        config,
        version_text,
        version,
    };
    match req.invocation.command {
        Command::Add => plugin.add_output(&req).map(Some),
        Command::Del => plugin.del(&req).map(|_| None),
        Command::Check => plugin.check(&req).map(|_| None),
        Command::Gc => plugin.gc(&req).map(|_| None),
        Command::Status => plugin.status(&req).map(|_| None),
        Command::Version => Ok(None),
    }
}

/// The network namespace of the thread that runs the verb.
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// `CNI_NETNS_OVERRIDE` set to `1` or `true` (any case) allows CNI_NETNS to be our own netns.
fn netns_override(value: Option<&str>) -> bool {
    value.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether two paths name one file (for nsfs files: one namespace), by device and inode as the
/// reference compares namespaces. A path that cannot be stat'ed names nothing we are in.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::result::IpConfig;
    use std::collections::HashMap;

    struct Fixed;
    impl Plugin for Fixed {
        fn add(&self, _: &Request) -> Result<CniResult, CniError> {
            Ok(CniResult {
                ips: vec![IpConfig {
                    address: "10.0.0.2/24".parse().unwrap(),
                    gateway: None,
                    interface: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn check(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn gc(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn status(&self, _: &Request) -> Result<(), CniError> {
            Err(CniError::new(ErrorCode::NotAvailable, "exhausted"))
        }
    }

    fn call(vars: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &Fixed,
            "CNI test plugin",
            &|k| map.get(k).cloned(),
            &mut stdin.as_bytes(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/p"),
    ];

    #[test]
    fn banner_without_command_and_version_ignores_stdin() {
        let (code, out, err) = call(&[], "");
        assert_eq!((code, out.as_str()), (0, ""));
        assert!(err.contains("CNI test plugin") && err.contains("1.1.0"));
        let (code, out, _) = call(&[("CNI_COMMAND", "VERSION")], "garbage");
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn add_renders_in_request_version_with_go_indentation() {
        let (code, out, _) = call(ADD, r#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#);
        assert_eq!(code, 0);
        assert!(out.starts_with("{\n    \"cniVersion\": \"0.3.1\""), "{out}");
        assert!(!out.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn errors_carry_codes_in_order_of_the_reference() {
        let code_of = |vars: &[(&str, &str)], stdin: &str| {
            let (code, out, _) = call(vars, stdin);
            assert_eq!(code, 1);
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["code"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(code_of(ADD, "{"), 6);
        assert_eq!(code_of(ADD, r#"{"cniVersion":"9.9.9","name":"n"}"#), 1);
        assert_eq!(code_of(ADD, r#"{"cniVersion":"1.0.0","name":"../x"}"#), 7);
        assert_eq!(code_of(ADD, r#"{"cniVersion":"1.0.0"}"#), 7);
        let mut bad_id = ADD.to_vec();
        bad_id[1] = ("CNI_CONTAINERID", "../../etc");
        assert_eq!(code_of(&bad_id, r#"{"cniVersion":"1.0.0","name":"n"}"#), 4);
        let check = [&[("CNI_COMMAND", "CHECK")], &ADD[1..]].concat();
        assert_eq!(code_of(&check, r#"{"cniVersion":"0.3.1","name":"n"}"#), 1);
        let status = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/p")];
        assert_eq!(code_of(&status, r#"{"cniVersion":"1.0.0","name":"n"}"#), 1);
        assert_eq!(code_of(&status, r#"{"cniVersion":"1.1.0","name":"n"}"#), 50);
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_STDIN_BYTES as usize));
        assert_eq!(code_of(ADD, &huge), 6);
    }

    #[test]
    fn add_and_del_refuse_our_own_netns_unless_overridden() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#;
        let with = |command: &str, netns: &str, over: Option<&str>| {
            let mut vars = ADD.to_vec();
            vars[0] = ("CNI_COMMAND", command);
            vars[2] = ("CNI_NETNS", netns);
            if let Some(o) = over {
                vars.push(("CNI_NETNS_OVERRIDE", o));
            }
            let (code, out, _) = call(&vars, conf);
            (code, out)
        };
        for command in ["ADD", "DEL"] {
            let (code, out) = with(command, "/proc/self/ns/net", None);
            assert_eq!(code, 1, "{command}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["code"], 8);
            assert_eq!(
                v["msg"],
                "plugin's netns and netns from CNI_NETNS should not be the same"
            );
            assert_eq!(with(command, "/proc/self/ns/net", Some("yes")).0, 1);
            for over in ["1", "true", "TRUE", "True"] {
                assert_eq!(with(command, "/proc/self/ns/net", Some(over)).0, 0);
            }
            // Another file, or none at all, is not our namespace.
            assert_eq!(with(command, "/proc/self/ns/mnt", None).0, 0);
            assert_eq!(with(command, "/nonexistent", None).0, 0);
        }
        // Only ADD and DEL are checked, as in the reference.
        assert_eq!(with("CHECK", "/proc/self/ns/net", None).0, 0);
    }
}
