use netops::{BridgeSpec, MacAddr, VethEnd};

use crate::sandbox::{ip_json, run};

#[test]
fn missing_links_are_none_not_errors() {
    run("missing_links", |sb| {
        assert!(sb.host.link_by_name("nope0").unwrap().is_none());
        assert!(sb.host.link_by_index(99_999).unwrap().is_none());
        let lo = sb.host.link_by_name("lo").unwrap().unwrap();
        assert_eq!(lo.index, 1);
        assert_eq!(lo.kind, None);
        assert_eq!(sb.host.link_by_index(1).unwrap().unwrap().name, "lo");
    });
}

#[test]
fn setters_change_what_the_kernel_reports() {
    run("link_setters", |sb| {
        sb.host.create_bridge(&BridgeSpec::new("br0")).unwrap();
        let br = sb.host.link_by_name("br0").unwrap().unwrap();
        let h = sb
            .host
            .create_veth(&VethEnd::new("vh0"), &VethEnd::new("vp0"), None)
            .unwrap();
        let mac: MacAddr = "02:00:0a:00:00:07".parse().unwrap();
        sb.host.set_mac(h.index, mac).unwrap();
        sb.host.set_mtu(h.index, 1280).unwrap();
        sb.host.set_promisc(h.index, true).unwrap();
        sb.host.set_master(h.index, Some(br.index)).unwrap();
        sb.host.set_link_up(h.index).unwrap();
        let got = sb.host.link_by_index(h.index).unwrap().unwrap();
        assert_eq!(got.mac, Some(mac));
        assert_eq!(got.mtu, 1280);
        assert!(got.promisc && got.up);
        assert_eq!(got.master, Some(br.index));
        assert_eq!(got.kind.as_deref(), Some("veth"));

        let j = &ip_json(&sb.host_ns, &["-d", "link", "show", "vh0"])[0];
        assert_eq!(j["address"], "02:00:0a:00:00:07");
        assert_eq!(j["mtu"], 1280);
        assert_eq!(j["master"], "br0");
        // The bridge holds one promiscuity reference on its ports, we hold the other.
        assert_eq!(j["promiscuity"], 2);
        assert!(j["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

        sb.host.set_promisc(h.index, false).unwrap();
        sb.host.set_link_down(h.index).unwrap();
        sb.host.set_master(h.index, None).unwrap();
        let got = sb.host.link_by_index(h.index).unwrap().unwrap();
        assert!(!got.promisc && !got.up);
        assert_eq!(got.master, None);
        assert_eq!(
            ip_json(&sb.host_ns, &["-d", "link", "show", "vh0"])[0]["promiscuity"],
            0
        );

        // list_links sees everything created here, and nothing else.
        let mut names: Vec<String> = sb
            .host
            .list_links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        names.sort();
        assert_eq!(names, ["br0", "lo", "vh0", "vp0"]);
    });
}

#[test]
fn delete_is_idempotent() {
    run("delete_idempotent", |sb| {
        sb.host.create_bridge(&BridgeSpec::new("gone0")).unwrap();
        sb.host.create_bridge(&BridgeSpec::new("gone1")).unwrap();
        let l = sb.host.link_by_name("gone0").unwrap().unwrap();
        assert!(sb.host.delete_link(l.index).unwrap());
        assert!(!sb.host.delete_link(l.index).unwrap());
        assert!(sb.host.link_by_index(l.index).unwrap().is_none());
        assert!(sb.host.delete_link_by_name("gone1").unwrap());
        assert!(!sb.host.delete_link_by_name("gone1").unwrap());
        assert!(ip_json(&sb.host_ns, &["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] == "lo"));
    });
}

#[test]
fn errors_name_the_operation_and_the_link() {
    run("error_context", |sb| {
        let h = sb
            .host
            .create_veth(&VethEnd::new("vh0"), &VethEnd::new("vp0"), None)
            .unwrap();
        let e = sb.host.set_mtu(h.index, 70_000).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let text = e.to_string();
        assert!(
            text.starts_with("setting MTU 70000 on vh0: Invalid argument (os error 22)"),
            "{text}"
        );

        let e = sb.host.set_link_up(99_999).unwrap_err();
        assert!(e.is_not_found());
        assert!(
            e.to_string()
                .starts_with("setting link #99999 up: No such device"),
            "{e}"
        );

        // From the container socket the netns is named too.
        let e = sb.container.set_mtu(99_999, 1500).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!(" in {}", sb.container_ns.path().display())),
            "{text}"
        );
    });
}
