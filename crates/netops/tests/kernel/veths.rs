use netops::{AddrGenMode, BridgeSpec, Error, MacAddr, VethEnd};

use crate::sandbox::{ip_json, run};

#[test]
fn veth_is_created_in_one_request_with_peer_born_in_the_container() {
    run("veth_one_request", |sb| {
        let br = sb.host.ensure_bridge(&BridgeSpec::new("br0")).unwrap();
        let host_mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let peer_mac: MacAddr = "0a:58:0a:01:00:05".parse().unwrap();
        let host = VethEnd {
            mtu: Some(1400),
            mac: Some(host_mac),
            master: Some(br.index),
            up: true,
            addr_gen_mode: Some(AddrGenMode::None),
            ..VethEnd::new("veth1a2b3c4d")
        };
        let peer = VethEnd {
            mtu: Some(1400),
            mac: Some(peer_mac),
            ..VethEnd::new("eth0")
        };
        let h = sb
            .host
            .create_veth(&host, &peer, Some(&sb.container_ns))
            .unwrap();

        // What create_veth reports matches what the kernel reports afterwards.
        let observed = sb.host.link_by_index(h.index).unwrap().unwrap();
        assert_eq!(h, observed);
        assert_eq!(observed.name, "veth1a2b3c4d");
        assert_eq!(observed.kind.as_deref(), Some("veth"));
        assert_eq!(observed.mac, Some(host_mac));
        assert_eq!(observed.mtu, 1400);
        assert_eq!(observed.master, Some(br.index));
        assert!(observed.up);
        assert_eq!(observed.addr_gen_mode, Some(AddrGenMode::None));
        assert!(
            observed.link_netnsid.is_some(),
            "peer must live in another netns"
        );
        assert!(observed.bridge_port.is_some());

        // The peer exists only in the container, with its MAC and MTU, and points back.
        assert!(sb.host.link_by_name("eth0").unwrap().is_none());
        let c = sb.container.link_by_name("eth0").unwrap().unwrap();
        assert_eq!(c.mac, Some(peer_mac));
        assert_eq!(c.mtu, 1400);
        assert_eq!(observed.peer_index, Some(c.index));
        assert_eq!(c.peer_index, Some(h.index));
        assert!(!c.up);
        assert!(sb.container.link_by_name("veth1a2b3c4d").unwrap().is_none());

        // Cross-check with iproute2.
        let j = &ip_json(&sb.host_ns, &["-d", "link", "show", "veth1a2b3c4d"])[0];
        assert_eq!(j["master"], "br0");
        assert_eq!(j["linkinfo"]["info_kind"], "veth");
        assert_eq!(j["inet6_addr_gen_mode"], "none");
        let j = &ip_json(&sb.container_ns, &["link", "show", "eth0"])[0];
        assert_eq!(j["address"], "0a:58:0a:01:00:05");

        // With both ends up, the container end gets a link-local address; the host end never does.
        // The kernel adds it once linkwatch reports the carrier (asynchronously), so wait for the
        // container's; by then the host end, whose carrier came up at the same moment, would
        // have one too if its addrgenmode were not "none".
        sb.container.set_link_up(c.index).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let ctr_addrs = sb.container.list_addresses(Some(c.index), None).unwrap();
            if ctr_addrs
                .iter()
                .any(|a| a.network.ip().to_string().starts_with("fe80::"))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "container end never got a link-local address: {ctr_addrs:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let host_addrs = sb.host.list_addresses(Some(h.index), None).unwrap();
        assert!(host_addrs.is_empty(), "{host_addrs:?}");
        let j = &ip_json(&sb.host_ns, &["addr", "show", "veth1a2b3c4d"])[0];
        assert_eq!(j["addr_info"].as_array().unwrap().len(), 0);
    });
}

#[test]
fn local_veth_peer_can_be_brought_up_and_clash_is_exists() {
    run("veth_local_and_clash", |sb| {
        let peer = VethEnd {
            up: true,
            ..VethEnd::new("vp0")
        };
        let h = sb
            .host
            .create_veth(&VethEnd::new("vh0"), &peer, None)
            .unwrap();
        assert!(!h.up);
        assert_eq!(h.link_netnsid, None);
        assert!(sb.host.link_by_name("vp0").unwrap().unwrap().up);

        let e = sb
            .host
            .create_veth(
                &VethEnd::new("vh0"),
                &VethEnd::new("vp9"),
                Some(&sb.container_ns),
            )
            .unwrap_err();
        assert!(e.is_exists(), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("creating veth pair vh0 / vp9 (peer in /proc/"),
            "{e}"
        );
        assert!(sb.container.link_by_name("vp9").unwrap().is_none());
    });
}

#[test]
fn remote_peer_up_is_refused_before_any_request() {
    run("veth_remote_peer_up", |sb| {
        let peer = VethEnd {
            up: true,
            ..VethEnd::new("eth0")
        };
        let e = sb
            .host
            .create_veth(&VethEnd::new("vh0"), &peer, Some(&sb.container_ns))
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        assert!(sb.host.link_by_name("vh0").unwrap().is_none());
        let e = sb
            .host
            .create_veth(
                &VethEnd::new("this-name-is-too-long"),
                &VethEnd::new("eth0"),
                None,
            )
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    });
}
