//! Host port mappings (the `portmap` plugin's DNAT) in native nftables, over netlink.
//!
//! Layout (table `inet cni_portmap_rs`, see [`TABLE`]):
//! ```text
//! table inet cni_portmap_rs {
//!     map ports { type inet_proto . inet_service : verdict;
//!                 elements = { tcp . 8080 : jump pm-<H(net)>-<H(if:cid)> } }
//!     chain prerouting { type nat hook prerouting priority dstnat;
//!                        fib daddr type local meta l4proto . th dport vmap @ports }
//!     chain output     { type nat hook output priority -100;
//!                        fib daddr type local meta l4proto . th dport vmap @ports }
//!     chain postrouting { type nat hook postrouting priority srcnat;
//!                         meta mark & 0x2000 != 0 counter masquerade }
//!     chain pm-d23676b4f2d9fe04-e65086f8a75535c6 {
//!         meta nfproto ipv4 meta l4proto tcp th dport 8080 ip saddr 10.1.0.5 meta mark set mark | 0x2000
//!         meta nfproto ipv4 meta l4proto tcp th dport 8080 ip saddr 127.0.0.0/8 meta mark set mark | 0x2000
//!         meta nfproto ipv4 meta l4proto tcp th dport 8080 counter dnat ip to 10.1.0.5:80
//!     }
//! }
//! ```
//! - One chain per attachment (same name hashes as the masquerade chains), reached through one
//!   hash lookup on (protocol, host port): ADD, DEL and CHECK touch only this attachment's
//!   objects, whatever the number of pods.
//! - A (protocol, host port) belongs to one attachment: a second attachment claiming it is
//!   refused, naming the owner. Mappings of the same port to different `hostIP`s by different
//!   attachments are therefore refused too (the reference accepts them).
//! - Hairpin (a pod reaching itself through its host port) and host-local traffic from
//!   127.0.0.0/8 are marked before DNAT and masqueraded in `postrouting`, like the reference's
//!   `CNI-HOSTPORT-SETMARK`/`CNI-HOSTPORT-MASQ` chains.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use crate::error::{Error, Result};
use crate::masquerade::rule_comment;
use crate::naming::{instance_hash, network_hash};
use crate::nft::expr::{
    addr_bytes, bitwise, cmp, comment_udata, expr, immediate, load_meta, load_payload,
    match_family, match_prefix, set_meta, subnet_of, vmap, Family,
};
use crate::nft::objects::{Hook, MapKey, Table};
use crate::nft::session::{Batch, Session};
use crate::nft::wire::{
    attr, MsgBuf, NFPROTO_IPV4, NFPROTO_IPV6, NFTA_FIB_F_DADDR, NFT_CMP_EQ, NFT_CMP_NEQ,
    NFT_FIB_RESULT_ADDRTYPE, NFT_META_L4PROTO, NFT_META_MARK, NFT_NAT_DNAT,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER, NFT_REG32_00, NFT_REG32_01,
    NFT_REG_1, NFT_REG_2, NFT_TYPE_PROTO_SERVICE, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING,
    NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST, NF_IP_PRI_NAT_SRC, RTN_LOCAL,
};
use crate::Attachment;

/// Our table; `_rs` keeps it apart from the reference's `cni_hostport`.
pub const TABLE: &str = "cni_portmap_rs";
/// Verdict map from (l4 protocol, host port) to the owning attachment's chain.
pub const MAP: &str = "ports";
/// Prefix of the per-attachment chains: `pm-<H(network)>-<H(ifname:containerID)>`.
pub const CHAIN_PREFIX: &str = "pm-";

const T: Table<'static> = Table::inet(TABLE);

/// A key of the ports map: protocol and host port.
type PortKey = (Protocol, u16);

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Case-insensitive `tcp`/`udp`/`sctp`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    fn from_number(n: u8) -> Option<Self> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .find(|p| p.number() == n)
    }
}

/// One `runtimeConfig.portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this host address is mapped; any local address when `None`.
    pub host_ip: Option<IpAddr>,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(ip) => write!(f, "{}/{ip}:{}", self.protocol.name(), self.host_port)?,
            None => write!(f, "{}/{}", self.protocol.name(), self.host_port)?,
        }
        write!(f, " -> {}", self.container_port)
    }
}

/// How mapped traffic is masqueraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatOptions {
    /// Masquerade hairpin and 127.0.0.0/8-sourced traffic (`snat`).
    pub snat: bool,
    /// The packet mark bit used to flag traffic for masquerade (`markMasqBit`, 0..=31).
    pub mark_bit: u8,
}

/// One DNAT rule: a mapping towards one container address of the same family.
fn targets(mappings: &[PortMapping], container_ips: &[IpNetwork]) -> Vec<(PortMapping, IpNetwork)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in mappings {
        for ip in container_ips {
            let same_family = match m.host_ip {
                Some(h) => h.is_ipv4() == ip.is_ipv4(),
                None => true,
            };
            if same_family && seen.insert((*m, *ip)) {
                out.push((*m, *ip));
            }
        }
    }
    out
}

/// 127.0.0.0/8: host-local clients, whose connections must be masqueraded to leave the host.
fn localhost_v4() -> IpNetwork {
    IpNetwork::V4(
        Ipv4Network::new(Ipv4Addr::new(127, 0, 0, 0), 8)
            .unwrap_or_else(|_| Ipv4Network::from(Ipv4Addr::LOCALHOST)),
    )
}

/// Name of the chain holding one attachment's DNAT rules.
pub fn attachment_chain(att: &Attachment) -> String {
    format!("{CHAIN_PREFIX}{}", instance_hash(att))
}

fn element_key(proto: Protocol, port: u16) -> [u8; 8] {
    let p = port.to_be_bytes();
    [proto.number(), 0, 0, 0, p[0], p[1], 0, 0]
}

fn key_from_bytes(b: &[u8]) -> Option<PortKey> {
    if b.len() != 8 {
        return None;
    }
    Some((
        Protocol::from_number(b[0])?,
        u16::from_be_bytes([b[4], b[5]]),
    ))
}

/// `fib daddr type local meta l4proto . th dport vmap @ports`
fn put_dispatch(m: &mut MsgBuf) {
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        expr(m, "fib", |m| {
            m.put_be32(attr::FIB_DREG, NFT_REG_1);
            m.put_be32(attr::FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
            m.put_be32(attr::FIB_FLAGS, NFTA_FIB_F_DADDR);
        });
        cmp(m, NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
        load_meta(m, NFT_META_L4PROTO, NFT_REG32_00);
        load_payload(m, NFT_PAYLOAD_TRANSPORT_HEADER, NFT_REG32_01, 2, 2);
        vmap(m, MAP, NFT_REG32_00);
    });
}

/// `meta mark & <bit> != 0 counter masquerade`
fn put_masquerade(m: &mut MsgBuf, bit: u32) {
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        load_meta(m, NFT_META_MARK, NFT_REG_1);
        bitwise(m, &bit.to_ne_bytes(), &0u32.to_ne_bytes());
        cmp(m, NFT_CMP_NEQ, &0u32.to_ne_bytes());
        expr(m, "counter", |_| {});
        expr(m, "masq", |_| {});
    });
}

/// The match shared by a mapping's rules: family, protocol, host port, host address.
fn put_match(m: &mut MsgBuf, map: &PortMapping, fam: Family) {
    match_family(m, fam);
    load_meta(m, NFT_META_L4PROTO, NFT_REG_1);
    cmp(m, NFT_CMP_EQ, &[map.protocol.number()]);
    load_payload(m, NFT_PAYLOAD_TRANSPORT_HEADER, NFT_REG_1, 2, 2);
    cmp(m, NFT_CMP_EQ, &map.host_port.to_be_bytes());
    if let Some(host) = map.host_ip {
        load_payload(
            m,
            NFT_PAYLOAD_NETWORK_HEADER,
            NFT_REG_1,
            fam.daddr_offset(),
            fam.addr_len(),
        );
        cmp(m, NFT_CMP_EQ, &addr_bytes(host));
    } else if fam == Family::V6 {
        // `ip6 daddr != ::1`: the kernel cannot route ::1-sourced traffic to a pod, so like the
        // reference we leave IPv6 localhost alone (the client gets a refusal, not a hang).
        let lo = IpNetwork::V6(Ipv6Network::from(Ipv6Addr::LOCALHOST));
        match_prefix(m, fam, fam.daddr_offset(), lo, NFT_CMP_NEQ);
    }
}

/// `<match> ip saddr <source> meta mark set mark | <bit>`
fn put_setmark(m: &mut MsgBuf, map: &PortMapping, source: IpNetwork, bit: u32) {
    let fam = Family::of(source.ip());
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        put_match(m, map, fam);
        match_prefix(m, fam, fam.saddr_offset(), subnet_of(source), NFT_CMP_EQ);
        load_meta(m, NFT_META_MARK, NFT_REG_1);
        bitwise(m, &(!bit).to_ne_bytes(), &bit.to_ne_bytes());
        set_meta(m, NFT_META_MARK, NFT_REG_1);
    });
}

/// `<match> counter dnat to <container>:<port>`
fn put_dnat(m: &mut MsgBuf, map: &PortMapping, container: IpAddr) {
    let fam = Family::of(container);
    m.nest(attr::RULE_EXPRESSIONS, |m| {
        put_match(m, map, fam);
        expr(m, "counter", |_| {});
        immediate(m, NFT_REG_1, &addr_bytes(container));
        immediate(m, NFT_REG_2, &map.container_port.to_be_bytes());
        expr(m, "nat", |m| {
            m.put_be32(attr::NAT_TYPE, NFT_NAT_DNAT);
            m.put_be32(attr::NAT_FAMILY, u32::from(fam.nfproto()));
            m.put_be32(attr::NAT_REG_ADDR_MIN, NFT_REG_1);
            m.put_be32(attr::NAT_REG_PROTO_MIN, NFT_REG_2);
        });
    });
}

fn push_rule(b: &mut Batch, chain: &str, what: String, build: impl FnOnce(&mut MsgBuf)) {
    T.push_rule(b, chain, what, build);
}

fn element_what(verb: &str, key: PortKey) -> String {
    format!(
        "{verb} {} . {} in map inet {TABLE} {MAP}",
        key.0.name(),
        key.1
    )
}

fn push_add_element(b: &mut Batch, key: PortKey, chain: &str) {
    let what = element_what("adding", key);
    T.push_jump_element(b, MAP, &element_key(key.0, key.1), chain, what);
}

fn push_delete_element(b: &mut Batch, key: PortKey) {
    let what = element_what("deleting", key);
    T.push_delete_element(b, MAP, &element_key(key.0, key.1), what);
}

/// Table, map, the three base chains and their rules; harmless to repeat.
fn push_skeleton(b: &mut Batch, mark_bit: u32) {
    T.push_create(b);
    let key = MapKey {
        data_type: NFT_TYPE_PROTO_SERVICE,
        len: 8,
        userdata: None,
    };
    T.push_new_verdict_map(b, MAP, key, 1);
    for (chain, hook, prio) in [
        ("prerouting", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST),
        ("output", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST),
    ] {
        T.push_base_chain(b, chain, Hook::nat(hook, prio));
        push_rule(
            b,
            chain,
            format!("adding the dispatch rule to inet {TABLE} {chain}"),
            put_dispatch,
        );
    }
    T.push_base_chain(
        b,
        "postrouting",
        Hook::nat(NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC),
    );
    push_rule(
        b,
        "postrouting",
        format!("adding the masquerade rule to inet {TABLE} postrouting"),
        |m| {
            put_masquerade(m, mark_bit);
            m.put(
                attr::RULE_USERDATA,
                &comment_udata(&skeleton_stamp(mark_bit)),
            );
        },
    );
}

/// The postrouting rule's comment: it records the mark bit the skeleton was built for.
fn skeleton_stamp(mark_bit: u32) -> String {
    format!("cni-rs portmap masquerade mark {mark_bit:#x}")
}

/// Whether the skeleton is exactly what [`push_skeleton`] makes for `mark_bit`. Re-declaring an
/// intact one would replace its rules, which the kernel frees after an RCU grace period that
/// our socket's close then waits for (~13 ms per ADD, and parallel ADDs queue behind it).
fn skeleton_intact(sock: &mut Session, mark_bit: u32) -> Result<bool> {
    for chain in ["prerouting", "output"] {
        let Some(rules) = T.chain_rules(sock, chain)? else {
            return Ok(false);
        };
        if rules.len() != 1 || rules[0].lookups != [MAP] {
            return Ok(false);
        }
    }
    let Some(rules) = T.chain_rules(sock, "postrouting")? else {
        return Ok(false);
    };
    let stamp = skeleton_stamp(mark_bit);
    Ok(rules.len() == 1
        && rules[0].masquerade
        && rules[0].comment.as_deref() == Some(stamp.as_bytes()))
}

/// One attachment's port mappings: what [`PortMapper::add`] installs and `check` verifies.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    pub att: Attachment<'a>,
    pub mappings: &'a [PortMapping],
    /// Either family; a mapping with a `host_ip` only goes to addresses of its family.
    pub container_ips: &'a [IpNetwork],
    pub opts: SnatOptions,
}

/// Installs, verifies and removes the host port mappings of attachments; one implementation
/// per [`Backend`](crate::Backend), opened with [`open`].
pub trait PortMapper {
    /// Install the attachment's mappings to `container_ips` (either family; a mapping with a
    /// `host_ip` only goes to addresses of its family). Repeating it rewrites them.
    fn add(&mut self, p: &Publish) -> Result<()>;

    /// Verify the state `add` made; the error names what is missing.
    fn check(&mut self, p: &Publish) -> Result<()>;

    /// Remove the attachment's mappings; missing state is success.
    fn del(&mut self, att: &Attachment) -> Result<()>;

    /// Remove the mappings of every attachment of `network` not in `keep`.
    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()>;
}

/// Open the port mapper of `backend` in the calling thread's network namespace; `iptables`
/// holds the options only the iptables backend understands.
pub fn open<'a>(
    backend: crate::Backend,
    iptables: crate::portmap_iptables::IptablesOptions<'a>,
) -> Result<Box<dyn PortMapper + 'a>> {
    Ok(match backend {
        crate::Backend::Nftables => Box::new(PortmapNft::new()?),
        crate::Backend::Iptables => {
            Box::new(crate::portmap_iptables::PortmapIptables::new(iptables))
        }
    })
}

/// Host port mappings in our nftables table.
pub struct PortmapNft {
    sock: Session,
}

/// Every element of the ports map: (key, chain it jumps to). Empty if the table is absent.
fn port_elements(sock: &mut Session) -> Result<Vec<(PortKey, Option<String>)>> {
    T.map_elements(sock, MAP, key_from_bytes)
}

/// Who owns a chain, from its rules' comment.
fn chain_owner(sock: &mut Session, chain: &str) -> String {
    let comment = T
        .chain_rules(sock, chain)
        .ok()
        .flatten()
        .and_then(|rules| rules.into_iter().find_map(|r| r.comment));
    match comment {
        Some(c) => format!("{} (chain {chain})", String::from_utf8_lossy(&c)),
        None => format!("chain {chain}"),
    }
}

impl PortmapNft {
    /// Open the backend in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        Ok(PortmapNft {
            sock: Session::open()?,
        })
    }

    /// Delete the chains `stale` selects and the map elements jumping to them.
    fn remove(&mut self, action: &str, stale: impl Fn(&String) -> bool) -> Result<()> {
        self.sock.transact(action, |sock, genid| {
            let chains: Vec<String> = T.chains(sock)?.into_iter().filter(|c| stale(c)).collect();
            if chains.is_empty() {
                return Ok(None);
            }
            let mut b = sock.batch(Some(genid));
            for (key, target) in port_elements(sock)? {
                if target.as_ref().is_some_and(|t| chains.contains(t)) {
                    push_delete_element(&mut b, key);
                }
            }
            for chain in &chains {
                T.push_delete_chain(&mut b, chain);
            }
            Ok(Some(b))
        })
    }
}

impl PortMapper for PortmapNft {
    /// A port owned by another attachment is refused ([`Error::PortConflict`]).
    fn add(&mut self, p: &Publish) -> Result<()> {
        let (att, mappings, container_ips, opts) = (&p.att, p.mappings, p.container_ips, p.opts);
        let chain = attachment_chain(att);
        let comment = rule_comment(att);
        let bit = 1u32 << (opts.mark_bit % 32);
        let keys: Vec<PortKey> = {
            let mut seen = HashSet::new();
            mappings
                .iter()
                .map(|m| (m.protocol, m.host_port))
                .filter(|k| seen.insert(*k))
                .collect()
        };
        let rules = targets(mappings, container_ips);
        let action = format!("adding port mappings for {att}");
        self.sock.transact(&action, |sock, genid| {
            let existing = port_elements(sock)?;
            for (key, target) in &existing {
                let Some(target) = target else { continue };
                if keys.contains(key) && *target != chain {
                    return Err(Error::PortConflict {
                        port: format!("{}/{}", key.0.name(), key.1),
                        owner: chain_owner(sock, target),
                    });
                }
            }
            let intact = skeleton_intact(sock, bit)?;
            let mut b = sock.batch(Some(genid));
            if !intact {
                push_skeleton(&mut b, bit);
            }
            T.push_new_chain(&mut b, &chain, None);
            T.push_flush_chain(&mut b, &chain);
            // Ports this attachment held before and no longer maps.
            for (key, target) in &existing {
                if target.as_deref() == Some(chain.as_str()) && !keys.contains(key) {
                    push_delete_element(&mut b, *key);
                }
            }
            for (map, ip) in &rules {
                if opts.snat {
                    push_rule(
                        &mut b,
                        &chain,
                        format!("adding the hairpin mark rule for {map} in {chain}"),
                        |m| {
                            put_setmark(m, map, *ip, bit);
                            m.put(attr::RULE_USERDATA, &comment_udata(&comment));
                        },
                    );
                    if ip.is_ipv4() {
                        push_rule(
                            &mut b,
                            &chain,
                            format!("adding the localhost mark rule for {map} in {chain}"),
                            |m| {
                                put_setmark(m, map, localhost_v4(), bit);
                                m.put(attr::RULE_USERDATA, &comment_udata(&comment));
                            },
                        );
                    }
                }
                push_rule(
                    &mut b,
                    &chain,
                    format!("adding the DNAT rule {map} to {} in {chain}", ip.ip()),
                    |m| {
                        put_dnat(m, map, ip.ip());
                        m.put(attr::RULE_USERDATA, &comment_udata(&comment));
                    },
                );
            }
            for key in &keys {
                if !existing
                    .iter()
                    .any(|(k, t)| k == key && t.as_deref() == Some(chain.as_str()))
                {
                    push_add_element(&mut b, *key, &chain);
                }
            }
            Ok(Some(b))
        })
    }

    fn del(&mut self, att: &Attachment) -> Result<()> {
        let chain = attachment_chain(att);
        self.remove(&format!("removing port mappings for {att}"), |c| {
            *c == chain
        })
    }

    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()> {
        let prefix = format!("{CHAIN_PREFIX}{}-", network_hash(network));
        let keep: HashSet<String> = keep
            .iter()
            .filter(|a| a.network == network)
            .map(attachment_chain)
            .collect();
        self.remove(
            &format!("collecting port mapping garbage of network {network:?}"),
            |c| c.starts_with(&prefix) && !keep.contains(c),
        )
    }

    /// Verify the state `add` made: every port points at the attachment's chain, which holds
    /// one DNAT rule per mapping and container address.
    fn check(&mut self, p: &Publish) -> Result<()> {
        let (att, mappings, container_ips) = (&p.att, p.mappings, p.container_ips);
        let chain = attachment_chain(att);
        let missing = |what: String| Error::PortmapMissing {
            attachment: att.to_string(),
            what,
        };
        let sock = &mut self.sock;
        let rules = T
            .chain_rules(sock, &chain)?
            .ok_or_else(|| missing(format!("chain inet {TABLE} {chain} does not exist")))?;
        for dispatch in ["prerouting", "output"] {
            let base = T.chain_rules(sock, dispatch)?;
            if !base.is_some_and(|r| r.iter().any(|r| r.lookups.iter().any(|l| l == MAP))) {
                return Err(missing(format!(
                    "chain inet {TABLE} {dispatch} does not look up map {MAP}"
                )));
            }
        }
        let elements = port_elements(sock)?;
        for m in mappings {
            let key = (m.protocol, m.host_port);
            match elements.iter().find(|(k, _)| *k == key) {
                Some((_, Some(t))) if *t == chain => {}
                Some((_, t)) => {
                    return Err(missing(format!(
                        "map inet {TABLE} {MAP} sends {}/{} to {}, not {chain}",
                        m.protocol.name(),
                        m.host_port,
                        t.as_deref().unwrap_or("no chain")
                    )))
                }
                None => {
                    return Err(missing(format!(
                        "map inet {TABLE} {MAP} has no element for {}/{}",
                        m.protocol.name(),
                        m.host_port
                    )))
                }
            }
        }
        let dnat_rules = rules.iter().filter(|r| r.counter.is_some()).count();
        let expected = targets(mappings, container_ips).len();
        if dnat_rules != expected {
            return Err(missing(format!(
                "chain inet {TABLE} {chain} has {dnat_rules} DNAT rules, expected {expected}"
            )));
        }
        Ok(())
    }
}

/// The reference portmap's iptables chain of an attachment: `CNI-DN-` + 21 hex digits of
/// SHA-512(network ++ container id).
pub fn reference_dnat_chain(network: &str, container_id: &str) -> String {
    format!(
        "CNI-DN-{}",
        crate::naming::sha512_hex(&format!("{network}{container_id}"), 21)
    )
}

/// Remove what the reference portmap's iptables backend made for an attachment: its
/// `CNI-DN-<hash>` chain and the `CNI-HOSTPORT-DNAT` jumps to it, in both families and every
/// iptables flavour holding it (no command runs when none does). The shared chains
/// (`CNI-HOSTPORT-*`) stay, as the reference leaves them.
pub fn remove_reference_state(network: &str, container_id: &str) -> Result<()> {
    let chain = reference_dnat_chain(network, container_id);
    let action = format!("removing the reference portmap chain {chain}");
    let mut errors = crate::iptables::delete_everywhere("CNI-HOSTPORT-DNAT", &chain, &action);
    // The reference's nftables backend: rules commented with the container ID in tables
    // `ip cni_hostport` and `ip6 cni_hostport`.
    for family in [NFPROTO_IPV4, NFPROTO_IPV6] {
        let result = crate::reference::delete_commented_rules(
            &format!("removing the reference portmap rules of container {container_id:?}"),
            family,
            REFERENCE_NFT_TABLE,
            &REFERENCE_NFT_CHAINS,
            |comment| comment == container_id.as_bytes(),
        );
        if let Err(e) = result {
            errors.push(e);
        }
    }
    Error::all(errors)
}

/// The reference nftables backend's table (in families `ip` and `ip6`) and its chains holding
/// per-container rules.
pub const REFERENCE_NFT_TABLE: &str = "cni_hostport";
const REFERENCE_NFT_CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reference_chain_name_matches_observed_reference() {
        // From /usr/lib/cni/portmap v1.1.1 run for network "refnet", container "abc".
        assert_eq!(
            reference_dnat_chain("refnet", "abc"),
            "CNI-DN-03c6681062c8a10678640"
        );
    }

    #[test]
    fn keys_round_trip() {
        let k = element_key(Protocol::Udp, 8080);
        assert_eq!(key_from_bytes(&k), Some((Protocol::Udp, 8080)));
    }

    #[test]
    fn protocol_parse_is_case_insensitive() {
        assert_eq!(Protocol::parse("TCP"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("Sctp"), Some(Protocol::Sctp));
        assert_eq!(Protocol::parse("icmp"), None);
    }

    #[test]
    fn host_ip_family_selects_container_addresses() {
        let v4: IpNetwork = "10.0.0.2/24".parse().unwrap();
        let v6: IpNetwork = "fd00::2/64".parse().unwrap();
        let any = PortMapping {
            host_port: 80,
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        let only6 = PortMapping {
            host_ip: Some("fd00::1".parse().unwrap()),
            ..any
        };
        assert_eq!(targets(&[any], &[v4, v6]).len(), 2);
        assert_eq!(targets(&[only6], &[v4, v6]), vec![(only6, v6)]);
    }
}
