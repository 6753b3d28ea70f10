//! The bridge plugin's configuration: every key the reference reads, its defaults and its
//! validation, done before anything is created. Pure.
//!
//! Keys match as the reference's Go decoder matches them ([`SCHEMA`], read once by the skel), so
//! configs written for it (`"isgateway"`, `"MTU"`) mean the same here.

use cni_protocol::args::CniArgs;
use cni_protocol::gojson::{any, field, Node, NETCONF_FIELDS};
use cni_protocol::result::Dns;
use cni_protocol::{CniError, NetConf};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub const DEFAULT_BRIDGE: &str = "cni0";

/// Which masquerade implementation `ipMasq` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasqBackend {
    Nftables,
    Iptables,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConf {
    pub network: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    /// `None`: pick the default for this kernel.
    pub ip_masq_backend: Option<MasqBackend>,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    /// Native (untagged, PVID) VLAN of the pod's port; 0 = none.
    pub vlan: u16,
    /// Tagged VLANs of the pod's port, sorted and without repeats.
    pub vlan_trunk: Vec<u16>,
    pub preserve_default_vlan: bool,
    pub mac_spoof_check: bool,
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// Container interface MAC: CNI_ARGS `MAC` < `args.cni.mac` < `runtimeConfig.mac`.
    pub mac: Option<[u8; 6]>,
    /// The IPAM plugin to delegate to; `None` is L2-only mode.
    pub ipam: Option<String>,
    /// `dns` from the config; when set it replaces what IPAM returned.
    pub dns: Dns,
}

impl BridgeConf {
    /// Whether the pod's port needs VLAN filtering on the bridge.
    pub fn uses_vlans(&self) -> bool {
        self.vlan != 0 || !self.vlan_trunk.is_empty()
    }
}

/// The keys bridge reads, as the reference's (and newer releases') Go structs name them.
pub const SCHEMA: Node = Node::Struct(&[
    &[
        any("bridge"),
        any("isGateway"),
        any("isDefaultGateway"),
        any("forceAddress"),
        any("ipMasq"),
        any("ipMasqBackend"),
        any("mtu"),
        any("hairpinMode"),
        any("promiscMode"),
        any("vlan"),
        field(
            "vlanTrunk",
            Node::List(&Node::Struct(&[&[any("minID"), any("maxID"), any("id")]])),
        ),
        any("preserveDefaultVlan"),
        any("macspoofchk"),
        any("enabledad"),
        any("disableContainerInterface"),
        any("portIsolation"),
        field(
            "args",
            Node::Struct(&[&[field("cni", Node::Struct(&[&[any("mac")]]))]]),
        ),
        field("runtimeConfig", Node::Struct(&[&[any("mac")]])),
    ],
    NETCONF_FIELDS,
]);

/// Typed reads from an object canonicalized against [`SCHEMA`] (keys by their canonical names).
struct Keys<'a>(&'a Map<String, Value>);

impl<'a> Keys<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    fn bool(&self, key: &str) -> Result<bool, CniError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(type_error(key, "a boolean", v)),
        }
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(type_error(key, "a string", v)),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, CniError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(key, "an integer", &Value::Number(n.clone()))),
            Some(v) => Err(type_error(key, "an integer", v)),
        }
    }

    fn object(&self, key: &str) -> Result<Option<Keys<'a>>, CniError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Keys(o))),
            Some(v) => Err(type_error(key, "an object", v)),
        }
    }
}

fn type_error(key: &str, wanted: &str, got: &Value) -> CniError {
    CniError::invalid_config(format!(
        "failed to load netconf: {key:?} must be {wanted}, not {got}"
    ))
}

/// Parses `aa:bb:cc:dd:ee:ff` (also `-` separated); refuses multicast addresses, which the
/// kernel would refuse for a veth anyway, with a message naming the source.
pub fn parse_mac(text: &str, source: &str) -> Result<[u8; 6], CniError> {
    let bad = || CniError::invalid_config(format!("{source}: invalid MAC address {text:?}"));
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(CniError::invalid_config(format!(
            "{source}: {text} is a multicast MAC address"
        )));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn vlan_id(value: i64, what: &str) -> Result<u16, CniError> {
    u16::try_from(value)
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| CniError::invalid_config(format!("incorrect trunk {what} parameter")))
}

/// Expands `vlanTrunk` entries (`{"minID","maxID"}` ranges and/or `{"id"}`) into sorted VIDs.
fn parse_trunk(value: &Value) -> Result<Vec<u16>, CniError> {
    let Value::Array(entries) = value else {
        return Err(type_error("vlanTrunk", "a list", value));
    };
    let mut vids = BTreeSet::new();
    for entry in entries {
        let Value::Object(obj) = entry else {
            return Err(type_error("vlanTrunk entry", "an object", entry));
        };
        let keys = Keys(obj);
        let (min, max) = (keys.int("minID")?, keys.int("maxID")?);
        match (min, max) {
            (Some(min), Some(max)) => {
                let (min, max) = (vlan_id(min, "minID")?, vlan_id(max, "maxID")?);
                if min > max {
                    return Err(CniError::invalid_config(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                vids.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ))
            }
            (Some(_), None) => {
                return Err(CniError::invalid_config(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ))
            }
            (None, None) => {}
        }
        if let Some(id) = keys.int("id")? {
            vids.insert(vlan_id(id, "id")?);
        }
    }
    Ok(vids.into_iter().collect())
}

impl BridgeConf {
    /// Reads the whole config (`raw`: stdin as the skel parsed it for [`SCHEMA`]; `net`: its
    /// already-validated common part) and CNI_ARGS.
    pub fn load(raw: &Value, net: &NetConf, cni_args: &str) -> Result<BridgeConf, CniError> {
        let root = raw.as_object().ok_or_else(|| {
            CniError::new(
                cni_protocol::ErrorCode::Decode,
                "failed to load netconf: the config is not a JSON object",
            )
        })?;
        let keys = Keys(root);

        let bridge = keys
            .string("bridge")?
            .filter(|b| !b.is_empty())
            .unwrap_or(DEFAULT_BRIDGE)
            .to_string();
        cni_protocol::env::validate_ifname(&bridge).map_err(|e| {
            CniError::invalid_config(format!("invalid bridge name {bridge:?}: {}", e.msg))
        })?;

        let vlan = match keys.int("vlan")? {
            None => 0,
            Some(v) => u16::try_from(v)
                .ok()
                .filter(|v| *v <= 4094)
                .ok_or_else(|| {
                    CniError::invalid_config(format!(
                        "invalid VLAN ID {v} (must be between 0 and 4094)"
                    ))
                })?,
        };
        let vlan_trunk = match keys.get("vlanTrunk") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_trunk(v)?,
        };

        let mtu = match keys.int("mtu")? {
            None | Some(0) => None,
            Some(m) => Some(
                u32::try_from(m)
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        CniError::invalid_config(format!("invalid mtu {m} (68..65535)"))
                    })?,
            ),
        };

        let ip_masq_backend = match keys.string("ipMasqBackend")? {
            None => None,
            Some("nftables") => Some(MasqBackend::Nftables),
            Some("iptables") => Some(MasqBackend::Iptables),
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "unknown ipmasq backend {other:?}"
                )))
            }
        };

        let is_default_gateway = keys.bool("isDefaultGateway")?;
        let hairpin = keys.bool("hairpinMode")?;
        let promisc = keys.bool("promiscMode")?;
        if hairpin && promisc {
            return Err(CniError::invalid_config(
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }

        let ipam = net
            .ipam
            .as_ref()
            .map(|i| i.plugin_type.clone())
            .filter(|t| !t.is_empty());
        let disable_container_interface = keys.bool("disableContainerInterface")?;
        if disable_container_interface && ipam.is_some() {
            return Err(CniError::invalid_config(
                "cannot use IPAM when DisableContainerInterface flag is set",
            ));
        }

        let mut mac = None;
        let args = CniArgs::parse(cni_args, &["MAC"])?;
        if let Some(m) = args.get("MAC") {
            mac = Some(parse_mac(m, "CNI_ARGS MAC")?);
        }
        if let Some(m) = keys
            .object("args")?
            .map(|a| a.object("cni"))
            .transpose()?
            .flatten()
            .map(|c| c.string("mac"))
            .transpose()?
            .flatten()
            .filter(|m| !m.is_empty())
        {
            mac = Some(parse_mac(m, "args.cni.mac")?);
        }
        if let Some(m) = keys
            .object("runtimeConfig")?
            .map(|r| r.string("mac"))
            .transpose()?
            .flatten()
            .filter(|m| !m.is_empty())
        {
            mac = Some(parse_mac(m, "runtimeConfig.mac")?);
        }

        Ok(BridgeConf {
            network: net.name.clone(),
            bridge,
            is_gateway: keys.bool("isGateway")? || is_default_gateway,
            is_default_gateway,
            force_address: keys.bool("forceAddress")?,
            ip_masq: keys.bool("ipMasq")?,
            ip_masq_backend,
            mtu,
            hairpin,
            promisc,
            vlan,
            vlan_trunk,
            // Follows the reference since v1.8.0 (default false): a pod port with VLANs does
            // not also stay in the default VLAN 1 unless asked to.
            preserve_default_vlan: keys.bool("preserveDefaultVlan")?,
            mac_spoof_check: keys.bool("macspoofchk")?,
            enable_dad: keys.bool("enabledad")?,
            disable_container_interface,
            port_isolation: keys.bool("portIsolation")?,
            mac,
            ipam,
            dns: net.dns.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(json: &str, args: &str) -> Result<BridgeConf, CniError> {
        let raw = cni_protocol::gojson::parse(json.as_bytes(), &SCHEMA).unwrap();
        let net = NetConf::from_value(&raw).unwrap();
        BridgeConf::load(&raw, &net, args)
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = load(r#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#, "").unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.hairpin && !c.preserve_default_vlan);
        assert_eq!((c.mtu, c.vlan, c.mac, c.ipam), (None, 0, None, None));
    }

    #[test]
    fn default_gateway_implies_gateway_and_keys_are_case_insensitive() {
        let c = load(
            r#"{"name":"n","IsDefaultGateway":true,"MTU":1400,"bridge":"br9",
                "ipam":{"type":"host-local"}}"#,
            "",
        )
        .unwrap();
        assert!(c.is_gateway && c.is_default_gateway);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.bridge, "br9");
        assert_eq!(c.ipam.as_deref(), Some("host-local"));
    }

    #[test]
    fn go_cased_and_duplicated_keys_follow_go() {
        let c = load(
            r#"{"name":"n","IsGateway":true,"IPMasq":true,"ipmasq":false,"Bridge":"br1",
                "VlanTrunk":[{"MinId":3,"MAXID":4}],"Args":{"CNI":{"MAC":"02:00:00:00:00:02"}},
                "RuntimeConfig":{"Mac":"02:00:00:00:00:03"},"runtimeConfig":{"x":1}}"#,
            "",
        )
        .unwrap();
        assert!(c.is_gateway && !c.ip_masq);
        assert_eq!(
            (c.bridge.as_str(), c.vlan_trunk.clone()),
            ("br1", vec![3, 4])
        );
        // runtimeConfig given twice: the second object decodes into the first.
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 3]));
    }

    #[test]
    fn empty_ipam_type_is_l2_mode() {
        let c = load(r#"{"name":"n","ipam":{}}"#, "").unwrap();
        assert_eq!(c.ipam, None);
        let c = load(r#"{"name":"n","ipam":{"type":""}}"#, "").unwrap();
        assert_eq!(c.ipam, None);
    }

    #[test]
    fn mac_precedence_is_args_env_then_args_cni_then_runtime_config() {
        let env = "IgnoreUnknown=1;MAC=02:00:00:00:00:01";
        let c = load(r#"{"name":"n"}"#, env).unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 1]));
        let c = load(
            r#"{"name":"n","args":{"cni":{"mac":"02:00:00:00:00:02"}}}"#,
            env,
        )
        .unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 2]));
        let c = load(
            r#"{"name":"n","args":{"cni":{"mac":"02:00:00:00:00:02"}},
                "runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#,
            env,
        )
        .unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 3]));
        assert!(load(r#"{"name":"n","runtimeConfig":{"mac":"zz"}}"#, "").is_err());
        assert!(load(
            r#"{"name":"n","runtimeConfig":{"mac":"01:00:5e:00:00:01"}}"#,
            ""
        )
        .is_err());
    }

    #[test]
    fn vlan_and_trunk_are_validated_and_expanded() {
        let c = load(
            r#"{"name":"n","vlan":100,"vlanTrunk":[{"minID":10,"maxID":12},{"id":11},{"id":5}]}"#,
            "",
        )
        .unwrap();
        assert_eq!((c.vlan, c.vlan_trunk.clone()), (100, vec![5, 10, 11, 12]));
        assert!(c.uses_vlans());
        let msg = |j: &str| load(j, "").unwrap_err().msg;
        assert_eq!(
            msg(r#"{"name":"n","vlan":5000}"#),
            "invalid VLAN ID 5000 (must be between 0 and 4094)"
        );
        assert_eq!(
            msg(r#"{"name":"n","vlanTrunk":[{"minID":0,"maxID":3}]}"#),
            "incorrect trunk minID parameter"
        );
        assert_eq!(
            msg(r#"{"name":"n","vlanTrunk":[{"minID":9,"maxID":3}]}"#),
            "minID is greater than maxID in trunk parameter"
        );
        assert_eq!(
            msg(r#"{"name":"n","vlanTrunk":[{"maxID":3}]}"#),
            "minID and maxID should be configured simultaneously, minID is missing"
        );
        assert_eq!(
            msg(r#"{"name":"n","vlanTrunk":[{"id":4095}]}"#),
            "incorrect trunk id parameter"
        );
    }

    #[test]
    fn contradictions_and_wrong_types_are_invalid_config() {
        for json in [
            r#"{"name":"n","hairpinMode":true,"promiscMode":true}"#,
            r#"{"name":"n","disableContainerInterface":true,"ipam":{"type":"host-local"}}"#,
            r#"{"name":"n","ipMasq":"yes"}"#,
            r#"{"name":"n","mtu":"1500"}"#,
            r#"{"name":"n","mtu":10}"#,
            r#"{"name":"n","ipMasqBackend":"pf"}"#,
            r#"{"name":"n","bridge":"a/b"}"#,
            r#"{"name":"n","bridge":"much-too-long-bridge"}"#,
        ] {
            let err = load(json, "").unwrap_err();
            assert_eq!(err.code, cni_protocol::ErrorCode::InvalidConfig, "{json}");
        }
    }
}
