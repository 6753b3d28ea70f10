//! CNI_ARGS: `K=V;K2=V2`, keys matched exactly, unknown keys refused unless `IgnoreUnknown`.

use crate::error::CniError;
use std::collections::BTreeMap;

/// The CNI_ARGS pairs a plugin understands, after the reference's validation rules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CniArgs {
    values: BTreeMap<String, String>,
}

impl CniArgs {
    /// Parses `raw`, keeping only `known` keys. Unknown keys are an error unless
    /// `IgnoreUnknown` is `1`/`true` anywhere in the list (runtimes put it at any position).
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        if !raw.is_empty() {
            for piece in raw.split(';') {
                let kv: Vec<&str> = piece.split('=').collect();
                if kv.len() != 2 {
                    return Err(CniError::invalid_env(format!(
                        "ARGS: invalid pair {piece:?}"
                    )));
                }
                pairs.push((kv[0], kv[1]));
            }
        }
        let mut ignore_unknown = false;
        for (key, value) in &pairs {
            if *key == "IgnoreUnknown" {
                ignore_unknown = parse_bool(value)?;
            }
        }
        let mut values = BTreeMap::new();
        let mut unknown = Vec::new();
        for (key, value) in pairs {
            if key == "IgnoreUnknown" {
                continue;
            }
            if known.contains(&key) {
                values.insert(key.to_string(), value.to_string());
            } else {
                unknown.push(format!("{key}={value}"));
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::invalid_env(format!(
                "ARGS: unknown args {unknown:?}"
            )));
        }
        Ok(CniArgs { values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

fn parse_bool(value: &str) -> Result<bool, CniError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(CniError::invalid_env(format!(
            "ARGS: IgnoreUnknown must be 1, 0, true or false, not {value:?}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_kept_and_unknown_refused_without_ignore_unknown() {
        let a = CniArgs::parse("IP=10.1.2.3", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.1.2.3"));
        let err = CniArgs::parse("IP=10.1.2.3;FOO=bar", &["IP"]).unwrap_err();
        assert_eq!(err.msg, r#"ARGS: unknown args ["FOO=bar"]"#);
        let a = CniArgs::parse("K8S_POD_NAME=x;IP=10.0.0.1;IgnoreUnknown=1", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.1"));
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;A=b", &[]).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=false;A=b", &[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=maybe", &[]).is_err());
    }

    #[test]
    fn malformed_pairs_are_refused() {
        assert_eq!(
            CniArgs::parse("IP=1;", &["IP"]).unwrap_err().msg,
            r#"ARGS: invalid pair """#
        );
        assert!(CniArgs::parse("IP=a=b", &["IP"]).is_err());
        assert!(CniArgs::parse("", &[]).unwrap().get("IP").is_none());
    }
}
