//! ctnetlink against the kernel: entries are created with IPCTNL_MSG_CT_NEW (encoded here, by
//! hand, independently of the module), then listed and selectively deleted through
//! `netops::Conntrack`; /proc's view of the table cross-checks the result.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netops::conntrack::IPPROTO_UDP;
use netops::netlink::NetlinkSocket;
use netops::{Conntrack, IpFamily};

use crate::sandbox::run;

const IPPROTO_TCP: u8 = 6;

fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
    let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize((v.len() + 3) & !3, 0);
    v
}

const NESTED: u16 = 0x8000;

fn tuple(ty: u16, src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let ips = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [nla(1, &s.octets()), nla(2, &d.octets())].concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => [nla(3, &s.octets()), nla(4, &d.octets())].concat(),
        _ => panic!("mixed families"),
    };
    let l4 = [
        nla(1, &[proto]),
        nla(2, &sport.to_be_bytes()),
        nla(3, &dport.to_be_bytes()),
    ]
    .concat();
    nla(
        ty | NESTED,
        &[nla(1 | NESTED, &ips), nla(2 | NESTED, &l4)].concat(),
    )
}

/// Creates a DNAT-looking entry `client:sport -> host:dport` in `zone`, answered by
/// `server:dport`.
#[allow(clippy::too_many_arguments)]
fn create(
    nl: &mut NetlinkSocket,
    client: &str,
    host: &str,
    server: &str,
    proto: u8,
    sport: u16,
    dport: u16,
    zone: u16,
) {
    let (c, h, s): (IpAddr, IpAddr, IpAddr) = (
        client.parse().unwrap(),
        host.parse().unwrap(),
        server.parse().unwrap(),
    );
    let family = if c.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    let mut payload = vec![family, 0, 0, 0];
    payload.extend(tuple(1, c, h, proto, sport, dport));
    payload.extend(tuple(2, s, c, proto, dport, sport));
    payload.extend(nla(7, &60u32.to_be_bytes())); // CTA_TIMEOUT, required for a new entry
    if zone != 0 {
        payload.extend(nla(18, &zone.to_be_bytes())); // CTA_ZONE
    }
    if proto == IPPROTO_TCP {
        // CTA_PROTOINFO { CTA_PROTOINFO_TCP { CTA_PROTOINFO_TCP_STATE = ESTABLISHED } }
        let tcp = nla(1 | NESTED, &nla(1, &[3]));
        payload.extend(nla(4 | NESTED, &tcp));
    }
    let seq = nl.next_seq();
    let len = (16 + payload.len()) as u32;
    let mut msg = len.to_ne_bytes().to_vec();
    msg.extend_from_slice(&(1u16 << 8).to_ne_bytes()); // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(payload);
    nl.send_batch(&msg, &[seq])
        .unwrap_or_else(|(_, e)| panic!("creating {client}:{sport} -> {host}:{dport}: {e}"));
}

/// The /proc view: (protocol name, original destination port) per entry.
fn proc_entries() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")
        .unwrap()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let dport = w.iter().find(|x| x.starts_with("dport=")).unwrap();
            (w[2].to_string(), dport.to_string())
        })
        .collect()
}

#[test]
fn only_udp_entries_to_the_given_ports_of_the_given_family_are_deleted() {
    run("conntrack_delete", |_| {
        let mut nl = NetlinkSocket::open(netlink_sys::protocols::NETLINK_NETFILTER).unwrap();
        let mut ct = Conntrack::open().unwrap();
        // A fresh netns has an empty table, and listing it is no error.
        assert!(ct.entries(Some(IpFamily::V4)).unwrap().is_empty());
        assert_eq!(
            ct.delete_by_orig_dst_port(&[IpFamily::V4], IPPROTO_UDP, &[9053])
                .unwrap(),
            0
        );

        let (c4, h4, s4) = ("192.0.2.2", "192.0.2.1", "10.9.0.2");
        let (c6, h6, s6) = ("2001:db8:9::2", "2001:db8:9::1", "fd00:9::2");
        create(&mut nl, c4, h4, s4, IPPROTO_UDP, 40000, 9053, 0);
        create(&mut nl, c4, h4, s4, IPPROTO_UDP, 40001, 9053, 0);
        // Same tuple, another zone: a delete must name the zone or it misses this one.
        create(&mut nl, c4, h4, s4, IPPROTO_UDP, 40001, 9053, 7);
        create(&mut nl, c4, h4, s4, IPPROTO_UDP, 40000, 9054, 0);
        create(&mut nl, c4, h4, s4, IPPROTO_TCP, 40000, 9053, 0);
        create(&mut nl, c6, h6, s6, IPPROTO_UDP, 40000, 9053, 0);

        let v4 = ct.entries(Some(IpFamily::V4)).unwrap();
        assert_eq!(v4.len(), 5, "{v4:?}");
        let e = v4.iter().find(|e| e.orig.src_port == Some(40001)).unwrap();
        assert_eq!(e.orig.dst, h4.parse::<IpAddr>().unwrap());
        assert_eq!(e.reply.as_ref().unwrap().src, s4.parse::<IpAddr>().unwrap());
        assert_eq!(ct.entries(Some(IpFamily::V6)).unwrap().len(), 1);

        let n = ct
            .delete_by_orig_dst_port(&[IpFamily::V4], IPPROTO_UDP, &[9053, 7])
            .unwrap();
        assert_eq!(n, 3);
        let mut left = proc_entries();
        left.sort();
        let want = [
            ("tcp", "dport=9053"),
            ("udp", "dport=9053"),
            ("udp", "dport=9054"),
        ];
        assert_eq!(
            left,
            want.map(|(a, b)| (a.to_string(), b.to_string())),
            "v4 tcp/9053, v4 udp/9054 and v6 udp/9053 stay"
        );
        // Both families in one walk of the table.
        let both = [IpFamily::V4, IpFamily::V6];
        assert_eq!(
            ct.delete_by_orig_dst_port(&both, IPPROTO_UDP, &[9053, 9054])
                .unwrap(),
            2
        );
        assert_eq!(
            proc_entries(),
            [("tcp".to_string(), "dport=9053".to_string())]
        );
        assert_eq!(ct.entries(None).unwrap().len(), 1);
        // Deleting an entry that is already gone is not an error.
        let tcp = v4.iter().find(|e| e.orig.protocol == IPPROTO_TCP).unwrap();
        assert!(ct.delete(tcp).unwrap());
        assert!(!ct.delete(tcp).unwrap());
    });
}
