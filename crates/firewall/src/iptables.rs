//! iptables backend with the reference's exact rule shape, so either binary can delete what the
//! other made. Per attachment and family, in table `nat`:
//! ```text
//! -N CNI-e88f49d94512ff752ebe6070
//! -A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"abc\"" -j CNI-e88f49d94512ff752ebe6070
//! -A CNI-e88f49d94512ff752ebe6070 -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"abc\"" -j ACCEPT
//! -A CNI-e88f49d94512ff752ebe6070 ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"abc\"" -j MASQUERADE
//! ```
//! (ip6tables: `/128`, the v6 subnet, `! -d ff00::/8`.) The chain name ignores the interface,
//! as in the reference.
//!
//! Each operation is one `iptables -t nat -S` listing plus at most one
//! `iptables-restore --noflush` per family (the reference runs ~9 commands per address, each
//! listing the table). DEL finds the jump rules from the listing, so it needs no address.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::naming::{go_quote, reference_iptables_chain, reference_iptables_comment};
use crate::nft::session::Session;
use crate::nft::wire::{attr, MsgType, NFPROTO_IPV4, NFPROTO_IPV6};
use crate::{Attachment, MasqueradeBackend};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    pub(crate) fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    fn multicast(self) -> &'static str {
        match self {
            IpFamily::V4 => "224.0.0.0/4",
            IpFamily::V6 => "ff00::/8",
        }
    }

    fn host_prefix(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    pub(crate) fn stem(self) -> &'static str {
        match self {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        }
    }
}

/// Which iptables implementation holds (or should hold) the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Whatever `iptables` is on this host (what the reference uses).
    Default,
    /// iptables-nft: rules live in nftables tables `ip nat` / `ip6 nat`.
    Nft,
    /// iptables-legacy: rules live in the x_tables `nat` table.
    Legacy,
}

/// The pair of programs for one family and flavour.
pub(crate) struct Tool {
    list: PathBuf,
    restore: PathBuf,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tool {
    pub(crate) fn new(fam: IpFamily, flavor: Flavor) -> Tool {
        let stem = fam.stem();
        let suffix = match flavor {
            Flavor::Default => "",
            Flavor::Nft => "-nft",
            Flavor::Legacy => "-legacy",
        };
        let pick = |name: String, fallback: String| {
            find_program(&name)
                .or_else(|| find_program(&fallback))
                .unwrap_or_else(|| PathBuf::from(fallback))
        };
        Tool {
            list: pick(format!("{stem}{suffix}"), stem.to_string()),
            restore: pick(format!("{stem}{suffix}-restore"), format!("{stem}-restore")),
        }
    }
}

fn run(action: &str, program: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let fail = |detail: String| Error::Command {
        action: action.to_string(),
        command: command.clone(),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| fail(format!("writing its input: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{}: {}", out.status, stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `iptables -t nat -S` (whole table), one rule or chain per line.
pub(crate) fn list_nat(action: &str, tool: &Tool) -> Result<Vec<String>> {
    let out = run(action, &tool.list, &["-w", "-t", "nat", "-S"], None)?;
    Ok(out.lines().map(str::to_string).collect())
}

pub(crate) fn restore(action: &str, tool: &Tool, lines: &[String]) -> Result<()> {
    let mut input = String::from("*nat\n");
    for line in lines {
        input.push_str(line);
        input.push('\n');
    }
    input.push_str("COMMIT\n");
    run(action, &tool.restore, &["--noflush", "-w"], Some(&input)).map(|_| ())
}

/// `"..."` as `iptables -S` prints a comment argument.
pub(crate) fn quoted(comment: &str) -> String {
    format!("\"{}\"", escape(comment))
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The rules the reference makes for one attachment's addresses of one family, exactly as
/// `iptables -S` prints them: (chain rules, POSTROUTING jumps).
pub(crate) fn expected_rules(
    att: &Attachment,
    fam: IpFamily,
    addresses: &[IpNetwork],
) -> (Vec<String>, Vec<String>) {
    let chain = reference_iptables_chain(att.network, att.container_id);
    let comment = quoted(&reference_iptables_comment(att.network, att.container_id));
    let mut chain_rules = Vec::new();
    let mut jumps = Vec::new();
    for a in addresses.iter().filter(|a| IpFamily::of(a.ip()) == fam) {
        chain_rules.push(format!(
            "-A {chain} -d {}/{} -m comment --comment {comment} -j ACCEPT",
            a.network(),
            a.prefix()
        ));
        jumps.push(format!(
            "-A POSTROUTING -s {}/{} -m comment --comment {comment} -j {chain}",
            a.ip(),
            fam.host_prefix()
        ));
    }
    if !chain_rules.is_empty() {
        chain_rules.push(format!(
            "-A {chain} ! -d {} -m comment --comment {comment} -j MASQUERADE",
            fam.multicast()
        ));
    }
    chain_rules.dedup();
    jumps.dedup();
    (chain_rules, jumps)
}

fn is_jump_to(line: &str, chain: &str) -> bool {
    is_jump_from_to(line, "POSTROUTING", chain)
}

fn is_jump_from_to(line: &str, from: &str, chain: &str) -> bool {
    line.starts_with(&format!("-A {from} ")) && line.ends_with(&format!(" -j {chain}"))
}

/// Restore lines deleting `chain` and every POSTROUTING jump to it, given a listing.
fn deletion_lines(listing: &[String], chain: &str) -> Vec<String> {
    deletion_lines_from(listing, "POSTROUTING", chain)
}

/// Restore lines deleting `chain` and every jump to it from chain `from`, given a listing.
fn deletion_lines_from(listing: &[String], from: &str, chain: &str) -> Vec<String> {
    let mut lines: Vec<String> = listing
        .iter()
        .filter(|l| is_jump_from_to(l, from, chain))
        .map(|l| format!("-D{}", &l[2..]))
        .collect();
    if listing.iter().any(|l| *l == format!("-N {chain}")) {
        lines.push(format!("-F {chain}"));
        lines.push(format!("-X {chain}"));
    }
    lines
}

/// Remove one reference-shaped nat chain and its jumps from chain `from`.
pub(crate) fn delete_chain_from(
    fam: IpFamily,
    flavor: Flavor,
    from: &str,
    chain: &str,
    action: &str,
) -> Result<()> {
    let tool = Tool::new(fam, flavor);
    let listing = list_nat(action, &tool)?;
    let lines = deletion_lines_from(&listing, from, chain);
    if lines.is_empty() {
        return Ok(());
    }
    restore(action, &tool, &lines)
}

/// Which iptables flavours may hold `chain` in their nat table (any chain when `None`: which
/// have a nat table at all), found without running anything: a netlink lookup for
/// iptables-nft, `/proc/net/ip*_tables_names` for legacy. If netlink is unusable we cannot
/// tell, and answer the host's default `iptables`.
pub(crate) fn flavors_holding(fam: IpFamily, chain: Option<&str>) -> Vec<Flavor> {
    let mut out = Vec::new();
    let nfproto = match fam {
        IpFamily::V4 => NFPROTO_IPV4,
        IpFamily::V6 => NFPROTO_IPV6,
    };
    let nft = Session::open().and_then(|mut sock| match chain {
        Some(chain) => sock.get(
            "looking up an iptables-nft chain",
            MsgType::GetChain,
            nfproto,
            |m| {
                m.put_str(attr::CHAIN_TABLE, "nat");
                m.put_str(attr::CHAIN_NAME, chain);
            },
        ),
        None => sock.get("looking up table nat", MsgType::GetTable, nfproto, |m| {
            m.put_str(attr::TABLE_NAME, "nat")
        }),
    });
    match nft {
        Ok(Some(_)) => out.push(Flavor::Nft),
        Ok(None) => {}
        Err(_) => return vec![Flavor::Default],
    }
    let names = match fam {
        IpFamily::V4 => "/proc/net/ip_tables_names",
        IpFamily::V6 => "/proc/net/ip6_tables_names",
    };
    if std::fs::read_to_string(names).is_ok_and(|s| s.lines().any(|l| l.trim() == "nat")) {
        out.push(Flavor::Legacy);
    }
    out
}

/// Remove the attachment's chain and jumps from every iptables flavour that may hold them;
/// runs no command when none does. Returns every failure.
pub(crate) fn delete_attachment(att: &Attachment, action: &str) -> Vec<Error> {
    let chain = reference_iptables_chain(att.network, att.container_id);
    delete_everywhere("POSTROUTING", &chain, action)
}

/// Remove nat chain `chain` and the jumps to it from `from` in every iptables flavour and
/// family that may hold it. Returns every failure.
pub(crate) fn delete_everywhere(from: &str, chain: &str, action: &str) -> Vec<Error> {
    let mut errors = Vec::new();
    for fam in IpFamily::ALL {
        for flavor in flavors_holding(fam, Some(chain)) {
            if let Err(e) = delete_chain_from(fam, flavor, from, chain, action) {
                errors.push(e);
            }
        }
    }
    errors
}

/// Masquerade with iptables rules shaped exactly like the reference's.
#[derive(Debug, Default)]
pub struct IptablesBackend {
    _private: (),
}

impl IptablesBackend {
    pub fn new() -> Self {
        IptablesBackend::default()
    }
}

impl MasqueradeBackend for IptablesBackend {
    fn add(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()> {
        let chain = reference_iptables_chain(att.network, att.container_id);
        let action = format!("adding iptables masquerade for {att}");
        for fam in IpFamily::ALL {
            let (chain_rules, jumps) = expected_rules(att, fam, addresses);
            if chain_rules.is_empty() {
                continue;
            }
            let tool = Tool::new(fam, Flavor::Default);
            let listing = list_nat(&action, &tool)?;
            // Declaring an existing chain with --noflush empties it: the chain is rewritten.
            let mut lines = vec![format!(":{chain} - [0:0]")];
            lines.extend(chain_rules);
            for old in listing.iter().filter(|l| is_jump_to(l, &chain)) {
                if !jumps.contains(old) {
                    lines.push(format!("-D{}", &old[2..]));
                }
            }
            for jump in jumps {
                if !listing.contains(&jump) {
                    lines.push(jump);
                }
            }
            restore(&action, &tool, &lines)?;
        }
        Ok(())
    }

    fn del(&mut self, att: &Attachment) -> Result<()> {
        let action = format!("removing iptables masquerade for {att}");
        Error::all(delete_attachment(att, &action))
    }

    fn check(&mut self, att: &Attachment, addresses: &[IpNetwork]) -> Result<()> {
        let chain = reference_iptables_chain(att.network, att.container_id);
        let action = format!("checking iptables masquerade for {att}");
        for fam in IpFamily::ALL {
            let (chain_rules, jumps) = expected_rules(att, fam, addresses);
            if chain_rules.is_empty() {
                continue;
            }
            let listing = list_nat(&action, &Tool::new(fam, Flavor::Default))?;
            let want = std::iter::once(format!("-N {chain}"))
                .chain(chain_rules)
                .chain(jumps);
            for line in want {
                if !listing.contains(&line) {
                    return Err(Error::Missing {
                        attachment: att.to_string(),
                        what: format!("{} nat table lacks `{line}`", fam.stem()),
                    });
                }
            }
        }
        Ok(())
    }

    fn gc(&mut self, network: &str, keep: &[Attachment]) -> Result<()> {
        gc_chains(network, keep, &[Flavor::Default])
    }
}

/// Delete the reference-shaped chains of `network` whose container is not in `keep`, found by
/// the comment on their POSTROUTING jumps.
pub(crate) fn gc_chains(network: &str, keep: &[Attachment], flavors: &[Flavor]) -> Result<()> {
    let keep: Vec<String> = keep
        .iter()
        .filter(|a| a.network == network)
        .map(|a| reference_iptables_chain(a.network, a.container_id))
        .collect();
    // The comment's network part, as `iptables -S` prints it: `--comment "name: \"net\" id: `.
    let marker = format!("--comment \"name: {} id: ", escape(&go_quote(network)));
    let action = format!("collecting iptables masquerade garbage of network {network:?}");
    let mut errors = Vec::new();
    for fam in IpFamily::ALL {
        for &flavor in flavors {
            let tool = Tool::new(fam, flavor);
            let listing = match list_nat(&action, &tool) {
                Ok(l) => l,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let mut stale: Vec<&str> = listing
                .iter()
                .filter(|l| l.starts_with("-A POSTROUTING ") && l.contains(&marker))
                .filter_map(|l| l.rsplit_once(" -j ").map(|(_, target)| target))
                .filter(|t| t.starts_with("CNI-") && !keep.iter().any(|k| k == t))
                .collect();
            stale.sort_unstable();
            stale.dedup();
            let lines: Vec<String> = stale
                .iter()
                .flat_map(|chain| deletion_lines(&listing, chain))
                .collect();
            if !lines.is_empty() {
                if let Err(e) = restore(&action, &tool, &lines) {
                    errors.push(e);
                }
            }
        }
    }
    Error::all(errors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn expected_rules_match_observed_reference_output() {
        let att = Attachment {
            network: "mynet",
            container_id: "abc",
            ifname: "eth0",
        };
        let addrs: Vec<IpNetwork> = vec!["10.88.0.2/16".parse().unwrap()];
        let (chain, jumps) = expected_rules(&att, IpFamily::V4, &addrs);
        assert_eq!(
            chain,
            vec![
                r#"-A CNI-e88f49d94512ff752ebe6070 -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"abc\"" -j ACCEPT"#,
                r#"-A CNI-e88f49d94512ff752ebe6070 ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"abc\"" -j MASQUERADE"#,
            ]
        );
        assert_eq!(
            jumps,
            vec![
                r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"abc\"" -j CNI-e88f49d94512ff752ebe6070"#
            ]
        );
        let (v6, _) = expected_rules(&att, IpFamily::V6, &addrs);
        assert!(v6.is_empty());
    }

    #[test]
    fn deletion_removes_jumps_then_chain() {
        let listing: Vec<String> = [
            "-P POSTROUTING ACCEPT",
            "-N CNI-x",
            "-A POSTROUTING -s 10.0.0.2/32 -m comment --comment \"c\" -j CNI-x",
            "-A POSTROUTING -s 10.0.0.3/32 -m comment --comment \"c\" -j CNI-y",
            "-A CNI-x -d 10.0.0.0/24 -j ACCEPT",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            deletion_lines(&listing, "CNI-x"),
            vec![
                "-D POSTROUTING -s 10.0.0.2/32 -m comment --comment \"c\" -j CNI-x",
                "-F CNI-x",
                "-X CNI-x"
            ]
        );
        assert!(deletion_lines(&listing, "CNI-z").is_empty());
    }
}
