//! Native nftables backend: hand-built nf_tables messages over a NETLINK_NETFILTER socket.
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

pub(crate) mod expr;
pub(crate) mod socket;
pub(crate) mod wire;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::naming::{instance_hash, network_hash};
use crate::{Attachment, MasqueradeBackend};
use expr::{addr_bytes, addr_from_bytes, put_dispatch_rule, put_masquerade_rule, Family};
pub(crate) use expr::{parse_rule, ObservedRule};
use socket::{Batch, NfSocket};
use wire::{attr, Attrs, MsgBuf, MsgType, NFPROTO_INET, NLM_F_APPEND, NLM_F_CREATE};

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

pub(crate) const NF_INET_POST_ROUTING: u32 = 4;
pub(crate) const NF_IP_PRI_NAT_SRC: i32 = 100;
pub(crate) const NF_ACCEPT: u32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NFT_SET_MAP: u32 = 0x8;
pub(crate) const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// `nft`'s data type ids, so `nft list` prints `ipv4_addr`/`ipv6_addr`.
const NFT_TYPE_IPADDR: u32 = 7;
const NFT_TYPE_IP6ADDR: u32 = 8;
/// Commands per transaction when GC removes many attachments.
const GC_BATCH: usize = 1000;

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

/// Masquerade through our own nftables table, over netlink.
pub struct NftablesBackend {
    sock: NfSocket,
}

impl NftablesBackend {
    /// Open the backend in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        Ok(NftablesBackend {
            sock: NfSocket::open()?,
        })
    }

    /// Run `plan` (read state, build a transaction) tied to the ruleset generation; see
    /// [`NfSocket::transact`].
    fn transact(
        &mut self,
        action: &str,
        plan: impl FnMut(&mut NfSocket, u32) -> Result<Option<Batch>>,
    ) -> Result<()> {
        self.sock.transact(action, plan)
    }
}

/// Read-only queries against our table.
impl NfSocket {
    pub(crate) fn chain_exists(&mut self, family: u8, table: &str, chain: &str) -> Result<bool> {
        let action = format!("looking up chain {table} {chain}");
        let found = self.get(&action, MsgType::GetChain, family, |m| {
            m.put_str(attr::CHAIN_TABLE, table);
            m.put_str(attr::CHAIN_NAME, chain);
        })?;
        Ok(found.is_some())
    }

    /// The rules of one chain, or `None` if the chain does not exist.
    pub(crate) fn chain_rules(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
    ) -> Result<Option<Vec<ObservedRule>>> {
        Ok(self
            .chain_rule_messages(family, table, chain)?
            .map(|replies| replies.iter().map(|r| parse_rule(Attrs::new(r))).collect()))
    }

    /// The rule messages (attributes after the nfgenmsg header) of one chain, or `None` if the
    /// chain does not exist.
    pub(crate) fn chain_rule_messages(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        if !self.chain_exists(family, table, chain)? {
            return Ok(None);
        }
        let action = format!("listing the rules of chain {table} {chain}");
        let replies = self.dump(&action, MsgType::GetRule, family, |m| {
            m.put_str(attr::RULE_TABLE, table);
            m.put_str(attr::RULE_CHAIN, chain);
        })?;
        Ok(Some(replies))
    }

    /// The chain an address's map element jumps to, if the element exists.
    fn element_target(&mut self, addr: IpAddr) -> Result<Option<String>> {
        let map = map_for(Family::of(addr));
        let action = format!("looking up {addr} in map inet {TABLE} {map}");
        let reply = self.get(&action, MsgType::GetSetElem, NFPROTO_INET, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, TABLE);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
            m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                m.nest(attr::LIST_ELEM, |m| put_key(m, addr));
            });
        })?;
        let Some(reply) = reply else {
            return Ok(None);
        };
        let elements = parse_verdict_elements(&reply, addr_from_bytes);
        Ok(elements
            .into_iter()
            .find(|(a, _)| *a == addr)
            .and_then(|(_, target)| target))
    }

    /// Every element of both maps: (address, chain it jumps to).
    fn all_elements(&mut self) -> Result<Vec<(IpAddr, Option<String>)>> {
        let mut out = Vec::new();
        for map in [MAP_V4, MAP_V6] {
            let action = format!("listing map inet {TABLE} {map}");
            for reply in self.dump(&action, MsgType::GetSetElem, NFPROTO_INET, |m| {
                m.put_str(attr::SET_ELEM_LIST_TABLE, TABLE);
                m.put_str(attr::SET_ELEM_LIST_SET, map);
            })? {
                out.extend(parse_verdict_elements(&reply, addr_from_bytes));
            }
        }
        Ok(out)
    }

    /// Every element of a verdict map: (key decoded by `key`, chain it jumps to).
    pub(crate) fn map_elements<K>(
        &mut self,
        family: u8,
        table: &str,
        map: &str,
        key: impl Fn(&[u8]) -> Option<K>,
    ) -> Result<Vec<(K, Option<String>)>> {
        let action = format!("listing map {table} {map}");
        let mut out = Vec::new();
        for reply in self.dump(&action, MsgType::GetSetElem, family, |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, table);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
        })? {
            out.extend(parse_verdict_elements(&reply, &key));
        }
        Ok(out)
    }

    /// Names of all chains of our table.
    fn table_chains(&mut self) -> Result<Vec<String>> {
        let action = format!("listing the chains of inet {TABLE}");
        let replies = self.dump(&action, MsgType::GetChain, NFPROTO_INET, |m| {
            m.put_str(attr::CHAIN_TABLE, TABLE);
        })?;
        Ok(replies
            .iter()
            .map(|r| Attrs::new(r))
            .filter(|a| a.str(attr::CHAIN_TABLE) == Some(TABLE))
            .filter_map(|a| a.str(attr::CHAIN_NAME).map(str::to_string))
            .collect())
    }
}

fn put_key(m: &mut MsgBuf, addr: IpAddr) {
    m.nest(attr::SET_ELEM_KEY, |m| {
        m.put(attr::DATA_VALUE, &addr_bytes(addr))
    });
}

/// (key, jump target) of each element in a set-element message of a verdict map; `key` decodes
/// the key bytes (elements it rejects are skipped).
pub(crate) fn parse_verdict_elements<K>(
    reply: &[u8],
    key: impl Fn(&[u8]) -> Option<K>,
) -> Vec<(K, Option<String>)> {
    let attrs = Attrs::new(reply);
    let Some(list) = attrs.nested(attr::SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    list.filter_map(|(_, elem)| {
        let elem = Attrs::new(elem);
        let key = elem
            .nested(attr::SET_ELEM_KEY)?
            .find(attr::DATA_VALUE)
            .and_then(&key)?;
        let target = elem
            .nested(attr::SET_ELEM_DATA)
            .and_then(|d| d.nested(attr::DATA_VERDICT))
            .and_then(|v| v.str(attr::VERDICT_CHAIN))
            .map(str::to_string);
        Some((key, target))
    })
    .collect()
}

fn push_delete_element(b: &mut Batch, addr: IpAddr) {
    let map = map_for(Family::of(addr));
    b.push(
        MsgType::DelSetElem,
        0,
        NFPROTO_INET,
        format!("deleting {addr} from map inet {TABLE} {map}"),
        |m| {
            m.put_str(attr::SET_ELEM_LIST_TABLE, TABLE);
            m.put_str(attr::SET_ELEM_LIST_SET, map);
            m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                m.nest(attr::LIST_ELEM, |m| put_key(m, addr));
            });
        },
    );
}

pub(crate) fn push_delete_chain_in(b: &mut Batch, table: &str, chain: &str) {
    b.push(
        MsgType::DelChain,
        0,
        NFPROTO_INET,
        format!("deleting chain inet {table} {chain}"),
        |m| {
            m.put_str(attr::CHAIN_TABLE, table);
            m.put_str(attr::CHAIN_NAME, chain);
        },
    );
}

fn push_delete_chain(b: &mut Batch, chain: &str) {
    push_delete_chain_in(b, TABLE, chain);
}

fn push_flush_chain(b: &mut Batch, chain: &str) {
    push_flush_chain_in(b, TABLE, chain);
}

/// Remove every rule of an inet chain.
pub(crate) fn push_flush_chain_in(b: &mut Batch, table: &str, chain: &str) {
    b.push(
        MsgType::DelRule,
        0,
        NFPROTO_INET,
        format!("flushing chain inet {table} {chain}"),
        |m| {
            m.put_str(attr::RULE_TABLE, table);
            m.put_str(attr::RULE_CHAIN, chain);
        },
    );
}

/// Create (if missing) an inet chain; with `hook` = (hook number, priority) a `nat` base chain
/// with policy accept.
pub(crate) fn push_new_chain_in(b: &mut Batch, table: &str, chain: &str, hook: Option<(u32, i32)>) {
    b.push(
        MsgType::NewChain,
        NLM_F_CREATE,
        NFPROTO_INET,
        format!("creating chain inet {table} {chain}"),
        |m| {
            m.put_str(attr::CHAIN_TABLE, table);
            m.put_str(attr::CHAIN_NAME, chain);
            if let Some((hooknum, priority)) = hook {
                m.nest(attr::CHAIN_HOOK, |m| {
                    m.put_be32(attr::HOOK_HOOKNUM, hooknum);
                    m.put_be32(attr::HOOK_PRIORITY, priority as u32);
                });
                m.put_be32(attr::CHAIN_POLICY, NF_ACCEPT);
                m.put_str(attr::CHAIN_TYPE, "nat");
            }
        },
    );
}

/// Create (if missing) a verdict map keyed by `key` = (nft data type, length in bytes).
/// `set_id` names it within the transaction only, as the kernel requires.
pub(crate) fn push_new_verdict_map(
    b: &mut Batch,
    family: u8,
    table: &str,
    map: &str,
    key: (u32, u32),
    set_id: u32,
) {
    b.push(
        MsgType::NewSet,
        NLM_F_CREATE,
        family,
        format!("creating map {table} {map}"),
        |m| {
            m.put_str(attr::SET_TABLE, table);
            m.put_str(attr::SET_NAME, map);
            m.put_be32(attr::SET_FLAGS, NFT_SET_MAP);
            m.put_be32(attr::SET_KEY_TYPE, key.0);
            m.put_be32(attr::SET_KEY_LEN, key.1);
            m.put_be32(attr::SET_DATA_TYPE, NFT_DATA_VERDICT);
            m.put_be32(attr::SET_ID, set_id);
        },
    );
}

/// Table, maps, base chain and its two dispatch rules; harmless to repeat.
fn push_skeleton(b: &mut Batch) {
    b.push(
        MsgType::NewTable,
        NLM_F_CREATE,
        NFPROTO_INET,
        format!("creating table inet {TABLE}"),
        |m| m.put_str(attr::TABLE_NAME, TABLE),
    );
    for (set_id, map, key_type, key_len) in [
        (1, MAP_V4, NFT_TYPE_IPADDR, 4),
        (2, MAP_V6, NFT_TYPE_IP6ADDR, 16),
    ] {
        push_new_verdict_map(b, NFPROTO_INET, TABLE, map, (key_type, key_len), set_id);
    }
    push_new_chain_in(
        b,
        TABLE,
        BASE_CHAIN,
        Some((NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC)),
    );
    // Rewriting the two dispatch rules each time keeps ADD idempotent and repairs them.
    push_flush_chain(b, BASE_CHAIN);
    for fam in [Family::V4, Family::V6] {
        b.push(
            MsgType::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_INET,
            format!(
                "adding the {} dispatch rule to inet {TABLE} {BASE_CHAIN}",
                map_for(fam)
            ),
            |m| {
                m.put_str(attr::RULE_TABLE, TABLE);
                m.put_str(attr::RULE_CHAIN, BASE_CHAIN);
                put_dispatch_rule(m, fam, map_for(fam));
            },
        );
    }
}

/// Is the base chain there with exactly its two dispatch rules (v4 map, then v6 map)? Its maps
/// and table must then exist too: the kernel does not delete a map a rule still looks up.
fn skeleton_intact(sock: &mut NfSocket) -> Result<bool> {
    let Some(rules) = sock.chain_rules(NFPROTO_INET, TABLE, BASE_CHAIN)? else {
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
        self.transact(&action, |sock, genid| {
            // Addresses this chain served before and no longer should.
            let previous: Vec<IpAddr> = sock
                .chain_rules(NFPROTO_INET, TABLE, &chain)?
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
            push_new_chain_in(&mut b, TABLE, &chain, None);
            push_flush_chain(&mut b, &chain);
            for address in &addresses {
                b.push(
                    MsgType::NewRule,
                    NLM_F_CREATE | NLM_F_APPEND,
                    NFPROTO_INET,
                    format!(
                        "adding the masquerade rule for {address} to chain inet {TABLE} {chain}"
                    ),
                    |m| {
                        m.put_str(attr::RULE_TABLE, TABLE);
                        m.put_str(attr::RULE_CHAIN, &chain);
                        put_masquerade_rule(m, *address, &comment);
                    },
                );
            }
            for addr in previous {
                if sock.element_target(addr)?.as_deref() == Some(chain.as_str()) {
                    push_delete_element(&mut b, addr);
                }
            }
            for address in &addresses {
                let addr = address.ip();
                match sock.element_target(addr)? {
                    Some(target) if target == chain => continue,
                    // The address was claimed by another attachment (a missed DEL): the latest
                    // ADD wins; that attachment's chain stays until its DEL or GC.
                    Some(_) => push_delete_element(&mut b, addr),
                    None => {}
                }
                let map = map_for(Family::of(addr));
                b.push(
                    MsgType::NewSetElem,
                    NLM_F_CREATE,
                    NFPROTO_INET,
                    format!("adding {addr} : jump {chain} to map inet {TABLE} {map}"),
                    |m| {
                        m.put_str(attr::SET_ELEM_LIST_TABLE, TABLE);
                        m.put_str(attr::SET_ELEM_LIST_SET, map);
                        m.nest(attr::SET_ELEM_LIST_ELEMENTS, |m| {
                            m.nest(attr::LIST_ELEM, |m| {
                                put_key(m, addr);
                                m.nest(attr::SET_ELEM_DATA, |m| {
                                    m.nest(attr::DATA_VERDICT, |m| {
                                        m.put_be32(attr::VERDICT_CODE, NFT_JUMP as u32);
                                        m.put_str(attr::VERDICT_CHAIN, &chain);
                                    });
                                });
                            });
                        });
                    },
                );
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
            let result = self.transact(&action, |sock, genid| {
                let Some(rules) = sock.chain_rules(NFPROTO_INET, TABLE, &chain)? else {
                    return Ok(None);
                };
                let mut b = sock.batch(Some(genid));
                if scan_maps {
                    for (addr, target) in sock.all_elements()? {
                        if target.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, addr);
                        }
                    }
                } else {
                    let addrs: HashSet<IpAddr> = rules.iter().filter_map(|r| r.saddr).collect();
                    for addr in addrs {
                        if sock.element_target(addr)?.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, addr);
                        }
                    }
                }
                push_delete_chain(&mut b, &chain);
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
        let base = self
            .sock
            .chain_rules(NFPROTO_INET, TABLE, BASE_CHAIN)?
            .ok_or_else(|| missing(format!("chain inet {TABLE} {BASE_CHAIN} does not exist")))?;
        let rules = self
            .sock
            .chain_rules(NFPROTO_INET, TABLE, &chain)?
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
            match self.sock.element_target(address.ip())? {
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
            self.transact(&action, |sock, genid| {
                let stale: HashSet<String> = sock
                    .table_chains()?
                    .into_iter()
                    .filter(|c| c.starts_with(&prefix) && !keep.contains(c))
                    .collect();
                if stale.is_empty() {
                    return Ok(None);
                }
                let mut jumps: HashMap<String, Vec<IpAddr>> = HashMap::new();
                for (addr, target) in sock.all_elements()? {
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
                    push_delete_chain(&mut b, chain);
                }
                Ok(Some(b))
            })?;
            if !more {
                return Ok(());
            }
        }
    }
}

/// Does the kernel offer nf_tables to this thread's network namespace?
pub(crate) fn available() -> bool {
    NfSocket::open().and_then(|mut s| s.generation()).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

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
