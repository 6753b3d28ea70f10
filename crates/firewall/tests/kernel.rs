//! Kernel tests: each runs on its own thread inside a fresh network namespace and asserts on the
//! state `nft` and `iptables` report there. The host's firewall is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use firewall::{
    gc_reference_state, reference_iptables_chain, remove_reference_state, Attachment,
    IptablesBackend, MasqueradeBackend, NftablesBackend,
};
use ipnetwork::IpNetwork;
use serde_json::Value;

mod common;
use common::*;

fn map_elements(map: &str) -> Vec<String> {
    map_jumps(None, "cni_masquerade_rs", map)
        .into_iter()
        .map(|(key, target)| format!("{key} : {target}"))
        .collect()
}

fn iptables_s(program: &str) -> Vec<String> {
    run(program, &["-w", "-t", "nat", "-S"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn att<'a>(network: &'a str, container_id: &'a str, ifname: &'a str) -> Attachment<'a> {
    Attachment {
        network,
        container_id,
        ifname,
    }
}

fn our_chain(a: &Attachment) -> String {
    firewall::masquerade::attachment_chain(a)
}

// ---------------------------------------------------------------------------------------------
// nftables backend

#[test]
fn nft_add_creates_counted_rules_visible_to_nft() {
    in_netns("nft_add_creates_counted_rules_visible_to_nft", || {
        let a = att("mynet", "abc", "eth0");
        let mut nft = NftablesBackend::new().unwrap();
        nft.add(&a, &[net("10.1.0.5/24"), net("fd00:1::5/64")])
            .unwrap();

        let text = ruleset_text();
        let chain = our_chain(&a);
        assert!(text.contains("table inet cni_masquerade_rs {"), "{text}");
        assert!(
            text.contains("type nat hook postrouting priority srcnat; policy accept;"),
            "{text}"
        );
        assert!(text.contains("ip saddr vmap @pods_ipv4"), "{text}");
        assert!(text.contains("ip6 saddr vmap @pods_ipv6"), "{text}");
        assert!(text.contains(&format!("10.1.0.5 : jump {chain}")), "{text}");
        assert!(
            text.contains(&format!("fd00:1::5 : jump {chain}")),
            "{text}"
        );
        assert!(
            text.contains(
                "ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 \
                 counter packets 0 bytes 0 masquerade comment \"net: mynet, if: eth0, id: abc\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ip6 saddr fd00:1::5 ip6 daddr != fd00:1::/64 ip6 daddr != ff00::/8 \
                 counter packets 0 bytes 0 masquerade"
            ),
            "{text}"
        );

        // The JSON view has a counter object on each pod rule.
        let rules: Vec<Value> = objects(None, "rule", "cni_masquerade_rs")
            .into_iter()
            .filter(|r| r["chain"] == chain.as_str())
            .collect();
        assert_eq!(rules.len(), 2);
        for rule in &rules {
            let exprs = rule["expr"].as_array().unwrap();
            assert!(exprs.iter().any(|e| e["counter"]["packets"] == 0), "{rule}");
            assert!(
                exprs.iter().any(|e| e.get("masquerade").is_some()),
                "{rule}"
            );
        }

        // No traffic yet, so check is satisfied by the rules alone.
        nft.check(&a, &[net("10.1.0.5/24"), net("fd00:1::5/64")])
            .unwrap();

        // What `nft list ruleset` prints loads back unchanged (comments need no escaping).
        nft_apply("flush ruleset\n");
        nft_apply(&text);
        assert_eq!(ruleset_text(), text);
        nft.check(&a, &[net("10.1.0.5/24"), net("fd00:1::5/64")])
            .unwrap();
    });
}

#[test]
fn nft_add_twice_is_idempotent() {
    in_netns("nft_add_twice_is_idempotent", || {
        let a = att("mynet", "abc", "eth0");
        let addrs = [net("10.1.0.5/24")];
        let mut nft = NftablesBackend::new().unwrap();
        nft.add(&a, &addrs).unwrap();
        let first = ruleset_text();
        nft.add(&a, &addrs).unwrap();
        // A second backend instance (another plugin process) sees the same.
        NftablesBackend::new().unwrap().add(&a, &addrs).unwrap();
        assert_eq!(first, ruleset_text());
        nft.check(&a, &addrs).unwrap();
    });
}

/// Handles of the base chain's rules, in order.
fn base_rule_handles() -> Vec<u64> {
    objects(None, "rule", "cni_masquerade_rs")
        .iter()
        .filter(|r| r["chain"] == "postrouting")
        .map(|r| r["handle"].as_u64().unwrap())
        .collect()
}

#[test]
fn nft_add_keeps_an_intact_skeleton_and_repairs_a_broken_one() {
    in_netns(
        "nft_add_keeps_an_intact_skeleton_and_repairs_a_broken_one",
        || {
            let a = att("mynet", "aaa", "eth0");
            let b = att("mynet", "bbb", "eth0");
            let mut nft = NftablesBackend::new().unwrap();
            nft.add(&a, &[net("10.1.0.5/24")]).unwrap();
            let handles = base_rule_handles();
            assert_eq!(handles.len(), 2, "{}", ruleset_text());

            // Intact: the next ADD leaves the dispatch rules as they are (same handles).
            nft.add(&b, &[net("10.1.0.6/24")]).unwrap();
            assert_eq!(base_rule_handles(), handles);

            // One dispatch rule gone: the next ADD rewrites both.
            nft_apply(&format!(
                "delete rule inet cni_masquerade_rs postrouting handle {}\n",
                handles[1]
            ));
            let c = att("mynet", "ccc", "eth0");
            nft.add(&c, &[net("10.1.0.7/24")]).unwrap();
            let text = ruleset_text();
            assert!(text.contains("ip saddr vmap @pods_ipv4"), "{text}");
            assert!(text.contains("ip6 saddr vmap @pods_ipv6"), "{text}");
            assert_eq!(base_rule_handles().len(), 2, "{text}");

            // A foreign rule in the base chain: rewritten to exactly the two dispatch rules.
            nft_apply("add rule inet cni_masquerade_rs postrouting counter\n");
            nft.add(&a, &[net("10.1.0.5/24")]).unwrap();
            assert_eq!(base_rule_handles().len(), 2, "{}", ruleset_text());

            // The whole base chain gone: recreated.
            nft_apply("delete chain inet cni_masquerade_rs postrouting\n");
            nft.add(&b, &[net("10.1.0.6/24")]).unwrap();
            assert_eq!(base_rule_handles().len(), 2, "{}", ruleset_text());
            for (x, addr) in [
                (&a, "10.1.0.5/24"),
                (&b, "10.1.0.6/24"),
                (&c, "10.1.0.7/24"),
            ] {
                nft.check(x, &[net(addr)]).unwrap();
            }
        },
    );
}

#[test]
fn nft_readd_with_other_addresses_drops_the_old_ones() {
    in_netns("nft_readd_with_other_addresses_drops_the_old_ones", || {
        let a = att("mynet", "abc", "eth0");
        let mut nft = NftablesBackend::new().unwrap();
        nft.add(&a, &[net("10.1.0.5/24")]).unwrap();
        nft.add(&a, &[net("10.1.0.6/24")]).unwrap();
        let chain = our_chain(&a);
        assert_eq!(
            map_elements("pods_ipv4"),
            vec![format!("\"10.1.0.6\" : {chain}")]
        );
        let text = ruleset_text();
        assert!(!text.contains("10.1.0.5"), "{text}");
        nft.check(&a, &[net("10.1.0.6/24")]).unwrap();
        assert!(nft.check(&a, &[net("10.1.0.5/24")]).is_err());
    });
}

#[test]
fn nft_del_removes_only_that_attachment() {
    in_netns("nft_del_removes_only_that_attachment", || {
        let a = att("mynet", "aaa", "eth0");
        let b = att("mynet", "bbb", "eth0");
        let a2 = att("mynet", "aaa", "eth1");
        let mut nft = NftablesBackend::new().unwrap();
        nft.add(&a, &[net("10.1.0.5/24"), net("fd00:1::5/64")])
            .unwrap();
        nft.add(&a2, &[net("10.2.0.5/24")]).unwrap();
        nft.add(&b, &[net("10.1.0.6/24")]).unwrap();

        nft.del(&a).unwrap();
        let chains = chain_names(None, "cni_masquerade_rs");
        assert!(!chains.contains(&our_chain(&a)), "{chains:?}");
        assert!(chains.contains(&our_chain(&b)), "{chains:?}");
        assert!(chains.contains(&our_chain(&a2)), "{chains:?}");
        assert_eq!(
            map_elements("pods_ipv4"),
            vec![
                format!("\"10.1.0.6\" : {}", our_chain(&b)),
                format!("\"10.2.0.5\" : {}", our_chain(&a2)),
            ]
        );
        assert!(map_elements("pods_ipv6").is_empty());
        nft.check(&b, &[net("10.1.0.6/24")]).unwrap();
        nft.check(&a2, &[net("10.2.0.5/24")]).unwrap();
        let err = nft.check(&a, &[net("10.1.0.5/24")]).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    });
}

#[test]
fn nft_del_of_missing_state_succeeds() {
    in_netns("nft_del_of_missing_state_succeeds", || {
        let a = att("mynet", "abc", "eth0");
        let mut nft = NftablesBackend::new().unwrap();
        // No table at all.
        nft.del(&a).unwrap();
        nft.gc("mynet", &[]).unwrap();
        // Table present, attachment absent; then DEL twice.
        nft.add(&att("mynet", "other", "eth0"), &[net("10.1.0.7/24")])
            .unwrap();
        nft.del(&a).unwrap();
        nft.add(&a, &[net("10.1.0.5/24")]).unwrap();
        nft.del(&a).unwrap();
        nft.del(&a).unwrap();
        assert!(!chain_names(None, "cni_masquerade_rs").contains(&our_chain(&a)));
    });
}

#[test]
fn nft_check_names_what_is_missing() {
    in_netns("nft_check_names_what_is_missing", || {
        let a = att("mynet", "abc", "eth0");
        let addrs = [net("10.1.0.5/24")];
        let mut nft = NftablesBackend::new().unwrap();
        let err = nft.check(&a, &addrs).unwrap_err();
        assert!(
            err.to_string().contains("postrouting does not exist"),
            "{err}"
        );

        nft.add(&a, &addrs).unwrap();
        nft_apply("delete element inet cni_masquerade_rs pods_ipv4 { 10.1.0.5 }\n");
        let err = nft.check(&a, &addrs).unwrap_err();
        assert!(
            err.to_string().contains("has no element for 10.1.0.5"),
            "{err}"
        );

        nft.add(&a, &addrs).unwrap();
        nft.check(&a, &addrs).unwrap();
        nft_apply(&format!(
            "flush chain inet cni_masquerade_rs {}\n",
            our_chain(&a)
        ));
        let err = nft.check(&a, &addrs).unwrap_err();
        assert!(
            err.to_string().contains("no rule masquerading 10.1.0.5/24"),
            "{err}"
        );
        // DEL copes with a chain whose rules no longer name the addresses jumping to it.
        nft.del(&a).unwrap();
        assert!(map_elements("pods_ipv4").is_empty());
        assert!(!chain_names(None, "cni_masquerade_rs").contains(&our_chain(&a)));
    });
}

#[test]
fn nft_address_reused_by_a_new_attachment_survives_the_old_del() {
    in_netns(
        "nft_address_reused_by_a_new_attachment_survives_the_old_del",
        || {
            let old = att("mynet", "old", "eth0");
            let new = att("mynet", "new", "eth0");
            let addrs = [net("10.1.0.5/24")];
            let mut nft = NftablesBackend::new().unwrap();
            nft.add(&old, &addrs).unwrap();
            nft.add(&new, &addrs).unwrap();
            nft.del(&old).unwrap();
            assert_eq!(
                map_elements("pods_ipv4"),
                vec![format!("\"10.1.0.5\" : {}", our_chain(&new))]
            );
            nft.check(&new, &addrs).unwrap();
        },
    );
}

#[test]
fn nft_gc_keeps_only_listed_attachments_of_the_network() {
    in_netns(
        "nft_gc_keeps_only_listed_attachments_of_the_network",
        || {
            let a = att("net1", "a", "eth0");
            let b = att("net1", "b", "eth0");
            let c = att("net1", "c", "eth0");
            let d = att("net2", "d", "eth0");
            let mut nft = NftablesBackend::new().unwrap();
            nft.add(&a, &[net("10.1.0.2/24")]).unwrap();
            nft.add(&b, &[net("10.1.0.3/24"), net("fd00::3/64")])
                .unwrap();
            nft.add(&c, &[net("10.1.0.4/24"), net("fd00::4/64")])
                .unwrap();
            nft.add(&d, &[net("10.2.0.2/24")]).unwrap();

            nft.gc("net1", &[b, d]).unwrap();
            let chains = chain_names(None, "cni_masquerade_rs");
            assert!(chains.contains(&our_chain(&b)));
            assert!(chains.contains(&our_chain(&d)));
            assert!(!chains.contains(&our_chain(&a)));
            assert!(!chains.contains(&our_chain(&c)));
            assert_eq!(map_elements("pods_ipv4").len(), 2);
            assert_eq!(
                map_elements("pods_ipv6"),
                vec![format!("\"fd00::3\" : {}", our_chain(&b))]
            );
            nft.check(&b, &[net("10.1.0.3/24"), net("fd00::3/64")])
                .unwrap();
            nft.check(&d, &[net("10.2.0.2/24")]).unwrap();
        },
    );
}

#[test]
fn nft_add_and_del_cost_stays_flat() {
    in_netns("nft_add_and_del_cost_stays_flat", || {
        // MASQ_BENCH_PODS raises the pod count for a manual measurement.
        let ids = bench_pod_ids("MASQ_BENCH_PODS");
        let n = ids.len();
        let mut nft = NftablesBackend::new().unwrap();
        let mut add_us = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let addr = net(&format!("10.{}.{}.{}/16", 10, i / 250, i % 250 + 2));
            let t = Instant::now();
            nft.add(&att("bench", id, "eth0"), &[addr]).unwrap();
            add_us.push(t.elapsed().as_micros());
        }
        let mut del_us = Vec::new();
        for id in &ids {
            let t = Instant::now();
            nft.del(&att("bench", id, "eth0")).unwrap();
            del_us.push(t.elapsed().as_micros());
        }
        eprintln!(
            "nftables backend, {n} pods: add p50 {} us (first 50: {} us, last 50: {} us), del p50 {} us",
            median(&add_us),
            median(&add_us[..50]),
            median(&add_us[n - 50..]),
            median(&del_us)
        );
        assert!(chain_names(None, "cni_masquerade_rs") == vec!["postrouting".to_string()]);
    });
}

#[test]
fn nft_concurrent_writers_lose_nothing() {
    in_netns("nft_concurrent_writers_lose_nothing", || {
        // Threads spawned here share the sandbox's namespace; each is a separate "plugin".
        let workers: Vec<_> = (0..8u32)
            .map(|w| {
                std::thread::spawn(move || {
                    let mut nft = NftablesBackend::new().unwrap();
                    for i in 0..40u32 {
                        let id = format!("w{w}p{i}");
                        let addr = net(&format!("10.{w}.{i}.2/24"));
                        nft.add(&att("race", &id, "eth0"), &[addr]).unwrap();
                        if i % 2 == 1 {
                            nft.del(&att("race", &id, "eth0")).unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut nft = NftablesBackend::new().unwrap();
        for w in 0..8u32 {
            for i in (0..40u32).step_by(2) {
                let id = format!("w{w}p{i}");
                nft.check(
                    &att("race", &id, "eth0"),
                    &[net(&format!("10.{w}.{i}.2/24"))],
                )
                .unwrap();
            }
        }
        assert_eq!(map_elements("pods_ipv4").len(), 8 * 20);
        assert_eq!(chain_names(None, "cni_masquerade_rs").len(), 1 + 8 * 20);
    });
}

// ---------------------------------------------------------------------------------------------
// iptables backend

const MYNET_V4: [&str; 4] = [
    "-N CNI-e88f49d94512ff752ebe6070",
    r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"abc\"" -j CNI-e88f49d94512ff752ebe6070"#,
    r#"-A CNI-e88f49d94512ff752ebe6070 -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"abc\"" -j ACCEPT"#,
    r#"-A CNI-e88f49d94512ff752ebe6070 ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"abc\"" -j MASQUERADE"#,
];
const MYNET_V6: [&str; 4] = [
    "-N CNI-e88f49d94512ff752ebe6070",
    r#"-A POSTROUTING -s fd00:88::2/128 -m comment --comment "name: \"mynet\" id: \"abc\"" -j CNI-e88f49d94512ff752ebe6070"#,
    r#"-A CNI-e88f49d94512ff752ebe6070 -d fd00:88::/64 -m comment --comment "name: \"mynet\" id: \"abc\"" -j ACCEPT"#,
    r#"-A CNI-e88f49d94512ff752ebe6070 ! -d ff00::/8 -m comment --comment "name: \"mynet\" id: \"abc\"" -j MASQUERADE"#,
];

fn without_policies(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| !l.starts_with("-P "))
        .collect()
}

#[test]
fn iptables_add_makes_the_reference_rule_shape() {
    in_netns("iptables_add_makes_the_reference_rule_shape", || {
        let a = att("mynet", "abc", "eth0");
        let addrs = [net("10.88.0.2/16"), net("fd00:88::2/64")];
        let mut ipt = IptablesBackend::new();
        ipt.add(&a, &addrs).unwrap();
        assert_eq!(without_policies(iptables_s("iptables")), MYNET_V4);
        assert_eq!(without_policies(iptables_s("ip6tables")), MYNET_V6);
        // Idempotent.
        ipt.add(&a, &addrs).unwrap();
        assert_eq!(without_policies(iptables_s("iptables")), MYNET_V4);
        assert_eq!(without_policies(iptables_s("ip6tables")), MYNET_V6);
        ipt.check(&a, &addrs).unwrap();
    });
}

#[test]
fn iptables_check_del_and_gc() {
    in_netns("iptables_check_del_and_gc", || {
        let a = att("mynet", "abc", "eth0");
        let b = att("mynet", "def", "eth0");
        let other = att("othernet", "ghi", "eth0");
        let mut ipt = IptablesBackend::new();
        ipt.add(&a, &[net("10.88.0.2/16")]).unwrap();
        ipt.add(&b, &[net("10.88.0.3/16")]).unwrap();
        ipt.add(&other, &[net("10.99.0.3/16")]).unwrap();

        run(
            "iptables",
            &["-w", "-t", "nat", "-D", "CNI-e88f49d94512ff752ebe6070", "2"],
        );
        let err = ipt.check(&a, &[net("10.88.0.2/16")]).unwrap_err();
        assert!(err.to_string().contains("MASQUERADE"), "{err}");

        ipt.del(&a).unwrap();
        ipt.del(&a).unwrap();
        let rules = iptables_s("iptables");
        assert!(
            !rules
                .iter()
                .any(|l| l.contains("CNI-e88f49d94512ff752ebe6070")),
            "{rules:?}"
        );
        ipt.check(&b, &[net("10.88.0.3/16")]).unwrap();

        ipt.add(&a, &[net("10.88.0.2/16")]).unwrap();
        ipt.gc("mynet", &[a]).unwrap();
        ipt.check(&a, &[net("10.88.0.2/16")]).unwrap();
        ipt.check(&other, &[net("10.99.0.3/16")]).unwrap();
        let rules = iptables_s("iptables");
        let b_chain = reference_iptables_chain("mynet", "def");
        assert!(!rules.iter().any(|l| l.contains(&b_chain)), "{rules:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// The reference's state

/// Make the reference's iptables rules for `mynet`/`abc` the way its go-iptables calls do.
fn make_reference_iptables_rules() {
    let chain = "CNI-e88f49d94512ff752ebe6070";
    let comment = r#"name: "mynet" id: "abc""#;
    for (prog, ip, subnet, mcast) in [
        ("iptables", "10.88.0.2", "10.88.0.2/16", "224.0.0.0/4"),
        ("ip6tables", "fd00:88::2", "fd00:88::2/64", "ff00::/8"),
    ] {
        run(prog, &["-w", "-t", "nat", "-N", chain]);
        // Rule by rule, as go-iptables appends them: (chain, match arguments, target).
        let rules: [(&str, &[&str], &str); 3] = [
            (chain, &["-d", subnet], "ACCEPT"),
            (chain, &["!", "-d", mcast], "MASQUERADE"),
            ("POSTROUTING", &["-s", ip], chain),
        ];
        for (from, matches, target) in rules {
            let mut args = vec!["-w", "-t", "nat", "-A", from];
            args.extend_from_slice(matches);
            args.extend(["-j", target, "-m", "comment", "--comment", comment]);
            run(prog, &args);
        }
    }
}

/// The reference's nftables layout (v1.6+) with rules for two attachments of `mynet`.
const REFERENCE_NFT: &str = r#"
table inet cni_plugins_masquerade {
    comment "Masquerading for plugins from github.com/containernetworking/plugins"
    chain masq_checks {
        comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
        ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment "d23676b4f2d9fe04-e65086f8a75535c6, net: mynet, if: eth0, id: abc"
        ip6 saddr fd00:88::2 ip6 daddr != fd00:88::/64 masquerade comment "d23676b4f2d9fe04-e65086f8a75535c6, net: mynet, if: eth0, id: abc"
        ip saddr 10.88.0.3 ip daddr != 10.88.0.0/16 masquerade comment "KEEP_HASH, net: mynet, if: eth0, id: def"
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr 224.0.0.0/4 return
        ip6 daddr ff00::/8 return
        goto masq_checks
    }
}
"#;

fn reference_nft_script() -> String {
    // Instance hash of mynet/def/eth0: H("mynet")-H("eth0:def").
    let keep_hash = format!("d23676b4f2d9fe04-{}", sha512_16("eth0:def"));
    REFERENCE_NFT.replace("KEEP_HASH", &keep_hash)
}

fn sha512_16(s: &str) -> String {
    let out = run_status("sha512sum", &[], Some(s)).1;
    out[..16].to_string()
}

fn reference_rule_comments() -> Vec<String> {
    rule_comments(None, "cni_plugins_masquerade", "masq_checks")
}

#[test]
fn reference_state_is_removed_for_the_attachment_only() {
    in_netns("reference_state_is_removed_for_the_attachment_only", || {
        make_reference_iptables_rules();
        nft_apply(&reference_nft_script());
        let a = att("mynet", "abc", "eth0");

        // The nftables backend's DEL plus the reference cleanup, as the plugin runs them.
        NftablesBackend::new().unwrap().del(&a).unwrap();
        remove_reference_state(&a).unwrap();

        for prog in ["iptables", "ip6tables"] {
            let rules = iptables_s(prog);
            assert!(
                !rules.iter().any(|l| l.contains("CNI-")),
                "{prog}: {rules:?}"
            );
        }
        let comments = reference_rule_comments();
        assert_eq!(comments.len(), 1, "{comments:?}");
        assert!(comments[0].ends_with("id: def"), "{comments:?}");

        // Idempotent.
        remove_reference_state(&a).unwrap();
    });
}

#[test]
fn reference_state_gc_keeps_listed_attachments() {
    in_netns("reference_state_gc_keeps_listed_attachments", || {
        make_reference_iptables_rules();
        nft_apply(&reference_nft_script());
        gc_reference_state("othernet", &[]).unwrap();
        assert_eq!(reference_rule_comments().len(), 3);
        assert_eq!(without_policies(iptables_s("iptables")).len(), 4);

        gc_reference_state("mynet", &[att("mynet", "def", "eth0")]).unwrap();
        let comments = reference_rule_comments();
        assert_eq!(comments.len(), 1, "{comments:?}");
        assert!(comments[0].ends_with("id: def"));
        for prog in ["iptables", "ip6tables"] {
            let rules = iptables_s(prog);
            assert!(
                !rules.iter().any(|l| l.contains("CNI-")),
                "{prog}: {rules:?}"
            );
        }
    });
}

#[test]
fn reference_cleanup_without_reference_state_runs_no_command_and_succeeds() {
    in_netns(
        "reference_cleanup_without_reference_state_runs_no_command_and_succeeds",
        || {
            let a = att("mynet", "abc", "eth0");
            remove_reference_state(&a).unwrap();
            let t = Instant::now();
            for _ in 0..20 {
                remove_reference_state(&a).unwrap();
            }
            eprintln!(
                "reference cleanup with nothing to remove: {} us per call",
                t.elapsed().as_micros() / 20
            );
            // Nothing was created either.
            assert!(ruleset_json().iter().all(|o| o.get("table").is_none()));
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The reference binary as the oracle

#[test]
fn reference_bridge_rules_match_ours_and_are_removed_by_our_cleanup() {
    if !reference_available() {
        return;
    }
    in_netns(
        "reference_bridge_rules_match_ours_and_are_removed_by_our_cleanup",
        move || {
            let (netns, stop) = container_netns();
            let result = reference_add(
                "cni-masq0",
                r#""isGateway":true,"ipMasq":true"#,
                "abc",
                &netns,
            );
            assert_eq!(result["ips"][0]["address"], "10.88.0.2/16", "{result}");

            // What the reference made is exactly what our iptables backend makes and checks.
            assert_eq!(without_policies(iptables_s("iptables")), MYNET_V4);
            let a = att("mynet", "abc", "eth0");
            IptablesBackend::new()
                .check(&a, &[net("10.88.0.2/16")])
                .unwrap();

            // Our DEL path (nftables backend + reference cleanup) leaves nothing behind.
            NftablesBackend::new().unwrap().del(&a).unwrap();
            remove_reference_state(&a).unwrap();
            let rules = iptables_s("iptables");
            assert!(!rules.iter().any(|l| l.contains("CNI-")), "{rules:?}");
            drop(stop);
        },
    );
}

#[test]
fn default_backend_is_iptables_where_iptables_is_usable() {
    in_netns(
        "default_backend_is_iptables_where_iptables_is_usable",
        || {
            assert!(firewall::nftables_usable());
            assert!(
                firewall::iptables_usable(),
                "this host has iptables on PATH"
            );
            assert_eq!(
                firewall::Backend::resolve(None),
                firewall::Backend::Iptables
            );
            // Detection creates nothing.
            assert!(ruleset_json().iter().all(|o| o.get("table").is_none()));
        },
    );
}
