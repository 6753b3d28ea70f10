//! The parts of the stdin network configuration every plugin shares. The stdin bytes are read
//! once with Go's key rules ([`crate::gojson`]) against the plugin's schema; this struct and the
//! plugin's own lookups then read canonical key names from that value. Unknown keys are ignored
//! because runtimes add `capabilities`, `cni.dev/*` and keys meant for other plugins of a chain.

use crate::error::{CniError, ErrorCode};
use crate::result::Dns;
use serde::Deserialize;

/// The largest stdin we read; a config this large is a mistake or an attack.
pub const MAX_STDIN_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: Option<String>,
    #[serde(default)]
    pub cni_versions: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    pub ipam: Option<IpamRef>,
    pub dns: Option<Dns>,
    pub prev_result: Option<serde_json::Value>,
    pub runtime_config: Option<serde_json::Value>,
    pub args: Option<serde_json::Value>,
    /// Ours: an absolute path that diagnostics are appended to besides stderr (see `log`).
    /// Any other type is ignored rather than failing the command over a diagnostic.
    pub log_file: Option<serde_json::Value>,
    /// GC's list; absent means the caller gave none (not "none are valid").
    #[serde(
        rename = "cni.dev/valid-attachments",
        default,
        deserialize_with = "present"
    )]
    pub valid_attachments: Option<Option<Vec<GcAttachment>>>,
    /// The name spec 1.1.0's text used; newer libcni sends both.
    #[serde(rename = "cni.dev/attachments", default, deserialize_with = "present")]
    pub attachments: Option<Option<Vec<GcAttachment>>>,
}

/// The `ipam` object as far as the main plugin needs it: which binary to delegate to.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamRef {
    #[serde(rename = "type", default)]
    pub plugin_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct GcAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// Distinguishes an absent key (outer `None`) from an explicit `null` (`Some(None)`).
fn present<'de, D>(d: D) -> Result<Option<Option<Vec<GcAttachment>>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<Vec<GcAttachment>>::deserialize(d).map(Some)
}

/// The stdin config parsed once with Go's key rules against `schema` (a plugin's
/// [`crate::gojson::Node`]): known keys carry their canonical names.
pub fn parse_config(
    stdin: &[u8],
    schema: &'static crate::gojson::Node,
) -> Result<serde_json::Value, CniError> {
    crate::gojson::parse(stdin, schema).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("error parsing network config: {e}"),
        )
    })
}

impl NetConf {
    /// Parses stdin for a plugin that reads only the common keys (tests, tools).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        NetConf::from_value(&parse_config(stdin, &crate::gojson::NETCONF)?)
    }

    /// Reads the common keys from a config already canonicalized by [`parse_config`].
    pub fn from_value(config: &serde_json::Value) -> Result<NetConf, CniError> {
        NetConf::deserialize(config).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                format!("error parsing network config: {e}"),
            )
        })
    }

    /// GC's valid attachments: `None` when the caller sent no list at all; `null` and `[]` both
    /// mean that no attachment of this network is valid.
    pub fn gc_valid_attachments(&self) -> Option<Vec<GcAttachment>> {
        match (&self.valid_attachments, &self.attachments) {
            (Some(list), _) | (None, Some(list)) => Some(list.clone().unwrap_or_default()),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_ignored_and_common_keys_read() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bridge","capabilities":{"ips":true},
                "ipam":{"type":"host-local","subnet":"10.0.0.0/24"},"Documentation":"x"}"#,
        )
        .unwrap();
        assert_eq!(c.name, "n");
        assert_eq!(c.ipam.as_ref().unwrap().plugin_type, "host-local");
        assert_eq!(c.gc_valid_attachments(), None);
    }

    #[test]
    fn gc_lists_accept_both_spellings_and_null() {
        let c = NetConf::parse(br#"{"cni.dev/valid-attachments":null}"#).unwrap();
        assert_eq!(c.gc_valid_attachments(), Some(vec![]));
        let c = NetConf::parse(br#"{"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#)
            .unwrap();
        let go_cased = NetConf::parse(
            br#"{"CNI.dev/valid-attachments":[{"ContainerId":"a","IfName":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(go_cased.gc_valid_attachments(), c.gc_valid_attachments());
        assert_eq!(
            c.gc_valid_attachments(),
            Some(vec![GcAttachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            }])
        );
    }

    #[test]
    fn common_keys_match_as_go_matches_them() {
        let c = NetConf::parse(
            br#"{"CNIVersion":"0.2.0","cniVersion":"0.3.1","NAME":"n","Type":"bridge",
                "IPAM":{"Type":"host-local"},"DNS":{"Nameservers":["10.0.0.1"]}}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version.as_deref(), Some("0.3.1"));
        assert_eq!((c.name.as_str(), c.plugin_type.as_str()), ("n", "bridge"));
        assert_eq!(c.ipam.unwrap().plugin_type, "host-local");
        assert_eq!(c.dns.unwrap().nameservers, ["10.0.0.1"]);
    }

    #[test]
    fn malformed_json_is_a_decode_error() {
        assert_eq!(NetConf::parse(b"{").unwrap_err().code, ErrorCode::Decode);
    }
}
