//! Kernel tests of `firewall::macspoof`: each runs on its own thread inside a fresh network
//! namespace and asserts on what `nft` reports there (and, in one test, on real traffic across a
//! bridge). The host's firewall is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use firewall::macspoof;
use serde_json::Value;

mod common;
use common::*;

/// `"<port>" : <chain>` for each element of our ports map, sorted.
fn port_elements() -> Vec<String> {
    let mut out: Vec<String> = map_jumps(Some("bridge"), macspoof::TABLE, macspoof::PORTS_MAP)
        .into_iter()
        .map(|(key, target)| format!("{} : {target}", key.as_str().unwrap_or("?")))
        .collect();
    out.sort();
    out
}

const MAC_A: [u8; 6] = [0x0a, 0x58, 0x0a, 0x01, 0x00, 0x05];
const MAC_B: [u8; 6] = [0x0a, 0x58, 0x0a, 0x01, 0x00, 0x06];

fn chain(cid: &str, ifname: &str) -> String {
    macspoof::attachment_chain(cid, ifname)
}

// ---------------------------------------------------------------------------------------------
// Our layout

#[test]
fn add_installs_a_counted_drop_rule_visible_to_nft() {
    in_netns("add_installs_a_counted_drop_rule_visible_to_nft", || {
        macspoof::add("abc", "eth0", "veth1a2b3c4d", MAC_A).unwrap();
        let text = ruleset_text();
        let c = chain("abc", "eth0");
        for expected in [
            "table bridge cni_macspoof_rs {".to_string(),
            "type ifname : verdict".to_string(),
            format!("elements = {{ \"veth1a2b3c4d\" : jump {c} }}"),
            // -300 is what nft names `dstnat` in the bridge family.
            "type filter hook prerouting priority dstnat; policy accept;".to_string(),
            "iifname vmap @ports".to_string(),
            "iifname \"veth1a2b3c4d\" ether saddr != 0a:58:0a:01:00:05 counter packets 0 \
             bytes 0 drop comment \"macspoofchk-abc-eth0\""
                .to_string(),
        ] {
            assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
        }
        let prio: Vec<Value> = objects(Some("bridge"), "chain", macspoof::TABLE)
            .into_iter()
            .filter(|c| c["name"] == macspoof::BASE_CHAIN)
            .collect();
        assert_eq!(prio[0]["prio"], -300, "{prio:?}");
        macspoof::check("abc", "eth0", "veth1a2b3c4d", MAC_A).unwrap();

        // What `nft list ruleset` prints loads back unchanged, and check still accepts it.
        nft_apply("flush ruleset\n");
        nft_apply(&text);
        assert_eq!(ruleset_text(), text);
        macspoof::check("abc", "eth0", "veth1a2b3c4d", MAC_A).unwrap();
    });
}

#[test]
fn check_names_what_is_missing() {
    in_netns("check_names_what_is_missing", || {
        let err = macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap_err();
        assert!(
            err.to_string().contains("prerouting does not exist"),
            "{err}"
        );
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        let err = macspoof::check("abc", "eth0", "vethA", MAC_B).unwrap_err();
        assert!(
            err.to_string()
                .contains("whose source MAC is not 0a:58:0a:01:00:06"),
            "{err}"
        );
        let err = macspoof::check("abc", "eth0", "vethX", MAC_A).unwrap_err();
        assert!(err.to_string().contains("\"vethX\""), "{err}");
        let err = macspoof::check("abc", "eth1", "vethA", MAC_A).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");

        nft_apply("delete element bridge cni_macspoof_rs ports { \"vethA\" }\n");
        let err = macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap_err();
        assert!(
            err.to_string().contains("has no element for \"vethA\""),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("macspoofchk state for container \"abc\" interface \"eth0\""),
            "{err}"
        );
        nft_apply("flush chain bridge cni_macspoof_rs prerouting\n");
        let err = macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap_err();
        assert!(err.to_string().contains("map ports"), "{err}");

        // ADD repairs both.
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap();

        // Bad interface names are refused with the name in the message.
        let err = macspoof::add("abc", "eth0", "a-very-long-interface", MAC_A).unwrap_err();
        assert!(err.to_string().contains("a-very-long-interface"), "{err}");
    });
}

#[test]
fn del_removes_it_and_missing_state_is_ok() {
    in_netns("del_removes_it_and_missing_state_is_ok", || {
        // Nothing at all.
        macspoof::del("abc", "eth0").unwrap();
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        macspoof::del("abc", "eth0").unwrap();
        assert_eq!(
            chain_names(Some("bridge"), macspoof::TABLE),
            vec!["prerouting"]
        );
        assert!(port_elements().is_empty());
        assert!(!ruleset_text().contains("macspoofchk-abc-eth0"));
        assert!(macspoof::check("abc", "eth0", "vethA", MAC_A).is_err());
        // Twice, and with the table present but the attachment absent.
        macspoof::del("abc", "eth0").unwrap();
        macspoof::del("other", "eth0").unwrap();
    });
}

#[test]
fn readd_is_idempotent_and_replaces_an_earlier_state() {
    in_netns("readd_is_idempotent_and_replaces_an_earlier_state", || {
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        let first = ruleset_text();
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        assert_eq!(ruleset_text(), first);
        macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap();

        // Same attachment, new veth and MAC: the old port no longer jumps to it.
        macspoof::add("abc", "eth0", "vethA2", MAC_B).unwrap();
        assert_eq!(
            port_elements(),
            vec![format!("vethA2 : {}", chain("abc", "eth0"))]
        );
        macspoof::check("abc", "eth0", "vethA2", MAC_B).unwrap();
        assert!(macspoof::check("abc", "eth0", "vethA", MAC_A).is_err());
        let text = ruleset_text();
        assert!(!text.contains("0a:58:0a:01:00:05"), "{text}");

        // A port claimed by a new attachment (the old one's DEL was missed) belongs to the new
        // one; the old one's DEL leaves it alone.
        macspoof::add("new", "eth0", "vethA2", MAC_A).unwrap();
        macspoof::check("new", "eth0", "vethA2", MAC_A).unwrap();
        macspoof::del("abc", "eth0").unwrap();
        macspoof::check("new", "eth0", "vethA2", MAC_A).unwrap();
        assert_eq!(
            chain_names(Some("bridge"), macspoof::TABLE),
            vec!["prerouting".to_string(), chain("new", "eth0")]
        );
    });
}

#[test]
fn two_pods_del_one_leaves_the_other() {
    in_netns("two_pods_del_one_leaves_the_other", || {
        macspoof::add("aaa", "eth0", "vethA", MAC_A).unwrap();
        macspoof::add("bbb", "eth0", "vethB", MAC_B).unwrap();
        macspoof::add("aaa", "net1", "vethA1", MAC_B).unwrap();
        macspoof::del("aaa", "eth0").unwrap();
        assert_eq!(
            port_elements(),
            vec![
                format!("vethA1 : {}", chain("aaa", "net1")),
                format!("vethB : {}", chain("bbb", "eth0")),
            ]
        );
        macspoof::check("bbb", "eth0", "vethB", MAC_B).unwrap();
        macspoof::check("aaa", "net1", "vethA1", MAC_B).unwrap();
        assert!(macspoof::check("aaa", "eth0", "vethA", MAC_A).is_err());
    });
}

#[test]
fn del_copes_with_an_edited_chain() {
    in_netns("del_copes_with_an_edited_chain", || {
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        macspoof::add("def", "eth0", "vethB", MAC_B).unwrap();
        // The rule naming the port is gone, the element still jumps to the chain.
        nft_apply(&format!(
            "flush chain bridge cni_macspoof_rs {}\n",
            chain("abc", "eth0")
        ));
        macspoof::del("abc", "eth0").unwrap();
        assert_eq!(
            port_elements(),
            vec![format!("vethB : {}", chain("def", "eth0"))]
        );
        macspoof::check("def", "eth0", "vethB", MAC_B).unwrap();
    });
}

#[test]
fn concurrent_writers_lose_nothing() {
    in_netns("concurrent_writers_lose_nothing", || {
        let workers: Vec<_> = (0..8u32)
            .map(|w| {
                std::thread::spawn(move || {
                    for i in 0..30u32 {
                        let id = format!("w{w}p{i}");
                        let port = format!("veth{w}x{i}");
                        macspoof::add(&id, "eth0", &port, MAC_A).unwrap();
                        if i % 2 == 1 {
                            macspoof::del(&id, "eth0").unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        for w in 0..8u32 {
            for i in (0..30u32).step_by(2) {
                macspoof::check(&format!("w{w}p{i}"), "eth0", &format!("veth{w}x{i}"), MAC_A)
                    .unwrap();
            }
        }
        assert_eq!(port_elements().len(), 8 * 15);
        assert_eq!(
            chain_names(Some("bridge"), macspoof::TABLE).len(),
            1 + 8 * 15
        );
    });
}

#[test]
fn add_and_del_cost_stays_flat() {
    in_netns("add_and_del_cost_stays_flat", || {
        // MACSPOOF_BENCH_PODS raises the pod count for a manual measurement.
        let ids = bench_pod_ids("MACSPOOF_BENCH_PODS");
        let n = ids.len();
        let mut add_us = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let t = Instant::now();
            macspoof::add(id, "eth0", &format!("veth{i:08x}"), MAC_A).unwrap();
            add_us.push(t.elapsed().as_micros());
        }
        let t = Instant::now();
        macspoof::check("pod0", "eth0", "veth00000000", MAC_A).unwrap();
        let check_us = t.elapsed().as_micros();
        let mut del_us = Vec::new();
        for id in &ids {
            let t = Instant::now();
            macspoof::del(id, "eth0").unwrap();
            del_us.push(t.elapsed().as_micros());
        }
        let t = Instant::now();
        for _ in 0..20 {
            macspoof::del("absent", "eth0").unwrap();
        }
        let absent_us = t.elapsed().as_micros() / 20;
        eprintln!(
            "macspoof, {n} pods: add p50 {} us (first 50: {} us, last 50: {} us), check {} us, \
             del p50 {} us (first 50: {} us, last 50: {} us), del of absent state {} us",
            median(&add_us),
            median(&add_us[..50.min(n)]),
            median(&add_us[n.saturating_sub(50)..]),
            check_us,
            median(&del_us),
            median(&del_us[..50.min(n)]),
            median(&del_us[n.saturating_sub(50)..]),
            absent_us,
        );
        assert_eq!(
            chain_names(Some("bridge"), macspoof::TABLE),
            vec!["prerouting"]
        );
        assert!(port_elements().is_empty());
    });
}

// ---------------------------------------------------------------------------------------------
// The reference's layout

/// What the reference's spoofcheck.go makes, for two attachments.
fn reference_script() -> String {
    let mut s = String::from(
        "table bridge nat {\n  chain PREROUTING {\n    type filter hook prerouting priority -300; policy accept;\n",
    );
    for (cid, port) in [("aaa", "vethA"), ("bbb", "vethB")] {
        s.push_str(&format!(
            "    iifname \"{port}\" jump cni-br-iface-{cid}-eth0 comment \"macspoofchk-{cid}-eth0\"\n"
        ));
    }
    s.push_str("  }\n");
    for (cid, mac) in [("aaa", "0a:58:0a:01:00:05"), ("bbb", "0a:58:0a:01:00:06")] {
        s.push_str(&format!(
            "  chain cni-br-iface-{cid}-eth0 {{\n    jump cni-br-iface-{cid}-eth0-mac comment \"macspoofchk-{cid}-eth0\"\n  }}\n\
             \x20 chain cni-br-iface-{cid}-eth0-mac {{\n    ether saddr {mac} return comment \"macspoofchk-{cid}-eth0\"\n    drop comment \"macspoofchk-{cid}-eth0\"\n  }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

fn reference_prerouting_comments() -> Vec<String> {
    rule_comments(Some("bridge"), "nat", "PREROUTING")
}

#[test]
fn del_removes_the_reference_state_of_the_attachment_only() {
    in_netns(
        "del_removes_the_reference_state_of_the_attachment_only",
        || {
            nft_apply(&reference_script());
            macspoof::add("ccc", "eth0", "vethC", MAC_A).unwrap();
            macspoof::del("aaa", "eth0").unwrap();
            assert_eq!(
                chain_names(Some("bridge"), "nat"),
                vec![
                    "PREROUTING",
                    "cni-br-iface-bbb-eth0",
                    "cni-br-iface-bbb-eth0-mac"
                ]
            );
            assert_eq!(
                reference_prerouting_comments(),
                vec!["macspoofchk-bbb-eth0"]
            );
            macspoof::check("ccc", "eth0", "vethC", MAC_A).unwrap();
            macspoof::del("aaa", "eth0").unwrap();

            // A jump without its comment, or chains without their jump, go as well.
            nft_apply(
                "flush chain bridge nat PREROUTING\n\
                 add rule bridge nat PREROUTING iifname \"vethB\" jump cni-br-iface-bbb-eth0\n",
            );
            macspoof::del("bbb", "eth0").unwrap();
            assert_eq!(chain_names(Some("bridge"), "nat"), vec!["PREROUTING"]);
            assert!(reference_prerouting_comments().is_empty());
            nft_apply(&reference_script());
            nft_apply("flush chain bridge nat PREROUTING\n");
            macspoof::del("aaa", "eth0").unwrap();
            macspoof::del("bbb", "eth0").unwrap();
            assert_eq!(chain_names(Some("bridge"), "nat"), vec!["PREROUTING"]);
        },
    );
}

#[test]
fn reference_bridge_state_is_removed_by_our_del() {
    if !reference_available() {
        return;
    }
    in_netns("reference_bridge_state_is_removed_by_our_del", move || {
        let (netns, stop) = container_netns();
        reference_add("cni-spoof0", r#""macspoofchk":true"#, "dummy-0", &netns);
        // The reference's layout is what our DEL expects.
        assert_eq!(
            chain_names(Some("bridge"), "nat"),
            vec![
                "PREROUTING",
                "cni-br-iface-dummy-0-eth0",
                "cni-br-iface-dummy-0-eth0-mac"
            ],
            "{}",
            ruleset_text()
        );
        assert_eq!(
            reference_prerouting_comments(),
            vec!["macspoofchk-dummy-0-eth0"]
        );

        macspoof::del("dummy-0", "eth0").unwrap();
        assert_eq!(
            chain_names(Some("bridge"), "nat"),
            vec!["PREROUTING"],
            "{}",
            ruleset_text()
        );
        assert!(reference_prerouting_comments().is_empty());
        drop(stop);
    });
}

// ---------------------------------------------------------------------------------------------
// Real traffic

fn in_ns(path: &str, args: &[&str]) -> String {
    let mut full = vec![format!("--net={path}")];
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    run("nsenter", &refs)
}

fn pings(from: &str, to: &str) -> bool {
    let args = [
        format!("--net={from}"),
        "ping".into(),
        "-c1".into(),
        "-W1".into(),
        to.into(),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_status("nsenter", &refs, None).0
}

/// Up to `tries` one-second pings; true on the first answer.
fn eventually_pings(from: &str, to: &str, tries: u32) -> bool {
    (0..tries).any(|_| pings(from, to))
}

fn drop_counter(cid: &str) -> u64 {
    objects(Some("bridge"), "rule", macspoof::TABLE)
        .iter()
        .filter(|r| r["chain"] == chain(cid, "eth0").as_str())
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum()
}

#[test]
fn spoofed_source_mac_cannot_cross_the_bridge() {
    in_netns("spoofed_source_mac_cannot_cross_the_bridge", || {
        run("ip", &["link", "add", "br0", "type", "bridge"]);
        run("ip", &["link", "set", "br0", "up"]);
        let (ns_a, stop_a) = container_netns();
        let (ns_b, stop_b) = container_netns();
        for (ns, port, ip, mac) in [
            (&ns_a, "vethA", "10.9.0.2/24", "0a:58:0a:09:00:02"),
            (&ns_b, "vethB", "10.9.0.3/24", "0a:58:0a:09:00:03"),
        ] {
            run(
                "ip",
                &[
                    "link", "add", port, "type", "veth", "peer", "name", "eth0", "address", mac,
                    "netns", ns,
                ],
            );
            run("ip", &["link", "set", port, "master", "br0", "up"]);
            in_ns(ns, &["ip", "addr", "add", ip, "dev", "eth0"]);
            in_ns(ns, &["ip", "link", "set", "eth0", "up"]);
        }
        let mac_a = [0x0a, 0x58, 0x0a, 0x09, 0x00, 0x02];
        macspoof::add("pod-a", "eth0", "vethA", mac_a).unwrap();
        macspoof::check("pod-a", "eth0", "vethA", mac_a).unwrap();
        assert!(eventually_pings(&ns_a, "10.9.0.3", 5), "real MAC must pass");
        assert!(eventually_pings(&ns_b, "10.9.0.2", 5), "replies must pass");
        assert_eq!(drop_counter("pod-a"), 0);

        // The pod changes its MAC: nothing it sends crosses the bridge any more.
        in_ns(
            &ns_a,
            &["ip", "link", "set", "eth0", "address", "0a:58:0a:09:00:99"],
        );
        in_ns(&ns_a, &["ip", "neigh", "flush", "all"]);
        in_ns(&ns_b, &["ip", "neigh", "flush", "all"]);
        assert!(!pings(&ns_a, "10.9.0.3"), "spoofed MAC must not pass");
        assert!(!pings(&ns_b, "10.9.0.2"), "spoofed MAC must not answer");
        assert!(drop_counter("pod-a") > 0, "{}", ruleset_text());

        // Back to its own MAC: traffic flows again.
        in_ns(
            &ns_a,
            &["ip", "link", "set", "eth0", "address", "0a:58:0a:09:00:02"],
        );
        assert!(
            eventually_pings(&ns_a, "10.9.0.3", 5),
            "real MAC must pass again"
        );

        // Without the check the spoofed MAC passes: the drops were ours.
        macspoof::del("pod-a", "eth0").unwrap();
        in_ns(
            &ns_a,
            &["ip", "link", "set", "eth0", "address", "0a:58:0a:09:00:99"],
        );
        assert!(eventually_pings(&ns_a, "10.9.0.3", 5), "no check, no drop");
        drop((stop_a, stop_b));
    });
}

fn base_rule_handles() -> Vec<u64> {
    objects(Some("bridge"), "rule", macspoof::TABLE)
        .iter()
        .filter(|r| r["chain"] == macspoof::BASE_CHAIN)
        .map(|r| r["handle"].as_u64().unwrap())
        .collect()
}

#[test]
fn add_keeps_an_intact_skeleton_and_repairs_a_broken_one() {
    in_netns("macspoof_add_keeps_an_intact_skeleton", || {
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        let handles = base_rule_handles();
        assert_eq!(handles.len(), 1, "{}", ruleset_text());
        // Intact: the next ADD leaves the dispatch rule as it is (same handle).
        macspoof::add("def", "eth0", "vethB", MAC_B).unwrap();
        assert_eq!(base_rule_handles(), handles);
        // A foreign rule beside it: the next ADD rewrites the chain to the dispatch rule alone.
        nft_apply(&format!(
            "add rule bridge {} {} counter\n",
            macspoof::TABLE,
            macspoof::BASE_CHAIN
        ));
        macspoof::add("ghi", "eth0", "vethC", MAC_A).unwrap();
        assert_eq!(base_rule_handles().len(), 1, "{}", ruleset_text());
        // The dispatch rule gone: put back.
        nft_apply(&format!(
            "flush chain bridge {} {}\n",
            macspoof::TABLE,
            macspoof::BASE_CHAIN
        ));
        macspoof::add("abc", "eth0", "vethA", MAC_A).unwrap();
        assert_eq!(base_rule_handles().len(), 1, "{}", ruleset_text());
        macspoof::check("abc", "eth0", "vethA", MAC_A).unwrap();
        macspoof::check("def", "eth0", "vethB", MAC_B).unwrap();
    });
}
