//! host-local's configuration: the `ipam` object, `runtimeConfig.ips`/`ipRanges`, `args.cni.ips`
//! and CNI_ARGS `IP=`, turned into canonical range sets and requested addresses. Pure.

use crate::range::{RangeSet, RangeSpec};
use cni_protocol::args::CniArgs;
use cni_protocol::gojson::{
    any, field, nullable, ptr, Field, Node, NETCONF_FIELDS, ROUTE, STRINGS,
};
use cni_protocol::result::Route;
use cni_protocol::{CniError, ErrorCode, Version};
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// How long to wait for another process holding the network's lock before answering
/// "try again later" (code 11) instead of hanging the runtime.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A range as the reference's `Range` struct has it (also embedded in `ipam`). The addresses
/// are Go `net.IP` slices: a later `null` clears them (checked against the reference).
const RANGE_FIELDS: &[Field] = &[
    nullable("subnet"),
    nullable("rangeStart"),
    nullable("rangeEnd"),
    nullable("gateway"),
];
const RANGE: Node = Node::Struct(&[RANGE_FIELDS]);
const RANGE_SETS: Node = Node::List(&Node::List(&RANGE));

/// The keys host-local reads, matched as the reference's Go structs match them (go-cni sends
/// `runtimeConfig.ipRanges` entries as `{"Subnet","RangeStart",…}`).
pub const SCHEMA: Node = Node::Struct(&[
    &[
        ptr(
            "ipam",
            Node::Struct(&[
                &[
                    any("type"),
                    any("name"),
                    field("ranges", RANGE_SETS),
                    field("routes", Node::List(&ROUTE)),
                    any("dataDir"),
                    any("resolvConf"),
                    any("lockTimeoutMs"),
                    any("releaseOnReboot"),
                ],
                RANGE_FIELDS,
            ]),
        ),
        field(
            "runtimeConfig",
            Node::Struct(&[&[field("ips", STRINGS), field("ipRanges", RANGE_SETS)]]),
        ),
        ptr(
            "args",
            Node::Struct(&[&[ptr("cni", Node::Struct(&[&[field("ips", STRINGS)]]))]]),
        ),
    ],
    NETCONF_FIELDS,
]);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    ipam: Option<RawIpam>,
    runtime_config: Option<RawRuntimeConfig>,
    args: Option<RawArgs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(flatten)]
    legacy: RangeSpec,
    #[serde(default)]
    ranges: Vec<Vec<RangeSpec>>,
    #[serde(default)]
    routes: Vec<serde_json::Value>,
    data_dir: Option<String>,
    resolv_conf: Option<String>,
    lock_timeout_ms: Option<u64>,
    release_on_reboot: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default, rename = "ipRanges")]
    ip_ranges: Vec<Vec<RangeSpec>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    cni: Option<RawCniArgs>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCniArgs {
    #[serde(default)]
    ips: Vec<String>,
}

/// Where a network's leases live and how long to wait for its lock: all DEL and GC need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConf {
    pub data_dir: PathBuf,
    pub lock_timeout: Duration,
    /// `releaseOnReboot` (ours, default true): the first command of a boot releases the
    /// leases written before it. Off for a data dir that outlives the node's boots.
    pub release_on_reboot: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpamConf {
    pub store: StoreConf,
    /// In allocation order: runtimeConfig.ipRanges, legacy `subnet`, `ranges`.
    pub range_sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: Option<PathBuf>,
    /// In the reference's order: CNI_ARGS IP, args.cni.ips, runtimeConfig.ips; no repeats.
    pub requested: Vec<IpAddr>,
}

/// `config` is stdin as [`cni_protocol::NetConf::parse_config`] gave it for [`SCHEMA`].
fn parse_raw(config: &Value) -> Result<(RawConf, RawIpam), CniError> {
    let raw = RawConf::deserialize(config).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("invalid host-local configuration: {e}"),
        )
    })?;
    let RawConf {
        ipam,
        runtime_config,
        args,
    } = raw;
    let ipam = ipam.ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    Ok((
        RawConf {
            ipam: None,
            runtime_config,
            args,
        },
        ipam,
    ))
}

fn store_conf(ipam: &RawIpam) -> StoreConf {
    StoreConf {
        data_dir: PathBuf::from(
            ipam.data_dir
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or(DEFAULT_DATA_DIR),
        ),
        lock_timeout: ipam
            .lock_timeout_ms
            .map_or(DEFAULT_LOCK_TIMEOUT, Duration::from_millis),
        release_on_reboot: ipam.release_on_reboot.unwrap_or(true),
    }
}

/// Only what releasing needs, so DEL and GC work even when the ranges no longer validate.
pub fn load_store_conf(config: &Value) -> Result<StoreConf, CniError> {
    let (_, ipam) = parse_raw(config)?;
    Ok(store_conf(&ipam))
}

fn parse_requested(text: &str, source: &str) -> Result<IpAddr, CniError> {
    let addr = text.split('/').next().unwrap_or_default().trim();
    addr.parse()
        .map_err(|_| CniError::invalid_config(format!("{source}: invalid IP address {text:?}")))
}

impl IpamConf {
    pub fn load(
        config: &Value,
        cni_args: &str,
        version_text: &str,
        version: Version,
    ) -> Result<IpamConf, CniError> {
        let (raw, ipam) = parse_raw(config)?;
        let runtime = raw.runtime_config.unwrap_or_default();
        let mut specs: Vec<Vec<RangeSpec>> = runtime.ip_ranges;
        if !ipam.legacy.subnet.is_empty() {
            specs.push(vec![ipam.legacy.clone()]);
        }
        specs.extend(ipam.ranges.iter().cloned());
        if specs.is_empty() {
            return Err(CniError::invalid_config("no IP ranges specified"));
        }
        let range_sets = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                RangeSet::from_specs(s)
                    .map_err(|e| CniError::invalid_config(format!("invalid range set {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..range_sets.len() {
            for j in i + 1..range_sets.len() {
                if range_sets[i].overlaps(&range_sets[j]) {
                    return Err(CniError::invalid_config(format!(
                        "range set {i} overlaps with {j}"
                    )));
                }
            }
        }
        if version < Version::V0_3_0 {
            let v4 = range_sets.iter().filter(|s| s.is_ipv4()).count();
            if v4 > 1 || range_sets.len() - v4 > 1 {
                // Refused before any lease is taken, with the reference's code (999, not 7:
                // runtimes see the same error as from the result conversion) and text.
                return Err(cni_protocol::result::too_many_addresses(version_text));
            }
        }
        let args = CniArgs::parse(cni_args, &["IP"])?;
        let mut requested = Vec::new();
        let sources = args
            .get("IP")
            .map(|ip| (ip.to_string(), "CNI_ARGS IP"))
            .into_iter()
            .chain(
                raw.args
                    .and_then(|a| a.cni)
                    .unwrap_or_default()
                    .ips
                    .into_iter()
                    .map(|ip| (ip, "args.cni.ips")),
            )
            .chain(runtime.ips.into_iter().map(|ip| (ip, "runtimeConfig.ips")));
        for (text, source) in sources {
            let ip = parse_requested(&text, source)?;
            if !requested.contains(&ip) {
                requested.push(ip);
            }
        }
        let routes = ipam
            .routes
            .iter()
            .map(|r| {
                Route::from_json(r)
                    .map_err(|e| CniError::invalid_config(format!("invalid route: {}", e.msg)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpamConf {
            store: store_conf(&ipam),
            range_sets,
            routes,
            resolv_conf: ipam
                .resolv_conf
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            requested,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Value {
        cni_protocol::gojson::parse(json.as_bytes(), &SCHEMA).unwrap()
    }

    fn load(json: &str, args: &str, version: &str) -> Result<IpamConf, CniError> {
        IpamConf::load(&raw(json), args, version, Version::parse(version).unwrap())
    }

    #[test]
    fn range_sets_are_ordered_runtime_then_legacy_then_ranges() {
        let c = load(
            r#"{"ipam":{"subnet":"10.1.0.0/24","ranges":[[{"subnet":"10.2.0.0/24"}]]},
                "runtimeConfig":{"ipRanges":[[{"subnet":"10.3.0.0/24"}]]}}"#,
            "",
            "1.0.0",
        )
        .unwrap();
        let firsts: Vec<String> = c
            .range_sets
            .iter()
            .map(|s| s.0[0].subnet.to_string())
            .collect();
        assert_eq!(firsts, ["10.3.0.0/24", "10.1.0.0/24", "10.2.0.0/24"]);
        assert_eq!(c.store.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn requested_addresses_collect_from_all_sources_in_order() {
        let c = load(
            r#"{"ipam":{"subnet":"10.1.0.0/16"},"args":{"cni":{"ips":["10.1.0.9/24","10.1.0.10"]}},
                "runtimeConfig":{"ips":["10.1.0.10","2001:db8::1/64"]}}"#,
            "IgnoreUnknown=1;IP=10.1.0.8/8;K8S_POD_NAME=x",
            "1.0.0",
        )
        .unwrap();
        let got: Vec<String> = c.requested.iter().map(IpAddr::to_string).collect();
        assert_eq!(got, ["10.1.0.8", "10.1.0.9", "10.1.0.10", "2001:db8::1"]);
        assert_eq!(
            load(r#"{"ipam":{"subnet":"10.1.0.0/16"}}"#, "IP=zzz", "1.0.0")
                .unwrap_err()
                .code,
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            load(r#"{"ipam":{"subnet":"10.1.0.0/16"}}"#, "FOO=1", "1.0.0")
                .unwrap_err()
                .code,
            ErrorCode::InvalidEnvironment
        );
    }

    #[test]
    fn validation_errors_match_the_reference_wording() {
        let msg = |j: &str, v: &str| load(j, "", v).unwrap_err().msg;
        assert_eq!(
            msg(r#"{"name":"x"}"#, "1.0.0"),
            "IPAM config missing 'ipam' key"
        );
        assert_eq!(msg(r#"{"ipam":{}}"#, "1.0.0"), "no IP ranges specified");
        assert_eq!(
            msg(
                r#"{"ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"10.1.2.0/24"}]]}}"#,
                "1.0.0"
            ),
            "range set 0 overlaps with 1"
        );
        assert_eq!(
            msg(
                r#"{"ipam":{"ranges":[[{"subnet":"10.1.0.0/22"},{"subnet":"10.1.2.0/24"}]]}}"#,
                "1.0.0"
            ),
            "invalid range set 0: subnets 10.1.0.1-10.1.3.254 and 10.1.2.1-10.1.2.254 overlap"
        );
        assert_eq!(
            msg(
                r#"{"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/24"}]]}}"#,
                "0.2.0"
            ),
            "CNI version 0.2.0 does not support more than 1 address per family"
        );
        assert!(load(
            r#"{"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]}}"#,
            "",
            "0.2.0"
        )
        .is_ok());
        assert_eq!(
            load(r#"{"ipam":{"subnet":5}}"#, "", "1.0.0")
                .unwrap_err()
                .code,
            ErrorCode::Decode
        );
    }

    #[test]
    fn store_conf_survives_invalid_ranges() {
        let s = load_store_conf(&raw(
            r#"{"ipam":{"subnet":"10.1.2.3/24","DataDir":"/tmp/x","lockTimeoutMs":5}}"#,
        ))
        .unwrap();
        assert_eq!(
            s,
            StoreConf {
                data_dir: PathBuf::from("/tmp/x"),
                lock_timeout: Duration::from_millis(5),
                release_on_reboot: true,
            }
        );
    }

    #[test]
    fn go_cased_and_duplicated_keys_read_as_the_reference_reads_them() {
        // go-cni marshals ipRanges entries from an untagged struct; the last variant wins.
        let c = load(
            r#"{"IPAM":{"Type":"host-local","Subnet":"10.1.0.0/24","subnet":"10.2.0.0/24",
                "Routes":[{"Dst":"0.0.0.0/0","GW":"10.2.0.9"}],"ResolvConf":"/r"},
                "ipam":{"DataDir":"/d"},
                "RuntimeConfig":{"IPRanges":[[{"Subnet":"10.3.0.0/24","RangeStart":"10.3.0.5",
                "RangeEnd":"10.3.0.9","Gateway":"10.3.0.254"}]],"IPs":["10.3.0.6"]},
                "Args":{"CNI":{"IPS":["10.3.0.7"]}}}"#,
            "",
            "1.0.0",
        )
        .unwrap();
        let firsts: Vec<String> = c.range_sets.iter().map(|s| s.0[0].to_string()).collect();
        assert_eq!(firsts, ["10.3.0.5-10.3.0.9", "10.2.0.1-10.2.0.254"]);
        assert_eq!(c.range_sets[0].0[0].gateway.to_string(), "10.3.0.254");
        assert_eq!(c.store.data_dir, PathBuf::from("/d"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/r")));
        assert_eq!(
            c.routes[0].gw.map(|g| g.to_string()).as_deref(),
            Some("10.2.0.9")
        );
        let got: Vec<String> = c.requested.iter().map(IpAddr::to_string).collect();
        assert_eq!(got, ["10.3.0.7", "10.3.0.6"]);
    }
}
