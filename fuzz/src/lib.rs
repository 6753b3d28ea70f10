//! Shared pieces of the fuzz targets: input splitting, the JSON re-render, and the result
//! conversion invariants used by both `prev_result` and `result_convert`.

use cni_protocol::config::parse_config;
use cni_protocol::gojson::Node;
use cni_protocol::result::CniResult;
use cni_protocol::version::SUPPORTED_VERSIONS;
use cni_protocol::Version;
use serde_json::Value;

/// Splits a fuzz input at its last NUL: stdin before, CNI_ARGS (lossy UTF-8) after. Inputs
/// without a NUL are all stdin, with empty CNI_ARGS.
pub fn split_args(data: &[u8]) -> (&[u8], String) {
    match data.iter().rposition(|b| *b == 0) {
        Some(i) => (
            &data[..i],
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => (data, String::new()),
    }
}

/// Parses `stdin` as a plugin does (Go's key rules against its schema), then checks that the
/// canonical form is a fixpoint: written back out and parsed again it is unchanged. A runtime
/// that decoded and re-encoded the config therefore gets the same result.
pub fn canonical(stdin: &[u8], schema: &'static Node) -> Option<Value> {
    let raw = parse_config(stdin, schema).ok()?;
    let text = match serde_json::to_vec(&raw) {
        Ok(text) => text,
        Err(e) => panic!("canonical config does not serialize: {e}"),
    };
    match parse_config(&text, schema) {
        Ok(again) => assert_eq!(again, raw, "canonicalize is not idempotent"),
        Err(e) => panic!("canonical config {raw} does not parse: {e}"),
    }
    Some(raw)
}

/// Loads `stdin` (and CNI_ARGS `args`) through `schema` and a plugin's `load`, and checks that
/// the canonical form written back out loads to the same config. `None`: the config is refused.
pub fn load_round_trip<T: PartialEq + std::fmt::Debug>(
    stdin: &[u8],
    args: &str,
    schema: &'static Node,
    load: impl Fn(&Value, &str) -> Option<T>,
) -> Option<(Value, T)> {
    let raw = canonical(stdin, schema)?;
    let conf = load(&raw, args)?;
    let text = serde_json::to_vec(&raw).unwrap_or_default();
    let again = canonical(&text, schema).and_then(|raw| load(&raw, args));
    assert_eq!(
        again.as_ref(),
        Some(&conf),
        "re-rendered config loads differently"
    );
    Some((raw, conf))
}

/// Every supported version, parsed, oldest first.
pub fn versions() -> Vec<(&'static str, Version)> {
    SUPPORTED_VERSIONS
        .iter()
        .filter_map(|t| Version::parse(t).ok().map(|v| (*t, v)))
        .collect()
}

/// The conversion invariants of a parsed result:
/// - our own rendering in every version parses back, and rendering that again gives the same
///   JSON (render is a fixpoint after one round);
/// - converting up then down is the identity: rendering in `lo` straight away equals
///   rendering in `hi`, parsing, and rendering in `lo`.
pub fn check_result(r: &CniResult) {
    let versions = versions();
    let mut rendered = Vec::new();
    for (text, v) in &versions {
        let Ok(out) = r.render(text, *v) else {
            rendered.push(None);
            continue;
        };
        let back = match CniResult::parse(&out, *v) {
            Ok(back) => back,
            Err(e) => panic!("our {text} rendering {out} does not parse: {e}"),
        };
        match back.render(text, *v) {
            Ok(again) => assert_eq!(again, out, "render at {text} is not a fixpoint"),
            Err(e) => panic!("re-rendering at {text} failed: {e}"),
        }
        rendered.push(Some((out, back)));
    }
    for (i, (lo_text, lo)) in versions.iter().enumerate() {
        let Some((lo_out, _)) = &rendered[i] else {
            continue;
        };
        for (j, (hi_text, _)) in versions.iter().enumerate().skip(i + 1) {
            let Some((_, via_hi)) = &rendered[j] else {
                continue;
            };
            match via_hi.render(lo_text, *lo) {
                Ok(down) => assert_eq!(&down, lo_out, "{hi_text} then {lo_text} differs"),
                Err(e) => panic!("{hi_text} then {lo_text} failed ({e}) but {lo_text} works"),
            }
        }
    }
}
