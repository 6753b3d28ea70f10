//! Removing what the Go reference plugin made for an attachment, whichever of its backends
//! made it, so nodes can switch binaries and DEL/GC still leave nothing behind.
//!
//! - iptables backend (all versions): chain `CNI-<24 hex>` in table nat plus its POSTROUTING
//!   jumps (see [`crate::iptables`]). Looked up first over netlink (iptables-nft keeps it in
//!   nftables table `ip nat`) and in `/proc/net/ip*_tables_names` (iptables-legacy); a command
//!   runs only if the chain may exist.
//! - nftables backend (v1.6+): rules in `inet cni_plugins_masquerade` chain `masq_checks`,
//!   one per address, whose comment starts with `H(net)-H(ifname:cid)`. One netlink lookup
//!   tells whether the table exists; only then is that chain listed.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::iptables::{self, flavors_holding, IpFamily};
use crate::naming::{instance_hash, network_hash, reference_nft_comment};
use crate::nft::objects::Table;
use crate::nft::session::Session;
use crate::nft::wire::NFPROTO_INET;
use crate::Attachment;

/// The reference's nftables table (family inet).
pub const REFERENCE_TABLE: &str = "cni_plugins_masquerade";
/// The chain of the reference's table holding one rule per pod address.
pub const REFERENCE_CHAIN: &str = "masq_checks";

/// Remove the reference's iptables chain and nftables rules for `att`. Missing state is success;
/// every failure is reported, after trying everything.
pub fn remove_reference_state(att: &Attachment) -> Result<()> {
    let action = format!("removing the reference's iptables masquerade for {att}");
    let mut errors = iptables::delete_attachment(att, &action);
    let prefix = instance_hash(att);
    let action = format!("removing the reference's nftables masquerade for {att}");
    if let Err(e) =
        delete_reference_rules(&action, |comment| comment.starts_with(prefix.as_bytes()))
    {
        errors.push(e);
    }
    Error::all(errors)
}

/// Remove the reference's state for `network` except that of the attachments in `keep`.
///
/// nftables rules are matched by their comment. The reference's iptables chains are found by
/// the comment of their POSTROUTING jumps, which costs one listing per family and iptables
/// flavour in use.
pub fn gc_reference_state(network: &str, keep: &[Attachment]) -> Result<()> {
    let mut errors = Vec::new();
    let mut flavors = Vec::new();
    // Any chain would do for the probe: it answers which flavours have a nat table at all.
    for fam in [IpFamily::V4, IpFamily::V6] {
        for f in flavors_holding(fam, None) {
            if !flavors.contains(&f) {
                flavors.push(f);
            }
        }
    }
    if !flavors.is_empty() {
        if let Err(e) = iptables::gc_chains(network, keep, &flavors) {
            errors.push(e);
        }
    }
    let net_prefix = format!("{}-", network_hash(network));
    let keep: HashSet<Vec<u8>> = keep
        .iter()
        .filter(|a| a.network == network)
        .map(reference_nft_comment)
        .collect();
    let action =
        format!("collecting the reference's nftables masquerade garbage of network {network:?}");
    if let Err(e) = delete_reference_rules(&action, |c| {
        c.starts_with(net_prefix.as_bytes()) && !keep.contains(c)
    }) {
        errors.push(e);
    }
    Error::all(errors)
}

/// Delete the rules of the reference's `masq_checks` chain whose comment `doomed` selects.
fn delete_reference_rules(action: &str, doomed: impl Fn(&[u8]) -> bool) -> Result<()> {
    delete_commented_rules(
        action,
        NFPROTO_INET,
        REFERENCE_TABLE,
        &[REFERENCE_CHAIN],
        doomed,
    )
}

/// Delete the rules of `chains` in `table` (of nf `family`) whose comment `doomed` selects, in
/// one transaction; a missing table or chain is nothing to do.
pub(crate) fn delete_commented_rules(
    action: &str,
    family: u8,
    table: &str,
    chains: &[&str],
    doomed: impl Fn(&[u8]) -> bool,
) -> Result<()> {
    let table = Table {
        family,
        name: table,
    };
    let mut sock = Session::open()?;
    if !table.exists(&mut sock)? {
        return Ok(());
    }
    sock.transact(action, |sock, genid| {
        let mut batch = sock.batch(Some(genid));
        for chain in chains {
            let Some(rules) = table.chain_rules(sock, chain)? else {
                continue;
            };
            for rule in rules
                .iter()
                .filter(|r| r.comment.as_deref().is_some_and(&doomed))
            {
                table.push_delete_rule(&mut batch, chain, rule.handle);
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    })
}
