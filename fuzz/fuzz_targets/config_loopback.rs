//! loopback has no keys of its own: its config is read by the shared skeleton, so the whole
//! skeleton runs here (command from the first byte, stdin, CNI_ARGS after a NUL) with a netns
//! path that cannot exist, so nothing touches a real namespace. Invariant: the CNI contract —
//! exit 0 or 1, and on 1 stdout is exactly one error object with a code and a message.
#![no_main]

use cni_fuzz::split_args;
use libfuzzer_sys::fuzz_target;
use loopback::Loopback;
use serde_json::Value;

const COMMANDS: &[&str] = &["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "BOGUS"];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let (stdin, args) = split_args(rest);
    // `logFile` would make the target append to a path of the fuzzer's choosing.
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(stdin) {
        if top.contains_key("logFile") {
            return;
        }
    }
    let command = COMMANDS[usize::from(*first) % COMMANDS.len()];
    let env = |k: &str| -> Option<String> {
        match k {
            "CNI_COMMAND" => Some(command.into()),
            "CNI_CONTAINERID" => Some("fuzz".into()),
            "CNI_NETNS" => Some("/nonexistent/cni-fuzz/netns".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some("/nonexistent/cni-fuzz/bin".into()),
            "CNI_ARGS" => Some(args.clone()),
            _ => None,
        }
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let about = cni_protocol::skel::about("loopback");
    let code =
        cni_protocol::skel::run(&Loopback, &about, &env, &mut &stdin[..], &mut out, &mut err);
    match code {
        0 => {
            if !out.is_empty() {
                assert!(
                    serde_json::from_slice::<Value>(&out).is_ok(),
                    "stdout is not JSON"
                );
            }
        }
        1 => {
            let v: Value = match serde_json::from_slice(&out) {
                Ok(v) => v,
                Err(e) => panic!("error output is not one JSON object ({e})"),
            };
            assert!(
                v.get("code").and_then(Value::as_u64).is_some(),
                "no code in {v}"
            );
            assert!(
                v.get("msg").and_then(Value::as_str).is_some(),
                "no msg in {v}"
            );
            assert!(
                v.get("cniVersion").and_then(Value::as_str).is_some(),
                "no cniVersion in {v}"
            );
        }
        other => panic!("exit status {other}"),
    }
});
