//! Names, hashes and comments that identify one attachment's masquerade state.
//!
//! Three layouts must be recognised:
//! - ours (nftables, [`crate::nft`]): one chain per attachment named from the same hashes the
//!   reference's nftables backend puts in its rule comments;
//! - the reference's iptables backend: chain `CNI-` + 24 hex digits of
//!   SHA-512(network name ++ container id), comment `name: "<net>" id: "<cid>"` (Go `%q`);
//! - the reference's nftables backend (v1.6+): rules in `inet cni_plugins_masquerade` chain
//!   `masq_checks` whose comment starts with `H(net)-H(ifname:cid)`, H = 16 hex digits of SHA-512.

use sha2::{Digest, Sha512};

use crate::Attachment;

/// Longest comment the reference's nftables backend writes (knftables' limit); longer ones are
/// cut at this many bytes.
const REFERENCE_NFT_COMMENT_MAX: usize = 128;

/// The first `len` lowercase hex digits of SHA-512(`input`).
pub(crate) fn sha512_hex(input: &str, len: usize) -> String {
    let digest = Sha512::digest(input.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out.truncate(len);
    out
}

/// Hash identifying a network in nftables comments and chain names (reference: `hashForNetwork`).
pub(crate) fn network_hash(network: &str) -> String {
    sha512_hex(network, 16)
}

/// Hash identifying one attachment (reference: `hashForInstance`): `H(net)-H(ifname:cid)`.
/// An interface name cannot contain `:`, so the input is unambiguous.
pub(crate) fn instance_hash(att: &Attachment) -> String {
    format!(
        "{}-{}",
        network_hash(att.network),
        sha512_hex(&format!("{}:{}", att.ifname, att.container_id), 16)
    )
}

/// The reference iptables backend's per-attachment chain: `CNI-` + 24 hex digits of
/// SHA-512(network ++ container id). The interface name is not part of it.
pub fn reference_iptables_chain(network: &str, container_id: &str) -> String {
    format!(
        "CNI-{}",
        sha512_hex(&format!("{network}{container_id}"), 24)
    )
}

/// The reference iptables backend's rule comment: `name: "<net>" id: "<cid>"`, quoted like Go's `%q`.
pub fn reference_iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// The comment the reference's nftables backend gives an attachment's rule.
pub(crate) fn reference_nft_comment(att: &Attachment) -> Vec<u8> {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(att),
        strip(att.network),
        strip(att.ifname),
        strip(att.container_id)
    )
    .into_bytes();
    comment.truncate(REFERENCE_NFT_COMMENT_MAX);
    comment
}

/// Quote like Go's `strconv.Quote`, for the characters a CNI name can plausibly hold.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn att<'a>(network: &'a str, container_id: &'a str, ifname: &'a str) -> Attachment<'a> {
        Attachment {
            network,
            container_id,
            ifname,
        }
    }

    #[test]
    fn reference_iptables_chain_matches_observed_vector() {
        // Observed from the reference bridge plugin: network "mynet", container "abc".
        assert_eq!(
            reference_iptables_chain("mynet", "abc"),
            "CNI-e88f49d94512ff752ebe6070"
        );
    }

    #[test]
    fn reference_comment_uses_go_quoting() {
        assert_eq!(
            reference_iptables_comment("mynet", "abc"),
            r#"name: "mynet" id: "abc""#
        );
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }

    #[test]
    fn reference_nft_hashes_match_upstream_vectors() {
        assert_eq!(network_hash("unit-test"), "6fd94d501e58f0aa");
        assert_eq!(network_hash("alternate"), "82783ef24bdc7036");
        assert_eq!(sha512_hex("eth0:one", 16), "287fc69eff0574a2");
        assert_eq!(sha512_hex("net1:three", 16), "acb19d111858e348");
        assert_eq!(
            instance_hash(&att("mynet", "abc", "eth0")),
            "d23676b4f2d9fe04-e65086f8a75535c6"
        );
    }

    #[test]
    fn reference_nft_comment_is_truncated_and_unquoted() {
        let c = reference_nft_comment(&att("n\"et", "abc", "eth0"));
        assert!(c.ends_with(b", net: net, if: eth0, id: abc"));
        let long = "x".repeat(200);
        assert_eq!(
            reference_nft_comment(&att("n", &long, "eth0")).len(),
            REFERENCE_NFT_COMMENT_MAX
        );
    }
}
