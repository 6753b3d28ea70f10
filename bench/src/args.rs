//! Minimal `--key value` / `--key=value` option parsing (no dependencies).

use std::collections::BTreeMap;

/// Parsed options: every option takes exactly one value.
pub struct Opts {
    values: BTreeMap<String, String>,
}

impl Opts {
    /// Parses `args`, accepting only the option names in `known` (given without `--`).
    pub fn parse(args: &[String], known: &[&str]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (key, value) = match body.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| format!("option --{body} needs a value"))?;
                    (body.to_string(), v.clone())
                }
            };
            if !known.contains(&key.as_str()) {
                return Err(format!("unknown option --{key} (see `cni-bench help`)"));
            }
            values.insert(key, value);
        }
        Ok(Self { values })
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: {v:?} is not a non-negative integer")),
        }
    }

    pub fn usize_list_or(&self, key: &str, default: &[usize]) -> Result<Vec<usize>, String> {
        match self.values.get(key) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .map_err(|_| format!("--{key}: {s:?} is not a non-negative integer"))
                })
                .collect(),
        }
    }
}
