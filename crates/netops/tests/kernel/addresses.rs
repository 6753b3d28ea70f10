use ipnetwork::IpNetwork;
use netops::{IfAddr, IpFamily, VethEnd};

use crate::sandbox::{ip_json, run, Sandbox};

/// A veth whose container end `ctr0` is up; returns its index in the container.
pub fn container_link(sb: &mut Sandbox) -> u32 {
    sb.host
        .create_veth(
            &VethEnd::new("vh0"),
            &VethEnd::new("ctr0"),
            Some(&sb.container_ns),
        )
        .unwrap();
    let c = sb.container.link_by_name("ctr0").unwrap().unwrap();
    sb.container.set_link_up(c.index).unwrap();
    c.index
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[test]
fn v4_and_v6_addresses_add_list_replace_delete() {
    run("addresses", |sb| {
        let idx = container_link(sb);
        let v4 = IfAddr::new(idx, net("10.1.0.5/24"));
        let v6 = IfAddr::new(idx, net("fd00:1::5/64")).without_dad();
        sb.container.add_address(&v4).unwrap();
        sb.container.add_address(&v6).unwrap();

        let got4 = sb
            .container
            .list_addresses(Some(idx), Some(IpFamily::V4))
            .unwrap();
        assert_eq!(got4, [v4]);
        let got6 = sb
            .container
            .list_addresses(Some(idx), Some(IpFamily::V6))
            .unwrap();
        let ours = got6
            .iter()
            .find(|a| a.network == net("fd00:1::5/64"))
            .unwrap();
        assert!(
            ours.nodad && !ours.tentative && !ours.dad_failed,
            "{ours:?}"
        );
        assert!(got6.iter().all(|a| a.network.is_ipv6()));
        // Unfiltered: both families, and lo has nothing (it is down in a fresh netns).
        assert!(sb.container.list_addresses(None, None).unwrap().len() >= 2);

        // iproute2 sees the broadcast we set and the nodad flag.
        let j = &ip_json(&sb.container_ns, &["addr", "show", "ctr0"])[0]["addr_info"];
        let a4 = j
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["family"] == "inet")
            .unwrap();
        assert_eq!(a4["local"], "10.1.0.5");
        assert_eq!(a4["prefixlen"], 24);
        assert_eq!(a4["broadcast"], "10.1.0.255");
        let a6 = j
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["local"] == "fd00:1::5")
            .unwrap();
        assert_eq!(a6["nodad"], true);

        // Adding twice is Exists, with the address, link and netns in the message.
        let e = sb.container.add_address(&v4).unwrap_err();
        assert!(e.is_exists());
        // The kernel's extended-ACK text, when it sends one, follows in parentheses.
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "adding 10.1.0.5/24 to ctr0 in {}: File exists (os error 17)",
                sb.container_ns.path().display()
            )),
            "{text}"
        );
        sb.container.replace_address(&v4).unwrap();

        assert!(sb
            .container
            .delete_address(idx, net("10.1.0.5/24"))
            .unwrap());
        assert!(!sb
            .container
            .delete_address(idx, net("10.1.0.5/24"))
            .unwrap());
        assert!(sb
            .container
            .delete_address(idx, net("fd00:1::5/64"))
            .unwrap());
        assert!(sb
            .container
            .list_addresses(Some(idx), Some(IpFamily::V4))
            .unwrap()
            .is_empty());
        let left6 = sb
            .container
            .list_addresses(Some(idx), Some(IpFamily::V6))
            .unwrap();
        assert!(
            left6
                .iter()
                .all(|a| a.network.ip().to_string().starts_with("fe80:")),
            "{left6:?}"
        );
    });
}

#[test]
fn point_to_point_prefixes_get_no_broadcast() {
    run("addresses_p2p", |sb| {
        let idx = container_link(sb);
        sb.container
            .add_address(&IfAddr::new(idx, net("10.9.0.1/32")))
            .unwrap();
        let j = &ip_json(&sb.container_ns, &["addr", "show", "ctr0"])[0]["addr_info"];
        let a = j
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["family"] == "inet")
            .unwrap();
        assert_eq!(a["prefixlen"], 32);
        assert!(a.get("broadcast").is_none(), "{a}");
    });
}
