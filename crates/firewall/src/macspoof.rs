//! The bridge plugin's `macspoofchk`: frames that enter the bridge from a pod's host-side veth
//! are dropped unless their source MAC is the pod's.
//!
//! Layout (all in table `bridge cni_macspoof_rs`, see [`TABLE`]), written over netlink:
//! ```text
//! table bridge cni_macspoof_rs {
//!     map ports { type ifname : verdict; elements = { "veth1a2b3c4d" : jump spoof-e65086f8a75535c6 } }
//!     chain prerouting {
//!         type filter hook prerouting priority -300; policy accept;
//!         iifname vmap @ports
//!     }
//!     chain spoof-e65086f8a75535c6 {
//!         iifname "veth1a2b3c4d" ether saddr != 0a:58:0a:01:00:05 counter drop comment "macspoofchk-abc-eth0"
//!     }
//! }
//! ```
//! - A frame finds its port's chain with one hash lookup (`vmap`), whatever the pod count;
//!   frames from other ports (the uplink, the bridge itself) match no element and pass.
//! - One chain per attachment, named from a hash of (ifname, container id) — the second half of
//!   the masquerade backend's attachment hash — so ADD, DEL and CHECK address it by name. Its one
//!   rule counts the dropped frames and repeats the port match, which is how DEL, given only the
//!   container id and interface name, finds the map element to remove.
//! - Every operation is one transaction tied to the ruleset generation (retried if the ruleset
//!   changed in between), so no operation lists other pods' state.
//!
//! The Go reference (`pkg/link/spoofcheck.go`) keeps this in table `bridge nat`: base chain
//! `PREROUTING` with one `iifname "<veth>" jump cni-br-iface-<cid>-<ifname>` rule per pod, and
//! chains `cni-br-iface-<cid>-<ifname>` (jump to the `-mac` chain) and
//! `cni-br-iface-<cid>-<ifname>-mac` (`ether saddr <mac> return`, `drop`), every rule commented
//! `macspoofchk-<cid>-<ifname>`. [`del`] removes that state too, in the same transaction; when
//! table `bridge nat` does not exist this costs one lookup.

use crate::error::{Error, Result};
use crate::naming::sha512_hex;
use crate::nft::expr::{
    cmp, cmp_operands, comment_udata, expr, load_meta, load_payload, rule_expressions,
    rule_identity, verdict, vmap,
};
use crate::nft::objects::{Hook, MapKey, Table};
use crate::nft::session::{Batch, Session};
use crate::nft::wire::{
    attr, Attrs, MsgBuf, BYTEORDER_HOST_ENDIAN, ETHER_ADDR_LEN, ETHER_SADDR_OFFSET, IFNAMSIZ,
    NFT_CMP_EQ, NFT_CMP_NEQ, NFT_JUMP, NFT_META_IIFNAME, NFT_PAYLOAD_LL_HEADER, NFT_REG_1,
    NFT_REG_VERDICT, NFT_TYPE_IFNAME, NF_BR_PRE_ROUTING, NF_BR_PRI_NAT_DST_BRIDGED, NF_DROP,
    UDATA_SET_KEYBYTEORDER,
};

/// Our table (family bridge). Distinct from the reference's `nat` so the two never share a chain.
pub const TABLE: &str = "cni_macspoof_rs";
/// The base chain: `type filter hook prerouting priority -300`, as the reference's.
pub const BASE_CHAIN: &str = "prerouting";
/// Verdict map from the ingress port (host-side veth name) to the attachment's chain.
pub const PORTS_MAP: &str = "ports";
/// Prefix of the per-attachment chains: `spoof-<16 hex of SHA-512("<ifname>:<containerID>")>`.
pub const CHAIN_PREFIX: &str = "spoof-";
/// The reference's table (family bridge) and base chain.
pub const REFERENCE_TABLE: &str = "nat";
pub const REFERENCE_BASE_CHAIN: &str = "PREROUTING";

const T: Table<'static> = Table::bridge(TABLE);
const REFERENCE: Table<'static> = Table::bridge(REFERENCE_TABLE);

/// Name of the chain holding one attachment's rule.
pub fn attachment_chain(container_id: &str, ifname: &str) -> String {
    format!(
        "{CHAIN_PREFIX}{}",
        sha512_hex(&format!("{ifname}:{container_id}"), 16)
    )
}

/// The comment on an attachment's rules, the reference's: `macspoofchk-<containerID>-<ifname>`.
pub fn rule_comment(container_id: &str, ifname: &str) -> String {
    format!("macspoofchk-{container_id}-{ifname}")
}

/// The reference's two per-attachment chains: `cni-br-iface-<cid>-<ifname>` and its `-mac`.
pub fn reference_chains(container_id: &str, ifname: &str) -> (String, String) {
    let iface = format!("cni-br-iface-{container_id}-{ifname}");
    let mac = format!("{iface}-mac");
    (iface, mac)
}

fn describe(container_id: &str, ifname: &str) -> String {
    format!("container {container_id:?} interface {ifname:?}")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An interface name as nftables compares it: zero-padded to IFNAMSIZ.
fn ifname_key(action: &str, name: &str) -> Result<[u8; IFNAMSIZ]> {
    let invalid = |detail: String| Error::Invalid {
        action: action.to_string(),
        detail,
    };
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
        return Err(invalid(format!(
            "{name:?} is not an interface name (1 to {} bytes, no NUL)",
            IFNAMSIZ - 1
        )));
    }
    let mut key = [0u8; IFNAMSIZ];
    key[..name.len()].copy_from_slice(name.as_bytes());
    Ok(key)
}

/// [`ifname_key`] for names already known to be valid (validated, or read from the kernel).
fn padded(name: &str) -> [u8; IFNAMSIZ] {
    let mut key = [0u8; IFNAMSIZ];
    for (k, b) in key.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *k = b;
    }
    key
}

fn ifname_from_key(key: &[u8]) -> Option<String> {
    let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
    std::str::from_utf8(key.get(..end)?)
        .ok()
        .map(str::to_string)
}

/// Install the spoof check of one attachment: frames entering the bridge from `host_veth` are
/// dropped unless their source MAC is `mac`. Idempotent; replaces an earlier state of the same
/// attachment (another veth or MAC). If another attachment claimed `host_veth` (a missed DEL),
/// the port now belongs to this one.
pub fn add(container_id: &str, ifname: &str, host_veth: &str, mac: [u8; 6]) -> Result<()> {
    let action = format!(
        "installing macspoofchk for {} (host veth {host_veth:?}, MAC {})",
        describe(container_id, ifname),
        mac_text(mac)
    );
    let key = ifname_key(&action, host_veth)?;
    let chain = attachment_chain(container_id, ifname);
    let comment = rule_comment(container_id, ifname).replace('"', "");
    let mut sock = Session::open()?;
    sock.transact(&action, |sock, genid| {
        // Ports this chain served before and no longer should.
        let mut previous: Vec<String> = chain_rules(sock, &chain)?
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.iifname)
            .filter(|name| name != host_veth)
            .collect();
        previous.sort();
        previous.dedup();

        let intact = skeleton_intact(sock)?;
        let mut b = sock.batch(Some(genid));
        if !intact {
            push_skeleton(&mut b);
        }
        T.push_new_chain(&mut b, &chain, None);
        T.push_flush_chain(&mut b, &chain);
        let what = format!("adding the spoof check rule to chain bridge {TABLE} {chain}");
        T.push_rule(&mut b, &chain, what, |m| {
            put_spoof_rule(m, &key, mac, &comment)
        });
        for name in &previous {
            if element_target(sock, name)?.as_deref() == Some(chain.as_str()) {
                push_delete_element(&mut b, name);
            }
        }
        match element_target(sock, host_veth)? {
            Some(target) if target == chain => {}
            Some(_) => {
                push_delete_element(&mut b, host_veth);
                push_add_element(&mut b, host_veth, &chain);
            }
            None => push_add_element(&mut b, host_veth, &chain),
        }
        Ok(Some(b))
    })
}

/// Remove the spoof check of one attachment: ours and the reference's (table `bridge nat`).
/// Needs no interface name or MAC, so it works after the veth is gone; missing state is success.
pub fn del(container_id: &str, ifname: &str) -> Result<()> {
    let action = format!(
        "removing macspoofchk for {}",
        describe(container_id, ifname)
    );
    let chain = attachment_chain(container_id, ifname);
    let mut sock = Session::open()?;
    // If the chain's rule no longer names every port that jumps to it (someone edited it), the
    // chain is still referenced and its deletion fails with EBUSY: then find the jumps by
    // scanning the map.
    let mut scan_map = false;
    loop {
        let result = sock.transact(&action, |sock, genid| {
            let ours = chain_rules(sock, &chain)?;
            let reference = reference_state(sock, container_id, ifname)?;
            if ours.is_none() && reference.is_empty() {
                return Ok(None);
            }
            let mut b = sock.batch(Some(genid));
            if let Some(rules) = ours {
                if scan_map {
                    for (name, target) in all_elements(sock)? {
                        if target.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, &name);
                        }
                    }
                } else {
                    let mut names: Vec<String> =
                        rules.into_iter().filter_map(|r| r.iifname).collect();
                    names.sort();
                    names.dedup();
                    for name in names {
                        if element_target(sock, &name)?.as_deref() == Some(chain.as_str()) {
                            push_delete_element(&mut b, &name);
                        }
                    }
                }
                T.push_delete_chain(&mut b, &chain);
            }
            reference.push_removal(&mut b);
            Ok(Some(b))
        });
        match result {
            Err(e) if e.errno() == Some(libc::EBUSY) && !scan_map => scan_map = true,
            other => return other,
        }
    }
}

/// Remove the spoof checks of every attachment not in `keep` (container id, interface name)
/// whose port `owned` accepts. The table is shared by every network on the node, so the caller
/// says which ports are its own (e.g. its bridge's ports, and names that no longer exist: a
/// check on a vanished port is stale whoever made it). Missing table is success.
pub fn gc(keep: &[(&str, &str)], owned: &dyn Fn(&str) -> bool) -> Result<()> {
    let action = "garbage-collecting macspoofchk state";
    let kept: std::collections::HashSet<String> = keep
        .iter()
        .map(|(container_id, ifname)| attachment_chain(container_id, ifname))
        .collect();
    let mut sock = Session::open()?;
    sock.transact(action, |sock, genid| {
        let elements = all_elements(sock)?;
        let stale: Vec<&(String, Option<String>)> = elements
            .iter()
            .filter(|(port, target)| {
                target
                    .as_ref()
                    .is_some_and(|chain| chain.starts_with(CHAIN_PREFIX) && !kept.contains(chain))
                    && owned(port)
            })
            .collect();
        if stale.is_empty() {
            return Ok(None);
        }
        let mut b = sock.batch(Some(genid));
        let mut chains: Vec<&str> = Vec::new();
        for (port, target) in &stale {
            push_delete_element(&mut b, port);
            if let Some(chain) = target.as_deref() {
                chains.push(chain);
            }
        }
        chains.sort_unstable();
        chains.dedup();
        for chain in chains {
            // A chain still jumped to from a port we keep stays (deleting it would fail).
            let still_used = elements.iter().any(|(port, target)| {
                target.as_deref() == Some(chain) && !stale.iter().any(|(p, _)| p == port)
            });
            if !still_used {
                T.push_delete_chain(&mut b, chain);
            }
        }
        Ok(Some(b))
    })
}

/// Verify the state [`add`] makes for (`host_veth`, `mac`); the error names what is missing.
pub fn check(container_id: &str, ifname: &str, host_veth: &str, mac: [u8; 6]) -> Result<()> {
    let action = format!(
        "checking macspoofchk for {} (host veth {host_veth:?}, MAC {})",
        describe(container_id, ifname),
        mac_text(mac)
    );
    let key = ifname_key(&action, host_veth)?;
    let chain = attachment_chain(container_id, ifname);
    let missing = |what: String| Error::SpoofCheckMissing {
        attachment: describe(container_id, ifname),
        what,
    };
    let mut sock = Session::open()?;
    let base = chain_rules(&mut sock, BASE_CHAIN)?
        .ok_or_else(|| missing(format!("chain bridge {TABLE} {BASE_CHAIN} does not exist")))?;
    if !base
        .iter()
        .any(|r| r.iifname_lookups.iter().any(|s| s == PORTS_MAP))
    {
        return Err(missing(format!(
            "chain bridge {TABLE} {BASE_CHAIN} has no rule looking up the ingress port in map {PORTS_MAP}"
        )));
    }
    let rules = chain_rules(&mut sock, &chain)?
        .ok_or_else(|| missing(format!("chain bridge {TABLE} {chain} does not exist")))?;
    if !rules.iter().any(|r| r.drops_spoofed(&key, mac)) {
        return Err(missing(format!(
            "chain bridge {TABLE} {chain} has no rule dropping frames from {host_veth:?} \
             whose source MAC is not {}",
            mac_text(mac)
        )));
    }
    match element_target(&mut sock, host_veth)? {
        Some(target) if target == chain => Ok(()),
        Some(other) => Err(missing(format!(
            "map bridge {TABLE} {PORTS_MAP} sends {host_veth:?} to chain {other}, not {chain}"
        ))),
        None => Err(missing(format!(
            "map bridge {TABLE} {PORTS_MAP} has no element for {host_veth:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// The reference's state

/// What the reference made for one attachment and must go.
#[derive(Debug, Default)]
struct ReferenceState {
    /// Handles of the `PREROUTING` rules jumping to the attachment's chain.
    base_rules: Vec<u64>,
    /// Which of the two per-attachment chains exist.
    chains: Vec<String>,
}

impl ReferenceState {
    fn is_empty(&self) -> bool {
        self.base_rules.is_empty() && self.chains.is_empty()
    }

    /// Delete the jumps first, then the chain that jumps to `-mac`, then `-mac`: each chain is
    /// unreferenced by the time its deletion runs.
    fn push_removal(&self, b: &mut Batch) {
        for handle in &self.base_rules {
            REFERENCE.push_delete_rule(b, REFERENCE_BASE_CHAIN, *handle);
        }
        for chain in &self.chains {
            REFERENCE.push_delete_chain(b, chain);
        }
    }
}

/// One lookup when table `bridge nat` does not exist; otherwise its `PREROUTING` rules are
/// listed and the two chains looked up.
fn reference_state(sock: &mut Session, container_id: &str, ifname: &str) -> Result<ReferenceState> {
    if !REFERENCE.exists(sock)? {
        return Ok(ReferenceState::default());
    }
    let (iface_chain, mac_chain) = reference_chains(container_id, ifname);
    let comment = rule_comment(container_id, ifname);
    let mut state = ReferenceState::default();
    if let Some(rules) = REFERENCE.chain_rule_messages(sock, REFERENCE_BASE_CHAIN)? {
        state.base_rules = rules
            .iter()
            .map(|r| parse_rule(Attrs::new(r)))
            .filter(|r| {
                r.comment.as_deref() == Some(comment.as_bytes()) || r.jumps.contains(&iface_chain)
            })
            .map(|r| r.handle)
            .collect();
    }
    for chain in [iface_chain, mac_chain] {
        if REFERENCE.chain_exists(sock, &chain)? {
            state.chains.push(chain);
        }
    }
    Ok(state)
}

// ---------------------------------------------------------------------------------------------
// Reading our table

/// The rules of one chain of our table, or `None` if the chain does not exist.
fn chain_rules(sock: &mut Session, chain: &str) -> Result<Option<Vec<SpoofRule>>> {
    Ok(T.chain_rule_messages(sock, chain)?
        .map(|rules| rules.iter().map(|r| parse_rule(Attrs::new(r))).collect()))
}

/// The chain a port's map element jumps to, if the element exists.
fn element_target(sock: &mut Session, port: &str) -> Result<Option<String>> {
    let action = format!("looking up {port:?} in map bridge {TABLE} {PORTS_MAP}");
    let key = ifname_key(&action, port)?;
    T.element_target(sock, PORTS_MAP, &key, &format!("{port:?}"))
}

/// Every element of the ports map: (port, chain it jumps to), for DEL's fallback and GC.
fn all_elements(sock: &mut Session) -> Result<Vec<(String, Option<String>)>> {
    T.map_elements(sock, PORTS_MAP, ifname_from_key)
}

/// Whether the base chain holds exactly the dispatch rule. Re-declaring an intact skeleton
/// would replace that rule, which the kernel frees after an RCU grace period that our socket's
/// close then waits for (~13 ms per ADD).
fn skeleton_intact(sock: &mut Session) -> Result<bool> {
    Ok(chain_rules(sock, BASE_CHAIN)?.is_some_and(|rules| {
        rules.len() == 1
            && rules[0].iifname_lookups == [PORTS_MAP]
            && rules[0].iifname.is_none()
            && !rules[0].drop
    }))
}

/// Table, map, base chain and its dispatch rule; harmless to repeat.
fn push_skeleton(b: &mut Batch) {
    T.push_create(b);
    let mut userdata = vec![UDATA_SET_KEYBYTEORDER, 4];
    userdata.extend_from_slice(&BYTEORDER_HOST_ENDIAN.to_ne_bytes());
    let key = MapKey {
        data_type: NFT_TYPE_IFNAME,
        len: IFNAMSIZ as u32,
        userdata: Some(&userdata),
    };
    T.push_new_verdict_map(b, PORTS_MAP, key, 1);
    // The reference's priority: before anything else on the bridge.
    let hook = Hook::filter(NF_BR_PRE_ROUTING, NF_BR_PRI_NAT_DST_BRIDGED);
    T.push_base_chain(b, BASE_CHAIN, hook);
    let what = format!("adding the dispatch rule to chain bridge {TABLE} {BASE_CHAIN}");
    T.push_rule(b, BASE_CHAIN, what, |m| {
        m.nest(attr::RULE_EXPRESSIONS, |m| {
            load_meta(m, NFT_META_IIFNAME, NFT_REG_1);
            vmap(m, PORTS_MAP, NFT_REG_1);
        });
    });
}

/// `iifname "<port>" ether saddr != <mac> counter drop comment "<comment>"`.
fn put_spoof_rule(m: &mut MsgBuf, port: &[u8; IFNAMSIZ], mac: [u8; 6], comment: &str) {
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        load_meta(m, NFT_META_IIFNAME, NFT_REG_1);
        cmp(m, NFT_CMP_EQ, port);
        let (offset, len) = (ETHER_SADDR_OFFSET, ETHER_ADDR_LEN);
        load_payload(m, NFT_PAYLOAD_LL_HEADER, NFT_REG_1, offset, len);
        cmp(m, NFT_CMP_NEQ, &mac);
        expr(m, "counter", |_| {});
        verdict(m, NF_DROP);
    });
    m.put(attr::RULE_USERDATA, &comment_udata(comment));
}

fn push_add_element(b: &mut Batch, port: &str, chain: &str) {
    let what = format!("adding {port:?} : jump {chain} to map bridge {TABLE} {PORTS_MAP}");
    T.push_jump_element(b, PORTS_MAP, &padded(port), chain, what);
}

fn push_delete_element(b: &mut Batch, port: &str) {
    let what = format!("deleting {port:?} from map bridge {TABLE} {PORTS_MAP}");
    T.push_delete_element(b, PORTS_MAP, &padded(port), what);
}

// ---------------------------------------------------------------------------------------------
// Parsing rules

/// What a bridge-family rule does, as far as spoof checks are concerned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SpoofRule {
    handle: u64,
    /// `iifname == X`.
    iifname: Option<String>,
    /// `ether saddr != X`.
    saddr_not: Option<[u8; 6]>,
    /// `ether saddr == X`.
    saddr_eq: Option<[u8; 6]>,
    /// Maps looked up with the ingress port as key (`iifname vmap @name`).
    iifname_lookups: Vec<String>,
    /// Chains jumped to by an immediate verdict.
    jumps: Vec<String>,
    drop: bool,
    counter: Option<(u64, u64)>,
    comment: Option<Vec<u8>>,
}

impl SpoofRule {
    /// Does this rule drop every frame from `port` whose source MAC is not `mac`?
    fn drops_spoofed(&self, port: &[u8; IFNAMSIZ], mac: [u8; 6]) -> bool {
        self.drop
            && self.saddr_not == Some(mac)
            && self.saddr_eq.is_none()
            && self.iifname.as_deref() == ifname_from_key(port).as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    IifName,
    EtherSaddr,
}

fn parse_rule(attrs: Attrs) -> SpoofRule {
    let mut rule = SpoofRule::default();
    (rule.handle, rule.comment) = rule_identity(&attrs);
    let mut loaded: Option<Loaded> = None;
    for (name, data) in rule_expressions(&attrs) {
        match name {
            "meta" => {
                loaded = (data.be32(attr::META_KEY) == Some(NFT_META_IIFNAME))
                    .then_some(Loaded::IifName);
            }
            "payload" => {
                let is_saddr = data.be32(attr::PAYLOAD_BASE) == Some(NFT_PAYLOAD_LL_HEADER)
                    && data.be32(attr::PAYLOAD_OFFSET) == Some(ETHER_SADDR_OFFSET)
                    && data.be32(attr::PAYLOAD_LEN) == Some(ETHER_ADDR_LEN);
                loaded = is_saddr.then_some(Loaded::EtherSaddr);
            }
            "cmp" => {
                let (op, value) = cmp_operands(&data);
                match (loaded, op) {
                    (Some(Loaded::IifName), Some(NFT_CMP_EQ)) => {
                        rule.iifname = ifname_from_key(value);
                    }
                    (Some(Loaded::EtherSaddr), Some(op)) => {
                        if let Ok(mac) = <[u8; 6]>::try_from(value) {
                            if op == NFT_CMP_EQ {
                                rule.saddr_eq = Some(mac);
                            } else if op == NFT_CMP_NEQ {
                                rule.saddr_not = Some(mac);
                            }
                        }
                    }
                    _ => {}
                }
                loaded = None;
            }
            "lookup" => {
                if loaded == Some(Loaded::IifName) {
                    if let Some(set) = data.str(attr::LOOKUP_SET) {
                        rule.iifname_lookups.push(set.to_string());
                    }
                }
                loaded = None;
            }
            "counter" => {
                rule.counter = Some((
                    data.be64(attr::COUNTER_PACKETS).unwrap_or(0),
                    data.be64(attr::COUNTER_BYTES).unwrap_or(0),
                ));
            }
            "immediate" if data.be32(attr::IMMEDIATE_DREG) == Some(NFT_REG_VERDICT) => {
                let verdict = data
                    .nested(attr::IMMEDIATE_DATA)
                    .and_then(|d| d.nested(attr::DATA_VERDICT));
                let code = verdict
                    .as_ref()
                    .and_then(|v| v.be32(attr::VERDICT_CODE))
                    .map(|c| c as i32);
                match code {
                    Some(c) if c == NF_DROP as i32 => rule.drop = true,
                    Some(NFT_JUMP) => {
                        if let Some(chain) = verdict.and_then(|v| v.str(attr::VERDICT_CHAIN)) {
                            rule.jumps.push(chain.to_string());
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    rule
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::nft::wire::encoded;

    fn roundtrip(build: impl FnOnce(&mut MsgBuf)) -> SpoofRule {
        parse_rule(Attrs::new(&encoded(build)))
    }

    const MAC: [u8; 6] = [0x0a, 0x58, 0x0a, 0x01, 0x00, 0x05];

    #[test]
    fn spoof_rule_parses_back() {
        let key = ifname_key("t", "veth1234").unwrap();
        let rule = roundtrip(|m| put_spoof_rule(m, &key, MAC, "macspoofchk-abc-eth0"));
        assert_eq!(rule.iifname.as_deref(), Some("veth1234"));
        assert_eq!(rule.saddr_not, Some(MAC));
        assert!(rule.drop);
        assert_eq!(rule.counter, Some((0, 0)));
        assert_eq!(rule.comment.as_deref(), Some(&b"macspoofchk-abc-eth0"[..]));
        assert!(rule.drops_spoofed(&key, MAC));
        assert!(!rule.drops_spoofed(&key, [0; 6]));
        assert!(!rule.drops_spoofed(&ifname_key("t", "veth9").unwrap(), MAC));
    }

    #[test]
    fn names_follow_the_reference_and_the_masquerade_hash() {
        // The second half of the masquerade backend's hash for mynet/abc/eth0.
        assert_eq!(attachment_chain("abc", "eth0"), "spoof-e65086f8a75535c6");
        assert_eq!(rule_comment("abc", "eth0"), "macspoofchk-abc-eth0");
        assert_eq!(
            reference_chains("abc", "eth0"),
            (
                "cni-br-iface-abc-eth0".to_string(),
                "cni-br-iface-abc-eth0-mac".to_string()
            )
        );
    }

    #[test]
    fn interface_names_are_validated() {
        assert!(ifname_key("t", "").is_err());
        assert!(ifname_key("t", "0123456789abcdef").is_err());
        assert!(ifname_key("t", "a\0b").is_err());
        let key = ifname_key("t", "0123456789abcde").unwrap();
        assert_eq!(ifname_from_key(&key).as_deref(), Some("0123456789abcde"));
        assert_eq!(mac_text(MAC), "0a:58:0a:01:00:05");
    }
}
