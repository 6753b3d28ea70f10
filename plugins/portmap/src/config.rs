//! The portmap plugin's configuration: the keys the reference reads, defaults and validation.
//! Pure. Keys match as the reference's Go decoder matches them ([`SCHEMA`], read once by the
//! skel): containerd sends `runtimeConfig.portMappings` entries with Go-cased keys (`HostPort`).

use cni_protocol::gojson::{any, field, nullable, Node, NETCONF_FIELDS};
use cni_protocol::CniError;
use firewall::portmap::{PortMapping, Protocol};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortmapConf {
    pub snat: bool,
    pub mark_masq_bit: u8,
    pub external_set_mark_chain: Option<String>,
    /// `None`: pick the default for this kernel (iptables when the iptables-only options below
    /// are set).
    pub backend: Option<Backend>,
    /// `conditionsV4` / `conditionsV6`: iptables match arguments for the jumps.
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
    pub mappings: Vec<PortMapping>,
}

/// The keys portmap reads, as the reference's Go structs name them.
pub const SCHEMA: Node = Node::Struct(&[
    &[
        // Go pointers (`*bool`, `*int`, `*[]string`…): a later null unsets them.
        nullable("snat"),
        nullable("markMasqBit"),
        nullable("externalSetMarkChain"),
        nullable("conditionsV4"),
        nullable("conditionsV6"),
        nullable("backend"),
        field(
            "runtimeConfig",
            Node::Struct(&[&[field(
                "portMappings",
                Node::List(&Node::Struct(&[&[
                    any("hostPort"),
                    any("containerPort"),
                    any("protocol"),
                    any("hostIP"),
                ]])),
            )]]),
        ),
    ],
    NETCONF_FIELDS,
]);

/// A key of an object canonicalized against [`SCHEMA`].
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key)
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(msg)
}

fn port(entry: &Map<String, Value>, key: &str, what: &str) -> Result<u16, CniError> {
    let v = get(entry, key).and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&v) {
        return Err(bad(format!("Invalid {what} port number: {v}")));
    }
    Ok(v as u16)
}

fn mapping(entry: &Value) -> Result<PortMapping, CniError> {
    let entry = entry
        .as_object()
        .ok_or_else(|| bad("runtimeConfig.portMappings entries must be objects"))?;
    let protocol = match get(entry, "protocol") {
        None | Some(Value::Null) => Protocol::Tcp,
        Some(Value::String(s)) if s.is_empty() => Protocol::Tcp,
        Some(Value::String(s)) => Protocol::parse(s).ok_or_else(|| {
            bad(format!(
                "Invalid protocol {s:?} in runtimeConfig.portMappings: use tcp, udp or sctp"
            ))
        })?,
        Some(other) => return Err(bad(format!("protocol must be a string, not {other}"))),
    };
    let host_ip = match get(entry, "hostIP") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("Invalid hostIP {s:?}: not an IP address")))?,
        ),
        Some(other) => return Err(bad(format!("hostIP must be a string, not {other}"))),
    };
    Ok(PortMapping {
        host_port: port(entry, "hostPort", "host")?,
        container_port: port(entry, "containerPort", "container")?,
        protocol,
        host_ip,
    })
}

fn conditions(top: &Map<String, Value>, key: &str) -> Result<Vec<String>, CniError> {
    match get(top, key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{key} must be a list of strings, not {i} in it")))
            })
            .collect(),
        Some(other) => Err(bad(format!("{key} must be a list of strings, not {other}"))),
    }
}

impl PortmapConf {
    /// Whether the config uses options only the iptables backend has.
    pub fn needs_iptables(&self) -> bool {
        !self.conditions_v4.is_empty()
            || !self.conditions_v6.is_empty()
            || self.external_set_mark_chain.is_some()
    }

    /// Reads the plugin's keys from stdin as the skel parsed it for [`SCHEMA`].
    pub fn parse(raw: &Value) -> Result<PortmapConf, CniError> {
        let empty = Map::new();
        let top = raw.as_object().unwrap_or(&empty);
        let snat = match get(top, "snat") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(bad(format!("snat must be a boolean, not {other}"))),
        };
        let external_set_mark_chain = match get(top, "externalSetMarkChain") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(bad(format!(
                    "externalSetMarkChain must be a string, not {other}"
                )))
            }
        };
        let mark_masq_bit = match get(top, "markMasqBit") {
            None | Some(Value::Null) => 13,
            Some(v) => {
                if external_set_mark_chain.is_some() {
                    return Err(bad("Cannot specify externalSetMarkChain and markMasqBit"));
                }
                match v.as_i64() {
                    Some(b @ 0..=31) => b as u8,
                    _ => {
                        return Err(bad(format!(
                            "MasqMarkBit must be between 0 and 31, not {v}"
                        )))
                    }
                }
            }
        };
        let backend = match get(top, "backend").and_then(Value::as_str) {
            None | Some("") => None,
            Some("nftables") => Some(Backend::Nftables),
            Some("iptables") => Some(Backend::Iptables),
            Some(other) => {
                return Err(bad(format!(
                    "unknown backend {other:?}: use \"nftables\" or \"iptables\""
                )))
            }
        };
        let mappings = match get(top, "runtimeConfig")
            .and_then(Value::as_object)
            .and_then(|rc| get(rc, "portMappings"))
        {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => entries.iter().map(mapping).collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("runtimeConfig.portMappings must be a list")),
        };
        let conf = PortmapConf {
            snat,
            mark_masq_bit,
            external_set_mark_chain,
            backend,
            conditions_v4: conditions(top, "conditionsV4")?,
            conditions_v6: conditions(top, "conditionsV6")?,
            mappings,
        };
        // Silently dropping a condition would publish a port wider than asked.
        if conf.backend == Some(Backend::Nftables) && conf.needs_iptables() {
            return Err(bad(
                "conditionsV4, conditionsV6 and externalSetMarkChain are iptables rule fragments: \
                 use \"backend\": \"iptables\" (or leave backend unset) with them",
            ));
        }
        Ok(conf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PortmapConf, CniError> {
        PortmapConf::parse(&cni_protocol::gojson::parse(s.as_bytes(), &SCHEMA).unwrap())
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"portmap"}"#).unwrap();
        assert!(c.snat);
        assert_eq!(c.mark_masq_bit, 13);
        assert_eq!(c.backend, None);
        assert!(c.mappings.is_empty());
    }

    #[test]
    fn go_cased_mapping_keys_and_protocol_case() {
        let c = parse(
            r#"{"name":"n","RuntimeConfig":{"PortMappings":[
                {"HostPort":8080,"hostPort":8080,"ContainerPort":80,"Protocol":"UDP","HostIP":"10.0.0.1"},
                {"hostPort":443,"containerPort":8443}]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.mappings,
            vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Udp,
                    host_ip: Some("10.0.0.1".parse().unwrap()),
                },
                PortMapping {
                    host_port: 443,
                    container_port: 8443,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                }
            ]
        );
    }

    #[test]
    fn the_last_case_variant_wins() {
        let c = parse(
            r#"{"SNAT":false,"snat":true,"Mar\u212AMasqBit":3,"runtimeConfig":{"portMappings":[
            {"hostPort":1,"HOSTPORT":2,"containerPort":3}]}}"#,
        )
        .unwrap();
        assert!(c.snat);
        assert_eq!(c.mark_masq_bit, 3);
        assert_eq!(c.mappings[0].host_port, 2);
    }

    #[test]
    fn iptables_only_options_pick_iptables() {
        let c =
            parse(r#"{"conditionsV4":["!","-s","192.0.2.9"],"externalSetMarkChain":"K"}"#).unwrap();
        assert_eq!(c.conditions_v4, ["!", "-s", "192.0.2.9"]);
        assert!(c.conditions_v6.is_empty());
        assert!(c.needs_iptables());
        assert!(!parse("{}").unwrap().needs_iptables());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            r#"{"runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#,
            r#"{"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":70000}]}}"#,
            r#"{"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}"#,
            r#"{"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"x"}]}}"#,
            r#"{"markMasqBit":32}"#,
            r#"{"markMasqBit":3,"externalSetMarkChain":"X"}"#,
            r#"{"backend":"ebpf"}"#,
            r#"{"conditionsV4":"-s 1.2.3.4"}"#,
            r#"{"conditionsV6":[1]}"#,
            r#"{"backend":"nftables","conditionsV4":["-s","1.2.3.4"]}"#,
            r#"{"backend":"nftables","externalSetMarkChain":"KUBE-MARK-MASQ"}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code.number(), 7, "{bad}: {e:?}");
        }
    }
}
