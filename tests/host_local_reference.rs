//! Differential tests: the same inputs to our `host-local` and the Go reference
//! (`/usr/lib/cni/host-local`), comparing results, error codes and on-disk state, and handing
//! one data dir back and forth between the two.

use cni_suite_tests::{lease_names, our_plugin, reference_plugin, Call, Reply};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const NET: &str = "refnet";

fn config(version: &str, data_dir: &Path, mut ipam: Value, extra: Value) -> String {
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data_dir);
    let mut conf = json!({ "cniVersion": version, "name": NET, "type": "bridge", "ipam": ipam });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf.to_string()
}

/// Both binaries, or `None` (with a notice) outside CI when the reference is missing.
fn both() -> Option<(PathBuf, PathBuf)> {
    Some((our_plugin("host-local"), reference_plugin("host-local")?))
}

/// Everything a data dir holds for the network: file name → content (lock and our index
/// excluded: the reference has no index, and the lock is empty).
fn disk_state(data_dir: &Path) -> Vec<(String, String)> {
    let dir = data_dir.join(NET);
    let mut state: Vec<(String, String)> = fs::read_dir(&dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with('.'))
                .map(|n| {
                    let content = fs::read_to_string(dir.join(&n)).unwrap_or_default();
                    (n, content)
                })
                .collect()
        })
        .unwrap_or_default();
    state.sort();
    state
}

/// Runs `call` against both binaries, each with its own fresh data dir.
struct Pair<'a> {
    bins: &'a (PathBuf, PathBuf),
    ours_dir: tempfile::TempDir,
    ref_dir: tempfile::TempDir,
}

impl Pair<'_> {
    fn new(bins: &(PathBuf, PathBuf)) -> Pair<'_> {
        Pair {
            bins,
            ours_dir: tempfile::tempdir().expect("tempdir"),
            ref_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run(
        &self,
        command: &str,
        id: &str,
        version: &str,
        ipam: &Value,
        extra: &Value,
        args: &str,
    ) -> (Reply, Reply) {
        let ours = Call::new(
            command,
            id,
            config(version, self.ours_dir.path(), ipam.clone(), extra.clone()),
        )
        .args(args)
        .run(&self.bins.0);
        let reference = Call::new(
            command,
            id,
            config(version, self.ref_dir.path(), ipam.clone(), extra.clone()),
        )
        .args(args)
        .run(&self.bins.1);
        (ours, reference)
    }
}

/// Results compared as JSON values; the reference omits an empty `dns` in newer builds, so an
/// empty object and an absent key are the same here.
fn normalized(mut v: Value) -> Value {
    if v.get("dns") == Some(&json!({})) {
        if let Some(o) = v.as_object_mut() {
            o.remove("dns");
        }
    }
    v
}

#[test]
fn results_and_leases_match_the_reference_for_every_version_and_config_form() {
    let Some(bins) = both() else { return };
    let forms = [
        (
            "subnet shorthand",
            json!({ "subnet": "10.11.0.0/24" }),
            json!({}),
        ),
        (
            "ranges with start/end/gateway and routes",
            json!({
                "ranges": [[
                    { "subnet": "10.12.0.0/24", "rangeStart": "10.12.0.50", "rangeEnd": "10.12.0.60", "gateway": "10.12.0.254" },
                    { "subnet": "10.13.0.0/24" }
                ]],
                "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "10.99.0.0/16", "gw": "10.12.0.7" }]
            }),
            json!({}),
        ),
        (
            "dual-stack",
            json!({ "ranges": [[{ "subnet": "10.14.0.0/24" }], [{ "subnet": "fd00:14::/64" }]] }),
            json!({}),
        ),
        (
            "runtimeConfig.ipRanges before the configured ranges",
            json!({ "subnet": "10.15.0.0/24" }),
            json!({ "runtimeConfig": { "ipRanges": [[{ "subnet": "fd00:15::/120" }]] } }),
        ),
        (
            "requested address via runtimeConfig.ips",
            json!({ "subnet": "10.16.0.0/24" }),
            json!({ "runtimeConfig": { "ips": ["10.16.0.42"] } }),
        ),
        (
            "requested address via args.cni.ips",
            json!({ "subnet": "10.17.0.0/24" }),
            json!({ "args": { "cni": { "ips": ["10.17.0.43"] } } }),
        ),
    ];
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        for (what, ipam, extra) in &forms {
            let pair = Pair::new(&bins);
            for id in ["c1", "c2"] {
                let (ours, reference) = pair.run("ADD", id, version, ipam, extra, "");
                assert_eq!(
                    ours.status, reference.status,
                    "{version} {what}: exit status\nours: {ours:?}\nreference: {reference:?}"
                );
                if reference.status == 0 {
                    assert_eq!(
                        normalized(ours.json()),
                        normalized(reference.json()),
                        "{version} {what}: result"
                    );
                } else {
                    assert_eq!(
                        ours.json()["code"],
                        reference.json()["code"],
                        "{version} {what}: error code\nours: {ours:?}\nreference: {reference:?}"
                    );
                }
            }
            assert_eq!(
                disk_state(pair.ours_dir.path()),
                disk_state(pair.ref_dir.path()),
                "{version} {what}: files on disk"
            );
        }
    }
}

#[test]
fn cni_args_ip_matches_the_reference() {
    let Some(bins) = both() else { return };
    let pair = Pair::new(&bins);
    let ipam = json!({ "subnet": "10.18.0.0/24" });
    let (ours, reference) = pair.run(
        "ADD",
        "c",
        "1.0.0",
        &ipam,
        &json!({}),
        "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.18.0.44",
    );
    assert_eq!(ours.json(), reference.json());
    assert_eq!(
        disk_state(pair.ours_dir.path()),
        disk_state(pair.ref_dir.path())
    );
}

#[test]
fn error_codes_match_the_reference() {
    let Some(bins) = both() else { return };
    // The reference answers every one of these with the catch-all 999; we give the spec's code
    // (7 invalid config, 4 invalid CNI_ARGS) with the very same message.
    let cases = [
        ("host bits set", json!({ "subnet": "10.0.0.1/24" }), "", 7),
        (
            "subnet too small",
            json!({ "subnet": "10.0.0.0/31" }),
            "",
            7,
        ),
        (
            "rangeStart outside the subnet",
            json!({ "ranges": [[{ "subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5" }]] }),
            "",
            7,
        ),
        (
            "overlapping range sets",
            json!({ "ranges": [[{ "subnet": "10.0.0.0/24" }], [{ "subnet": "10.0.0.0/25" }]] }),
            "",
            7,
        ),
        (
            "mixed families in one set",
            json!({ "ranges": [[{ "subnet": "10.0.0.0/24" }, { "subnet": "fd00::/64" }]] }),
            "",
            7,
        ),
        ("no ranges", json!({}), "", 7),
        (
            "unknown CNI_ARGS key",
            json!({ "subnet": "10.0.0.0/24" }),
            "FOO=bar",
            4,
        ),
        (
            "requested IP outside",
            json!({ "subnet": "10.0.0.0/24" }),
            "IP=10.9.9.9",
            999,
        ),
    ];
    for (what, ipam, args, code) in &cases {
        let pair = Pair::new(&bins);
        let (ours, reference) = pair.run("ADD", "c", "1.0.0", ipam, &json!({}), args);
        assert_ne!(reference.status, 0, "{what}: reference accepted it");
        let (ours_err, ref_err) = (ours.err(*code), reference.json());
        assert_eq!(ref_err["code"], 999, "{what}: {reference:?}");
        assert_eq!(ours_err["msg"], ref_err["msg"], "{what}");
        assert!(lease_names(&pair.ours_dir.path().join(NET)).is_empty());
    }
    // Malformed JSON and unknown versions.
    for stdin in [
        "{oops",
        r#"{"cniVersion":"5.0.0","name":"n","ipam":{"type":"host-local"}}"#,
    ] {
        let ours = Call::new("ADD", "c", stdin).run(&bins.0);
        let reference = Call::new("ADD", "c", stdin).run(&bins.1);
        assert_eq!(
            ours.json()["code"],
            reference.json()["code"],
            "{stdin}\nours: {ours:?}\nreference: {reference:?}"
        );
    }
}

#[test]
fn exhaustion_matches_the_reference() {
    let Some(bins) = both() else { return };
    let pair = Pair::new(&bins);
    let ipam = json!({ "subnet": "10.19.0.0/29" });
    for i in 0..6 {
        let (ours, reference) = pair.run("ADD", &format!("c{i}"), "1.0.0", &ipam, &json!({}), "");
        assert_eq!(ours.status, reference.status, "ADD #{i}");
        if reference.status == 0 {
            assert_eq!(ours.json(), reference.json(), "ADD #{i}");
        } else {
            assert_eq!(ours.json()["code"], reference.json()["code"]);
            assert_eq!(ours.json()["msg"], reference.json()["msg"]);
        }
    }
    assert_eq!(
        disk_state(pair.ours_dir.path()),
        disk_state(pair.ref_dir.path())
    );
}

/// One data dir driven alternately by the two binaries.
struct Shared {
    dir: tempfile::TempDir,
    bins: (PathBuf, PathBuf),
}

impl Shared {
    fn call(&self, ours: bool, command: &str, id: &str) -> Reply {
        let conf = config(
            "1.0.0",
            self.dir.path(),
            json!({ "subnet": "10.21.0.0/24" }),
            json!({}),
        );
        let bin = if ours { &self.bins.0 } else { &self.bins.1 };
        Call::new(command, id, conf).run(bin)
    }

    fn add(&self, ours: bool, id: &str) -> String {
        self.call(ours, "ADD", id).ok()["ips"][0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn leases(&self) -> Vec<String> {
        lease_names(&self.dir.path().join(NET))
    }
}

#[test]
fn leases_are_interchangeable_with_the_reference_both_ways() {
    let Some(bins) = both() else { return };
    let shared = Shared {
        dir: tempfile::tempdir().expect("tempdir"),
        bins,
    };
    const OURS: bool = true;
    const REF: bool = false;
    // Alternating ADDs see each other's leases and continue one round-robin sequence.
    assert_eq!(shared.add(OURS, "a"), "10.21.0.2/24");
    assert_eq!(shared.add(REF, "b"), "10.21.0.3/24");
    assert_eq!(shared.add(OURS, "c"), "10.21.0.4/24");
    assert_eq!(shared.add(REF, "d"), "10.21.0.5/24");

    // Each refuses a second allocation for an attachment the other made.
    shared.call(OURS, "ADD", "b").err(999);
    assert_ne!(shared.call(REF, "ADD", "a").status, 0);

    // CHECK across implementations.
    let check = |ours: bool, id: &str| {
        let conf = config(
            "1.0.0",
            shared.dir.path(),
            json!({ "subnet": "10.21.0.0/24" }),
            json!({}),
        );
        let bin = if ours { &shared.bins.0 } else { &shared.bins.1 };
        Call::new("CHECK", id, conf).run(bin)
    };
    check(REF, "a").ok();
    check(OURS, "b").ok();

    // Each releases the other's leases, and only those.
    shared.call(REF, "DEL", "a").ok();
    assert_eq!(shared.leases(), vec!["10.21.0.3", "10.21.0.4", "10.21.0.5"]);
    shared.call(OURS, "DEL", "b").ok();
    assert_eq!(shared.leases(), vec!["10.21.0.4", "10.21.0.5"]);
    // Our index learned about "d" from the files, and DEL by the reference of our "c" is seen.
    shared.call(REF, "DEL", "c").ok();
    shared.call(OURS, "DEL", "d").ok();
    assert!(shared.leases().is_empty());
    // Both continue after the last reserved address, whoever reserved it.
    assert_eq!(shared.add(OURS, "e"), "10.21.0.6/24");
    assert_eq!(shared.add(REF, "f"), "10.21.0.7/24");
    shared.call(OURS, "DEL", "f").ok();
    shared.call(REF, "DEL", "e").ok();
    assert!(shared.leases().is_empty());
}

#[test]
fn legacy_leases_without_ifname_are_released_like_the_reference() {
    let Some(bins) = both() else { return };
    for bin in [&bins.0, &bins.1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let net_dir = dir.path().join(NET);
        fs::create_dir_all(&net_dir).expect("mkdir");
        fs::write(net_dir.join("10.22.0.9"), "legacy-id").expect("write");
        fs::write(net_dir.join("10.22.0.10"), "other-id").expect("write");
        let conf = config(
            "1.0.0",
            dir.path(),
            json!({ "subnet": "10.22.0.0/24" }),
            json!({}),
        );
        Call::new("DEL", "legacy-id", conf).run(bin).ok();
        assert_eq!(
            lease_names(&net_dir),
            vec!["10.22.0.10"],
            "{}",
            bin.display()
        );
    }
}

/// Two addresses of one family cannot be carried by a 0.1.0/0.2.0 result: the reference's
/// error (code 999, same text), before either takes a lease.
#[test]
fn two_addresses_of_one_family_at_0_2_fail_as_the_reference_without_a_lease() {
    let Some(bins) = both() else { return };
    let ipam = json!({ "ranges": [[{ "subnet": "10.0.0.0/24" }], [{ "subnet": "10.0.1.0/24" }]] });
    for version in ["0.1.0", "0.2.0"] {
        let pair = Pair::new(&bins);
        let (ours, reference) = pair.run("ADD", "c", version, &ipam, &json!({}), "");
        let (o, t) = (ours.err(999), reference.json());
        assert_eq!(
            (&o["code"], &o["msg"]),
            (&t["code"], &t["msg"]),
            "{version}"
        );
        assert_eq!(
            o["msg"],
            format!("CNI version {version} does not support more than 1 address per family")
        );
        assert!(lease_names(&pair.ours_dir.path().join(NET)).is_empty());
        assert!(lease_names(&pair.ref_dir.path().join(NET)).is_empty());
    }
}

/// Configs as Go-cased clients and hand-written files send them, with `@DIR` standing for the
/// JSON-quoted data dir. Raw text: a `Value` cannot hold a duplicated key.
const GO_CASED: &[(&str, &str)] = &[
    (
        "Go-cased ipam keys",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","IPAM":{"Type":"host-local",
            "Subnet":"10.31.0.0/24","RangeStart":"10.31.0.5","Gateway":"10.31.0.9","DataDir":@DIR}}"#,
    ),
    (
        "Go-cased ranges and routes",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "Ranges":[[{"Subnet":"10.32.0.0/24","RangeStart":"10.32.0.9","RangeEnd":"10.32.0.20",
            "Gateway":"10.32.0.1"}]],"Routes":[{"Dst":"0.0.0.0/0","GW":"10.32.0.7"}],"dataDir":@DIR}}"#,
    ),
    (
        "go-cni runtimeConfig.ipRanges (untagged struct) and Go-cased requested IPs",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge",
            "ipam":{"type":"host-local","subnet":"10.33.0.0/24","dataDir":@DIR},
            "RuntimeConfig":{"IPRanges":[[{"Subnet":"10.34.0.0/24","RangeStart":"10.34.0.5",
            "RangeEnd":"10.34.0.9","Gateway":"10.34.0.1"}]],"IPs":["10.34.0.7"]},
            "Args":{"CNI":{"IPs":["10.33.0.77"]}}}"#,
    ),
    (
        "a case variant after the key: the last one wins",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "subnet":"10.35.0.0/24","SUBNET":"10.36.0.0/24","dataDir":"/nonexistent/x","DATADIR":@DIR}}"#,
    ),
    (
        "the same key twice: the last one wins",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "subnet":"10.37.0.0/24","subnet":"10.38.0.0/24","dataDir":@DIR}}"#,
    ),
    (
        "a struct given twice decodes into the first",
        r#"{"cniVersion":"0.3.1","CNIVersion":"0.2.0","cniVersion":"0.4.0","name":"refnet",
            "type":"bridge","ipam":{"type":"host-local","subnet":"10.39.0.0/24"},"IPAM":{"dataDir":@DIR}}"#,
    ),
    (
        "Go's Kelvin sign and long s fold to k and s",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "\u017fubnet":"10.40.0.0/24","dataDir":@DIR,"ranges":[[{"\u017fUBNET":"10.41.0.0/24"}]]}}"#,
    ),
    (
        "other Unicode case folds are not Go's: no ipam",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge",
            "\u0130pam":{"type":"host-local","subnet":"10.42.0.0/24","dataDir":@DIR}}"#,
    ),
    (
        "a later null: net.IP fields clear, string fields keep their value (Go value types)",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "subnet":"10.44.0.0/24","rangeStart":"10.44.0.50","RangeStart":null,"Gateway":"10.44.0.9",
            "gateway":null,"resolvConf":"/etc/resolv.conf","ResolvConf":null,"dataDir":@DIR}}"#,
    ),
    (
        "a later null list empties the earlier one",
        r#"{"cniVersion":"1.0.0","name":"refnet","type":"bridge","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"10.43.0.0/24"}]],"Ranges":null,"dataDir":@DIR}}"#,
    ),
];

#[test]
fn go_cased_and_duplicated_keys_read_as_the_reference_reads_them() {
    let Some(bins) = both() else { return };
    for (what, template) in GO_CASED {
        let dirs = [
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        ];
        let replies: Vec<(Reply, Reply)> = dirs
            .iter()
            .zip([&bins.0, &bins.1])
            .map(|(dir, bin)| {
                let conf = template.replace("@DIR", &json!(dir.path()).to_string());
                let add = Call::new("ADD", "c", conf.as_str()).run(bin);
                let del = Call::new("DEL", "c", conf.as_str()).run(bin);
                (add, del)
            })
            .collect();
        let [(ours, ours_del), (reference, ref_del)] = &replies[..] else {
            unreachable!()
        };
        assert_eq!(
            ours.status, reference.status,
            "{what}\nours: {ours:?}\nreference: {reference:?}"
        );
        if reference.status == 0 {
            assert_eq!(
                normalized(ours.json()),
                normalized(reference.json()),
                "{what}"
            );
        } else {
            assert_eq!(ours.json()["msg"], reference.json()["msg"], "{what}");
        }
        // (DEL of a config whose ranges do not validate differs on purpose: ours releases.)
        if reference.status == 0 {
            assert_eq!(ours_del.status, ref_del.status, "{what}: DEL");
        }
        assert_eq!(
            disk_state(dirs[0].path()),
            disk_state(dirs[1].path()),
            "{what}"
        );
        // DEL found the leases where ADD put them (the last dataDir variant).
        assert!(lease_names(&dirs[0].path().join(NET)).is_empty(), "{what}");
    }
}
