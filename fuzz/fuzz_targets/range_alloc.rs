//! Range arithmetic and the allocator over host-local's MemoryStore. Small range sets (up to
//! 256 addresses each, v4 or v6, near each other so they overlap and touch) are built from
//! the input, then a sequence of allocations and releases is checked against a model.
//! Invariants: u128 round trips; the candidates are every address of the set but the gateways,
//! once each, from any starting point; an allocation is in the set, not a gateway, not held by
//! anyone, and the first free candidate after the last reservation; exhaustion is reported
//! only when every address is held; a release frees exactly the owner's addresses.
#![no_main]

use host_local::allocator::{allocate, AllocError, Candidates};
use host_local::range::{from_u128, to_u128, RangeSet, RangeSpec};
use host_local::store::{Attachment, LeaseStore, MemoryStore};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

fn addr(v6: bool, n: u128) -> IpAddr {
    let like: IpAddr =
        if v6 { "::".parse() } else { "0.0.0.0".parse() }.unwrap_or(IpAddr::from([0u8; 4]));
    from_u128(n, like)
}

/// An address near `base`, sometimes outside the family's numbers to hit the edges.
fn near(u: &mut Unstructured, v6: bool, base: u128) -> Result<IpAddr> {
    let delta: i16 = u.arbitrary()?;
    let max = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let n = if delta < 0 {
        base.saturating_sub(u128::from(delta.unsigned_abs()))
    } else {
        base.saturating_add(delta as u128).min(max)
    };
    Ok(addr(v6, n))
}

fn specs(u: &mut Unstructured, v6: bool, base: u128) -> Result<Vec<RangeSpec>> {
    let bits = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        let prefix: u8 = u.int_in_range(bits - 8..=bits)?;
        let subnet = near(u, v6, base)?;
        let opt = |u: &mut Unstructured| -> Result<Option<String>> {
            Ok(if u.arbitrary()? {
                Some(near(u, v6, base)?.to_string())
            } else {
                None
            })
        };
        out.push(RangeSpec {
            subnet: format!("{subnet}/{prefix}"),
            range_start: opt(u)?,
            range_end: opt(u)?,
            gateway: opt(u)?,
        });
    }
    Ok(out)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let v6: bool = u.arbitrary()?;
    let base = if v6 {
        u.arbitrary::<u128>()?
    } else {
        u128::from(u.arbitrary::<u32>()?)
    };
    let Ok(set) = RangeSet::from_specs(&specs(u, v6, base)?) else {
        return Ok(());
    };
    let gateways: BTreeSet<IpAddr> = set.0.iter().map(|r| r.gateway).collect();
    let usable = |ip: IpAddr| set.range_for(ip).is_some_and(|(_, r)| r.gateway != ip);
    let all: Vec<IpAddr> = Candidates::new(&set, None).collect();
    let unique: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a candidate comes twice in {set}");
    assert_eq!(all.len() as u128, set.capacity(), "capacity of {set}");
    for ip in &all {
        assert!(usable(*ip), "candidate {ip} outside {set} or a gateway");
        assert_eq!(from_u128(to_u128(*ip), *ip), *ip);
    }
    let from = near(u, v6, base)?;
    let rotated: BTreeSet<IpAddr> = Candidates::new(&set, Some(from)).collect();
    assert_eq!(rotated, unique, "candidates after {from} differ");

    let mut store = MemoryStore::default();
    let mut held: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let owners: Vec<Attachment> = (0..6)
        .map(|i| Attachment::new(&format!("c{i}"), "eth0"))
        .collect();
    for _ in 0..u.int_in_range(0..=32)? {
        let who: usize = u.int_in_range(0..=owners.len() - 1)?;
        let owner = &owners[who];
        if u.ratio(1, 4)? {
            let mut freed = store.release_attachment(owner).unwrap_or_default();
            freed.sort();
            let expected: Vec<IpAddr> = held
                .iter()
                .filter(|(_, o)| **o == who)
                .map(|(ip, _)| *ip)
                .collect();
            assert_eq!(freed, expected, "release of {owner}");
            held.retain(|_, o| *o != who);
            continue;
        }
        let requested = if u.ratio(1, 3)? {
            Some(near(u, v6, base)?)
        } else {
            None
        };
        let last = store.last_reserved(0).ok().flatten();
        match allocate(&mut store, 0, &set, owner, requested) {
            Ok(ip) => {
                assert!(usable(ip), "allocated {ip} outside {set} or a gateway");
                assert!(!held.contains_key(&ip), "{ip} handed out twice");
                match requested {
                    Some(r) => assert_eq!(ip, r),
                    None => {
                        let next = Candidates::new(&set, last).find(|c| !held.contains_key(c));
                        assert_eq!(Some(ip), next, "round robin after {last:?}");
                    }
                }
                held.insert(ip, who);
            }
            Err(AllocError::Exhausted { .. }) => {
                assert!(requested.is_none());
                assert_eq!(held.len(), all.len(), "exhausted with free addresses");
            }
            Err(AllocError::Duplicate { ip, .. }) => {
                assert!(requested.is_none());
                assert_eq!(held.get(&ip), Some(&who));
            }
            Err(AllocError::RequestedIsGateway(ip)) => assert!(gateways.contains(&ip)),
            Err(AllocError::RequestedUnavailable { ip, .. }) => {
                assert!(!set.contains(ip) || held.contains_key(&ip), "{ip} was free");
            }
            Err(AllocError::Store(e)) => panic!("memory store failed: {e}"),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
