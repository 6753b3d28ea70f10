//! Masquerade (the bridge plugin's `ipMasq`) in our own nftables table: layout and plan; the
//! nf_tables encoding is the toolkit's ([`crate::nft`]).
//!
//! Layout (all in table `inet cni_masquerade_rs`, see [`TABLE`]):
//! ```text
//! table inet cni_masquerade_rs {
//!     map pods_ipv4 { type ipv4_addr : verdict; elements = { 10.1.0.5 : jump masq-<H(net)>-<H(if:cid)> } }
//!     map pods_ipv6 { type ipv6_addr : verdict; ... }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr vmap @pods_ipv4
//!         ip6 saddr vmap @pods_ipv6
//!     }
//!     chain masq-d23676b4f2d9fe04-e65086f8a75535c6 {
//!         ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 counter masquerade comment "..."
//!     }
//! }
//! ```
//! - One chain per attachment, named from the same hashes the reference's nftables backend
//!   puts in its comments, so ADD, DEL and CHECK address it by name: no operation lists
//!   other pods' rules. Its rule carries the per-pod counter and a readable comment.
//! - Packets find their pod's chain through one hash lookup (`vmap`), whatever the pod count.
//! - ADD is one transaction: create table, maps and base chain if missing (no EXCL), rewrite
//!   the two dispatch rules, create and rewrite the attachment's chain, point its addresses at it.
//! - An address belongs to the latest ADD that claimed it. DEL removes a map element only if
//!   it still points at the deleted attachment's chain; the read and the transaction are tied
//!   together with the ruleset generation (`NFNL_BATCH_GENID`): if anything changed in between,
//!   the kernel refuses the transaction (ERESTART) and we read again. Deletes are therefore
//!   only issued for objects seen to exist, which works on every kernel (no `DESTROY` needed).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::naming::{instance_hash, network_hash};
use crate::nft::expr::{
    addr_bytes, addr_from_bytes, cmp, comment_udata, daddr_not_in, expr, match_family, payload,
    subnet_of, vmap, Family,
};
use crate::nft::objects::{Hook, MapKey, Table};
use crate::nft::session::{Batch, Session};
use crate::nft::wire::{
    attr, MsgBuf, NFT_CMP_EQ, NFT_REG_1, NFT_TYPE_IP6ADDR, NFT_TYPE_IPADDR, NF_INET_POST_ROUTING,
    NF_IP_PRI_NAT_SRC,
};
use crate::{Attachment, MasqueradeBackend};

/// Our table. Distinct from the reference's `cni_plugins_masquerade` so the two never fight
/// over a chain; `_rs` marks this implementation.
pub const TABLE: &str = "cni_masquerade_rs";
/// The base chain: `type nat hook postrouting priority srcnat`.
pub const BASE_CHAIN: &str = "postrouting";
/// Verdict map from pod IPv4 address to the attachment's chain.
pub const MAP_V4: &str = "pods_ipv4";
/// Verdict map from pod IPv6 address to the attachment's chain.
pub const MAP_V6: &str = "pods_ipv6";
/// Prefix of the per-attachment chains: `masq-<H(network)>-<H(ifname:containerID)>`.
pub const CHAIN_PREFIX: &str = "masq-";
/// Commands per transaction when GC removes many attachments.
const GC_BATCH: usize = 1000;

const T: Table<'static> = Table::inet(TABLE);

/// Name of the chain holding one attachment's rules.
pub fn attachment_chain(att: &Attachment) -> String {
    format!("{CHAIN_PREFIX}{}", instance_hash(att))
}

fn chain_prefix_for_network(network: &str) -> String {
    format!("{CHAIN_PREFIX}{}-", network_hash(network))
}

/// The comment on each of an attachment's rules, so `nft list ruleset` shows whose counter it
/// is: `net: <network>, if: <ifname>, id: <containerID>` (the readable part of the reference's
/// nftables comment). `nft` prints comments without escaping, so `"` is dropped to keep its
/// output loadable with `nft -f`.
pub(crate) fn rule_comment(att: &Attachment) -> String {
    let strip = |s: &str| s.replace('"', "");
    format!(
        "net: {}, if: {}, id: {}",
        strip(att.network),
        strip(att.ifname),
        strip(att.container_id)
    )
}

fn map_for(fam: Family) -> &'static str {
    match fam {
        Family::V4 => MAP_V4,
        Family::V6 => MAP_V6,
    }
}

/// Expressions of `ip saddr vmap @<map>`.
fn put_dispatch_rule(m: &mut MsgBuf, fam: Family, map: &str) {
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        match_family(m, fam);
        payload(m, fam.saddr_offset(), fam.addr_len());
        vmap(m, map, NFT_REG_1);
    });
}

/// Expressions and comment of one pod address's masquerade rule:
/// `ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 counter masquerade`.
pub(crate) fn put_masquerade_rule(m: &mut MsgBuf, address: IpNetwork, comment: &str) {
    let fam = Family::of(address.ip());
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        match_family(m, fam);
        payload(m, fam.saddr_offset(), fam.addr_len());
        cmp(m, NFT_CMP_EQ, &addr_bytes(address.ip()));
        daddr_not_in(m, fam, subnet_of(address));
        daddr_not_in(m, fam, fam.multicast());
        expr(m, "counter", |_| {});
        expr(m, "masq", |_| {});
    });
    m.put(attr::RULE_USERDATA, &comment_udata(comment));
}

/// Masquerade through our own nftables table, over netlink.
pub struct NftablesBackend {
    sock: Session,
}

impl NftablesBackend {
    /// Open the backend in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        Ok(NftablesBackend {
            sock: Session::open()?,
        })
    }
}

/// The chain an address's map element jumps to, if the element exists.
fn element_target(sock: &mut Session, addr: IpAddr) -> Result<Option<String>> {
    let map = map_for(Family::of(addr));
    T.element_target(sock, map, &addr_bytes(addr), &addr.to_string())
}

/// Every element of both maps: (address, chain it jumps to).
fn all_elements(sock: &mut Session) -> Result<Vec<(IpAddr, Option<String>)>> {
    let mut out = T.map_elements(sock, MAP_V4, addr_from_bytes)?;
    out.extend(T.map_elements(sock, MAP_V6, addr_from_bytes)?);
    Ok(out)
}

fn push_delete_element(b: &mut Batch, addr: IpAddr) {
    let map = map_for(Family::of(addr));
    let what = format!("deleting {addr} from map inet {TABLE} {map}");
    T.push_delete_element(b, map, &addr_bytes(addr), what);
}

/// Table, maps, base chain and its two dispatch rules; harmless to repeat.
fn push_skeleton(b: &mut Batch) {
    T.push_create(b);
    for (set_id, map, data_type, len) in [
        (1, MAP_V4, NFT_TYPE_IPADDR, 4),
        (2, MAP_V6, NFT_TYPE_IP6ADDR, 16),
    ] {
        let key = MapKey {
            data_type,
            len,
            userdata: None,
        };
        T.push_new_verdict_map(b, map, key, set_id);
    }
    let hook = Hook::nat(NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC);
    T.push_base_chain(b, BASE_CHAIN, hook);
    for fam in [Family::V4, Family::V6] {
        let what = format!(
            "adding the {} dispatch rule to inet {TABLE} {BASE_CHAIN}",
            map_for(fam)
        );
        T.push_rule(b, BASE_CHAIN, what, |m| {
            put_dispatch_rule(m, fam, map_for(fam))
        });
    }
}

/// Is the base chain there with exactly its two dispatch rules (v4 map, then v6 map)? Its maps
/// and table must then exist too: the kernel does not delete a map a rule still looks up.
fn skeleton_intact(sock: &mut Session) -> Result<bool> {
    let Some(rules) = T.chain_rules(sock, BASE_CHAIN)? else {
        return Ok(false);
    };
    Ok(rules.len() == 2
        && rules.iter().zip([MAP_V4, MAP_V6]).all(|(rule, map)| {
            rule.lookups.len() == 1
                && rule.lookups[0] == map
                && rule.saddr.is_none()
                && !rule.masquerade
                && rule.daddr_not.is_empty()
        }))
}

/// Unique addresses, first occurrence wins.
fn dedup(addresses: &[IpNetwork]) -> Vec<IpNetwork> {
    let mut seen = HashSet::new();
    addresses
        .iter()
        .copied()
        .filter(|a| seen.insert(a.ip()))
        .collect()
}

impl MasqueradeBackend for NftablesBackend {
    fn add(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()> {
        let chain = attachment_chain(att);
        let comment = rule_comment(att);
        let addresses = dedup(addresses);
        let action = format!("adding masquerade for {att}");
        self.sock.transact(&action, |sock, genid| {
            // Addresses this chain served before and no longer should.
            let previous: Vec<IpAddr> = T
                .chain_rules(sock, &chain)?
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.saddr)
                .filter(|a| !addresses.iter().any(|n| n.ip() == *a))
                .collect();
            let mut b = sock.batch(Some(genid));
            // Re-declaring an intact skeleton would replace the dispatch rules and update the
            // base chain: kernel objects freed only after an RCU grace period, which the next
            // close of any nftables socket in this netns (ours at exit) waits for (~15 ms).
            if !skeleton_intact(sock)? {
                push_skeleton(&mut b);
            }
            T.push_new_chain(&mut b, &chain, None);
            T.push_flush_chain(&mut b, &chain);
            for address in &addresses {
                let what = format!(
                    "adding the masquerade rule for {address} to chain inet {TABLE} {chain}"
                );
                T.push_rule(&mut b, &chain, what, |m| {
                    put_masquerade_rule(m, *address, &comment)
                });
            }
            for addr in previous {
                if element_target(sock, addr)?.as_deref() == Some(chain.as_str()) {
                    push_delete_element(&mut b, addr);
                }
            }
            for address in &addresses {
                let addr = address.ip();
                match element_target(sock, addr)? {
                    Some(target) if target == chain => continue,
                    // The address was claimed by another attachment (a missed DEL): the latest
                    // ADD wins; that attachment's chain stays until its DEL or GC.
                    Some(_) => push_delete_element(&mut b, addr),
                    None => {}
                }
                let map = map_for(Family::of(addr));
                let what = format!("adding {addr} : jump {chain} to map inet {TABLE} {map}");
                T.push_jump_element(&mut b, map, &addr_bytes(addr), &chain, what);
            }
            Ok(Some(b))
        })
    }

    fn del(&mut self, att: &Attachment) -> Result<()> {
        let chain = attachment_chain(att);
        let action = format!("removing masquerade for {att}");
        // If the chain's rules no longer name every address that jumps to it (someone edited
        // them), find the jumps by scanning the maps instead.
        let mut scan_maps = false;
        for _ in 0..2 {
            let result = self.sock.transact(&action, |sock, genid| {
                let Some(rules) = T.chain_rules(sock, &chain)? else {
                    return Ok(None);
                };
                let mut b = sock.batch(Some(genid));
                if scan_maps {
                    for (addr, target) in all_elements(sock)? {
                        if target.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, addr);
                        }
                    }
                } else {
                    let addrs: HashSet<IpAddr> = rules.iter().filter_map(|r| r.saddr).collect();
                    for addr in addrs {
                        if element_target(sock, addr)?.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, addr);
                        }
                    }
                }
                T.push_delete_chain(&mut b, &chain);
                Ok(Some(b))
            });
            match result {
                Err(e) if e.errno() == Some(libc::EBUSY) && !scan_maps => scan_maps = true,
                other => return other,
            }
        }
        Ok(())
    }

    fn check(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()> {
        let chain = attachment_chain(att);
        let missing = |what: String| Error::Missing {
            attachment: att.to_string(),
            what,
        };
        let sock = &mut self.sock;
        let base = T
            .chain_rules(sock, BASE_CHAIN)?
            .ok_or_else(|| missing(format!("chain inet {TABLE} {BASE_CHAIN} does not exist")))?;
        let rules = T
            .chain_rules(sock, &chain)?
            .ok_or_else(|| missing(format!("chain inet {TABLE} {chain} does not exist")))?;
        for address in addresses {
            let map = map_for(Family::of(address.ip()));
            if !base.iter().any(|r| r.lookups.iter().any(|l| l == map)) {
                return Err(missing(format!(
                    "chain inet {TABLE} {BASE_CHAIN} has no rule looking up map {map}"
                )));
            }
            if !rules.iter().any(|r| r.masquerades(*address)) {
                return Err(missing(format!(
                    "chain inet {TABLE} {chain} has no rule masquerading {address}"
                )));
            }
            match element_target(sock, address.ip())? {
                Some(target) if target == chain => {}
                Some(other) => {
                    return Err(missing(format!(
                        "map inet {TABLE} {map} sends {} to chain {other}, not {chain}",
                        address.ip()
                    )))
                }
                None => {
                    return Err(missing(format!(
                        "map inet {TABLE} {map} has no element for {}",
                        address.ip()
                    )))
                }
            }
        }
        Ok(())
    }

    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()> {
        let prefix = chain_prefix_for_network(network);
        let keep: HashSet<String> = keep
            .iter()
            .filter(|a| a.network == network)
            .map(attachment_chain)
            .collect();
        let action = format!("collecting masquerade garbage of network {network:?}");
        loop {
            let mut more = false;
            self.sock.transact(&action, |sock, genid| {
                let stale: HashSet<String> = T
                    .chains(sock)?
                    .into_iter()
                    .filter(|c| c.starts_with(&prefix) && !keep.contains(c))
                    .collect();
                if stale.is_empty() {
                    return Ok(None);
                }
                let mut jumps: HashMap<String, Vec<IpAddr>> = HashMap::new();
                for (addr, target) in all_elements(sock)? {
                    if let Some(target) = target {
                        jumps.entry(target).or_default().push(addr);
                    }
                }
                let mut b = sock.batch(Some(genid));
                more = stale.len() > GC_BATCH;
                for chain in stale.iter().take(GC_BATCH) {
                    for addr in jumps.get(chain).into_iter().flatten() {
                        push_delete_element(&mut b, *addr);
                    }
                    T.push_delete_chain(&mut b, chain);
                }
                Ok(Some(b))
            })?;
            if !more {
                return Ok(());
            }
        }
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::nft::expr::{parse_rule, ObservedRule};
    use crate::nft::wire::{encoded, Attrs};

    fn roundtrip(build: impl FnOnce(&mut MsgBuf)) -> ObservedRule {
        parse_rule(Attrs::new(&encoded(build)))
    }

    #[test]
    fn masquerade_rule_parses_back_v4() {
        let addr: IpNetwork = "10.1.0.5/24".parse().unwrap();
        let rule = roundtrip(|m| put_masquerade_rule(m, addr, "hello"));
        assert_eq!(rule.saddr, Some("10.1.0.5".parse().unwrap()));
        assert_eq!(
            rule.daddr_not,
            vec![
                "10.1.0.0/24".parse::<IpNetwork>().unwrap(),
                "224.0.0.0/4".parse().unwrap()
            ]
        );
        assert!(rule.masquerade);
        assert_eq!(rule.counter, Some((0, 0)));
        assert_eq!(rule.comment.as_deref(), Some(&b"hello"[..]));
        assert!(rule.masquerades(addr));
        assert!(!rule.masquerades("10.1.0.6/24".parse().unwrap()));
    }

    #[test]
    fn masquerade_rule_parses_back_v6_host_prefix() {
        let addr: IpNetwork = "fd00::5/128".parse().unwrap();
        let rule = roundtrip(|m| put_masquerade_rule(m, addr, "x"));
        assert_eq!(rule.saddr, Some("fd00::5".parse().unwrap()));
        assert_eq!(
            rule.daddr_not,
            vec![
                "fd00::5/128".parse::<IpNetwork>().unwrap(),
                "ff00::/8".parse().unwrap()
            ]
        );
        assert!(rule.masquerades(addr));
    }

    #[test]
    fn dispatch_rule_names_its_map() {
        let rule = roundtrip(|m| put_dispatch_rule(m, Family::V6, "pods_ipv6"));
        assert_eq!(rule.lookups, vec!["pods_ipv6".to_string()]);
        assert_eq!(rule.saddr, None);
    }

    #[test]
    fn attachment_chain_uses_reference_instance_hash() {
        let att = Attachment {
            network: "mynet",
            container_id: "abc",
            ifname: "eth0",
        };
        assert_eq!(
            attachment_chain(&att),
            "masq-d23676b4f2d9fe04-e65086f8a75535c6"
        );
        assert!(attachment_chain(&att).starts_with(&chain_prefix_for_network("mynet")));
    }

    #[test]
    fn rule_comment_names_network_container_and_interface() {
        let att = Attachment {
            network: "mynet",
            container_id: "abc",
            ifname: "eth0",
        };
        assert_eq!(rule_comment(&att), "net: mynet, if: eth0, id: abc");
    }
}
