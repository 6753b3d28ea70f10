//! Reading config JSON the way the reference's Go `encoding/json` reads it into its structs, so
//! configs written for the reference mean the same here:
//!
//! - an object key matches a struct field exactly, else case-insensitively (ASCII case, plus
//!   Go's extra folds: the Kelvin sign U+212A is `k`, the long s U+017F is `s`);
//! - when a field is given more than once (the same key twice, or two case variants) the last
//!   one in the document wins, but a field that is itself a struct is decoded INTO the earlier
//!   value, so `{"ipam":{"subnet":…},"IPAM":{"dataDir":…}}` has both keys (checked against
//!   the reference);
//! - `null` follows the Go field's kind: a slice becomes nil (the same as an absent key), a
//!   pointer, map or `interface{}` holds `null` (read as absent), and a value-type field
//!   (string, bool, number, value struct) keeps whatever an earlier key gave it;
//! - unknown keys are ignored by Go; here they pass through untouched (exact, last one wins)
//!   for the plugin's own lookups;
//! - `prevResult` is a Go `map[string]interface{}` that libcni re-marshals (keys sorted by
//!   bytes) before decoding it into the result struct, so inside it case variants are applied
//!   in byte order, not document order (`"ips"` beats `"IPs"` wherever each stands).
//!
//! The stdin bytes are parsed once, straight into a `serde_json::Value` whose known keys carry
//! their canonical spelling ([`parse`]); plain lookups and serde derive then work unchanged.
//! A [`Node`] tree per plugin says which keys are struct fields.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// The shape of a JSON value as the reference's Go types declare it.
#[derive(Debug)]
pub enum Node {
    /// Not a struct (scalar, Go map, `interface{}`): kept as parsed, duplicated keys inside
    /// maps resolve as a Go map does (the last one wins, exact keys).
    Any,
    /// A Go struct: its fields, in groups searched in order (a plugin's group first, so it can
    /// replace a common field's shape, then the common fields).
    Struct(&'static [&'static [Field]]),
    /// A Go slice of the inner shape.
    List(&'static Node),
    /// The inner shape decoded after a round trip through a Go map: object keys are applied in
    /// byte order at every depth (libcni's `prevResult`).
    ByKeyOrder(&'static Node),
}

/// A struct field: its JSON name (the Go tag) and its shape.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub node: Node,
    /// A Go value type (string, bool, number, struct): `null` leaves it as it was; a slice:
    /// `null` removes it. Pointers, maps and `interface{}` are set to nil (the key holds `null`).
    pub null_keeps: bool,
}

/// A Go value-type field of the given shape (a struct, or a slice, which `null` always empties).
pub const fn field(name: &'static str, node: Node) -> Field {
    Field {
        name,
        node,
        null_keeps: true,
    }
}

/// A Go pointer, map or `interface{}` field of the given shape: `null` sets it to nil.
pub const fn ptr(name: &'static str, node: Node) -> Field {
    Field {
        name,
        node,
        null_keeps: false,
    }
}

/// A Go value-type scalar field (string, bool, number).
pub const fn any(name: &'static str) -> Field {
    field(name, Node::Any)
}

/// A Go pointer, map or `net.IP` scalar field (`*bool`, `map[string]…`, `interface{}`).
pub const fn nullable(name: &'static str) -> Field {
    ptr(name, Node::Any)
}

/// Go's case-insensitive key match against an ASCII field name.
pub fn fold_eq(key: &str, name: &str) -> bool {
    let mut chars = key.chars();
    for f in name.bytes() {
        let ok = match chars.next() {
            None => false,
            Some(c) if c.is_ascii() => (c as u8).eq_ignore_ascii_case(&f),
            Some('\u{212A}') => f.eq_ignore_ascii_case(&b'k'),
            Some('\u{17F}') => f.eq_ignore_ascii_case(&b's'),
            Some(_) => false,
        };
        if !ok {
            return false;
        }
    }
    chars.next().is_none()
}

/// The field `key` decodes into: an exact name first, else a folded match.
fn lookup(groups: &'static [&'static [Field]], key: &str) -> Option<&'static Field> {
    let all = || groups.iter().flat_map(|g| g.iter());
    all()
        .find(|f| f.name == key)
        .or_else(|| all().find(|f| fold_eq(key, f.name)))
}

/// Stores `value` for field `f` in a struct-shaped object under the field's canonical name: a
/// struct given twice is merged the way Go decodes into an existing struct, `null` follows the
/// field's Go kind, anything else is replaced.
fn put(obj: &mut Map<String, Value>, f: &'static Field, value: Value) {
    let inner = match &f.node {
        Node::ByKeyOrder(n) => n,
        n => n,
    };
    match (inner, obj.get_mut(f.name), value) {
        // Go's null slice is a nil slice: the same as an absent key.
        (Node::List(_), _, Value::Null) if f.null_keeps => {
            obj.remove(f.name);
        }
        // Go leaves a value-type field as it was (checked: a later `"DataDir": null` keeps the
        // earlier dataDir in the reference).
        (_, _, Value::Null) if f.null_keeps => {}
        (Node::Struct(g), Some(Value::Object(old)), Value::Object(new)) => {
            for (k, v) in new {
                put_key(old, g, k, v);
            }
        }
        (_, _, value) => {
            obj.insert(f.name.to_string(), value);
        }
    }
}

/// [`put`] for a key not yet looked up; unknown keys are stored as they are.
fn put_key(
    obj: &mut Map<String, Value>,
    groups: &'static [&'static [Field]],
    key: String,
    value: Value,
) {
    match lookup(groups, &key) {
        Some(f) => put(obj, f, value),
        None => {
            obj.insert(key, value);
        }
    }
}

/// Parses `bytes` as one JSON value shaped by `schema` (see the module text).
pub fn parse(bytes: &[u8], schema: &'static Node) -> Result<Value, serde_json::Error> {
    // Go's decoder turns invalid UTF-8 inside strings into U+FFFD instead of failing (outside
    // strings it is a syntax error either way); valid input is borrowed, not copied.
    let text = String::from_utf8_lossy(bytes);
    let mut de = serde_json::Deserializer::from_str(&text);
    let value = Seed {
        node: schema,
        sorted: false,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct Seed {
    node: &'static Node,
    sorted: bool,
}

impl Seed {
    fn child(self, node: &'static Node) -> Seed {
        match node {
            Node::ByKeyOrder(inner) => Seed {
                node: inner,
                sorted: true,
            },
            _ => Seed { node, ..self },
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.node {
            // The common case costs what a plain serde_json parse costs.
            Node::Any if !self.sorted => Value::deserialize(d),
            Node::ByKeyOrder(_) => self.child(self.node).deserialize(d),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = match self.node {
            Node::List(inner) => self.child(inner),
            // A non-list where a list was declared: kept as is for the caller's type error.
            _ => self.child(&Node::Any),
        };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(item)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let groups: &'static [&'static [Field]] = match self.node {
            Node::Struct(g) => g,
            _ => &[],
        };
        let mut obj = Map::new();
        if self.sorted {
            // A Go map first (exact keys, the last one wins), then its keys in byte order.
            let mut entries: Vec<(String, Value)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let seed =
                    lookup(groups, &key).map_or(self.child(&Node::Any), |f| self.child(&f.node));
                let value = map.next_value_seed(seed)?;
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => entries.push((key, value)),
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in entries {
                put_key(&mut obj, groups, k, v);
            }
        } else {
            while let Some(key) = map.next_key::<String>()? {
                match lookup(groups, &key) {
                    Some(f) => {
                        let value = map.next_value_seed(self.child(&f.node))?;
                        put(&mut obj, f, value);
                    }
                    None => {
                        let value: Value = map.next_value()?;
                        obj.insert(key, value);
                    }
                }
            }
        }
        Ok(Value::Object(obj))
    }
}

// ---- The shapes shared by every plugin: libcni's NetConf and its result types. ----

/// A Go `[]string` (or any slice of scalars).
pub const STRINGS: Node = Node::List(&Node::Any);

const DNS_FIELDS: &[Field] = &[
    field("nameservers", STRINGS),
    any("domain"),
    field("search", STRINGS),
    field("options", STRINGS),
];
pub const DNS: Node = Node::Struct(&[DNS_FIELDS]);

/// `types.Route` (results and IPAM `routes`).
pub const ROUTE: Node = Node::Struct(&[&[
    any("dst"),
    nullable("gw"),
    any("mtu"),
    any("advmss"),
    any("priority"),
    nullable("table"),
    nullable("scope"),
]]);

/// Every result version's fields at once: their names never collide across versions.
pub const RESULT: Node = Node::Struct(&[&[
    any("cniVersion"),
    field(
        "interfaces",
        Node::List(&Node::Struct(&[&[
            any("name"),
            any("mac"),
            any("mtu"),
            any("sandbox"),
            any("socketPath"),
            any("pciID"),
        ]])),
    ),
    field(
        "ips",
        Node::List(&Node::Struct(&[&[
            any("version"),
            nullable("interface"),
            any("address"),
            nullable("gateway"),
        ]])),
    ),
    field("routes", Node::List(&ROUTE)),
    field("dns", DNS),
    ptr("ip4", LEGACY_IP),
    ptr("ip6", LEGACY_IP),
]]);

/// 0.1.0/0.2.0's `ip4`/`ip6`.
const LEGACY_IP: Node = Node::Struct(&[&[
    any("ip"),
    nullable("gateway"),
    field("routes", Node::List(&ROUTE)),
]]);

/// libcni's `types.Error`, as a delegate prints it.
pub const ERROR: Node =
    Node::Struct(&[&[any("cniVersion"), any("code"), any("msg"), any("details")]]);

const GC_ATTACHMENT: Node = Node::Struct(&[&[any("containerID"), any("ifname")]]);

/// The keys every plugin reads (libcni's `types.NetConf`, plus ours). `cni.dev/attachments` is
/// not a Go field (libcni only adds it to the map it sends), so it stays exact; a plugin's
/// own `ipam`, `args` or `runtimeConfig` shape replaces the free-form ones here.
pub const NETCONF_FIELDS: &[Field] = &[
    any("cniVersion"),
    field("cniVersions", STRINGS),
    any("name"),
    any("type"),
    nullable("capabilities"),
    field("ipam", Node::Struct(&[&[any("type")]])),
    field("dns", DNS),
    ptr("prevResult", Node::ByKeyOrder(&RESULT)),
    nullable("runtimeConfig"),
    nullable("args"),
    nullable("logFile"),
    // Held as null, unlike a Go slice: GC tells a null list (none valid) from no list.
    ptr("cni.dev/valid-attachments", Node::List(&GC_ATTACHMENT)),
];

/// A plugin that reads nothing beyond the common keys.
pub const NETCONF: Node = Node::Struct(&[NETCONF_FIELDS]);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const INNER: Node = Node::Struct(&[&[any("subnet"), any("rangeStart")]]);
    const TOP: Node = Node::Struct(&[
        &[
            field(
                "ipam",
                Node::Struct(&[&[
                    any("type"),
                    field("ranges", Node::List(&Node::List(&INNER))),
                ]]),
            ),
            any("isGateway"),
            any("Exact"),
            any("exact"),
            any("mask"),
        ],
        NETCONF_FIELDS,
    ]);

    fn p(text: &str) -> Value {
        parse(text.as_bytes(), &TOP).unwrap()
    }

    // Found while fuzzing the config loaders: `{"foo":"\xe9"}` was a decode error (code 6);
    // the reference reads it (checked with its loopback).
    #[test]
    fn invalid_utf8_in_a_string_reads_as_go_does() {
        let v = parse(b"{\"name\":\"a\xe9b\",\"foo\":\"\xff\"}", &NETCONF).unwrap();
        assert_eq!(v, json!({"name": "a\u{FFFD}b", "foo": "\u{FFFD}"}));
        assert!(parse(b"{\"name\":\"a\"\xe9}", &NETCONF).is_err());
    }

    #[test]
    fn fold_rules_are_gos() {
        assert!(fold_eq("IsGateway", "isGateway"));
        assert!(fold_eq("ISGATEWAY", "isGateway"));
        assert!(fold_eq("\u{212A}", "k") && fold_eq("\u{212A}", "K"));
        assert!(fold_eq("ma\u{17F}\u{212A}", "mask"));
        // Other Unicode folds are not Go's (U+0130 lowers to 'i' elsewhere, not here).
        assert!(!fold_eq("\u{130}pam", "ipam"));
        assert!(!fold_eq("ipa", "ipam") && !fold_eq("ipamm", "ipam"));
        assert!(!fold_eq("is_gateway", "isGateway"));
    }

    #[test]
    fn keys_get_canonical_names_and_the_last_variant_wins() {
        let v = p(r#"{"ISGATEWAY":true,"isgateway":false,"Name":"a","NAME":"b","MA\u017fK":1}"#);
        assert_eq!(v, json!({"isGateway":false,"name":"b","mask":1}));
        let v = p(r#"{"isGateway":1,"isGateway":2}"#);
        assert_eq!(v["isGateway"], 2);
    }

    #[test]
    fn an_exact_name_beats_a_fold() {
        let v = p(r#"{"exact":1,"Exact":2,"EXACT":3}"#);
        // "EXACT" folds to the first field it matches; exact keys keep their own field.
        assert_eq!(v["Exact"], 3);
        assert_eq!(v["exact"], 1);
    }

    #[test]
    fn null_follows_the_go_field_kind() {
        // A value-type field keeps its value; a slice empties; a pointer/map holds null.
        let v = p(
            r#"{"isGateway":true,"IsGateway":null,"ipam":{"ranges":[[]],"Ranges":null},
                      "prevResult":{"ips":[]},"PrevResult":null,"name":null}"#,
        );
        assert_eq!(v, json!({"isGateway":true,"ipam":{},"prevResult":null}));
    }

    #[test]
    fn unknown_keys_and_nulls_pass_through() {
        let v = p(r#"{"Documentation":"x","documentation":"y","cni.dev/attachments":null}"#);
        assert_eq!(
            v,
            json!({"Documentation":"x","documentation":"y","cni.dev/attachments":null})
        );
        let v = p(r#"{"CNI.DEV/Valid-Attachments":[{"ContainerId":"c","IfName":"e"}]}"#);
        assert_eq!(
            v,
            json!({"cni.dev/valid-attachments":[{"containerID":"c","ifname":"e"}]})
        );
    }

    #[test]
    fn nested_structs_merge_and_lists_of_lists_are_canonical() {
        let v = p(
            r#"{"IPAM":{"Type":"host-local"},"ipam":{"Ranges":[[{"Subnet":"a","RANGESTART":"b","x":1}]]}}"#,
        );
        assert_eq!(
            v,
            json!({"ipam":{"type":"host-local","ranges":[[{"subnet":"a","rangeStart":"b","x":1}]]}})
        );
        // A later list replaces an earlier one, as a Go slice does.
        let v = p(
            r#"{"ipam":{"ranges":[[{"subnet":"a"}],[{"subnet":"b"}]],"RANGES":[[{"subnet":"c"}]]}}"#,
        );
        assert_eq!(v["ipam"]["ranges"], json!([[{"subnet":"c"}]]));
        // A null list is an absent one.
        let v = p(r#"{"ipam":{"ranges":[[{"subnet":"a"}]],"Ranges":null}}"#);
        assert_eq!(v["ipam"], json!({}));
        // A non-object where a struct was declared is kept for the caller's type error.
        assert_eq!(p(r#"{"IPAM":5}"#), json!({"ipam":5}));
    }

    #[test]
    fn prev_result_applies_case_variants_in_byte_order() {
        let v = p(
            r#"{"prevResult":{"ips":[{"address":"a"}],"IPs":[{"Address":"b"}],"DNS":{"Domain":"d"},"dns":{"nameservers":["n"]},
               "Interfaces":[{"Name":"eth0","PciId":"p"}]}}"#,
        );
        assert_eq!(
            v["prevResult"],
            json!({"dns":{"domain":"d","nameservers":["n"]},"interfaces":[{"name":"eth0","pciID":"p"}],"ips":[{"address":"a"}]})
        );
        let v = p(r#"{"prevResult":{"IP4":{"IP":"x","Routes":[{"Dst":"d","GW":"g"}]}}}"#);
        assert_eq!(
            v["prevResult"],
            json!({"ip4":{"ip":"x","routes":[{"dst":"d","gw":"g"}]}})
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        for bad in ["{", "{} x", r#"{"a":}"#, ""] {
            assert!(parse(bad.as_bytes(), &TOP).is_err(), "{bad}");
        }
        assert_eq!(parse(b"[1,{\"A\":2}]", &TOP).unwrap(), json!([1, {"A": 2}]));
    }
}
