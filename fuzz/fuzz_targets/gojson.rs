//! The Go encoding/json key reader (`cni_protocol::gojson`). First byte even: raw bytes under
//! one of the schemas the plugins use, checked for idempotence (the canonical form parses to
//! itself). First byte odd: an object built from the input out of case variants of NetConf's
//! keys (ASCII case flips and the long s), repeated, with string/number/null values, checked
//! against a model of Go's rules: a key matches its field case-insensitively, the last one
//! wins, `null` leaves a value-type field as it was and sets a pointer field to nil, unknown
//! keys stay exact.
#![no_main]

use cni_fuzz::canonical;
use cni_protocol::gojson::{self, Node};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::BTreeMap;

const SCHEMAS: &[&Node] = &[
    &gojson::NETCONF,
    &gojson::RESULT,
    &gojson::ERROR,
    &bridge::config::SCHEMA,
    &portmap::config::SCHEMA,
    &host_local::config::SCHEMA,
];

/// (name, is a Go pointer field); `None`: a key NetConf does not have.
const KEYS: &[(&str, Option<bool>)] = &[
    ("name", Some(false)),
    ("type", Some(false)),
    ("cniVersion", Some(false)),
    ("logFile", Some(true)),
    ("args", Some(true)),
    ("runtimeConfig", Some(true)),
    ("capabilities", Some(true)),
    ("foo", None),
    ("kind", None),
];

/// A spelling of `name` Go folds to it: ASCII case flips, `k` as U+212A, `s` as U+017F.
fn variant(u: &mut Unstructured, name: &str) -> Result<String> {
    let mut out = String::new();
    for c in name.chars() {
        let pick: u8 = u.int_in_range(0..=3)?;
        out.push(match (pick, c) {
            (0, _) => c,
            (1, 'k' | 'K') => '\u{212A}',
            (1, 's' | 'S') => '\u{17F}',
            (_, c) if pick >= 2 => {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            }
            _ => c,
        });
    }
    Ok(out)
}

fn model(u: &mut Unstructured) -> Result<()> {
    let mut pairs: Vec<(String, Value)> = Vec::new();
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for i in 0..u.int_in_range(0..=12)? {
        let (name, pointer) = *u.choose(KEYS)?;
        let value = match u.int_in_range(0..=2)? {
            0 => Value::Null,
            1 => Value::from(format!("v{i}")),
            _ => Value::from(i),
        };
        let key = match pointer {
            Some(_) => variant(u, name)?,
            None => name.to_string(),
        };
        match pointer {
            Some(false) if value.is_null() => {}
            Some(_) => {
                expected.insert(name.to_string(), value.clone());
            }
            None => {
                expected.insert(key.clone(), value.clone());
            }
        }
        pairs.push((key, value));
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
        .collect();
    let text = format!("{{{}}}", body.join(","));
    let got = match gojson::parse(text.as_bytes(), &gojson::NETCONF) {
        Ok(Value::Object(m)) => m,
        other => panic!("{text} read as {other:?}"),
    };
    let got: BTreeMap<String, Value> = got.into_iter().collect();
    assert_eq!(got, expected, "{text}");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 1 {
        let _ = model(&mut Unstructured::new(rest));
        return;
    }
    let schema = SCHEMAS[usize::from(first / 2) % SCHEMAS.len()];
    let _ = canonical(rest, schema);
});
