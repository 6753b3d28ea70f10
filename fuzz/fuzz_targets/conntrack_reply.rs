//! netops' ctnetlink dump-entry parser (nfgenmsg + attributes). Invariant: the delete message
//! built from a parsed entry parses back to the same entry key and original tuple.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netops::conntrack::parse_reply;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = parse_reply(data) else { return };
    let _ = (
        entry.orig.to_string(),
        entry.reply.as_ref().map(ToString::to_string),
    );
    let del = entry.delete_payload();
    let back = match parse_reply(&del) {
        Ok(back) => back,
        Err(e) => panic!("our delete payload does not parse: {e}"),
    };
    assert_eq!(back.orig, entry.orig);
    assert_eq!(back.reply, None);
    assert_eq!(back.delete_payload(), del);
    assert_eq!(back.family(), entry.family());
});
