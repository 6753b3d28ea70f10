//! Picks the address for one range set: a requested one, or the next free one round robin
//! after the set's last reservation (so a crash-looping container does not get its old address
//! straight back). Talks to storage only through [`LeaseStore`].

use crate::range::{from_u128, to_u128, RangeSet};
use crate::store::{Attachment, LeaseStore, StoreError};
use std::fmt;
use std::net::IpAddr;

#[derive(Debug)]
pub enum AllocError {
    RequestedIsGateway(IpAddr),
    RequestedUnavailable { ip: IpAddr, set: String },
    Duplicate { ip: IpAddr, container_id: String },
    Exhausted { set: String },
    Store(StoreError),
}

impl From<StoreError> for AllocError {
    fn from(e: StoreError) -> Self {
        AllocError::Store(e)
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::RequestedIsGateway(ip) => {
                write!(f, "requested ip {ip} is subnet's gateway")
            }
            AllocError::RequestedUnavailable { ip, set } => {
                write!(
                    f,
                    "requested IP address {ip} is not available in range set {set}"
                )
            }
            AllocError::Duplicate { ip, container_id } => write!(
                f,
                "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
            ),
            AllocError::Exhausted { set } => {
                write!(f, "no IP addresses available in range set: {set}")
            }
            AllocError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Every address of the set once, starting after `last` (or at the first range's start),
/// wrapping across ranges, skipping each range's gateway.
pub struct Candidates<'a> {
    set: &'a RangeSet,
    first: (usize, u128),
    next: Option<(usize, u128)>,
}

impl<'a> Candidates<'a> {
    pub fn new(set: &'a RangeSet, last: Option<IpAddr>) -> Candidates<'a> {
        let first = match last.and_then(|ip| set.range_for(ip).map(|(i, _)| (i, to_u128(ip)))) {
            Some(pos) => Candidates::step(set, pos),
            None => (0, set.0.first().map_or(0, |r| to_u128(r.start))),
        };
        Candidates {
            set,
            first,
            next: if set.0.is_empty() { None } else { Some(first) },
        }
    }

    fn step(set: &RangeSet, (idx, at): (usize, u128)) -> (usize, u128) {
        if at >= to_u128(set.0[idx].end) {
            let idx = (idx + 1) % set.0.len();
            (idx, to_u128(set.0[idx].start))
        } else {
            (idx, at + 1)
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        loop {
            let (idx, at) = self.next?;
            let following = Candidates::step(self.set, (idx, at));
            self.next = (following != self.first).then_some(following);
            let range = &self.set.0[idx];
            let ip = from_u128(at, range.start);
            // `contains` is false throughout an empty window (start past end).
            if ip != range.gateway && range.contains(ip) {
                return Some(ip);
            }
        }
    }
}

/// Allocates one address of range set `set_index` to `owner`.
pub fn allocate(
    store: &mut dyn LeaseStore,
    set_index: usize,
    set: &RangeSet,
    owner: &Attachment,
    requested: Option<IpAddr>,
) -> Result<IpAddr, AllocError> {
    if let Some(ip) = requested {
        let Some((_, range)) = set.range_for(ip) else {
            return Err(AllocError::RequestedUnavailable {
                ip,
                set: set.to_string(),
            });
        };
        if ip == range.gateway {
            return Err(AllocError::RequestedIsGateway(ip));
        }
        if !store.reserve(ip, owner, set_index)? {
            return Err(AllocError::RequestedUnavailable {
                ip,
                set: set.to_string(),
            });
        }
        return Ok(ip);
    }
    if let Some(ip) = store
        .leases_of(owner)?
        .into_iter()
        .find(|ip| set.contains(*ip))
    {
        return Err(AllocError::Duplicate {
            ip,
            container_id: owner.container_id.clone(),
        });
    }
    let last = store.last_reserved(set_index)?;
    for ip in Candidates::new(set, last) {
        if store.reserve(ip, owner, set_index)? {
            return Ok(ip);
        }
    }
    Err(AllocError::Exhausted {
        set: set.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::range::RangeSpec;
    use crate::store::MemoryStore;

    fn set(subnets: &[&str]) -> RangeSet {
        let specs: Vec<RangeSpec> = subnets
            .iter()
            .map(|s| RangeSpec {
                subnet: s.to_string(),
                ..Default::default()
            })
            .collect();
        RangeSet::from_specs(&specs).unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn owner(n: usize) -> Attachment {
        Attachment::new(&format!("c{n}"), "eth0")
    }

    #[test]
    fn candidates_walk_once_from_after_last_and_skip_gateway() {
        let s = set(&["192.168.1.0/29"]);
        let all: Vec<IpAddr> = Candidates::new(&s, None).collect();
        assert_eq!(
            all,
            ips(&[
                "192.168.1.2",
                "192.168.1.3",
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6"
            ])
        );
        let from6: Vec<IpAddr> = Candidates::new(&s, Some(ip("192.168.1.6"))).collect();
        assert_eq!(from6, all);
        let from3: Vec<IpAddr> = Candidates::new(&s, Some(ip("192.168.1.3"))).collect();
        assert_eq!(
            from3,
            ips(&[
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6",
                "192.168.1.2",
                "192.168.1.3"
            ])
        );
        let outside: Vec<IpAddr> = Candidates::new(&s, Some(ip("10.0.0.128"))).collect();
        assert_eq!(outside, all);
    }

    // Found by the range_alloc fuzz target: a rangeStart at the broadcast address gave it out
    // (the reference then goes on past the subnet: 10.1.1.0, ...); the window is empty.
    #[test]
    fn an_empty_window_offers_no_address() {
        let empty = RangeSpec {
            subnet: "10.1.0.0/24".into(),
            range_start: Some("10.1.0.255".into()),
            ..Default::default()
        };
        let s = RangeSet::from_specs(std::slice::from_ref(&empty)).unwrap();
        assert_eq!(Candidates::new(&s, None).count(), 0);
        let r = allocate(&mut MemoryStore::default(), 0, &s, &owner(0), None);
        assert!(matches!(r, Err(AllocError::Exhausted { .. })), "{r:?}");
        let small = RangeSpec {
            subnet: "10.2.0.0/30".into(),
            ..Default::default()
        };
        let two = RangeSet::from_specs(&[empty, small]).unwrap();
        assert_eq!(
            Candidates::new(&two, None).collect::<Vec<_>>(),
            ips(&["10.2.0.2"])
        );
    }

    #[test]
    fn round_robin_crosses_ranges_and_wraps() {
        let s = set(&["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"]);
        let mut store = MemoryStore::default();
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(1), None).unwrap(),
            ip("10.0.0.2")
        );
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(2), None).unwrap(),
            ip("10.0.1.2")
        );
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(3), None).unwrap(),
            ip("10.0.2.2")
        );
        store.release_attachment(&owner(1)).unwrap();
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(4), None).unwrap(),
            ip("10.0.0.2")
        );
        assert!(matches!(
            allocate(&mut store, 0, &s, &owner(5), None),
            Err(AllocError::Exhausted { .. })
        ));
    }

    #[test]
    fn slash_29_gives_five_then_exhausts_and_freed_address_is_not_reused_first() {
        let s = set(&["192.168.1.0/29"]);
        let mut store = MemoryStore::default();
        for n in 0..5 {
            allocate(&mut store, 0, &s, &owner(n), None).unwrap();
        }
        let err = allocate(&mut store, 0, &s, &owner(9), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IP addresses available in range set: 192.168.1.1-192.168.1.6"
        );
        store.release_attachment(&owner(1)).unwrap();
        store.release_attachment(&owner(3)).unwrap();
        // .3 and .5 are free, last was .6: round robin gives .3, then .5.
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(10), None).unwrap(),
            ip("192.168.1.3")
        );
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(11), None).unwrap(),
            ip("192.168.1.5")
        );
    }

    #[test]
    fn duplicates_and_requests_follow_the_reference() {
        let s = set(&["192.168.1.0/29"]);
        let mut store = MemoryStore::default();
        allocate(&mut store, 0, &s, &owner(1), None).unwrap();
        let dup = allocate(&mut store, 0, &s, &owner(1), None).unwrap_err();
        assert_eq!(
            dup.to_string(),
            "192.168.1.2 has been allocated to c1, duplicate allocation is not allowed"
        );
        assert_eq!(
            allocate(&mut store, 0, &s, &owner(2), Some(ip("192.168.1.5"))).unwrap(),
            ip("192.168.1.5")
        );
        assert_eq!(store.last_reserved(0).unwrap(), Some(ip("192.168.1.5")));
        let taken = allocate(&mut store, 0, &s, &owner(3), Some(ip("192.168.1.5"))).unwrap_err();
        assert_eq!(taken.to_string(), "requested IP address 192.168.1.5 is not available in range set 192.168.1.1-192.168.1.6");
        let gw = allocate(&mut store, 0, &s, &owner(3), Some(ip("192.168.1.1"))).unwrap_err();
        assert_eq!(
            gw.to_string(),
            "requested ip 192.168.1.1 is subnet's gateway"
        );
        assert!(allocate(&mut store, 0, &s, &owner(3), Some(ip("192.168.1.7"))).is_err());
    }

    #[test]
    fn fresh_v6_and_small_v4_start_at_two() {
        let mut store = MemoryStore::default();
        assert_eq!(
            allocate(&mut store, 0, &set(&["2001:db8::/64"]), &owner(1), None).unwrap(),
            ip("2001:db8::2")
        );
        assert_eq!(
            allocate(&mut store, 1, &set(&["10.9.0.0/30"]), &owner(1), None).unwrap(),
            ip("10.9.0.2")
        );
    }

    #[test]
    fn legacy_leases_count_as_duplicates() {
        let s = set(&["10.9.0.0/24"]);
        let mut store = MemoryStore::default();
        store
            .leases
            .insert(ip("10.9.0.7"), crate::store::Owner::Legacy("c1".into()));
        assert!(matches!(
            allocate(&mut store, 0, &s, &owner(1), None),
            Err(AllocError::Duplicate { .. })
        ));
    }

    proptest::proptest! {
        /// Whatever the window and the order of releases, addresses are distinct, inside the
        /// window, never the gateway, and the set is exhausted exactly at its capacity.
        #[test]
        fn allocation_is_distinct_in_window_and_exhausts_at_capacity(
            start in 0u8..40, len in 1u8..40, gw in 0u8..90, releases in proptest::collection::vec(0usize..80, 0..20)
        ) {
            let spec = RangeSpec {
                subnet: "10.0.0.0/25".into(),
                range_start: Some(format!("10.0.0.{}", start + 1)),
                range_end: Some(format!("10.0.0.{}", start + len)),
                gateway: Some(format!("10.0.0.{gw}")),
            };
            let s = RangeSet::from_specs(&[spec]).unwrap();
            let mut store = MemoryStore::default();
            let mut got = Vec::new();
            for n in 0..s.capacity() as usize {
                let ip = allocate(&mut store, 0, &s, &owner(n), None).unwrap();
                proptest::prop_assert!(s.contains(ip) && ip != s.0[0].gateway && !got.contains(&ip));
                got.push(ip);
            }
            let exhausted = matches!(allocate(&mut store, 0, &s, &owner(999), None), Err(AllocError::Exhausted { .. }));
            proptest::prop_assert!(exhausted);
            for r in releases.iter().filter(|r| **r < got.len()) {
                store.release_attachment(&owner(*r)).unwrap();
            }
            let free = s.capacity() as usize - store.leases.len();
            for n in 0..free {
                let ip = allocate(&mut store, 0, &s, &owner(1000 + n), None).unwrap();
                proptest::prop_assert!(s.contains(ip));
            }
            proptest::prop_assert_eq!(store.leases.len() as u128, s.capacity());
        }
    }
}
