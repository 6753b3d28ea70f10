//! The success result, held in the newest (1.1) model and rendered in the shape of the
//! request's version; parsed back from any version (prevResult, delegate output).

use crate::error::{CniError, ErrorCode};
use crate::version::{ResultShape, Version};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// The netns path for container-side interfaces; `None` on the host.
    pub sandbox: Option<String>,
    pub socket_path: Option<String>,
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with its prefix length (host bits kept: `10.1.2.5/24`).
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; IPAM results leave it unset.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "4"
    } else {
        "6"
    }
}

fn put_opt<T: Into<Value>>(obj: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        obj.insert(key.into(), v.into());
    }
}

impl Route {
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    fn render(&self, shape: ResultShape) -> Value {
        let mut obj = Map::new();
        obj.insert("dst".into(), self.dst.to_string().into());
        put_opt(&mut obj, "gw", self.gw.map(|g| g.to_string()));
        if shape == ResultShape::Current {
            put_opt(&mut obj, "mtu", self.mtu.filter(|v| *v != 0));
            put_opt(&mut obj, "advmss", self.advmss.filter(|v| *v != 0));
            put_opt(&mut obj, "priority", self.priority.filter(|v| *v != 0));
            put_opt(&mut obj, "table", self.table);
            put_opt(&mut obj, "scope", self.scope);
        }
        Value::Object(obj)
    }

    /// Reads `{"dst","gw",...}`; used for results and for routes in plugin configs.
    pub fn from_json(v: &Value) -> Result<Route, CniError> {
        let dst = v
            .get("dst")
            .and_then(Value::as_str)
            .ok_or_else(|| decode("route without \"dst\""))?;
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Ok(Route {
            dst: parse_cidr(dst)?,
            gw: opt_ip(v.get("gw"))?,
            mtu: num("mtu"),
            advmss: num("advmss"),
            priority: num("priority"),
            table: num("table"),
            scope: num("scope"),
        })
    }
}

fn decode(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::Decode, msg)
}

/// Parses `a.b.c.d/n` keeping host bits, as results carry interface addresses.
pub fn parse_cidr(text: &str) -> Result<IpNetwork, CniError> {
    text.parse::<IpNetwork>()
        .map_err(|e| decode(format!("invalid CIDR address {text:?}: {e}")))
}

fn opt_ip(v: Option<&Value>) -> Result<Option<IpAddr>, CniError> {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| decode(format!("invalid IP address {s:?}"))),
    }
}

impl CniResult {
    /// Renders the result as the given version requires. 0.1/0.2 can carry one address per
    /// family and nothing L2-only, so those conversions can fail.
    pub fn render(&self, version_text: &str, version: Version) -> Result<Value, CniError> {
        let shape = version.shape();
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), version_text.into());
        if shape == ResultShape::Legacy {
            return self.render_legacy(version_text, obj);
        }
        if !self.interfaces.is_empty() {
            let list = self.interfaces.iter().map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), i.name.clone().into());
                put_opt(&mut o, "mac", i.mac.clone().filter(|m| !m.is_empty()));
                if shape == ResultShape::Current {
                    put_opt(&mut o, "mtu", i.mtu.filter(|m| *m != 0));
                }
                put_opt(
                    &mut o,
                    "sandbox",
                    i.sandbox.clone().filter(|s| !s.is_empty()),
                );
                if shape == ResultShape::Current {
                    put_opt(&mut o, "socketPath", i.socket_path.clone());
                    put_opt(&mut o, "pciID", i.pci_id.clone());
                }
                Value::Object(o)
            });
            obj.insert("interfaces".into(), Value::Array(list.collect()));
        }
        if !self.ips.is_empty() {
            let list = self.ips.iter().map(|ip| {
                let mut o = Map::new();
                if shape == ResultShape::Versioned {
                    o.insert("version".into(), family(&ip.address.ip()).into());
                }
                put_opt(&mut o, "interface", ip.interface);
                o.insert("address".into(), ip.address.to_string().into());
                put_opt(&mut o, "gateway", ip.gateway.map(|g| g.to_string()));
                Value::Object(o)
            });
            obj.insert("ips".into(), Value::Array(list.collect()));
        }
        if !self.routes.is_empty() {
            obj.insert(
                "routes".into(),
                self.routes.iter().map(|r| r.render(shape)).collect(),
            );
        }
        obj.insert("dns".into(), dns_value(&self.dns));
        Ok(Value::Object(obj))
    }

    fn render_legacy(
        &self,
        version_text: &str,
        mut obj: Map<String, Value>,
    ) -> Result<Value, CniError> {
        let mut ip4: Option<&IpConfig> = None;
        let mut ip6: Option<&IpConfig> = None;
        for ip in &self.ips {
            let slot = if ip.address.is_ipv4() {
                &mut ip4
            } else {
                &mut ip6
            };
            if slot.is_some() {
                return Err(too_many_addresses(version_text));
            }
            *slot = Some(ip);
        }
        if ip4.is_none() && ip6.is_none() {
            // E.g. an L2-only bridge at 0.1.0/0.2.0: the reference's conversion error, verbatim.
            return Err(CniError::new(
                ErrorCode::Internal,
                "cannot convert: no valid IP addresses",
            ));
        }
        for (key, slot, v4) in [("ip4", ip4, true), ("ip6", ip6, false)] {
            let Some(ip) = slot else { continue };
            let mut o = Map::new();
            o.insert("ip".into(), ip.address.to_string().into());
            put_opt(&mut o, "gateway", ip.gateway.map(|g| g.to_string()));
            let routes: Vec<Value> = self
                .routes
                .iter()
                .filter(|r| r.dst.is_ipv4() == v4)
                .map(|r| r.render(ResultShape::Legacy))
                .collect();
            if !routes.is_empty() {
                o.insert("routes".into(), Value::Array(routes));
            }
            obj.insert(key.into(), Value::Object(o));
        }
        obj.insert("dns".into(), dns_value(&self.dns));
        Ok(Value::Object(obj))
    }

    /// Parses a result in any version's shape. `default_version` is used when the object has no
    /// `cniVersion` (pre-1.0 prevResults may lack it).
    pub fn parse(v: &Value, default_version: Version) -> Result<CniResult, CniError> {
        let version = match v.get("cniVersion").and_then(Value::as_str) {
            // As the reference: a result is read only in a version we know (a "9.9.9" result
            // is not guessed to have the newest shape).
            Some(text) if !text.is_empty() => {
                let parsed = Version::parse(text)?;
                if !Version::is_supported(text) {
                    return Err(CniError::new(
                        ErrorCode::IncompatibleVersion,
                        format!("unsupported CNI result version {text:?}"),
                    ));
                }
                parsed
            }
            _ => default_version,
        };
        let dns = match v.get("dns") {
            Some(d) if !d.is_null() => serde_json::from_value(d.clone())
                .map_err(|e| decode(format!("invalid dns in result: {e}")))?,
            _ => Dns::default(),
        };
        if version.shape() == ResultShape::Legacy {
            let mut result = CniResult {
                dns,
                ..CniResult::default()
            };
            for key in ["ip4", "ip6"] {
                let Some(o) = v.get(key).filter(|o| !o.is_null()) else {
                    continue;
                };
                let ip = o
                    .get("ip")
                    .and_then(Value::as_str)
                    .ok_or_else(|| decode(format!("{key} without \"ip\"")))?;
                result.ips.push(IpConfig {
                    address: parse_cidr(ip)?,
                    gateway: opt_ip(o.get("gateway"))?,
                    interface: None,
                });
                for r in o
                    .get("routes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    result.routes.push(Route::from_json(r)?);
                }
            }
            return Ok(result);
        }
        let mut result = CniResult {
            dns,
            ..CniResult::default()
        };
        for i in v
            .get("interfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| i.get(k).and_then(Value::as_str).map(str::to_string);
            result.interfaces.push(Interface {
                name: s("name").ok_or_else(|| decode("interface without \"name\""))?,
                mac: s("mac"),
                mtu: i
                    .get("mtu")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
                sandbox: s("sandbox").filter(|s| !s.is_empty()),
                socket_path: s("socketPath"),
                pci_id: s("pciID"),
            });
        }
        for ip in v.get("ips").and_then(Value::as_array).into_iter().flatten() {
            let address = ip
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| decode("ip without \"address\""))?;
            let interface = match ip.get("interface") {
                None | Some(Value::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| decode(format!("invalid interface index {n}")))?,
                ),
            };
            result.ips.push(IpConfig {
                address: parse_cidr(address)?,
                gateway: opt_ip(ip.get("gateway"))?,
                interface,
            });
        }
        for r in v
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            result.routes.push(Route::from_json(r)?);
        }
        Ok(result)
    }
}

/// A result with two addresses of one family asked for at 0.1.0/0.2.0, which hold one each:
/// the reference's conversion error (code 999), verbatim.
pub fn too_many_addresses(version_text: &str) -> CniError {
    CniError::new(
        ErrorCode::Internal,
        format!("CNI version {version_text} does not support more than 1 address per family"),
    )
}

/// `dns` is always printed, as `{}` when empty, matching the reference builds runtimes ship.
fn dns_value(dns: &Dns) -> Value {
    serde_json::to_value(dns).unwrap_or_else(|_| Value::Object(Map::new()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: Some("aa:bb:cc:dd:ee:ff".into()),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    sandbox: Some("/run/netns/x".into()),
                    mtu: Some(1500),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.1.2.5/24".parse().unwrap(),
                    gateway: "10.1.2.1".parse().ok(),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
            ],
            routes: vec![
                Route::new("0.0.0.0/0".parse().unwrap(), None),
                Route {
                    table: Some(100),
                    ..Route::new("::/0".parse().unwrap(), "fd00::1".parse().ok())
                },
            ],
            dns: Dns {
                nameservers: vec!["10.1.2.1".into()],
                ..Default::default()
            },
        }
    }

    fn render(r: &CniResult, v: &str) -> Value {
        r.render(v, Version::parse(v).unwrap()).unwrap()
    }

    #[test]
    fn shapes_per_version() {
        let r = sample();
        let v1 = render(&r, "1.1.0");
        assert_eq!(
            v1["ips"][0],
            serde_json::json!({"interface":1,"address":"10.1.2.5/24","gateway":"10.1.2.1"})
        );
        assert_eq!(v1["interfaces"][1]["mtu"], 1500);
        assert_eq!(v1["routes"][1]["table"], 100);
        let v10 = render(&r, "1.0.0");
        assert_eq!(v10["interfaces"][1].get("mtu"), Some(&Value::from(1500)));
        let v04 = render(&r, "0.4.0");
        assert_eq!(v04["ips"][1]["version"], "6");
        assert!(v04["interfaces"][1].get("mtu").is_none());
        assert!(v04["routes"][1].get("table").is_none());
        let v02 = render(&r, "0.2.0");
        assert_eq!(
            v02["ip4"],
            serde_json::json!({"ip":"10.1.2.5/24","gateway":"10.1.2.1","routes":[{"dst":"0.0.0.0/0"}]})
        );
        assert_eq!(v02["ip6"]["routes"][0]["gw"], "fd00::1");
        assert_eq!(v02["dns"]["nameservers"][0], "10.1.2.1");
    }

    #[test]
    fn legacy_versions_refuse_what_they_cannot_carry() {
        let mut r = sample();
        r.ips.push(r.ips[0].clone());
        assert!(r.render("0.2.0", Version::parse("0.2.0").unwrap()).is_err());
        assert!(CniResult::default()
            .render("0.1.0", Version::parse("0.1.0").unwrap())
            .is_err());
        assert_eq!(
            render(&CniResult::default(), "1.0.0"),
            serde_json::json!({"cniVersion":"1.0.0","dns":{}})
        );
    }

    #[test]
    fn every_shape_parses_back() {
        let r = sample();
        for v in ["1.1.0", "1.0.0", "0.4.0", "0.3.1"] {
            let back = CniResult::parse(&render(&r, v), Version::V1_0_0).unwrap();
            assert_eq!(back.ips, r.ips, "{v}");
            assert_eq!(back.interfaces.len(), 2);
        }
        let back = CniResult::parse(&render(&r, "0.2.0"), Version::V1_0_0).unwrap();
        assert_eq!(back.ips.len(), 2);
        assert_eq!(back.ips[0].interface, None);
        assert_eq!(back.routes.len(), 2);
        let no_version = serde_json::json!({"ip4":{"ip":"10.0.0.2/8"}});
        assert_eq!(
            CniResult::parse(&no_version, Version::parse("0.2.0").unwrap())
                .unwrap()
                .ips
                .len(),
            1
        );
    }
}
