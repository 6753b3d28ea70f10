//! Kernel tests of `firewall::portmap`'s nftables table, each in a fresh network namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use firewall::portmap::{
    PortMapper, PortMapping, PortmapNft, Protocol, Publish, SnatOptions, TABLE,
};
use firewall::Attachment;
use ipnetwork::IpNetwork;

mod common;
use common::*;

fn publish<'a>(
    att: Attachment<'a>,
    mappings: &'a [PortMapping],
    container_ips: &'a [IpNetwork],
    opts: SnatOptions,
) -> Publish<'a> {
    Publish {
        att,
        mappings,
        container_ips,
        opts,
    }
}

fn mapping(host_port: u16) -> Vec<PortMapping> {
    vec![PortMapping {
        host_port,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    }]
}

fn ips(addr: &str) -> Vec<IpNetwork> {
    vec![addr.parse().unwrap()]
}

/// Handles of the rules in the three base chains, in listing order.
fn base_rule_handles() -> Vec<(String, u64)> {
    objects(None, "rule", TABLE)
        .iter()
        .filter(|r| ["prerouting", "output", "postrouting"].contains(&r["chain"].as_str().unwrap()))
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["handle"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn add_keeps_an_intact_skeleton_and_repairs_or_rebuilds_it() {
    in_netns("portmap_add_keeps_an_intact_skeleton", || {
        let opts = |mark_bit| SnatOptions {
            snat: true,
            mark_bit,
        };
        let att = |id: &'static str| Attachment {
            network: "pmnet",
            container_id: id,
            ifname: "eth0",
        };
        let mut nft = PortmapNft::new().unwrap();
        nft.add(&publish(
            att("a"),
            &mapping(8001),
            &ips("10.9.0.2/24"),
            opts(13),
        ))
        .unwrap();
        let handles = base_rule_handles();
        assert_eq!(handles.len(), 3, "{}", ruleset_text());

        // Intact: a second attachment's ADD leaves the base rules alone (same handles).
        nft.add(&publish(
            att("b"),
            &mapping(8002),
            &ips("10.9.0.3/24"),
            opts(13),
        ))
        .unwrap();
        assert_eq!(base_rule_handles(), handles);

        // Another mark bit: the masquerade rule must follow it, so the skeleton is rebuilt.
        nft.add(&publish(
            att("c"),
            &mapping(8003),
            &ips("10.9.0.4/24"),
            opts(5),
        ))
        .unwrap();
        let text = ruleset_text();
        assert!(
            text.contains("meta mark & 0x00000020 != 0x00000000"),
            "{text}"
        );
        assert_ne!(base_rule_handles(), handles);

        // A dispatch rule deleted behind our back: the next ADD puts it back.
        let output = base_rule_handles()
            .into_iter()
            .find(|(c, _)| c == "output")
            .unwrap();
        nft_apply(&format!(
            "delete rule inet {TABLE} output handle {}\n",
            output.1
        ));
        nft.add(&publish(
            att("d"),
            &mapping(8004),
            &ips("10.9.0.5/24"),
            opts(5),
        ))
        .unwrap();
        assert_eq!(base_rule_handles().len(), 3, "{}", ruleset_text());
        for (id, port, ip) in [("a", 8001, "10.9.0.2/24"), ("d", 8004, "10.9.0.5/24")] {
            nft.check(&publish(att(id), &mapping(port), &ips(ip), opts(5)))
                .unwrap();
        }
    });
}
