//! THE allow-list of the differential fuzzer: every known difference between ours and the
//! reference v1.1.1, each matched by what it is (plugin, verb, config, field), never by seed,
//! with its reason. Two groups:
//! - intentional: documented in the README ("Differences from the reference");
//! - unexplained — to fix: found by the fuzzer, reported, not yet fixed.

use super::compare::Diff;
use super::gen::{Case, NetnsKind, Plugin, Step};
use super::side::StepObs;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Intentional,
    Unexplained,
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Intentional => write!(f, "intentional"),
            Group::Unexplained => write!(f, "unexplained — to fix"),
        }
    }
}

/// What a predicate sees.
pub struct Ctx<'a> {
    pub case: &'a Case,
    pub step: &'a Step,
    pub diff: &'a Diff,
    pub ours: &'a StepObs,
    pub theirs: &'a StepObs,
}

impl Ctx<'_> {
    fn class(&self, c: &str) -> bool {
        self.diff.class == c
    }
    fn class_starts(&self, p: &str) -> bool {
        self.diff.class.starts_with(p)
    }
    fn plugin(&self, p: Plugin) -> bool {
        self.case.plugin == p
    }
    fn version(&self) -> String {
        self.step.version()
    }
    /// The step's config value (the value the generator built, before textual variations).
    fn conf(&self) -> &Value {
        &self.step.config
    }
}

pub struct Allowed {
    pub name: &'static str,
    pub group: Group,
    pub reason: &'static str,
    pub matches: fn(&Ctx) -> bool,
}

/// Entries are tried in order; the first match names the difference in the report, so the
/// narrow (unexplained) entries come before the broad intentional ones.
pub const ALLOWED: &[Allowed] = &[
    // ------------------------------------------------ unexplained — to fix
    Allowed {
        name: "portmap ignores a 0.1.0/0.2.0 prevResult",
        group: Group::Unexplained,
        reason: "ADD at 0.1.0/0.2.0 (prevResult with ip4/ip6): the reference maps the ports and sets \
                 route_localnet; ours succeeds and maps nothing",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && matches!(c.version().as_str(), "0.1.0" | "0.2.0")
                && c.ours.status == 0
                // what the reference makes (or fails making: externalSetMarkChain missing) ours skips
                && (c.class_starts("kernel:host:") || c.class("status"))
        },
    },
    Allowed {
        name: "portmap snat:false",
        group: Group::Unexplained,
        reason: "with \"snat\": false ours still creates the CNI-HOSTPORT-MASQ/SETMARK chains; the \
                 reference creates none",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && c.conf().get("snat") == Some(&Value::Bool(false))
                && (c.class("kernel:host:iptables") || c.class("kernel:host:ip6tables"))
        },
    },
    Allowed {
        name: "DEL validates the config",
        group: Group::Unexplained,
        reason: "DEL with a config ours refuses (portmap protocol icmp or port 70000, bridge mtu 70000, \
                 hairpinMode with promiscMode) fails with code 7; the reference's DEL succeeds (DEL \
                 should not refuse what ADD could never have made)",
        matches: |c| {
            c.step.verb == "DEL" && c.ours.status != 0 && c.theirs.status == 0 && c.ours.json["code"] == 7
        },
    },
    Allowed {
        name: "Go null",
        group: Group::Unexplained,
        reason: "a JSON null is an error in ours (\"invalid type: null\"); Go leaves the field unset",
        matches: |c| c.step.has_prefix("null:") || c.step.stdin.trim() == "null",
    },
    Allowed {
        name: "Go types",
        group: Group::Unexplained,
        reason: "a value of another JSON type (\"true\" for true, \"1400\" for 1400): Go refuses most \
                 with \"cannot unmarshal\"; ours accepts some and refuses others",
        matches: |c| c.step.has_prefix("retyped:"),
    },
    Allowed {
        name: "prevResult passthrough keeps unknown keys",
        group: Group::Unexplained,
        reason: "chained plugins print prevResult as given; the reference parses and re-prints it, \
                 dropping keys it does not know",
        matches: |c| (c.step.has("unknown-key:prevResult") || c.step.has("stdin:wrong-types"))
                && c.class_starts("result:")
                && c.diff.theirs == "<absent>",
    },
    Allowed {
        name: "portmap hostIP",
        group: Group::Unexplained,
        reason: "mappings with a hostIP (of the other family, or mixed): the reference maps (or \
                 CHECK fails on) what ours skips, and the reverse",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && c.conf()["runtimeConfig"]["portMappings"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x.get("hostIP").is_some()))
        },
    },
    Allowed {
        name: "capabilities must be booleans",
        group: Group::Unexplained,
        reason: "bridge, portmap: a non-boolean value in \"capabilities\" fails the reference's parse (\"cannot \
                 unmarshal … of type bool\"); ours accepts it and configures the pod",
        matches: |c| {
            c.conf()["capabilities"]
                .as_object()
                .is_some_and(|o| o.values().any(|v| !v.is_boolean()))
                || super::compare::msg(c.theirs).contains("capabilities of type bool")
        },
    },
    Allowed {
        name: "CNI_ARGS MAC",
        group: Group::Unexplained,
        reason: "CNI_ARGS MAC= without IgnoreUnknown: v1.1.1 (bridge, host-local) refuses the unknown \
                 key; ours accepts it (newer references know MAC); not yet in the README",
        matches: |c| {
            (c.plugin(Plugin::Bridge) || c.plugin(Plugin::HostLocal))
                && c.step.args.contains("MAC=")
                && !c.step.args.contains("IgnoreUnknown")
        },
    },
    Allowed {
        name: "DEL accepts what the reference refuses",
        group: Group::Unexplained,
        reason: "DEL with an unparsable CNI_ARGS value (IP=bogus), an invalid IPAM route, or ranges a \
                 0.1.0/0.2.0 result cannot carry: the reference fails, ours releases and succeeds; \
                 not in the README",
        matches: |c| c.step.verb == "DEL" && c.ours.status == 0 && c.theirs.status != 0,
    },
    Allowed {
        name: "portmap duplicated mappings",
        group: Group::Unexplained,
        reason: "two portMappings entries with one (protocol, hostPort): the reference writes identical \
                 entries' rules twice and a shared host port's SETMARK rules once; ours the reverse",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && c.conf()["runtimeConfig"]["portMappings"].as_array().is_some_and(|m| {
                    let key = |x: &Value| {
                        (
                            x["hostPort"].clone(),
                            x["protocol"].as_str().map(str::to_ascii_lowercase),
                        )
                    };
                    m.iter()
                        .enumerate()
                        .any(|(i, x)| m[i + 1..].iter().any(|y| key(x) == key(y)))
                })
                && (c.class("kernel:host:iptables") || c.class("kernel:host:ip6tables"))
        },
    },
    Allowed {
        name: "portmap CHECK of a v4-only pod",
        group: Group::Unexplained,
        reason: "the reference's CHECK fails \"could not check ipv6 dnat: chain … not found\" for a pod \
                 without an IPv6 address (a reference defect); ours passes; not in the README",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && c.step.verb == "CHECK"
                && c.ours.status == 0
                && super::compare::msg(c.theirs).contains("could not check ipv6 dnat")
        },
    },
    Allowed {
        name: "failed ADD moves last_reserved_ip",
        group: Group::Unexplained,
        reason: "bridge runs IPAM concurrently with the link setup: when the link fails (ifname taken) \
                 the lease is released but last_reserved_ip.N has moved on; the reference fails before \
                 IPAM and leaves the data dir untouched, so later pods get other addresses",
        matches: |c| {
            c.class("leases")
                && c.ours.status != 0
                && c.theirs.status != 0
                && c.ours
                    .leases
                    .iter()
                    .all(|(k, v)| k.contains("/last_reserved_ip.") || c.theirs.leases.get(k) == Some(v))
                && c.ours.leases.iter().any(|(k, v)| c.theirs.leases.get(k) != Some(v))
        },
    },
    Allowed {
        name: "portmap ignores CNI_IFNAME",
        group: Group::Unexplained,
        reason: "the reference maps only the prevResult addresses of the interface named CNI_IFNAME \
                 (none for ifname lo: it succeeds and maps nothing); ours maps every container address",
        matches: |c| {
            // CNI_IFNAME names no container interface of the prevResult (e.g. lo, or eth1 for a
            // second attachment chained with a prevResult naming eth0)
            let sandboxed: Vec<&str> = c.conf()["prevResult"]["interfaces"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter(|i| i.get("sandbox").is_some())
                        .filter_map(|i| i["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            c.plugin(Plugin::Portmap)
                && !sandboxed.contains(&c.step.ifname.as_str())
                && c.ours.status == 0
                && (c.class_starts("kernel:host:") || c.class("status"))
        },
    },
    Allowed {
        name: "portmap refuses a protocol on ADD",
        group: Group::Unexplained,
        reason: "a mapping with protocol icmp: ours refuses the ADD (code 7), the reference's succeeds",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && c.ours.status != 0
                && c.theirs.status == 0
                && c.ours.json["code"] == 7
                && c.conf()["runtimeConfig"]["portMappings"].as_array().is_some_and(|m| {
                    m.iter().any(|x| {
                        !matches!(
                            x["protocol"].as_str().map(str::to_ascii_lowercase).as_deref(),
                            Some("tcp" | "udp" | "sctp")
                        )
                    })
                })
        },
    },
    Allowed {
        name: "portmap protocol case",
        group: Group::Unexplained,
        reason: "\"TCP\" and \"tcp\" mappings: the reference groups them by the literal string (two \
                 multiport jumps), ours by the protocol (one jump); same ports published",
        matches: |c| {
            c.plugin(Plugin::Portmap)
                && (c.class("kernel:host:iptables") || c.class("kernel:host:ip6tables"))
                && c.conf()["runtimeConfig"]["portMappings"].as_array().is_some_and(|m| {
                    m.iter().any(|x| x["protocol"].as_str().is_some_and(|p| p.chars().any(|ch| ch.is_ascii_uppercase())))
                })
        },
    },
    Allowed {
        name: "loopback DEL with a path that is not a netns",
        group: Group::Intentional,
        reason: "loopback DEL given a file that is not a netns succeeds (nothing to bring down, DEL is \
                 idempotent); the reference fails \"error switching to ns\" (README)",
        matches: |c| {
            c.plugin(Plugin::Loopback) && c.step.verb == "DEL" && c.step.netns == NetnsKind::NotNetns && c.ours.status == 0
        },
    },
    // ------------------------------------------------ intentional
    Allowed {
        name: "own netns",
        group: Group::Intentional,
        reason: "CNI_NETNS = the plugin's own netns: ours refuses with code 8 before making anything, \
                 as the newer reference's skel does (after its verb ran); v1.1.1 configures the host's \
                 namespace as a container's",
        matches: |c| c.step.netns == NetnsKind::Own,
    },
    Allowed {
        name: "spec 1.1.0",
        group: Group::Intentional,
        reason: "ours implements spec 1.1.0 (GC, STATUS, cniVersion 1.1.0); v1.1.1 refuses it",
        matches: |c| {
            c.version() == "1.1.0"
                || matches!(c.step.verb.as_str(), "GC" | "STATUS" | "VERSION")
                // the version under a Go-cased key the generator's own reading does not see
                || c.theirs.json["details"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("config is \"1.1.0\""))
        },
    },
    Allowed {
        name: "host veth addr_gen_mode none",
        group: Group::Intentional,
        reason: "README bridge: no IPv6 link-local on the host veth (a bridge port needs no L3 address)",
        matches: |c| {
            c.class("kernel:host:links:inet6_addr_gen_mode")
                || (c.class("kernel:host:addrs") || c.class("kernel:host:route6"))
                    && c.diff.theirs.contains("<veth")
                    && !c.diff.ours.contains("<veth")
        },
    },
    Allowed {
        name: "L2-only at 0.1.0/0.2.0 refused first",
        group: Group::Intentional,
        reason: "an L2-only bridge at 0.1.0/0.2.0 is refused with the reference's \"cannot convert\" \
                 before anything is made (README); the reference builds first, so another failure on \
                 the way (e.g. CNI_IFNAME taken) is what it reports",
        matches: |c| {
            c.plugin(Plugin::Bridge)
                && matches!(c.version().as_str(), "0.1.0" | "0.2.0")
                && c.ours.status != 0
                && c.theirs.status != 0
                && super::compare::msg(c.ours).starts_with("cannot convert")
        },
    },
    Allowed {
        name: "backend key of newer references",
        group: Group::Intentional,
        reason: "ipMasqBackend (bridge) and backend (portmap) come from newer references (v1.6+), \
                 which refuse an unknown value as ours does (code 7); v1.1.1 ignores the key",
        matches: |c| {
            c.ours.status != 0
                && c.theirs.status == 0
                && super::compare::msg(c.ours).contains("backend")
        },
    },
    Allowed {
        name: "explicit nftables backend",
        group: Group::Intentional,
        reason: "README: ours has a native nftables backend; v1.1.1 knows no such key and uses \
                 iptables; portmap refuses iptables-only options (conditionsV4/V6, \
                 externalSetMarkChain) with it",
        matches: |c| {
            let key = if c.plugin(Plugin::Portmap) { "backend" } else { "ipMasqBackend" };
            let iptables_only = ["conditionsV4", "conditionsV6", "externalSetMarkChain"]
                .iter()
                .any(|k| c.conf().get(*k).is_some());
            c.conf().get(key).and_then(Value::as_str) == Some("nftables")
                && (c.class("kernel:host:iptables")
                    || c.class("kernel:host:ip6tables")
                    || c.plugin(Plugin::Portmap) && iptables_only)
        },
    },
    Allowed {
        name: "failed request changes nothing",
        group: Group::Intentional,
        reason: "README bridge ADD: a failed request leaves the kernel as it found it (ours validates \
                 first and rolls back); the reference leaves veths, addresses, bridges, rules and \
                 sysctls behind (DESIGN §7 defects to beat)",
        matches: |c| {
            c.ours.status != 0
                && c.theirs.status != 0
                && (c.class_starts("kernel:") && (c.ours.kernel == c.ours.kernel_before || kernel_subset(&c.ours.kernel, &c.theirs.kernel))
                    || c.class("leases") && c.ours.leases.iter().all(|(k, v)| c.theirs.leases.get(k) == Some(v)))
        },
    },
    Allowed {
        name: "isDefaultGateway with a gateway-less default IPAM route",
        group: Group::Intentional,
        reason: "README bridge: one default route via the gateway; the reference adds a second one and \
                 fails ADD with File exists (and leaves the lease's last_reserved_ip, addresses, sysctls)",
        matches: |c| {
            c.plugin(Plugin::Bridge)
                && c.step.verb == "ADD"
                && c.conf().get("isDefaultGateway") == Some(&Value::Bool(true))
                && c.conf()["ipam"]["routes"].as_array().is_some_and(|r| {
                    r.iter().any(|x| matches!(x["dst"].as_str(), Some("0.0.0.0/0" | "::/0")) && x.get("gw").is_none())
                })
                && c.theirs.status != 0
                && super::compare::msg(c.theirs).contains("file exists")
        },
    },
    Allowed {
        name: "DEL with a path that is not a netns",
        group: Group::Intentional,
        reason: "README bridge DEL: a path that is not a netns is logged and skipped, the lease and \
                 rules are still released (the reference fails and leaks them; DESIGN §7)",
        matches: |c| {
            c.plugin(Plugin::Bridge) && c.step.verb == "DEL" && c.step.netns == NetnsKind::NotNetns && c.ours.status == 0
        },
    },
    Allowed {
        name: "spec error codes",
        group: Group::Intentional,
        reason: "README Errors: env errors are code 4, unparsable stdin 6, config errors 7, where the \
                 reference says 999",
        matches: |c| c.class("error-code") && matches!(c.diff.ours.as_str(), "4" | "6" | "7") && c.diff.theirs == "999",
    },
];

/// True when every link, address, route, sysctl and rule `a` holds is also in `b`: ours left
/// no state that the reference's failed request did not leave too.
fn kernel_subset(a: &Value, b: &Value) -> bool {
    ["host", "ctr"].iter().all(|ns| {
        let (x, y) = (&a[ns], &b[ns]);
        let keys_in = x["links"]
            .as_object()
            .is_none_or(|l| l.keys().all(|k| y["links"].get(k).is_some()));
        keys_in
            && super::compare::LIST_SECTIONS.iter().all(|s| {
                let theirs = y[s].as_array().cloned().unwrap_or_default();
                x[s].as_array()
                    .is_none_or(|l| l.iter().all(|v| theirs.contains(v)))
            })
    })
}

/// The first entry that explains `ctx`, if any.
pub fn explain(ctx: &Ctx) -> Option<&'static Allowed> {
    ALLOWED.iter().find(|a| (a.matches)(ctx))
}
