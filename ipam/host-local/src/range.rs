//! Address ranges and range sets: canonicalisation, containment, overlap. Pure arithmetic.

use ipnetwork::IpNetwork;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range as written in the config (`ranges` entries, legacy keys, `runtimeConfig.ipRanges`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeSpec {
    #[serde(default)]
    pub subnet: String,
    pub range_start: Option<String>,
    pub range_end: Option<String>,
    pub gateway: Option<String>,
}

/// A canonical range: every field known, `start..=end` inside `subnet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` in the family of `like` (values past the family's top saturate).
pub fn from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

fn parse_ip(text: &str, what: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{what}: invalid IP address {text:?}"))
}

impl Range {
    pub fn from_spec(spec: &RangeSpec) -> Result<Range, String> {
        let subnet: IpNetwork = spec
            .subnet
            .trim()
            .parse()
            .map_err(|e| format!("invalid subnet {:?}: {e}", spec.subnet))?;
        if let IpNetwork::V6(v6) = subnet {
            if v6.ip().to_ipv4_mapped().is_some() {
                return Err("IPNet IP and Mask version mismatch".into());
            }
        }
        let bits = if subnet.is_ipv4() { 32 } else { 128 };
        if subnet.prefix() > bits - 2 {
            return Err(format!(
                "Network {}/{} too small to allocate from",
                subnet.network(),
                subnet.prefix()
            ));
        }
        if subnet.ip() != subnet.network() {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {}",
                subnet.prefix(),
                subnet.network()
            ));
        }
        let subnet =
            IpNetwork::new(subnet.network(), subnet.prefix()).map_err(|e| e.to_string())?;
        let network = to_u128(subnet.network());
        let last = if subnet.is_ipv4() {
            to_u128(subnet.broadcast()) - 1
        } else {
            to_u128(subnet.broadcast())
        };
        let gateway = match &spec.gateway {
            Some(g) if !g.trim().is_empty() => parse_ip(g, "gateway")?,
            _ => from_u128(network + 1, subnet.ip()),
        };
        let start = spec
            .range_start
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_ip(s, "rangeStart"))
            .transpose()?;
        let end = spec
            .range_end
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_ip(s, "rangeEnd"))
            .transpose()?;
        // Same checks, order and wording as the reference: a start past the end reads as
        // "not in network" because the window is checked with the raw end.
        let in_window = |ip: IpAddr, lo: Option<IpAddr>, hi: Option<IpAddr>| {
            ip.is_ipv4() == subnet.is_ipv4()
                && subnet.contains(ip)
                && lo.is_none_or(|lo| to_u128(ip) >= to_u128(lo))
                && hi.is_none_or(|hi| to_u128(ip) <= to_u128(hi))
        };
        if let Some(s) = start {
            if !in_window(s, start, end) {
                return Err(format!("RangeStart {s} not in network {subnet}"));
            }
        }
        // The reference has already defaulted the start when it checks the end, so an end
        // below the first host (the network address) is refused rather than giving an empty
        // range with start > end.
        let start = start.unwrap_or_else(|| from_u128(network + 1, subnet.ip()));
        if let Some(e) = end {
            if !in_window(e, Some(start), end) {
                return Err(format!("RangeEnd {e} not in network {subnet}"));
            }
        }
        Ok(Range {
            subnet,
            start,
            end: end.unwrap_or_else(|| from_u128(last, subnet.ip())),
            gateway,
        })
    }

    pub fn is_ipv4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    /// Whether `ip` is inside this range's allocation window.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }

    /// How many addresses this range can hand out (its window less the gateway).
    pub fn capacity(&self) -> u128 {
        // A rangeStart past the default end (e.g. the broadcast address) leaves an empty window.
        let Some(window) = to_u128(self.end).checked_sub(to_u128(self.start)) else {
            return 0;
        };
        let window = window + 1;
        window - u128::from(self.contains(self.gateway))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The ranges one address is allocated from (one address per range set per attachment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    pub fn from_specs(specs: &[RangeSpec]) -> Result<RangeSet, String> {
        if specs.is_empty() {
            return Err("empty range set".into());
        }
        let ranges = specs
            .iter()
            .map(Range::from_spec)
            .collect::<Result<Vec<_>, _>>()?;
        let v4 = ranges[0].is_ipv4();
        if ranges.iter().any(|r| r.is_ipv4() != v4) {
            return Err("mixed address families".into());
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!("subnets {a} and {b} overlap"));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn is_ipv4(&self) -> bool {
        self.0.first().is_some_and(Range::is_ipv4)
    }

    pub fn range_for(&self, ip: IpAddr) -> Option<(usize, &Range)> {
        self.0.iter().enumerate().find(|(_, r)| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    pub fn capacity(&self) -> u128 {
        self.0
            .iter()
            .map(Range::capacity)
            .fold(0, u128::saturating_add)
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(subnet: &str) -> RangeSpec {
        RangeSpec {
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    fn range(subnet: &str) -> Result<Range, String> {
        Range::from_spec(&spec(subnet))
    }

    #[test]
    fn defaults_follow_the_reference() {
        let r = range("10.1.2.0/24").unwrap();
        assert_eq!(
            (
                r.start.to_string(),
                r.end.to_string(),
                r.gateway.to_string()
            ),
            ("10.1.2.1".into(), "10.1.2.254".into(), "10.1.2.1".into())
        );
        assert_eq!(range("10.1.2.0/25").unwrap().end.to_string(), "10.1.2.126");
        assert_eq!(
            range("2001:db8::/64").unwrap().end.to_string(),
            "2001:db8::ffff:ffff:ffff:ffff"
        );
        assert_eq!(range("10.1.2.0/24").unwrap().capacity(), 253);
        assert_eq!(range("10.1.2.0/30").unwrap().capacity(), 1);
    }

    #[test]
    fn invalid_ranges_are_explained() {
        assert_eq!(
            range("192.0.2.0/31").unwrap_err(),
            "Network 192.0.2.0/31 too small to allocate from"
        );
        assert!(range("2001:db8::/127").unwrap_err().contains("too small"));
        assert_eq!(
            range("192.0.2.12/24").unwrap_err(),
            "Network has host bits set. For a subnet mask of length 24 the network address is 192.0.2.0"
        );
        assert!(range("2001:DB8:24:19ff::/63")
            .unwrap_err()
            .ends_with("2001:db8:24:19fe::"));
        assert_eq!(
            range("::ffff:10.1.2.0/120").unwrap_err(),
            "IPNet IP and Mask version mismatch"
        );
        let mut s = spec("10.1.2.0/24");
        s.range_start = Some("10.1.3.1".into());
        assert_eq!(
            Range::from_spec(&s).unwrap_err(),
            "RangeStart 10.1.3.1 not in network 10.1.2.0/24"
        );
        s.range_start = Some("10.1.2.50".into());
        s.range_end = Some("10.1.2.40".into());
        assert_eq!(
            Range::from_spec(&s).unwrap_err(),
            "RangeStart 10.1.2.50 not in network 10.1.2.0/24"
        );
        s.range_start = None;
        s.range_end = Some("10.1.9.40".into());
        assert_eq!(
            Range::from_spec(&s).unwrap_err(),
            "RangeEnd 10.1.9.40 not in network 10.1.2.0/24"
        );
    }

    // Found by the range_alloc fuzz target: `::/126` with rangeEnd `::` gave the range `::1-::`.
    #[test]
    fn an_end_below_the_default_start_is_refused_as_the_reference_does() {
        for (subnet, end) in [("10.1.0.0/24", "10.1.0.0"), ("fd00::/126", "fd00::")] {
            let mut s = spec(subnet);
            s.range_end = Some(end.into());
            assert_eq!(
                Range::from_spec(&s).unwrap_err(),
                format!("RangeEnd {end} not in network {subnet}")
            );
        }
    }

    // Found by the range_alloc fuzz target: rangeStart at the broadcast address with the
    // default end is accepted (as by the reference) but is an empty window, not 2^128 addresses.
    #[test]
    fn a_start_past_the_default_end_is_an_empty_window() {
        let mut s = spec("10.1.0.0/24");
        s.range_start = Some("10.1.0.255".into());
        let r = Range::from_spec(&s).unwrap();
        assert_eq!((r.capacity(), r.contains(r.start)), (0, false));
    }

    #[test]
    fn overlap_uses_windows_not_subnets() {
        let mut a = spec("10.1.2.0/24");
        a.range_end = Some("10.1.2.100".into());
        let mut b = spec("10.1.2.0/24");
        b.range_start = Some("10.1.2.101".into());
        assert!(RangeSet::from_specs(&[a.clone(), b.clone()]).is_ok());
        b.range_start = Some("10.1.2.100".into());
        assert_eq!(
            RangeSet::from_specs(&[a, b]).unwrap_err(),
            "subnets 10.1.2.1-10.1.2.100 and 10.1.2.100-10.1.2.254 overlap"
        );
        assert_eq!(
            RangeSet::from_specs(&[spec("10.0.0.0/8"), spec("fd00::/64")]).unwrap_err(),
            "mixed address families"
        );
        assert!(!range("10.0.0.0/24")
            .unwrap()
            .overlaps(&range("fd00::/64").unwrap()));
    }
}
