use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netops::netlink::NetlinkSocket;

use crate::sandbox::run;

fn encode(seq: u32, index: u32, out: &mut Vec<u8>) {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    let mut h = NetlinkHeader::default();
    h.flags = NLM_F_REQUEST | NLM_F_ACK;
    h.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        h,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(link)),
    );
    msg.finalize();
    let start = out.len();
    out.resize(start + msg.buffer_len(), 0);
    msg.serialize(&mut out[start..]);
}

#[test]
fn batch_acks_are_collected_and_the_failing_sequence_is_named() {
    run("netlink_batch", |sb| {
        let mut nl = NetlinkSocket::open(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
        let (a, b) = (nl.next_seq(), nl.next_seq());
        let mut dgram = Vec::new();
        encode(a, 1, &mut dgram);
        encode(b, 1, &mut dgram);
        nl.send_batch(&dgram, &[a, b]).unwrap();
        assert!(sb.host.link_by_index(1).unwrap().unwrap().up);

        let (c, d) = (nl.next_seq(), nl.next_seq());
        let mut dgram = Vec::new();
        encode(c, 99_999, &mut dgram);
        encode(d, 1, &mut dgram);
        let (seq, failure) = nl.send_batch(&dgram, &[c, d]).unwrap_err();
        assert_eq!(seq, c);
        assert_eq!(failure.errno(), Some(libc::ENODEV));
        // The socket stays usable after a failed batch.
        let (e1,) = (nl.next_seq(),);
        let mut dgram = Vec::new();
        encode(e1, 1, &mut dgram);
        nl.send_batch(&dgram, &[e1]).unwrap();
    });
}
