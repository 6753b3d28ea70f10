//! Runs a network configuration list the way a container runtime's libcni does: each plugin of
//! the list in order on ADD (each one's result is the next one's `prevResult`), in reverse on
//! DEL, with `name`/`cniVersion` copied into every plugin's config and `runtimeConfig` built from
//! the capability arguments the plugin declares. The ADD result is cached so CHECK and DEL get
//! it as `prevResult`, as libcni does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

/// One network: a `.conflist`, or a single-plugin `.conf` seen as a list of one.
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

impl NetworkList {
    /// Parse a `.conflist` (has `plugins`) or a `.conf` (is itself the plugin config).
    pub fn parse(text: &str) -> Result<NetworkList, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let name = v["name"].as_str().ok_or("missing \"name\"")?.to_string();
        let cni_version = v["cniVersion"].as_str().unwrap_or("0.1.0").to_string();
        let plugins = match v.get("plugins") {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            Some(_) => {
                return Err(format!(
                    "network {name:?}: \"plugins\" must be a non-empty list"
                ))
            }
            None => vec![v.clone()],
        };
        if let Some(bad) = plugins.iter().position(|p| p["type"].as_str().is_none()) {
            return Err(format!("network {name:?}: plugin {bad} has no \"type\""));
        }
        Ok(NetworkList {
            name,
            cni_version,
            plugins,
        })
    }

    /// The network called `name` among the `.conflist`/`.conf`/`.json` files of `dir` (first in
    /// file-name order, as runtimes pick).
    pub fn find(dir: &Path, name: &str) -> Result<NetworkList, String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "conflist" | "conf" | "json"))
            })
            .collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            if let Ok(list) = NetworkList::parse(&text) {
                if list.name == name {
                    return Ok(list);
                }
            }
        }
        Err(format!("no network named {name:?} in {}", dir.display()))
    }

    /// The stdin of plugin `index`: its config plus the list's name and version, `prevResult`
    /// when given, and `runtimeConfig` holding the capability arguments it declares.
    pub fn plugin_config(&self, index: usize, prev: Option<&Value>, cap_args: &Value) -> Value {
        let mut conf = match self.plugins.get(index) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        conf.insert("name".into(), Value::from(self.name.as_str()));
        conf.insert("cniVersion".into(), Value::from(self.cni_version.as_str()));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let mut runtime = Map::new();
        if let (Some(caps), Some(args)) = (
            conf.get("capabilities").and_then(Value::as_object),
            cap_args.as_object(),
        ) {
            for (key, value) in args {
                if caps.get(key) == Some(&Value::Bool(true)) {
                    runtime.insert(key.clone(), value.clone());
                }
            }
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        Value::Object(conf)
    }
}

/// Where and for whom the plugins run.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub cni_path: Vec<PathBuf>,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub cni_args: String,
    /// Capability arguments (`portMappings`, `mac`, `ips`, ...), handed to plugins that declare them.
    pub cap_args: Value,
    /// Where ADD results are kept for CHECK and DEL.
    pub cache_dir: PathBuf,
}

/// cnitool's default container id: derived from the netns path, so repeated calls agree.
pub fn container_id_for(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{}", &hex[..20])
}

impl Runtime {
    /// ADD every plugin in order; returns the last result (also cached).
    pub fn add(&self, list: &NetworkList) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for index in 0..list.plugins.len() {
            let conf = list.plugin_config(index, prev.as_ref(), &self.cap_args);
            let out = self.exec("ADD", &conf)?;
            prev =
                Some(serde_json::from_slice(&out).map_err(|e| {
                    format!("{} ADD printed no JSON result: {e}", plugin_type(&conf))
                })?);
        }
        let result = prev.unwrap_or(Value::Null);
        std::fs::create_dir_all(&self.cache_dir)
            .and_then(|_| std::fs::write(self.cache_file(list), result.to_string()))
            .map_err(|e| format!("caching the result in {}: {e}", self.cache_dir.display()))?;
        Ok(result)
    }

    /// CHECK every plugin in order against the cached ADD result.
    pub fn check(&self, list: &NetworkList) -> Result<(), String> {
        let cached = self
            .cached_result(list)
            .ok_or_else(|| format!("no cached ADD result for network {:?}", list.name))?;
        for index in 0..list.plugins.len() {
            let conf = list.plugin_config(index, Some(&cached), &self.cap_args);
            self.exec("CHECK", &conf)?;
        }
        Ok(())
    }

    /// DEL every plugin in reverse order (with the cached result, if any), then drop the cache.
    pub fn del(&self, list: &NetworkList) -> Result<(), String> {
        let cached = self.cached_result(list);
        for index in (0..list.plugins.len()).rev() {
            let conf = list.plugin_config(index, cached.as_ref(), &self.cap_args);
            self.exec("DEL", &conf)?;
        }
        match std::fs::remove_file(self.cache_file(list)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing the cached result: {e}")),
        }
    }

    fn cache_file(&self, list: &NetworkList) -> PathBuf {
        self.cache_dir.join(format!(
            "{}-{}-{}",
            list.name, self.container_id, self.ifname
        ))
    }

    fn cached_result(&self, list: &NetworkList) -> Option<Value> {
        let text = std::fs::read_to_string(self.cache_file(list)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Exec one plugin; its stdout on success, its error (JSON as printed) otherwise.
    fn exec(&self, command: &str, conf: &Value) -> Result<Vec<u8>, String> {
        let kind = plugin_type(conf);
        let binary = self
            .cni_path
            .iter()
            .map(|dir| dir.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("plugin {kind:?} not found in CNI_PATH {:?}", self.cni_path))?;
        let path = std::env::join_paths(&self.cni_path).map_err(|e| e.to_string())?;
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.cni_args)
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(conf.to_string().as_bytes())
                .map_err(|e| format!("writing the config to {kind}: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for {kind}: {e}"))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{kind} {command} failed: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    }
}

fn plugin_type(conf: &Value) -> &str {
    conf["type"].as_str().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_config_gets_name_version_prev_result_and_declared_capabilities_only() {
        let list = NetworkList::parse(
            &json!({
                "cniVersion": "1.0.0", "name": "net",
                "plugins": [
                    { "type": "bridge" },
                    { "type": "portmap", "capabilities": { "portMappings": true, "mac": false } }
                ]
            })
            .to_string(),
        )
        .unwrap();
        let caps = json!({ "portMappings": [{ "hostPort": 80 }], "mac": "0a:58:00:00:00:01" });
        let first = list.plugin_config(0, None, &caps);
        assert_eq!(
            first,
            json!({ "type": "bridge", "name": "net", "cniVersion": "1.0.0" })
        );
        let prev = json!({ "cniVersion": "1.0.0", "ips": [] });
        let second = list.plugin_config(1, Some(&prev), &caps);
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            json!({ "portMappings": [{ "hostPort": 80 }] })
        );
    }

    #[test]
    fn a_single_plugin_conf_is_a_list_of_one_and_bad_lists_are_named() {
        let list =
            NetworkList::parse(r#"{"cniVersion":"0.3.1","name":"n","type":"bridge"}"#).unwrap();
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.cni_version, "0.3.1");
        let err = NetworkList::parse(r#"{"name":"n","plugins":[{"bridge":"x"}]}"#).unwrap_err();
        assert!(err.contains("no \"type\""), "{err}");
        assert!(NetworkList::parse(r#"{"plugins":[]}"#).is_err());
    }

    #[test]
    fn container_id_is_stable_per_netns() {
        let a = container_id_for("/run/netns/a");
        assert_eq!(a, container_id_for("/run/netns/a"));
        assert_ne!(a, container_id_for("/run/netns/b"));
        assert_eq!(a.len(), "cnitool-".len() + 20);
    }
}
