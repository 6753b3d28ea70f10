//! Only per-interface keys of interfaces that exist nowhere but in the sandbox are written, so
//! even a broken netns switch could not change the machine's settings.

use netops::{
    run_in_netns, set_accept_ra, set_arp_notify, sysctl_read, sysctl_read_in, sysctl_write_in,
    BridgeSpec,
};

use crate::addresses::container_link;
use crate::sandbox::run;

#[test]
fn sysctls_are_written_and_read_in_the_right_netns() {
    run("sysctls", |sb| {
        container_link(sb); // "ctr0" in the container only
        sysctl_write_in(
            &sb.container_ns,
            &[
                ("net/ipv4/conf/ctr0/arp_notify", "1"),
                ("net/ipv6/conf/ctr0/accept_dad", "0"),
            ],
        )
        .unwrap();
        assert_eq!(
            sysctl_read_in(&sb.container_ns, "net/ipv4/conf/ctr0/arp_notify").unwrap(),
            "1"
        );
        assert_eq!(
            sysctl_read_in(&sb.container_ns, "net.ipv6.conf.ctr0.accept_dad").unwrap(),
            "0"
        );
        let via_helper = run_in_netns(&sb.container_ns, || {
            set_arp_notify("ctr0", false)?;
            sysctl_read("net/ipv4/conf/ctr0/arp_notify")
        })
        .unwrap()
        .unwrap();
        assert_eq!(via_helper, "0");

        // This thread is in the host sandbox, where ctr0 does not exist.
        let e = sysctl_read("net/ipv4/conf/ctr0/arp_notify").unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "reading /proc/sys/net/ipv4/conf/ctr0/arp_notify: No such file or directory (os error 2)"
        );

        // Writes on this thread land in the host sandbox.
        sb.host.create_bridge(&BridgeSpec::new("sbx-br0")).unwrap();
        set_accept_ra("sbx-br0", 0).unwrap();
        assert_eq!(sysctl_read("net/ipv6/conf/sbx-br0/accept_ra").unwrap(), "0");
        set_accept_ra("sbx-br0", 1).unwrap();
        assert_eq!(sysctl_read("net/ipv6/conf/sbx-br0/accept_ra").unwrap(), "1");

        // Errors inside the container name the netns.
        let e = sysctl_write_in(&sb.container_ns, &[("net/ipv4/conf/nope0/arp_notify", "1")])
            .unwrap_err();
        assert!(e.is_not_found());
        assert!(
            e.to_string().starts_with(&format!(
                "writing \"1\" to /proc/sys/net/ipv4/conf/nope0/arp_notify in {}",
                sb.container_ns.path().display()
            )),
            "{e}"
        );
    });
}
