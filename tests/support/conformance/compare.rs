//! Comparing what the two sides gave for one step, field by field, into classed differences.

use super::side::StepObs;
use serde_json::Value;

/// One differing field.
#[derive(Clone, Debug)]
pub struct Diff {
    /// "status", "error-code", "error-text", "result:<path>", "leases", "kernel:<ns>:<section>"
    /// or "kernel:<ns>:links:<attribute>".
    pub class: String,
    pub ours: String,
    pub theirs: String,
}

impl Diff {
    fn new(class: impl Into<String>, ours: impl ToString, theirs: impl ToString) -> Diff {
        Diff {
            class: class.into(),
            ours: ours.to_string(),
            theirs: theirs.to_string(),
        }
    }
}

/// A coarse class of an error message: the texts are worded differently, but a message
/// about the netns must not answer a request whose reference message is about parsing.
pub fn message_class(msg: &str) -> &'static str {
    // Markers of normalised paths and names say nothing about the kind of failure.
    let mut m = msg.to_ascii_lowercase();
    for marker in ["<netns>", "<data>", "<cni_path>", "<mac>"] {
        m = m.replace(marker, "");
    }
    const TABLE: &[(&str, &[&str])] = &[
        ("cannot-convert", &["cannot convert"]),
        ("version", &["version", "incompatible"]),
        ("route", &["route"]),
        ("netns", &["netns", "namespace"]),
        (
            "parse",
            &[
                "unmarshal",
                "pars",
                "decode",
                "invalid character",
                "unexpected end",
                "eof",
                "json",
                "invalid length",
                "invalid type",
            ],
        ),
        ("args", &["args", "unknown key"]),
        // "rule missing" reports absent state, like "not found", not a missing input
        ("not-found", &["rule missing"]),
        ("missing", &["missing", "required"]),
        ("exists", &["exists", "already"]),
        (
            "exhausted",
            &[
                "no ip addresses available",
                "exhausted",
                "no addresses",
                "no free",
            ],
        ),
        ("not-found", &["not found", "no such", "does not exist"]),
        ("invalid", &["invalid", "not valid", "must be", "bad"]),
    ];
    for (class, words) in TABLE {
        if words.iter().any(|w| m.contains(w)) {
            return class;
        }
    }
    "other"
}

fn code(s: &StepObs) -> Value {
    s.json.get("code").cloned().unwrap_or(Value::Null)
}

pub fn msg(s: &StepObs) -> String {
    s.json
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Leaf paths where `a` and `b` differ (array indices written `[]` in the class).
fn value_diffs(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                let absent = |o: &serde_json::Map<String, Value>| {
                    if o.contains_key(k) {
                        ""
                    } else {
                        "<absent>"
                    }
                };
                if x.contains_key(k) != y.contains_key(k) {
                    out.push((
                        format!("{path}.{k}"),
                        format!(
                            "{}{}",
                            absent(x),
                            if x.contains_key(k) {
                                va.to_string()
                            } else {
                                String::new()
                            }
                        ),
                        format!(
                            "{}{}",
                            absent(y),
                            if y.contains_key(k) {
                                vb.to_string()
                            } else {
                                String::new()
                            }
                        ),
                    ));
                } else {
                    value_diffs(&format!("{path}.{k}"), va, vb, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (va, vb) in x.iter().zip(y) {
                value_diffs(&format!("{path}[]"), va, vb, out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

/// Lines only in `a` and only in `b`, for list sections, counted as multisets (a rule written
/// twice on one side shows up once in that side's list).
fn set_diff(a: &Value, b: &Value) -> (Vec<String>, Vec<String>) {
    let as_list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|l| {
                l.iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let minus = |x: &[String], y: &[String]| -> Vec<String> {
        let mut rest: Vec<String> = y.to_vec();
        x.iter()
            .filter(|l| match rest.iter().position(|r| r == *l) {
                Some(i) => {
                    rest.swap_remove(i);
                    false
                }
                None => true,
            })
            .cloned()
            .collect()
    };
    let (x, y) = (as_list(a), as_list(b));
    (minus(&x, &y), minus(&y, &x))
}

/// The kernel-state sections that are sorted lists of lines (links are a map by name).
pub const LIST_SECTIONS: [&str; 6] = [
    "addrs",
    "route4",
    "route6",
    "sysctl",
    "iptables",
    "ip6tables",
];

fn kernel_diffs(o: &Value, t: &Value, out: &mut Vec<Diff>) {
    for ns in ["host", "ctr"] {
        let (a, b) = (&o[ns], &t[ns]);
        for section in LIST_SECTIONS {
            if a[section] != b[section] {
                let (only_o, only_t) = set_diff(&a[section], &b[section]);
                out.push(Diff::new(
                    format!("kernel:{ns}:{section}"),
                    only_o.join(" | "),
                    only_t.join(" | "),
                ));
            }
        }
        let (la, lb) = (&a["links"], &b["links"]);
        if la == lb {
            continue;
        }
        let names = |v: &Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (na, nb) = (names(la), names(lb));
        if na != nb {
            out.push(Diff::new(
                format!("kernel:{ns}:links"),
                na.join(","),
                nb.join(","),
            ));
            continue;
        }
        for n in &na {
            let mut d = Vec::new();
            value_diffs("", &la[n], &lb[n], &mut d);
            for (path, x, y) in d {
                let field = path.trim_start_matches('.').to_string();
                out.push(Diff::new(
                    format!("kernel:{ns}:links:{field}"),
                    format!("{n}: {x}"),
                    format!("{n}: {y}"),
                ));
            }
        }
    }
}

/// Every difference between the two sides' view of one step.
pub fn step_diffs(o: &StepObs, t: &StepObs) -> Vec<Diff> {
    let mut out = Vec::new();
    let (ok_o, ok_t) = (o.status == 0, t.status == 0);
    if ok_o != ok_t {
        out.push(Diff::new("status", o.status, t.status));
    } else if !ok_o {
        if code(o) != code(t) {
            out.push(Diff::new("error-code", code(o), code(t)));
        } else if message_class(&msg(o)) != message_class(&msg(t)) {
            out.push(Diff::new(
                "error-text",
                format!("[{}] {}", message_class(&msg(o)), msg(o)),
                format!("[{}] {}", message_class(&msg(t)), msg(t)),
            ));
        }
    } else {
        let mut d = Vec::new();
        value_diffs("", &o.json, &t.json, &mut d);
        for (path, x, y) in d {
            out.push(Diff::new(
                format!("result:{}", path.trim_start_matches('.')),
                x,
                y,
            ));
        }
    }
    if o.leases != t.leases {
        out.push(Diff::new(
            "leases",
            format!("{:?}", o.leases),
            format!("{:?}", t.leases),
        ));
    }
    kernel_diffs(&o.kernel, &t.kernel, &mut out);
    out
}
