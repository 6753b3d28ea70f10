//! A small network-list runner, doing for `.conflist` files what libcni does for a runtime:
//! each plugin gets the list's `name` and `cniVersion` injected, ADD runs the plugins in order
//! with the previous plugin's result as `prevResult`, CHECK and DEL pass the list's final
//! (cached) result to every plugin (CHECK needs 0.4.0 or later; DEL gets `prevResult` only from
//! 0.4.0 on), DEL runs in reverse order, and `runtimeConfig` carries the runtime's values for
//! the capabilities a plugin declares. A `.conf` file is a list of one plugin, as for libcni.

use crate::{Call, Reply};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// A parsed network list.
#[derive(Clone, Debug)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// The plugin objects as written (without the injected name and version).
    pub plugins: Vec<Value>,
}

/// `"a.b.c"` as numbers, for ordering versions.
pub fn version_tuple(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

impl NetworkList {
    /// Reads a `.conflist` (an object with `plugins`) or a single-plugin `.conf`.
    pub fn load(path: &Path) -> Result<NetworkList, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        NetworkList::from_value(&v).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_value(v: &Value) -> Result<NetworkList, String> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("no string {k:?}"))
        };
        let plugins = match v.get("plugins") {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            Some(_) => return Err("\"plugins\" must be a non-empty list".into()),
            None => {
                let mut single = v.clone();
                if let Some(o) = single.as_object_mut() {
                    o.remove("name");
                    o.remove("cniVersion");
                }
                vec![single]
            }
        };
        if let Some(i) = plugins
            .iter()
            .position(|p| p.get("type").and_then(Value::as_str).is_none())
        {
            return Err(format!("plugin {i} has no \"type\""));
        }
        Ok(NetworkList {
            name: text("name")?,
            cni_version: text("cniVersion")?,
            plugins,
        })
    }

    pub fn at_least(&self, version: &str) -> bool {
        version_tuple(&self.cni_version) >= version_tuple(version)
    }

    /// The type of each plugin, in order.
    pub fn types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }
}

/// One attachment of a network list to a container.
pub struct Chain<'a> {
    pub list: &'a NetworkList,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// Values the runtime offers, keyed by capability (`portMappings`, `mac`, ...).
    pub runtime_config: Value,
    /// CNI_PATH given to every plugin (where they find their delegates).
    pub cni_path: String,
    /// Where the binary of a plugin type is.
    pub locate: &'a dyn Fn(&str) -> PathBuf,
}

/// A plugin of the list failed: which one and what it answered.
#[derive(Debug)]
pub struct ChainError {
    pub plugin: String,
    pub reply: Reply,
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {} failed: {:?}", self.plugin, self.reply)
    }
}

impl Chain<'_> {
    /// The stdin of one plugin: its object plus the injected keys.
    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), json!(self.list.name));
        conf.insert("cniVersion".into(), json!(self.list.cni_version));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let mut rc = Map::new();
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            for (cap, on) in caps {
                if on == &Value::Bool(true) {
                    if let Some(v) = self.runtime_config.get(cap) {
                        rc.insert(cap.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        Value::Object(conf)
    }

    fn exec(
        &self,
        command: &str,
        plugin: &Value,
        prev: Option<&Value>,
    ) -> Result<Reply, ChainError> {
        let kind = plugin["type"].as_str().unwrap_or_default();
        let reply = Call::new(
            command,
            &self.container_id,
            self.plugin_conf(plugin, prev).to_string(),
        )
        .netns(&self.netns)
        .ifname(&self.ifname)
        .cni_path(&self.cni_path)
        .run(&(self.locate)(kind));
        if reply.status == 0 {
            Ok(reply)
        } else {
            Err(ChainError {
                plugin: kind.to_string(),
                reply,
            })
        }
    }

    /// ADD through the list; the last plugin's result is the list's result.
    pub fn add(&self) -> Result<Value, ChainError> {
        let mut prev: Option<Value> = None;
        for plugin in &self.list.plugins {
            let reply = self.exec("ADD", plugin, prev.as_ref())?;
            prev = Some(reply.json());
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// CHECK every plugin against the cached result. Like libcni, refuses lists before 0.4.0.
    pub fn check(&self, cached: &Value) -> Result<(), ChainError> {
        if !self.list.at_least("0.4.0") {
            return Err(ChainError {
                plugin: String::new(),
                reply: Reply {
                    status: -1,
                    stdout: String::new(),
                    stderr: format!(
                        "configuration version {} does not support CHECK",
                        self.list.cni_version
                    ),
                },
            });
        }
        for plugin in &self.list.plugins {
            self.exec("CHECK", plugin, Some(cached))?;
        }
        Ok(())
    }

    /// DEL through the list in reverse order; `cached` is passed on from 0.4.0 on.
    pub fn del(&self, cached: Option<&Value>) -> Result<(), ChainError> {
        let prev = cached.filter(|_| self.list.at_least("0.4.0"));
        for plugin in self.list.plugins.iter().rev() {
            self.exec("DEL", plugin, prev)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_single_conf_is_a_list_of_one() {
        let l = NetworkList::from_value(&json!({
            "cniVersion": "0.3.1", "name": "n", "type": "bridge", "bridge": "b0"
        }))
        .unwrap();
        assert_eq!(l.types(), ["bridge"]);
        assert_eq!(l.plugins[0], json!({ "type": "bridge", "bridge": "b0" }));
        assert!(!l.at_least("0.4.0"));
    }

    #[test]
    fn plugin_conf_injects_name_version_prev_and_capabilities() {
        let l = NetworkList::from_value(&json!({
            "cniVersion": "1.0.0", "name": "n",
            "plugins": [{ "type": "portmap", "capabilities": { "portMappings": true, "bandwidth": false } }]
        }))
        .unwrap();
        let locate = |_: &str| PathBuf::new();
        let chain = Chain {
            list: &l,
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            runtime_config: json!({ "portMappings": [{ "hostPort": 8080 }], "bandwidth": {} }),
            cni_path: String::new(),
            locate: &locate,
        };
        let conf = chain.plugin_conf(&l.plugins[0], Some(&json!({ "ips": [] })));
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["prevResult"], json!({ "ips": [] }));
        assert_eq!(
            conf["runtimeConfig"],
            json!({ "portMappings": [{ "hostPort": 8080 }] })
        );
    }

    #[test]
    fn lists_without_types_or_plugins_are_refused() {
        assert!(NetworkList::from_value(
            &json!({ "cniVersion": "1.0.0", "name": "n", "plugins": [] })
        )
        .is_err());
        assert!(NetworkList::from_value(
            &json!({ "cniVersion": "1.0.0", "name": "n", "plugins": [{}] })
        )
        .is_err());
        assert!(NetworkList::from_value(&json!({ "name": "n", "type": "x" })).is_err());
    }
}
