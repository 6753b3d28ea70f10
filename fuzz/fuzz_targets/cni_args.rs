//! CNI_ARGS against a model of the reference's rules: `K=V` pairs split on `;`, exactly one
//! `=` each, unknown keys refused unless `IgnoreUnknown` is true, the last repeat of a key
//! wins. Invariant too: the pairs kept, written back out, parse to the same values.
#![no_main]

use cni_protocol::args::CniArgs;
use libfuzzer_sys::fuzz_target;

const KNOWN: &[&str] = &["IP", "MAC", "K8S_POD_NAME", "K8S_POD_NAMESPACE"];

/// The model: `None` for an error, else the value of each known key.
fn model(raw: &str) -> Option<Vec<Option<String>>> {
    let mut pairs = Vec::new();
    if !raw.is_empty() {
        for piece in raw.split(';') {
            let mut kv = piece.split('=');
            let (Some(k), Some(v), None) = (kv.next(), kv.next(), kv.next()) else {
                return None;
            };
            pairs.push((k, v));
        }
    }
    let mut ignore = false;
    for (k, v) in &pairs {
        if *k == "IgnoreUnknown" {
            ignore = match v.to_ascii_lowercase().as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return None,
            };
        }
    }
    let unknown = pairs
        .iter()
        .any(|(k, _)| *k != "IgnoreUnknown" && !KNOWN.contains(k));
    if unknown && !ignore {
        return None;
    }
    Some(
        KNOWN
            .iter()
            .map(|key| {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.to_string())
            })
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let parsed = CniArgs::parse(&raw, KNOWN);
    let got: Option<Vec<Option<String>>> = parsed
        .as_ref()
        .ok()
        .map(|a| KNOWN.iter().map(|k| a.get(k).map(str::to_string)).collect());
    assert_eq!(got, model(&raw), "CNI_ARGS {raw:?}");
    let Some(values) = got else { return };
    let again: Vec<String> = KNOWN
        .iter()
        .zip(&values)
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    let reparsed = CniArgs::parse(&again.join(";"), KNOWN);
    assert_eq!(
        reparsed.ok().as_ref(),
        parsed.ok().as_ref(),
        "re-rendered {again:?}"
    );
});
