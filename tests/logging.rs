//! The optional `logFile`: every invocation appends what it was asked and how it ended, and
//! the plugins' diagnostics, while stdout stays pure protocol JSON.

use cni_suite_tests::sandbox::{in_sandbox, privileged, Netns};
use cni_suite_tests::{our_plugin, release_of, Call};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// A bridge + host-local network config with `logFile` set to `log_file`; `extra` adds keys.
fn net_conf(dir: &Path, log_file: Value, subnet: &str, extra: Value) -> String {
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": "lognet",
        "type": "bridge",
        "logFile": log_file,
        "ipam": { "type": "host-local", "subnet": subnet, "dataDir": dir },
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf.to_string()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn host_local_appends_one_line_per_invocation_to_the_log_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("cni.log");
    let conf = net_conf(dir.path(), json!(log), "10.42.0.0/29", json!({}));
    let host_local = our_plugin("host-local");
    // Log lines name the plugin and its release: "host-local v0.1.0: ...".
    let hl = format!("host-local {}", release_of(&host_local));
    let added = Call::new("ADD", "c1", conf.clone()).run(&host_local).ok();
    assert_eq!(added["ips"][0]["address"], "10.42.0.2/29");
    // Exhaust the /29 (.2-.6), then one more fails with its error in the log.
    for id in ["c2", "c3", "c4", "c5"] {
        Call::new("ADD", id, conf.clone()).run(&host_local).ok();
    }
    Call::new("ADD", "c6", conf.clone())
        .run(&host_local)
        .err(999);
    Call::new("DEL", "c1", conf.clone()).run(&host_local).ok();
    // A diagnostic (GC without a valid list releases nothing) reaches the file too.
    let mut gc: serde_json::Value = serde_json::from_str(&conf).expect("json");
    gc["cniVersion"] = json!("1.1.0");
    let gc_reply = Call::new("GC", "", gc.to_string()).run(&host_local);
    gc_reply.ok();
    assert!(
        gc_reply
            .stderr
            .contains("host-local: GC without cni.dev/valid-attachments"),
        "{gc_reply:?}"
    );

    let lines = lines(&log);
    assert_eq!(lines.len(), 9, "{lines:#?}");
    assert!(
        lines[7].ends_with(&format!(
            "{hl}: GC without cni.dev/valid-attachments: nothing released"
        )),
        "{}",
        lines[7]
    );
    assert!(lines[8].contains("GC network \"lognet\""), "{}", lines[8]);
    let first = &lines[0];
    // 2026-11-23T09:30:00.123Z [pid] host-local v0.1.0: ADD network "lognet" container "c1" ...
    assert!(first.len() > 24 && first.as_bytes()[23] == b'Z', "{first}");
    assert!(
        first.contains(&format!(
            r#"{hl}: ADD network "lognet" container "c1" ifname "eth0" -> ok ("#
        )),
        "{first}"
    );
    assert!(
        lines[5].contains(r#"ADD network "lognet" container "c6""#)
            && lines[5].contains("-> error 999: "),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].contains(r#"DEL network "lognet" container "c1""#),
        "{}",
        lines[6]
    );
}

#[test]
fn a_relative_or_unwritable_log_file_never_fails_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (log_file, relative) in [
        (json!("relative.log"), true),
        (json!("/proc/no/such/dir/cni.log"), false),
        (json!(42), false),
    ] {
        let conf = net_conf(dir.path(), log_file, "10.42.0.0/24", json!({}));
        for (command, id) in [("ADD", "c1"), ("DEL", "c1")] {
            let call = Call::new(command, id, conf.clone());
            // Run from the data dir, so a relative path would land where we look for it.
            let child = call
                .command(&our_plugin("host-local"))
                .current_dir(dir.path())
                .spawn()
                .expect("spawn host-local");
            let reply = call.finish(child);
            reply.ok();
            if relative {
                assert!(
                    reply.stderr.contains("ignoring logFile \"relative.log\""),
                    "{reply:?}"
                );
            }
        }
    }
    assert!(!dir.path().join("relative.log").exists());
}

#[test]
fn bridge_and_its_ipam_delegate_share_the_log_file() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("cni.log");
        let conf = net_conf(
            dir.path(),
            json!(log),
            "10.43.0.0/24",
            json!({ "bridge": "logbr0" }),
        );
        let ns = Netns::new();
        let bridge = our_plugin("bridge");
        let (hl, br) = (
            format!("host-local {}", release_of(&our_plugin("host-local"))),
            format!("bridge {}", release_of(&bridge)),
        );
        Call::new("ADD", "c1", conf.clone())
            .netns(&ns.path_str())
            .run(&bridge)
            .ok();
        Call::new("DEL", "c1", conf.clone())
            .netns(&ns.path_str())
            .run(&bridge)
            .ok();
        let lines = lines(&log);
        let find = |needle: &str| {
            assert!(
                lines.iter().any(|l| l.contains(needle)),
                "no line with {needle:?} in {lines:#?}"
            );
        };
        for who in [&hl, &br] {
            for verb in ["ADD", "DEL"] {
                find(&format!(
                    r#"{who}: {verb} network "lognet" container "c1" ifname "eth0" -> ok"#
                ));
            }
        }
    });
}
