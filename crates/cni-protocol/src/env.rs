//! The CNI_* environment variables, validated as the reference's skel does.

use crate::error::{CniError, ErrorCode};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// Variables the command cannot run without (an empty value counts as missing).
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Gc | Command::Status => &["CNI_PATH"],
            Command::Version => &[],
        }
    }
}

/// One invocation's parameters. Empty variables are treated as absent, because libcni sets
/// all six and leaves the unused ones empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Reads and validates the environment. `Ok(None)` means CNI_COMMAND is absent: the binary
    /// was run by a person, not a runtime.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Invocation>, CniError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let Some(command_text) = var("CNI_COMMAND") else {
            return Ok(None);
        };
        let command = Command::parse(&command_text)
            .ok_or_else(|| CniError::invalid_env(format!("unknown CNI_COMMAND: {command_text}")))?;
        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|n| var(n).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::invalid_env(format!(
                "required env variables [{}] missing",
                missing.join(",")
            )));
        }
        let invocation = Invocation {
            command,
            container_id: var("CNI_CONTAINERID").unwrap_or_default(),
            netns: var("CNI_NETNS").map(PathBuf::from),
            ifname: var("CNI_IFNAME").unwrap_or_default(),
            args: var("CNI_ARGS").unwrap_or_default(),
            path: var("CNI_PATH")
                .map(|p| {
                    p.split(':')
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok(Some(invocation))
    }

    /// Identity checks that also keep names from escaping the IPAM data dir.
    pub fn validate_identity(&self) -> Result<(), CniError> {
        if matches!(self.command, Command::Add | Command::Del | Command::Check) {
            validate_container_id(&self.container_id)?;
            validate_ifname(&self.ifname)?;
        }
        Ok(())
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`, code 3 when empty and 4 otherwise (the reference's codes).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !is_name(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// A network name is a directory name under the IPAM data dir: same alphabet as container ids.
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_name(name) {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

/// A usable Linux interface name: 1-15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_env("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(CniError::invalid_env("interface name is too long")
            .with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(CniError::invalid_env("interface name is . or .."));
    }
    // The kernel's isspace() also holds for the byte 0xA0, found inside many UTF-8 sequences
    // (e.g. U+16FE0): the kernel refuses such names, so they are refused here with a code.
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
        || name.bytes().any(|b| b == 0xA0)
    {
        return Err(CniError::invalid_env(
            "interface name contains / or : or whitespace characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<Invocation>, CniError> {
        let map = env(pairs);
        Invocation::from_env(&|k| map.get(k).cloned())
    }

    #[test]
    fn no_command_means_no_invocation() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&[("CNI_COMMAND", "")]).unwrap(), None);
    }

    #[test]
    fn missing_variables_are_named_per_command() {
        let err = parse(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "")]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            err.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"
        );
        let err = parse(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(err.msg, "required env variables [CNI_PATH] missing");
        let ok = parse(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/a::/b"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ok.netns, None);
        assert_eq!(ok.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(parse(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")])
            .unwrap()
            .is_some());
        assert_eq!(
            parse(&[("CNI_COMMAND", "FOO")]).unwrap_err().msg,
            "unknown CNI_COMMAND: FOO"
        );
    }

    #[test]
    fn identity_rules_refuse_escaping_names() {
        assert!(validate_container_id("abc-1.2_3").is_ok());
        assert_eq!(
            validate_container_id("").unwrap_err().code,
            ErrorCode::UnknownContainer
        );
        for bad in ["../x", "a/b", "-a", "a b", "a\0b", "é"] {
            assert_eq!(
                validate_container_id(bad).unwrap_err().code,
                ErrorCode::InvalidEnvironment,
                "{bad}"
            );
            assert_eq!(
                validate_network_name(bad).unwrap_err().code,
                ErrorCode::InvalidConfig,
                "{bad}"
            );
        }
        assert!(validate_ifname("eth0").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "0123456789abcdef",
            "a\u{16fe0}",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
        assert!(validate_ifname("0123456789abcde").is_ok());
        assert!(validate_ifname("eth-é").is_ok());
    }
}
