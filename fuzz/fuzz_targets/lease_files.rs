//! host-local's on-disk formats: a lease file's name (before a NUL) and content (after it), and
//! the same content read as an index file. Invariants: a name is a lease only if it is the
//! canonical text of its address; an owner written back in the reference's format reads back
//! the same; an index read, written and read again is unchanged.
#![no_main]

use host_local::disk::{lease_ip, parse_index, render_index};
use host_local::store::Owner;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let (name, content) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let name = String::from_utf8_lossy(name);
    let canonical = name
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| ip.to_string() == name);
    assert_eq!(lease_ip(&name), canonical, "lease name {name:?}");

    let content = String::from_utf8_lossy(content);
    match Owner::parse(&content) {
        Owner::Attachment(a) => {
            assert!(!a.container_id.is_empty());
            assert_eq!(Owner::parse(&a.lease_content()), Owner::Attachment(a));
        }
        Owner::Legacy(id) => {
            assert!(!id.contains("\r\n"));
            assert_eq!(Owner::parse(&id), Owner::Legacy(id.clone()));
        }
        Owner::Unknown => assert!(content.trim().is_empty(), "{content:?} read as nobody's"),
    }

    let index = parse_index(&content);
    assert_eq!(parse_index(&render_index(&index)), index);
});
