use std::net::IpAddr;

use netops::{IfAddr, IpFamily, Route, Scope};

use crate::addresses::container_link;
use crate::sandbox::{ip_json, run};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The container link with 10.1.0.5/24 and fd00:1::5/64, so gateways in both are reachable.
fn addressed_container_link(sb: &mut crate::sandbox::Sandbox) -> u32 {
    let idx = container_link(sb);
    let c = &mut sb.container;
    c.add_address(&IfAddr::new(idx, "10.1.0.5/24".parse().unwrap()))
        .unwrap();
    c.add_address(&IfAddr::new(idx, "fd00:1::5/64".parse().unwrap()).without_dad())
        .unwrap();
    idx
}

#[test]
fn routes_add_replace_list_delete_including_default_via_gateway() {
    run("routes", |sb| {
        let idx = addressed_container_link(sb);
        let c = &mut sb.container;

        let def4 = Route::default_via(ip("10.1.0.1"), Some(idx));
        let def6 = Route::default_via(ip("fd00:1::1"), Some(idx));
        c.add_route(&def4).unwrap();
        c.add_route(&def6).unwrap();
        let mut extra = Route::new("192.168.0.0/16".parse().unwrap())
            .via(ip("10.1.0.1"))
            .dev(idx)
            .metric(100);
        extra.mtu = Some(1400);
        c.add_route(&extra).unwrap();
        let onlink = Route::new("172.16.0.0/12".parse().unwrap())
            .dev(idx)
            .scope(Scope::Link);
        c.add_route(&onlink).unwrap();

        let v4 = c.list_routes(Some(IpFamily::V4)).unwrap();
        assert!(v4.contains(&def4), "{v4:?}");
        assert!(v4.contains(&extra), "{v4:?}");
        assert!(v4.contains(&onlink), "{v4:?}");
        assert!(v4.iter().all(|r| r.dst.is_ipv4()));
        let v6 = c.list_routes(Some(IpFamily::V6)).unwrap();
        let d6 = v6.iter().find(|r| r.dst.prefix() == 0).unwrap();
        assert_eq!(d6.gateway, Some(ip("fd00:1::1")));
        assert_eq!(d6.oif, Some(idx));

        let e = c.add_route(&def4).unwrap_err();
        assert!(e.is_exists());
        assert!(
            e.to_string()
                .starts_with("adding route default via 10.1.0.1 dev ctr0 in /proc/"),
            "{e}"
        );

        // replace moves the default route to another gateway.
        let def4b = Route::default_via(ip("10.1.0.2"), Some(idx));
        c.replace_route(&def4b).unwrap();
        let j = ip_json(&sb.container_ns, &["route", "show", "default"]);
        let j = j.as_array().unwrap();
        assert_eq!(j.len(), 1, "{j:?}");
        assert_eq!(j[0]["gateway"], "10.1.0.2");
        assert_eq!(j[0]["dev"], "ctr0");
        let j = &ip_json(&sb.container_ns, &["route", "show", "192.168.0.0/16"])[0];
        assert_eq!(j["metric"], 100);
        assert_eq!(j["metrics"][0]["mtu"], 1400);

        let c = &mut sb.container;
        assert!(c.delete_route(&def4b).unwrap());
        assert!(!c.delete_route(&def4b).unwrap());
        assert!(c.delete_route(&extra).unwrap());
        assert!(c.delete_route(&def6).unwrap());
        let v4 = c.list_routes(Some(IpFamily::V4)).unwrap();
        assert!(
            v4.iter()
                .all(|r| r.dst.prefix() != 0 && r.dst.prefix() != 16),
            "{v4:?}"
        );
        // The host sandbox never saw any of it.
        assert!(sb.host.list_routes(None).unwrap().is_empty());
    });
}

#[test]
fn a_second_route_to_one_destination_via_another_gateway_is_added_next_to_the_first() {
    run("routes-ecmp", |sb| {
        let idx = addressed_container_link(sb);
        let c = &mut sb.container;
        for (a, b) in [("10.1.0.1", "10.1.0.2"), ("fd00:1::1", "fd00:1::2")] {
            let first = Route::default_via(ip(a), Some(idx));
            let second = Route::default_via(ip(b), Some(idx));
            c.add_route(&first).unwrap();
            c.add_route(&second).unwrap();
            // Only an identical route is refused.
            assert!(c.add_route(&second).unwrap_err().is_exists());
            let family = IpFamily::of(&ip(a));
            let listed = c.list_routes(Some(family)).unwrap();
            for want in [ip(a), ip(b)] {
                assert!(
                    listed.iter().any(|r| r.dst.prefix() == 0
                        && r.gateway == Some(want)
                        && r.oif == Some(idx)),
                    "{want} missing from {listed:?}"
                );
            }
        }
    });
}
