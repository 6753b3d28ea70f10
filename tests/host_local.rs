//! Black-box tests of the `host-local` binary: real env, real stdin, real data dir on disk.
//! No network namespace is needed: host-local only touches its data dir (a temp dir here).

use cni_suite_tests::{lease_names, our_plugin, Call, Reply};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const NET: &str = "testnet";

/// A network config plus the temp data dir its `ipam` points at.
struct Net {
    data: tempfile::TempDir,
    version: String,
    ipam: Value,
    extra: Value,
}

impl Net {
    fn new(version: &str, mut ipam: Value) -> Net {
        let data = tempfile::tempdir().expect("tempdir");
        ipam["type"] = json!("host-local");
        ipam["dataDir"] = json!(data.path());
        Net {
            data,
            version: version.to_string(),
            ipam,
            extra: json!({}),
        }
    }

    fn subnet(version: &str, subnet: &str) -> Net {
        Net::new(version, json!({ "ranges": [[{ "subnet": subnet }]] }))
    }

    fn with(mut self, key: &str, value: Value) -> Net {
        self.extra[key] = value;
        self
    }

    fn config(&self) -> String {
        let mut conf = json!({
            "cniVersion": self.version,
            "name": NET,
            "type": "bridge",
            "ipam": self.ipam,
        });
        if let (Some(c), Some(e)) = (conf.as_object_mut(), self.extra.as_object()) {
            c.extend(e.clone());
        }
        conf.to_string()
    }

    fn dir(&self) -> PathBuf {
        self.data.path().join(NET)
    }

    fn leases(&self) -> Vec<String> {
        lease_names(&self.dir())
    }

    fn call(&self, command: &str, id: &str) -> Call {
        Call::new(command, id, self.config())
    }

    fn add(&self, id: &str) -> Reply {
        self.call("ADD", id).run(&host_local())
    }

    fn del(&self, id: &str) -> Reply {
        self.call("DEL", id).run(&host_local())
    }

    fn add_ip(&self, id: &str) -> String {
        first_ip(&self.add(id).ok())
    }
}

fn host_local() -> PathBuf {
    our_plugin("host-local")
}

fn first_ip(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[0].address in {result}"))
        .to_string()
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|ip| ip["address"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn lease_content(dir: &Path, ip: &str) -> String {
    fs::read_to_string(dir.join(ip)).unwrap_or_else(|e| panic!("lease {ip}: {e}"))
}

#[test]
fn version_lists_all_seven_versions() {
    let reply = Call::new("VERSION", "", "").run(&host_local());
    let v = reply.ok();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn without_cni_command_prints_usage_to_stderr_only() {
    let reply = Call::new("", "", "")
        .unset("CNI_COMMAND")
        .run(&host_local());
    assert_eq!(reply.status, 0, "{reply:?}");
    assert!(reply.stdout.is_empty(), "{reply:?}");
    assert!(reply.stderr.contains("host-local"), "{reply:?}");
}

#[test]
fn subnet_shorthand_allocates_after_the_gateway() {
    let net = Net::new("1.0.0", json!({ "subnet": "10.20.0.0/24" }));
    let result = net.add("c1").ok();
    assert_eq!(
        result["ips"],
        json!([{ "address": "10.20.0.2/24", "gateway": "10.20.0.1" }])
    );
    assert_eq!(net.leases(), vec!["10.20.0.2"]);
    assert_eq!(lease_content(&net.dir(), "10.20.0.2"), "c1\r\neth0");
    let mode = fs::metadata(net.dir().join("10.20.0.2")).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o600));
    assert_eq!(
        fs::read_to_string(net.dir().join("last_reserved_ip.0")).ok(),
        Some("10.20.0.2".to_string())
    );
}

#[test]
fn ranges_honour_start_end_gateway_and_routes() {
    let net = Net::new(
        "1.0.0",
        json!({
            "ranges": [[{
                "subnet": "10.30.0.0/24",
                "rangeStart": "10.30.0.100",
                "rangeEnd": "10.30.0.101",
                "gateway": "10.30.0.254"
            }]],
            "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "192.168.0.0/16", "gw": "10.30.0.9" }]
        }),
    );
    let result = net.add("a").ok();
    assert_eq!(
        result["ips"],
        json!([{ "address": "10.30.0.100/24", "gateway": "10.30.0.254" }])
    );
    assert_eq!(
        result["routes"],
        json!([{ "dst": "0.0.0.0/0" }, { "dst": "192.168.0.0/16", "gw": "10.30.0.9" }])
    );
    assert_eq!(net.add_ip("b"), "10.30.0.101/24");
    let err = net.add("c").err(999);
    assert!(
        err["msg"].as_str().unwrap_or_default().contains("range"),
        "exhaustion must name the range set: {err}"
    );
}

#[test]
fn resolv_conf_becomes_dns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv = dir.path().join("resolv.conf");
    fs::write(
        &resolv,
        "# comment\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.com\n\
         search a.example b.example\noptions ndots:2 edns0\n",
    )
    .expect("write resolv.conf");
    let net = Net::new(
        "1.0.0",
        json!({ "subnet": "10.40.0.0/24", "resolvConf": resolv }),
    );
    let result = net.add("c").ok();
    assert_eq!(
        result["dns"],
        json!({
            "nameservers": ["10.0.0.53", "fd00::53"],
            "domain": "example.com",
            "search": ["a.example", "b.example"],
            "options": ["ndots:2", "edns0"]
        })
    );
}

#[test]
fn runtime_config_ip_ranges_come_first() {
    let net = Net::subnet("1.0.0", "10.50.0.0/24").with(
        "runtimeConfig",
        json!({ "ipRanges": [[{ "subnet": "10.60.0.0/24" }]] }),
    );
    let result = net.add("c").ok();
    assert_eq!(addresses(&result), vec!["10.60.0.2/24", "10.50.0.2/24"]);
}

#[test]
fn dual_stack_gives_one_address_per_range_set() {
    let net = Net::new(
        "1.0.0",
        json!({ "ranges": [[{ "subnet": "10.70.0.0/24" }], [{ "subnet": "fd00:70::/64" }]] }),
    );
    let result = net.add("c").ok();
    assert_eq!(
        result["ips"],
        json!([
            { "address": "10.70.0.2/24", "gateway": "10.70.0.1" },
            { "address": "fd00:70::2/64", "gateway": "fd00:70::1" }
        ])
    );
    assert_eq!(net.leases(), vec!["10.70.0.2", "fd00:70::2"]);
    net.del("c").ok();
    assert!(net.leases().is_empty());
}

#[test]
fn result_shape_follows_each_version() {
    let legacy = json!({ "ip4": { "ip": "10.80.0.2/24", "gateway": "10.80.0.1" } });
    let versioned =
        json!({ "ips": [{ "version": "4", "address": "10.80.0.2/24", "gateway": "10.80.0.1" }] });
    let current = json!({ "ips": [{ "address": "10.80.0.2/24", "gateway": "10.80.0.1" }] });
    let shapes = [
        ("0.1.0", &legacy),
        ("0.2.0", &legacy),
        ("0.3.0", &versioned),
        ("0.3.1", &versioned),
        ("0.4.0", &versioned),
        ("1.0.0", &current),
        ("1.1.0", &current),
    ];
    for (version, shape) in shapes {
        let mut expected = shape.clone();
        expected["cniVersion"] = json!(version);
        expected["dns"] = json!({});
        let net = Net::subnet(version, "10.80.0.0/24");
        assert_eq!(net.add("c").ok(), expected, "{version}");
    }
}

#[test]
fn cni_versions_list_picks_the_highest_supported() {
    let net = Net::subnet("1.0.0", "10.81.0.0/24");
    let mut conf: Value = serde_json::from_str(&net.config()).expect("json");
    conf["cniVersions"] = json!(["0.3.1", "1.1.0", "9.0.0"]);
    let result = Call::new("ADD", "c", conf.to_string())
        .run(&host_local())
        .ok();
    assert_eq!(result["cniVersion"], "1.1.0");
}

#[test]
fn requested_ips_from_all_three_sources() {
    // CNI_ARGS IP=
    let net = Net::subnet("1.0.0", "10.90.0.0/24");
    let result = net
        .call("ADD", "c1")
        .args("IgnoreUnknown=1;IP=10.90.0.77")
        .run(&host_local())
        .ok();
    assert_eq!(first_ip(&result), "10.90.0.77/24");

    // args.cni.ips
    let net = Net::subnet("1.0.0", "10.90.0.0/24")
        .with("args", json!({ "cni": { "ips": ["10.90.0.78/24"] } }));
    assert_eq!(net.add_ip("c2"), "10.90.0.78/24");

    // runtimeConfig.ips, dual-stack, each address landing in its own range set
    let net = Net::new(
        "1.0.0",
        json!({ "ranges": [[{ "subnet": "10.90.0.0/24" }], [{ "subnet": "fd00:90::/64" }]] }),
    )
    .with(
        "runtimeConfig",
        json!({ "ips": ["fd00:90::99/64", "10.90.0.79/24"] }),
    );
    let result = net.add("c3").ok();
    assert_eq!(addresses(&result), vec!["10.90.0.79/24", "fd00:90::99/64"]);

    // A requested address someone else holds is refused and nothing is leaked.
    let net = Net::subnet("1.0.0", "10.90.0.0/24");
    net.call("ADD", "c4")
        .args("IP=10.90.0.5")
        .run(&host_local())
        .ok();
    net.call("ADD", "c5")
        .args("IP=10.90.0.5")
        .run(&host_local())
        .err(999);
    // A requested address outside every range is an error too.
    net.call("ADD", "c6")
        .args("IP=10.91.0.5")
        .run(&host_local())
        .err(999);
    assert_eq!(net.leases(), vec!["10.90.0.5"]);
}

#[test]
fn a_slash_29_exhausts_then_reuses_released_addresses() {
    let net = Net::subnet("1.0.0", "10.100.0.0/29");
    let got: Vec<String> = (0..5).map(|i| net.add_ip(&format!("c{i}"))).collect();
    assert_eq!(
        got,
        vec![
            "10.100.0.2/29",
            "10.100.0.3/29",
            "10.100.0.4/29",
            "10.100.0.5/29",
            "10.100.0.6/29"
        ]
    );
    let err = net.add("c5").err(999);
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("10.100.0.1-10.100.0.6"),
        "names the range set: {msg}"
    );
    assert_eq!(net.leases().len(), 5);

    net.del("c2").ok();
    assert_eq!(net.add_ip("c6"), "10.100.0.4/29");
}

#[test]
fn round_robin_continues_after_the_last_reserved_and_wraps() {
    let net = Net::subnet("1.0.0", "10.110.0.0/29");
    for i in 0..4 {
        net.add_ip(&format!("c{i}")); // .2 .3 .4 .5
    }
    net.del("c0").ok(); // frees .2
    net.del("c1").ok(); // frees .3
                        // Not the lowest free address: the one after the last handed out.
    assert_eq!(net.add_ip("d0"), "10.110.0.6/29");
    // Then it wraps to the start of the range.
    assert_eq!(net.add_ip("d1"), "10.110.0.2/29");
    assert_eq!(net.add_ip("d2"), "10.110.0.3/29");
}

#[test]
fn one_attachment_gets_one_address_per_range_set() {
    let net = Net::subnet("1.0.0", "10.120.0.0/24");
    net.add("c").ok();
    let err = net.add("c").err(999);
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("duplicate allocation"),
        "{err}"
    );
    // Another interface of the same container is a different attachment.
    net.call("ADD", "c").ifname("net1").run(&host_local()).ok();
    assert_eq!(net.leases().len(), 2);
}

#[test]
fn del_releases_only_its_attachment_and_is_idempotent() {
    let net = Net::subnet("1.0.0", "10.130.0.0/24");
    net.add("a").ok();
    net.call("ADD", "a").ifname("net1").run(&host_local()).ok();
    net.add("b").ok();
    net.del("a").ok();
    assert_eq!(net.leases(), vec!["10.130.0.3", "10.130.0.4"]);
    net.del("a").ok();
    net.del("never-added").ok();
    assert_eq!(net.leases().len(), 2);
}

#[test]
fn del_releases_legacy_leases_that_hold_only_the_container_id() {
    let net = Net::subnet("1.0.0", "10.140.0.0/24");
    fs::create_dir_all(net.dir()).expect("mkdir");
    fs::write(net.dir().join("10.140.0.9"), "old").expect("write");
    net.del("old").ok();
    assert!(net.leases().is_empty());
}

#[test]
fn check_verifies_the_attachment_holds_its_leases() {
    let net = Net::subnet("1.0.0", "10.150.0.0/24");
    let result = net.add("c").ok();
    let mut conf: Value = serde_json::from_str(&net.config()).expect("json");
    conf["prevResult"] = result;
    let check = Call::new("CHECK", "c", conf.to_string());
    check.run(&host_local()).ok();
    fs::remove_file(net.dir().join("10.150.0.2")).expect("remove lease");
    check.run(&host_local()).err(999);
}

#[test]
fn gc_releases_leases_of_attachments_not_listed() {
    let net = Net::subnet("1.1.0", "10.160.0.0/24");
    net.add("keep").ok();
    net.add("drop").ok();
    net.call("ADD", "keep")
        .ifname("net1")
        .run(&host_local())
        .ok();
    fs::write(net.dir().join("10.160.0.50"), "keep").expect("legacy lease");

    // Without the key nothing is released.
    net.call("GC", "").run(&host_local()).ok();
    assert_eq!(net.leases().len(), 4);

    let mut conf: Value = serde_json::from_str(&net.config()).expect("json");
    conf["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
    Call::new("GC", "", conf.to_string())
        .run(&host_local())
        .ok();
    // keep/eth0 and the legacy id-only lease of "keep" stay; keep/net1 and drop go.
    assert_eq!(net.leases(), vec!["10.160.0.2", "10.160.0.50"]);

    conf["cni.dev/valid-attachments"] = json!([]);
    Call::new("GC", "", conf.to_string())
        .run(&host_local())
        .ok();
    assert!(net.leases().is_empty());
}

/// STATUS fails only when no ADD can work (containerd makes a failed STATUS a NotReady node and
/// evicts its pods): a full range set is logged by STATUS and reported by ADD; an unusable data
/// dir, an unobtainable lock or an invalid config are code 50.
#[test]
fn status_fails_only_when_no_add_can_work_not_when_full() {
    let net = Net::subnet("1.1.0", "10.170.0.0/30"); // one usable address after the gateway
    net.call("STATUS", "").run(&host_local()).ok();
    net.add("c").ok();
    let full = net.call("STATUS", "").run(&host_local());
    full.ok();
    assert!(full.stderr.contains("is exhausted"), "{full:?}");
    let refused = net.add("d").err(999);
    let msg = refused["msg"].as_str().unwrap_or("");
    assert!(msg.contains("no IP addresses available"), "{refused}");
    net.del("c").ok();
    net.call("STATUS", "").run(&host_local()).ok();

    // A lock that cannot be opened (a symlink planted in its place).
    std::fs::remove_file(net.dir().join("lock")).expect("rm lock");
    std::os::unix::fs::symlink("/nonexistent-target", net.dir().join("lock")).expect("symlink");
    let e = net.call("STATUS", "").run(&host_local()).err(50);
    assert!(e["msg"].as_str().unwrap_or("").contains("lock"), "{e}");

    // A config no ADD accepts.
    let bad = Net::new("1.1.0", json!({ "ranges": [] }));
    let e = bad.call("STATUS", "").run(&host_local()).err(50);
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or("")
            .starts_with("invalid configuration"),
        "{e}"
    );

    let file = tempfile::NamedTempFile::new().expect("tempfile");
    let mut ipam = json!({ "subnet": "10.171.0.0/24" });
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(file.path()); // a file, not a directory
    let conf = json!({ "cniVersion": "1.1.0", "name": NET, "type": "bridge", "ipam": ipam });
    Call::new("STATUS", "", conf.to_string())
        .run(&host_local())
        .err(50);
}

#[test]
fn invalid_input_gets_the_spec_codes() {
    let net = Net::subnet("1.0.0", "10.180.0.0/24");
    let hl = host_local();
    let call = |stdin: &str| Call::new("ADD", "c", stdin.to_string());

    call("{not json").run(&hl).err(6);
    call(r#"{"cniVersion":"7.0.0","name":"n","ipam":{}}"#)
        .run(&hl)
        .err(1);
    // Missing and unknown verbs, missing container id and ifname.
    let banner = net.call("ADD", "c").unset("CNI_COMMAND").run(&hl);
    assert_eq!(
        (banner.status, banner.stdout.as_str()),
        (0, ""),
        "{banner:?}"
    );
    net.call("FROB", "c").run(&hl).err(4);
    // libcni sets every variable, empty when unused: empty is missing.
    net.call("ADD", "").run(&hl).err(4);
    net.call("ADD", "c").ifname("").run(&hl).err(4);
    net.call("ADD", "c").unset("CNI_IFNAME").run(&hl).err(4);
    // CNI_ARGS: unknown key without IgnoreUnknown, malformed pair.
    net.call("ADD", "c").args("FOO=1").run(&hl).err(4);
    net.call("ADD", "c").args("garbage").run(&hl).err(4);
    // Versions: CHECK before 0.4.0 and GC/STATUS before 1.1.0 are not available.
    Net::subnet("0.3.1", "10.180.0.0/24")
        .call("CHECK", "c")
        .run(&hl)
        .err(1);
    net.call("GC", "").run(&hl).err(1);

    let bad_ipam = |ipam: Value| {
        let mut ipam = ipam;
        ipam["type"] = json!("host-local");
        ipam["dataDir"] = json!(net.data.path());
        call(&json!({"cniVersion":"1.0.0","name":NET,"type":"bridge","ipam":ipam}).to_string())
            .run(&hl)
            .err(7)
    };
    bad_ipam(json!({}));
    bad_ipam(json!({ "subnet": "10.0.0.1/24" })); // host bits set
    bad_ipam(json!({ "subnet": "10.0.0.0/31" })); // too small
    bad_ipam(json!({ "ranges": [[{ "subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5" }]] }));
    bad_ipam(json!({ "ranges": [[{ "subnet": "10.0.0.0/24" }], [{ "subnet": "10.0.0.0/25" }]] }));
    bad_ipam(json!({ "ranges": [[{ "subnet": "10.0.0.0/24" }, { "subnet": "fd00::/64" }]] }));
    bad_ipam(json!({ "ranges": [[{ "subnet": "not-a-subnet" }]] }));
    assert!(
        net.leases().is_empty(),
        "no lease may be taken by a refused ADD"
    );
}

#[test]
fn names_that_would_escape_the_data_dir_are_refused() {
    let net = Net::subnet("1.0.0", "10.190.0.0/24");
    let hl = host_local();
    for name in ["../escape", "a/b", ".hidden", ""] {
        let conf = net.config().replace(NET, name);
        Call::new("ADD", "c", conf).run(&hl).err(7);
    }
    for id in ["../../etc", "a/b", "-x", ".."] {
        net.call("ADD", id).run(&hl).err(4);
        net.call("DEL", id).run(&hl).err(4);
    }
    for ifname in ["../x", "a/b", "."] {
        net.call("ADD", "c").ifname(ifname).run(&hl).err(4);
    }
    let mut outside: Vec<String> = fs::read_dir(net.data.path())
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    outside.retain(|n| n != NET);
    assert!(
        outside.is_empty(),
        "nothing outside the network dir: {outside:?}"
    );
    assert!(net.leases().is_empty());
}

#[test]
fn a_symlink_planted_as_last_reserved_ip_is_not_followed() {
    let net = Net::subnet("1.0.0", "10.200.0.0/24");
    net.add("first").ok();
    let victim = tempfile::NamedTempFile::new().expect("victim");
    fs::write(victim.path(), "precious").expect("write victim");
    let last = net.dir().join("last_reserved_ip.0");
    fs::remove_file(&last).expect("remove");
    std::os::unix::fs::symlink(victim.path(), &last).expect("symlink");
    net.add("second").ok();
    assert_eq!(
        fs::read_to_string(victim.path()).ok().as_deref(),
        Some("precious")
    );
    // A FIFO planted there must not hang the plugin either.
    fs::remove_file(&last).expect("remove");
    let mkfifo = std::process::Command::new("mkfifo")
        .arg(&last)
        .status()
        .expect("mkfifo");
    assert!(mkfifo.success());
    net.add("third").ok();
    assert_eq!(
        fs::read_to_string(&last).ok().as_deref(),
        Some("10.200.0.4")
    );
}

#[test]
fn a_truncated_lease_is_never_handed_out_again() {
    let net = Net::subnet("1.0.0", "10.210.0.0/29");
    net.add("a").ok(); // .2
    net.add("b").ok(); // .3
    fs::write(net.dir().join("10.210.0.2"), "").expect("truncate");
    // The truncated lease's owner is unknown: the address stays taken, never double-assigned.
    let got: BTreeSet<String> = ["c", "d", "e"].iter().map(|id| net.add_ip(id)).collect();
    assert!(!got.contains("10.210.0.2/29"), "{got:?}");
    net.add("f").err(999);
    // DEL of "a" cannot prove ownership of .2, so it keeps it; "b" is released normally.
    net.del("a").ok();
    net.del("b").ok();
    assert!(net.leases().contains(&"10.210.0.2".to_string()));
    assert!(!net.leases().contains(&"10.210.0.3".to_string()));
}

#[test]
fn a_removed_or_lying_index_falls_back_to_the_lease_files() {
    let net = Net::subnet("1.0.0", "10.220.0.0/24");
    net.add("a").ok();
    net.add("b").ok();
    fs::remove_dir_all(net.dir().join(".index")).expect("remove index");
    net.del("a").ok();
    assert_eq!(net.leases(), vec!["10.220.0.3"]);

    // An index that points "b" at the wrong address (with a valid-looking stamp) must not
    // make DEL release someone else's lease or miss b's own.
    net.add("c").ok(); // .4
    let index = net.dir().join(".index").join("b:eth0");
    fs::write(&index, "10.220.0.4\n").expect("rewrite index");
    net.del("b").ok();
    assert_eq!(net.leases(), vec!["10.220.0.4"]);
    assert_eq!(lease_content(&net.dir(), "10.220.0.4"), "c\r\neth0");
}

#[test]
fn a_lease_made_behind_our_back_is_seen() {
    let net = Net::subnet("1.0.0", "10.230.0.0/24");
    net.add("a").ok(); // .2, index and stamp written
                       // Another implementation leases .3 to "x" without touching our index.
    fs::write(net.dir().join("10.230.0.3"), "x\r\neth0").expect("write");
    assert_eq!(net.add_ip("b"), "10.230.0.4/24");
    net.del("x").ok();
    assert_eq!(net.leases(), vec!["10.230.0.2", "10.230.0.4"]);
}

#[test]
fn two_hundred_concurrent_adds_then_dels_leave_nothing() {
    let net = Net::subnet("1.0.0", "10.240.0.0/16");
    let hl = host_local();
    let calls: Vec<Call> = (0..200)
        .map(|i| net.call("ADD", &format!("c{i}")))
        .collect();
    let children: Vec<_> = calls
        .iter()
        .map(|c| c.command(&hl).spawn().expect("spawn"))
        .collect();
    let mut ips = BTreeSet::new();
    for (call, child) in calls.iter().zip(children) {
        ips.insert(first_ip(&call.finish(child).ok()));
    }
    assert_eq!(ips.len(), 200, "200 distinct addresses");
    assert_eq!(net.leases().len(), 200);

    let calls: Vec<Call> = (0..200)
        .map(|i| net.call("DEL", &format!("c{i}")))
        .collect();
    let children: Vec<_> = calls
        .iter()
        .map(|c| c.command(&hl).spawn().expect("spawn"))
        .collect();
    for (call, child) in calls.iter().zip(children) {
        call.finish(child).ok();
    }
    assert!(net.leases().is_empty(), "left: {:?}", net.leases());
}

#[test]
fn a_held_lock_times_out_with_try_again_later() {
    use fs2::FileExt;
    let net = Net::new(
        "1.0.0",
        json!({ "subnet": "10.250.0.0/24", "lockTimeoutMs": 200 }),
    );
    net.add("a").ok();
    let lock = fs::File::open(net.dir().join("lock")).expect("open lock");
    lock.lock_exclusive().expect("lock");
    net.add("b").err(11);
    FileExt::unlock(&lock).expect("unlock");
    net.add("b").ok();
}

/// Go's decoder rules, without the reference at hand: Go-cased keys (go-cni's untagged
/// `ipRanges` struct), a repeated key whose last variant wins, a repeated struct that merges.
#[test]
fn go_cased_and_repeated_keys_are_read_as_go_reads_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","Name":"{NET}","type":"bridge",
            "IPAM":{{"Type":"host-local","Subnet":"10.70.0.0/24","subnet":"10.71.0.0/24",
            "Routes":[{{"Dst":"10.99.0.0/16","GW":"10.71.0.9"}}]}},
            "ipam":{{"DataDir":{dir}}},
            "runtimeConfig":{{"ipRanges":[[{{"Subnet":"10.72.0.0/24","RangeStart":"10.72.0.5",
            "RangeEnd":"10.72.0.9","Gateway":"10.72.0.254"}}]]}}}}"#,
        dir = json!(data.path())
    );
    let result = Call::new("ADD", "c", conf.as_str()).run(&host_local()).ok();
    assert_eq!(addresses(&result), vec!["10.72.0.5/24", "10.71.0.2/24"]);
    assert_eq!(result["ips"][0]["gateway"], "10.72.0.254");
    assert_eq!(
        result["routes"][0],
        json!({"dst":"10.99.0.0/16","gw":"10.71.0.9"})
    );
    assert_eq!(
        lease_names(&data.path().join(NET)),
        vec!["10.71.0.2", "10.72.0.5"]
    );
    Call::new("DEL", "c", conf.as_str()).run(&host_local()).ok();
    assert!(lease_names(&data.path().join(NET)).is_empty());
}
