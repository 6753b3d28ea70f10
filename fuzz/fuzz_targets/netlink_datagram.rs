//! netops' netlink reply walker (every socket reply goes through it: rtnetlink, ctnetlink,
//! nf_tables ACKs) with its NLMSG_ERROR / NLMSG_DONE decoding. Invariants: messages tile the
//! datagram (4-byte aligned, none overruns it); a NACK or failed dump has a positive errno.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netops::netlink::decode_datagram;

fuzz_target!(|data: &[u8]| {
    let Ok(frames) = decode_datagram(data) else {
        return;
    };
    let mut off = 0usize;
    for f in &frames {
        let len = f.header.length as usize;
        assert!(
            len >= 16 && off + len <= data.len(),
            "message overruns the datagram"
        );
        assert_eq!(f.payload_len, len - 16);
        if let Some(Some((errno, _))) = &f.error {
            assert!(*errno > 0, "errno {errno}");
        }
        if let Some(errno) = f.done_errno {
            assert!(errno > 0, "errno {errno}");
        }
        off += (len + 3) & !3;
    }
});
