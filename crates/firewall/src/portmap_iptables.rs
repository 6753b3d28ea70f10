//! Host port mappings as the reference portmap's iptables backend writes them, so a node can
//! swap binaries either way:
//! ```text
//! -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! -A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net\" id: \"cid\"" -m multiport --dports 8080 -j CNI-DN-<hash>
//! -A CNI-DN-<hash> -s 10.5.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
//! -A CNI-DN-<hash> -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
//! -A CNI-DN-<hash> -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.5.0.2:80
//! ```
//! With `externalSetMarkChain` the marking rules jump to that chain and the shared
//! SETMARK/MASQ chains are not made (whoever owns the chain masquerades); `conditionsV4/V6` are
//! appended to the jumps, as the reference does.
//! DEL is [`crate::portmap::remove_reference_state`]: the chain and its jumps.

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use std::collections::BTreeSet;

use crate::iptables::{
    delete_everywhere, escape, list_nat, quoted, restore, Flavor, IpFamily, Tool,
};
use crate::naming::go_quote;
use crate::nft::expr::subnet_of;
use crate::portmap::{
    reference_dnat_chain, remove_reference_state, PortMapper, PortMapping, Protocol, Publish,
    SnatOptions,
};
use crate::Attachment;

pub const DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
pub const SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
pub const MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";

/// The reference's iptables-only options.
#[derive(Debug, Clone, Copy, Default)]
pub struct IptablesOptions<'a> {
    /// `conditionsV4`: iptables match arguments appended to the IPv4 jumps.
    pub conditions_v4: &'a [String],
    /// `conditionsV6`: the same for IPv6.
    pub conditions_v6: &'a [String],
    /// `externalSetMarkChain`: mark through this chain instead of `CNI-HOSTPORT-SETMARK`.
    pub external_set_mark_chain: Option<&'a str>,
}

impl IptablesOptions<'_> {
    fn conditions(&self, fam: IpFamily) -> &[String] {
        match fam {
            IpFamily::V4 => self.conditions_v4,
            IpFamily::V6 => self.conditions_v6,
        }
    }

    fn set_mark_chain(&self) -> &str {
        self.external_set_mark_chain.unwrap_or(SETMARK_CHAIN)
    }
}

/// One iptables-restore token: quoted when it holds a space or a quote.
fn token(arg: &str) -> String {
    if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        quoted(arg)
    } else {
        arg.to_string()
    }
}

fn shared_rules(bit: u32) -> Vec<String> {
    vec![
        format!("-A PREROUTING -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}"),
        format!("-A OUTPUT -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}"),
        format!(
            "-A POSTROUTING -m comment --comment {} -j {MASQ_CHAIN}",
            quoted("CNI portfwd requiring masquerade")
        ),
        format!("-A {MASQ_CHAIN} -m mark --mark {bit:#x}/{bit:#x} -j MASQUERADE"),
        format!(
            "-A {SETMARK_CHAIN} -m comment --comment {} -j MARK --set-xmark {bit:#x}/{bit:#x}",
            quoted("CNI portfwd masquerade mark")
        ),
    ]
}

fn host_match(fam: IpFamily, m: &PortMapping) -> Option<String> {
    let host = m.host_ip?;
    let len = if fam == IpFamily::V4 { 32 } else { 128 };
    Some(format!("-d {host}/{len} "))
}

/// The attachment's chain rules and `CNI-HOSTPORT-DNAT` jumps for one family.
fn attachment_rules(
    att: &Attachment,
    fam: IpFamily,
    mappings: &[PortMapping],
    container: IpNetwork,
    opts: SnatOptions,
    extra: IptablesOptions,
) -> (Vec<String>, Vec<String>) {
    let set_mark = extra.set_mark_chain();
    let chain = reference_dnat_chain(att.network, att.container_id);
    let comment = format!(
        "dnat name: {} id: {}",
        go_quote(att.network),
        go_quote(att.container_id)
    );
    let mine: Vec<&PortMapping> = mappings
        .iter()
        .filter(|m| m.host_ip.is_none_or(|h| IpFamily::of(h) == fam))
        .collect();
    let mut rules = Vec::new();
    for m in &mine {
        let p = m.protocol.name();
        let dest = host_match(fam, m).unwrap_or_default();
        let matcher = format!("{dest}-p {p} -m {p} --dport {}", m.host_port);
        if opts.snat {
            rules.push(format!(
                "-A {chain} -s {} {matcher} -j {set_mark}",
                subnet_of(container)
            ));
            if fam == IpFamily::V4 {
                rules.push(format!(
                    "-A {chain} -s 127.0.0.1/32 {matcher} -j {set_mark}"
                ));
            }
        }
        let to = match fam {
            IpFamily::V4 => format!("{}:{}", container.ip(), m.container_port),
            IpFamily::V6 => format!("[{}]:{}", container.ip(), m.container_port),
        };
        rules.push(format!(
            "-A {chain} {matcher} -j DNAT --to-destination {to}"
        ));
    }
    let conditions: String = extra
        .conditions(fam)
        .iter()
        .map(|c| format!("{} ", token(c)))
        .collect();
    let mut jumps = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        let ports: Vec<String> = mine
            .iter()
            .filter(|m| m.protocol == proto)
            .map(|m| m.host_port.to_string())
            .collect();
        if !ports.is_empty() {
            jumps.push(format!(
                "-A {DNAT_CHAIN} -p {} -m comment --comment {} -m multiport --dports {} {conditions}-j {chain}",
                proto.name(),
                quoted(&comment),
                ports.join(",")
            ));
        }
    }
    (rules, jumps)
}

/// The first container address of `fam`.
fn address_of(fam: IpFamily, container_ips: &[IpNetwork]) -> Option<IpNetwork> {
    container_ips
        .iter()
        .copied()
        .find(|a| IpFamily::of(a.ip()) == fam)
}

/// Install the attachment's mappings with reference-shaped iptables rules.
fn add(p: &Publish, extra: IptablesOptions) -> Result<()> {
    let (att, mappings, container_ips, opts) = (&p.att, p.mappings, p.container_ips, p.opts);
    let chain = reference_dnat_chain(att.network, att.container_id);
    let bit = 1u32 << (opts.mark_bit % 32);
    let action = format!("adding iptables port mappings for {att}");
    for fam in [IpFamily::V4, IpFamily::V6] {
        let Some(container) = address_of(fam, container_ips) else {
            continue;
        };
        let (rules, jumps) = attachment_rules(att, fam, mappings, container, opts, extra);
        if rules.is_empty() {
            continue;
        }
        let tool = Tool::new(fam, Flavor::Default);
        let listing = list_nat(&action, &tool)?;
        let mut lines = Vec::new();
        // The masquerade half belongs to the external chain's owner when there is one.
        let (shared_chains, shared): (&[&str], Vec<String>) = match extra.external_set_mark_chain {
            None => (&[DNAT_CHAIN, SETMARK_CHAIN, MASQ_CHAIN], shared_rules(bit)),
            Some(_) => (
                &[DNAT_CHAIN],
                shared_rules(bit).into_iter().take(2).collect(),
            ),
        };
        // Declaring an existing chain with --noflush empties it: shared chains only if missing.
        for shared in shared_chains {
            if !listing.contains(&format!("-N {shared}")) {
                lines.push(format!(":{shared} - [0:0]"));
            }
        }
        for rule in shared {
            if !listing.contains(&rule) {
                lines.push(rule);
            }
        }
        lines.push(format!(":{chain} - [0:0]"));
        lines.extend(rules);
        for old in listing.iter().filter(|l| {
            l.starts_with(&format!("-A {DNAT_CHAIN} ")) && l.ends_with(&format!(" -j {chain}"))
        }) {
            lines.push(format!("-D{}", &old[2..]));
        }
        lines.extend(jumps);
        restore(&action, &tool, &lines)?;
    }
    Ok(())
}

/// Whether `listing` holds `jump`: iptables prints conditions in its own order (`-s` first),
/// so a jump matches on its protocol, ports, target and each condition token.
fn has_jump(listing: &[String], jump: &str, conditions: &[String]) -> bool {
    if conditions.is_empty() {
        return listing.iter().any(|l| l == jump);
    }
    let Some(head) = jump.split(" -m comment").next() else {
        return false;
    };
    let proto = head.trim_start_matches(&format!("-A {DNAT_CHAIN} "));
    let Some(ports) = jump
        .split(" --dports ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
    else {
        return false;
    };
    let Some(target) = jump.rsplit(" -j ").next() else {
        return false;
    };
    listing.iter().any(|l| {
        l.starts_with(&format!("-A {DNAT_CHAIN} "))
            && l.contains(proto)
            && l.contains(&format!("--dports {ports} "))
            && l.ends_with(&format!(" -j {target}"))
            && conditions
                .iter()
                .all(|c| l.contains(c.split('/').next().unwrap_or(c)))
    })
}

/// Verify the rules `add` made are all there.
fn check(p: &Publish, extra: IptablesOptions) -> Result<()> {
    let (att, mappings, container_ips, opts) = (&p.att, p.mappings, p.container_ips, p.opts);
    let action = format!("checking iptables port mappings for {att}");
    for fam in [IpFamily::V4, IpFamily::V6] {
        let Some(container) = address_of(fam, container_ips) else {
            continue;
        };
        let (rules, jumps) = attachment_rules(att, fam, mappings, container, opts, extra);
        let listing = list_nat(&action, &Tool::new(fam, Flavor::Default))?;
        let absent_jump = jumps
            .iter()
            .find(|j| !has_jump(&listing, j, extra.conditions(fam)));
        if let Some(absent) = rules.iter().find(|r| !listing.contains(r)).or(absent_jump) {
            return Err(Error::PortmapMissing {
                attachment: att.to_string(),
                what: format!("{} rule missing: {absent}", fam.stem()),
            });
        }
    }
    Ok(())
}

/// The `CNI-DN-` chains of `network` that the `CNI-HOSTPORT-DNAT` jumps in `listing` lead to,
/// found by the jumps' `dnat name: "<network>" id: ...` comment.
fn network_chains(listing: &[String], network: &str) -> BTreeSet<String> {
    let marker = format!(
        "--comment \"{}",
        escape(&format!("dnat name: {} id: ", go_quote(network)))
    );
    listing
        .iter()
        .filter(|l| l.starts_with(&format!("-A {DNAT_CHAIN} ")) && l.contains(&marker))
        .filter_map(|l| l.rsplit(" -j ").next())
        .filter(|c| c.starts_with("CNI-DN-"))
        .map(str::to_string)
        .collect()
}

/// Remove the iptables port mappings (ours or the reference's, same shape) of every attachment
/// of `network` that is not in `keep`.
pub fn gc(network: &str, keep: &[Attachment]) -> Result<()> {
    let keep: BTreeSet<String> = keep
        .iter()
        .filter(|a| a.network == network)
        .map(|a| reference_dnat_chain(a.network, a.container_id))
        .collect();
    let action = format!("collecting iptables port mapping garbage of network {network:?}");
    let mut stale = BTreeSet::new();
    for fam in [IpFamily::V4, IpFamily::V6] {
        let listing = list_nat(&action, &Tool::new(fam, Flavor::Default))?;
        stale.extend(
            network_chains(&listing, network)
                .into_iter()
                .filter(|c| !keep.contains(c)),
        );
    }
    Error::all(
        stale
            .iter()
            .flat_map(|chain| delete_everywhere(DNAT_CHAIN, chain, &action))
            .collect(),
    )
}

/// Port mappings with reference-shaped iptables rules, as a [`PortMapper`].
pub struct PortmapIptables<'a> {
    extra: IptablesOptions<'a>,
}

impl<'a> PortmapIptables<'a> {
    pub fn new(extra: IptablesOptions<'a>) -> Self {
        PortmapIptables { extra }
    }
}

impl PortMapper for PortmapIptables<'_> {
    fn add(&mut self, p: &Publish) -> Result<()> {
        add(p, self.extra)
    }

    fn check(&mut self, p: &Publish) -> Result<()> {
        check(p, self.extra)
    }

    /// The chain is the reference's, so removing the reference's state removes ours.
    fn del(&mut self, att: &Attachment) -> Result<()> {
        remove_reference_state(att.network, att.container_id)
    }

    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()> {
        gc(network, keep)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn network_chains_are_found_by_comment() {
        let listing = vec![
            "-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"refnet\\\" id: \\\"abc\\\"\" -m multiport --dports 8080 -j CNI-DN-03c6681062c8a10678640".to_string(),
            "-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"other\\\" id: \\\"abc\\\"\" -m multiport --dports 8081 -j CNI-DN-ffffffffffffffffffff0".to_string(),
        ];
        let found = network_chains(&listing, "refnet");
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec!["CNI-DN-03c6681062c8a10678640".to_string()]
        );
    }
}
