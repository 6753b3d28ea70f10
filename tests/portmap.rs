//! Black-box tests of `portmap` chained after `bridge` + `host-local`, exec'd inside sandbox
//! network namespaces, with real TCP/UDP traffic from outside, from the host and hairpin.

use cni_suite_tests::sandbox::{in_sandbox, privileged, sh, Netns};
use cni_suite_tests::{our_plugin, Call, Reply};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

const NET: &str = "pmnet";
/// Safety net against a hang; no assertion depends on time.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` on a thread that joined the netns at `path`; sockets made there stay there.
fn in_ns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(path).expect("open netns");
            // SAFETY: setns only changes this thread's namespace membership.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A server in the pod answering every TCP connection and UDP datagram on `port` with the
/// peer address it saw.
fn serve(pod: &Netns, port: u16) {
    let (tcp, udp) = in_ns(&pod.path, || {
        (
            TcpListener::bind(("::", port)).expect("bind tcp"),
            UdpSocket::bind(("::", port)).expect("bind udp"),
        )
    });
    std::thread::spawn(move || {
        for mut conn in tcp.incoming().flatten() {
            if let Ok(peer) = conn.peer_addr() {
                let _ = conn.write_all(canonical(peer).as_bytes());
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(canonical(peer).as_bytes(), peer);
        }
    });
}

/// The peer's IP as text, IPv4-mapped IPv6 shown as IPv4.
fn canonical(peer: SocketAddr) -> String {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

/// Connects over TCP and returns what the pod's server saw as our address.
fn tcp_from(ns: Option<&Netns>, to: &str) -> String {
    let go = || {
        let addr: SocketAddr = to.parse().expect("addr");
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("tcp connect {to}: {e}"));
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut out = String::new();
        s.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("tcp read {to}: {e}"));
        out
    };
    match ns {
        Some(ns) => in_ns(&ns.path, go),
        None => go(),
    }
}

/// Sends a UDP datagram and returns what the pod's server saw as our address.
fn udp_from(ns: Option<&Netns>, to: &str) -> String {
    let go = || {
        let addr: SocketAddr = to.parse().expect("addr");
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(bind).expect("bind");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.connect(addr).expect("connect");
        s.send(b"hi").expect("send");
        let mut buf = [0u8; 64];
        let n = s
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("udp reply from {to}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    match ns {
        Some(ns) => in_ns(&ns.path, go),
        None => go(),
    }
}

/// The "outside": a netns linked to the sandbox host by a veth, 192.0.2.1 (host) / .2.
fn outside() -> Netns {
    let out = Netns::new();
    sh(&format!(
        "ip link add vout type veth peer name vin netns {} && ip addr add 192.0.2.1/24 dev vout \
         && ip -6 addr add 2001:db8:9::1/64 dev vout nodad && ip link set vout up",
        out.path.display()
    ));
    out.sh(
        "ip addr add 192.0.2.2/24 dev vin && ip -6 addr add 2001:db8:9::2/64 dev vin nodad \
         && ip link set vin up",
    );
    out
}

struct Pods {
    _data: tempfile::TempDir,
    bridge_conf: Value,
    portmap_conf: Value,
}

impl Pods {
    fn new(dual_stack: bool, extra: Value) -> Pods {
        let data = tempfile::tempdir().expect("tempdir");
        let mut ranges = vec![json!([{ "subnet": "10.9.0.0/24" }])];
        if dual_stack {
            ranges.push(json!([{ "subnet": "fd00:9::/64" }]));
        }
        let bridge_conf = json!({
            "cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "br-pm",
            // Hairpin needs it where br_netfilter is loaded: the DNATed frame leaves by the port
            // it came in on.
            "isDefaultGateway": true, "hairpinMode": true,
            "ipam": { "type": "host-local", "ranges": ranges, "dataDir": data.path() },
        });
        let mut portmap_conf = json!({
            "cniVersion": "1.0.0", "name": NET, "type": "portmap",
            "capabilities": { "portMappings": true },
        });
        if let (Some(c), Some(e)) = (portmap_conf.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        Pods {
            _data: data,
            bridge_conf,
            portmap_conf,
        }
    }

    fn conf(&self, mappings: &Value, prev: Option<&Value>) -> String {
        let mut c = self.portmap_conf.clone();
        c["runtimeConfig"] = json!({ "portMappings": mappings });
        if let Some(prev) = prev {
            c["prevResult"] = prev.clone();
        }
        c.to_string()
    }

    /// Bridge ADD, then portmap ADD; returns (bridge result, portmap reply).
    fn add(&self, id: &str, ns: &Netns, mappings: &Value) -> (Value, Reply) {
        let prev = Call::new("ADD", id, self.bridge_conf.to_string())
            .netns(&ns.path_str())
            .run(&our_plugin("bridge"))
            .ok();
        let reply = self.portmap("ADD", id, ns, mappings, Some(&prev));
        (prev, reply)
    }

    fn portmap(
        &self,
        cmd: &str,
        id: &str,
        ns: &Netns,
        mappings: &Value,
        prev: Option<&Value>,
    ) -> Reply {
        Call::new(cmd, id, self.conf(mappings, prev))
            .netns(&ns.path_str())
            .run(&our_plugin("portmap"))
    }
}

fn our_ruleset() -> String {
    sh("nft list table inet cni_portmap_rs 2>/dev/null || true")
}

#[test]
fn tcp_and_udp_v4_from_outside_host_localhost_and_hairpin() {
    traffic_v4("nftables");
}

#[test]
fn iptables_backend_tcp_and_udp_v4_from_outside_host_localhost_and_hairpin() {
    traffic_v4("iptables");
}

/// What the backend holds for our mappings: our nftables table, or the nat table's rules.
fn backend_state(backend: &str) -> String {
    match backend {
        "nftables" => our_ruleset(),
        _ => sh("iptables -w -t nat -S") + &sh("ip6tables -w -t nat -S"),
    }
}

fn traffic_v4(backend: &str) {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let out = outside();
        let pods = Pods::new(false, json!({ "backend": backend }));
        let pod = Netns::new();
        let mappings = json!([
            { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" },
            { "HostPort": 8080, "ContainerPort": 80, "Protocol": "UDP" },
        ]);
        let (prev, reply) = pods.add("pod-a", &pod, &mappings);
        assert_eq!(reply.ok(), prev, "portmap must return prevResult unchanged");
        serve(&pod, 80);
        // From outside: the pod sees the client's own address (no SNAT).
        assert_eq!(tcp_from(Some(&out), "192.0.2.1:8080"), "192.0.2.2");
        assert_eq!(udp_from(Some(&out), "192.0.2.1:8080"), "192.0.2.2");
        // From the host to its own address: the host's address reaches the pod as is.
        assert_eq!(tcp_from(None, "192.0.2.1:8080"), "192.0.2.1");
        assert_eq!(udp_from(None, "192.0.2.1:8080"), "192.0.2.1");
        // From localhost: masqueraded to the bridge's address (127/8 cannot leave the host).
        assert_eq!(tcp_from(None, "127.0.0.1:8080"), "10.9.0.1");
        assert_eq!(udp_from(None, "127.0.0.1:8080"), "10.9.0.1");
        // Hairpin: the pod reaches itself through the host port, masqueraded.
        assert_eq!(tcp_from(Some(&pod), "192.0.2.1:8080"), "10.9.0.1");
        assert_eq!(udp_from(Some(&pod), "192.0.2.1:8080"), "10.9.0.1");
        // Another pod of the same network through the host port: masqueraded too (the whole
        // pod subnet is, as the reference does), so replies come back through the host.
        let other = Netns::new();
        Call::new("ADD", "pod-b", pods.bridge_conf.to_string())
            .netns(&other.path_str())
            .run(&our_plugin("bridge"))
            .ok();
        assert_eq!(tcp_from(Some(&other), "192.0.2.1:8080"), "10.9.0.1");
        if backend == "nftables" {
            // Counters show the hits.
            let rules = our_ruleset();
            assert!(rules.contains("dnat ip to 10.9.0.2:80"), "{rules}");
            assert!(!rules.contains("counter packets 0 bytes 0 dnat"), "{rules}");
        }
        pods.portmap("CHECK", "pod-a", &pod, &mappings, Some(&prev))
            .ok();

        pods.portmap("DEL", "pod-a", &pod, &mappings, None).ok();
        let state = backend_state(backend);
        for gone in ["pm-", "dnat", "CNI-DN-", "--to-destination"] {
            assert!(!state.contains(gone), "DEL left {gone} behind: {state}");
        }
        pods.portmap("DEL", "pod-a", &pod, &mappings, None).ok();
    });
}

/// Without `backend`, the reference's rule: iptables where iptables is usable, our nftables
/// table where only nftables is (no `iptables` on PATH). DEL removes either.
#[test]
fn default_backend_is_iptables_unless_only_nftables_is_usable() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let pods = Pods::new(false, json!({}));
        let (a, b) = (Netns::new(), Netns::new());
        let m = json!([{ "hostPort": 8080, "containerPort": 80 }]);
        pods.add("pod-ipt", &a, &m).1.ok();
        assert!(
            sh("iptables -w -t nat -S").contains("CNI-DN-"),
            "iptables by default"
        );
        assert!(!our_ruleset().contains("dport"), "{}", our_ruleset());
        pods.portmap("DEL", "pod-ipt", &a, &m, None).ok();
        assert!(!sh("iptables -w -t nat -S").contains("-N CNI-DN-"));

        let prev = Call::new("ADD", "pod-nft", pods.bridge_conf.to_string())
            .netns(&b.path_str())
            .run(&our_plugin("bridge"))
            .ok();
        let call = Call::new("ADD", "pod-nft", pods.conf(&m, Some(&prev))).netns(&b.path_str());
        let child = call
            .command(&our_plugin("portmap"))
            .env("PATH", "/nonexistent")
            .spawn()
            .expect("spawning portmap");
        call.finish(child).ok();
        assert!(our_ruleset().contains("pm-"), "nftables: {}", our_ruleset());
        assert!(!sh("iptables -w -t nat -S").contains("-N CNI-DN-"));
        pods.portmap("DEL", "pod-nft", &b, &m, None).ok();
        assert!(!our_ruleset().contains("pm-"), "{}", our_ruleset());
    });
}

#[test]
fn del_without_any_state_succeeds() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let pods = Pods::new(false, json!({}));
        let pod = Netns::new();
        let m = json!([{ "hostPort": 8080, "containerPort": 80 }]);
        pods.portmap("DEL", "nobody", &pod, &m, None).ok();
    });
}

#[test]
fn second_pod_claiming_a_port_is_refused_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let pods = Pods::new(false, json!({ "backend": "nftables" }));
        let (a, b) = (Netns::new(), Netns::new());
        let m = json!([{ "hostPort": 8080, "containerPort": 80 }]);
        pods.add("pod-a", &a, &m).1.ok();
        let before = our_ruleset();
        let err = pods.add("pod-b", &b, &m).1.err(999);
        let msg = err["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("tcp/8080") && msg.contains("pod-a"), "{err}");
        assert_eq!(our_ruleset(), before, "a refused ADD must change nothing");
        // Another port is fine; after pod-a leaves, pod-b may take 8080.
        let other = json!([{ "hostPort": 8081, "containerPort": 80 }]);
        pods.portmap("ADD", "pod-b", &b, &other, Some(&pods.add_prev(&b)))
            .ok();
        pods.portmap("DEL", "pod-a", &a, &m, None).ok();
        let prev_b = pods.add_prev(&b);
        pods.portmap("ADD", "pod-b", &b, &m, Some(&prev_b)).ok();
        pods.portmap("CHECK", "pod-b", &b, &m, Some(&prev_b)).ok();
    });
}

impl Pods {
    /// A prevResult for a pod already on the bridge (bridge ADD is idempotent for it).
    fn add_prev(&self, ns: &Netns) -> Value {
        let addr = ns.sh("ip -j -4 addr show dev eth0");
        let v: Value = serde_json::from_str(&addr).expect("ip -j");
        let ip = v[0]["addr_info"][0]["local"].as_str().expect("pod address");
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                { "name": "br-pm" },
                { "name": "eth0", "sandbox": ns.path_str() },
            ],
            "ips": [{ "address": format!("{ip}/24"), "gateway": "10.9.0.1", "interface": 1 }],
        })
    }
}

#[test]
fn check_passes_then_names_drift() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let pods = Pods::new(false, json!({ "backend": "nftables" }));
        let pod = Netns::new();
        let m = json!([{ "hostPort": 9090, "containerPort": 90, "protocol": "udp" }]);
        let (prev, reply) = pods.add("pod-c", &pod, &m);
        reply.ok();
        pods.portmap("CHECK", "pod-c", &pod, &m, Some(&prev)).ok();
        sh("nft delete element inet cni_portmap_rs ports '{ udp . 9090 }'");
        let err = pods
            .portmap("CHECK", "pod-c", &pod, &m, Some(&prev))
            .err(999);
        assert!(
            err["msg"].as_str().unwrap_or_default().contains("udp/9090"),
            "{err}"
        );
        // ADD again repairs it.
        pods.portmap("ADD", "pod-c", &pod, &m, Some(&prev)).ok();
        pods.portmap("CHECK", "pod-c", &pod, &m, Some(&prev)).ok();
    });
}

#[test]
fn gc_removes_attachments_not_listed() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let pods = Pods::new(false, json!({ "backend": "nftables" }));
        let (a, b) = (Netns::new(), Netns::new());
        pods.add(
            "keep",
            &a,
            &json!([{ "hostPort": 7001, "containerPort": 80 }]),
        )
        .1
        .ok();
        pods.add(
            "drop",
            &b,
            &json!([{ "hostPort": 7002, "containerPort": 80 }]),
        )
        .1
        .ok();
        let mut conf = pods.portmap_conf.clone();
        conf["cniVersion"] = json!("1.1.0");
        conf["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
        Call::new("GC", "", conf.to_string())
            .unset("CNI_CONTAINERID")
            .unset("CNI_IFNAME")
            .unset("CNI_NETNS")
            .run(&our_plugin("portmap"))
            .ok();
        let rules = our_ruleset();
        assert!(rules.contains("7001"), "{rules}");
        assert!(!rules.contains("7002"), "{rules}");
    });
}

/// Waits until no IPv6 address of the host or the pod is still tentative (duplicate address
/// detection), so the first packets are not dropped; a safety bound, not a timing assertion.
fn settle_v6(pod: &Netns) {
    for _ in 0..200 {
        let host = sh("ip -6 addr show tentative");
        let inside = pod.sh("ip -6 addr show tentative");
        if host.trim().is_empty() && inside.trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn v6_mapping_reaches_the_pod_from_outside_and_from_the_host() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        sh("sysctl -qw net.ipv6.conf.all.forwarding=1");
        let out = outside();
        let pods = Pods::new(true, json!({ "backend": "nftables" }));
        let pod = Netns::new();
        let m = json!([
            { "hostPort": 8080, "containerPort": 80 },
            { "hostPort": 8080, "containerPort": 80, "protocol": "udp" },
        ]);
        pods.add("pod-6", &pod, &m).1.ok();
        out.sh("ip -6 route add default via 2001:db8:9::1");
        settle_v6(&pod);
        serve(&pod, 80);
        assert_eq!(
            tcp_from(Some(&out), "[2001:db8:9::1]:8080"),
            "2001:db8:9::2"
        );
        assert_eq!(
            udp_from(Some(&out), "[2001:db8:9::1]:8080"),
            "2001:db8:9::2"
        );
        // From the sandbox host itself, to its own IPv6 address (output chain).
        let from_host = tcp_from(None, "[2001:db8:9::1]:8080");
        assert_eq!(from_host, "2001:db8:9::1", "tcp from the host");
        assert_eq!(
            udp_from(None, "[2001:db8:9::1]:8080"),
            from_host,
            "udp from the host"
        );
        // v4 still works for the same pod.
        assert_eq!(tcp_from(Some(&out), "192.0.2.1:8080"), "192.0.2.2");
        let rules = our_ruleset();
        assert!(rules.contains("dnat ip6 to [fd00:9::2]:80"), "{rules}");
        // IPv6 localhost is left alone, as by the reference: nothing listens there.
        let refused =
            std::net::TcpStream::connect_timeout(&"[::1]:8080".parse().expect("addr"), IO_TIMEOUT);
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused),
            "[::1]:8080 must not be mapped"
        );
    });
}

/// The reference's nftables backend (not in the installed reference version) keeps rules
/// commented with the container ID in `ip`/`ip6` tables `cni_hostport`; our DEL removes exactly
/// that container's.
#[test]
fn del_removes_the_reference_nftables_rules_of_the_container() {
    if !privileged() {
        return;
    }
    in_sandbox(|| {
        let ruleset = r#"
table ip cni_hostport {
    chain hostports { tcp dport 8080 dnat to 10.7.0.2:80 comment "abc"; tcp dport 9090 dnat to 10.7.0.3:80 comment "other"; }
    chain hostip_hostports { ip daddr 192.0.2.1 tcp dport 8081 dnat to 10.7.0.2:80 comment "abc"; }
    chain prerouting { type nat hook prerouting priority dstnat; jump hostip_hostports; jump hostports; }
    chain masquerading { type nat hook postrouting priority srcnat; ip saddr 10.7.0.2 ip daddr 10.7.0.2 masquerade comment "abc"; }
}
table ip6 cni_hostport {
    chain hostports { tcp dport 8080 dnat to [fd00:7::2]:80 comment "abc"; }
    chain prerouting { type nat hook prerouting priority dstnat; jump hostports; }
}
"#;
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(file.path(), ruleset).expect("write ruleset");
        sh(&format!("nft -f {}", file.path().display()));
        let pods = Pods::new(false, json!({}));
        let pod = Netns::new();
        let m = json!([{ "hostPort": 8080, "containerPort": 80 }]);
        pods.portmap("DEL", "abc", &pod, &m, None).ok();
        let after = sh("nft list table ip cni_hostport") + &sh("nft list table ip6 cni_hostport");
        assert!(!after.contains("\"abc\""), "{after}");
        assert!(after.contains("\"other\""), "{after}");
        pods.portmap("DEL", "abc", &pod, &m, None).ok();
    });
}

/// A UDP server in the pod answering every datagram on `port` with `tag`.
fn serve_udp_tag(pod: &Netns, port: u16, tag: &'static str) {
    let udp = in_ns(&pod.path, || {
        UdpSocket::bind(("::", port)).expect("bind udp")
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(tag.as_bytes(), peer);
        }
    });
}

/// Sends a datagram on `client` and returns the answer; UDP may drop one on a loaded machine,
/// so it is sent again (same source port) up to 5 times.
fn ask(client: &UdpSocket) -> String {
    let mut buf = [0u8; 64];
    let mut last = None;
    for _ in 0..5 {
        client.send(b"hi").expect("send");
        match client.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => last = Some(e),
        }
    }
    panic!("no udp reply: {last:?}");
}

/// The sandbox host's conntrack entries whose original tuple is UDP to `port`, as /proc shows
/// them: read independently of the plugin's netlink code.
fn udp_conntrack_to(port: u16) -> Vec<String> {
    let table =
        std::fs::read_to_string("/proc/thread-self/net/nf_conntrack").expect("nf_conntrack");
    let dport = format!("dport={port}");
    table
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            // The first dport= belongs to the original tuple.
            words.clone().any(|w| w == "udp")
                && words.find(|w| w.starts_with("dport=")) == Some(dport.as_str())
        })
        .map(|l| {
            // /proc spells IPv6 addresses out in full; write them the usual way.
            let words = l.split_whitespace().map(|w| match w.split_once('=') {
                Some((k @ ("src" | "dst"), v)) => match v.parse::<std::net::IpAddr>() {
                    Ok(ip) => format!("{k}={ip}"),
                    Err(_) => w.to_string(),
                },
                _ => w.to_string(),
            });
            words.collect::<Vec<_>>().join(" ") + " "
        })
        .collect()
}

/// Issue 9 (6a): a UDP client that keeps its source port reaches the container that took the
/// host port over, not the deleted one its conntrack entry was NATed to; other UDP entries stay.
/// `portmap` is ours or the reference's; `v6` runs the clients over IPv6 (dual-stack pods).
fn udp_client_follows_the_port_to_the_new_pod(portmap: &Path, backend: &str, v6: bool) {
    in_sandbox(|| {
        let out = outside();
        let pods = Pods::new(v6, json!({ "backend": backend }));
        if v6 {
            sh("sysctl -qw net.ipv6.conf.all.forwarding=1");
            out.sh("ip -6 route add default via 2001:db8:9::1");
        }
        let (client_ip, host_ip) = if v6 {
            ("[2001:db8:9::2]", "[2001:db8:9::1]")
        } else {
            ("192.0.2.2", "192.0.2.1")
        };
        let m = json!([{ "hostPort": 9053, "containerPort": 53, "protocol": "udp" }]);
        let bridge = our_plugin("bridge");
        // Bridge + portmap ADD; returns the pod's address of the clients' family.
        let attach = |id: &str, ns: &Netns| {
            let prev = Call::new("ADD", id, pods.bridge_conf.to_string())
                .netns(&ns.path_str())
                .run(&bridge)
                .ok();
            let added = Call::new("ADD", id, pods.conf(&m, Some(&prev)))
                .netns(&ns.path_str())
                .run(portmap);
            added.ok();
            // The flush's failures are only logged: none may be.
            assert!(!added.stderr.contains("conntrack"), "{added:?}");
            if v6 {
                settle_v6(ns);
            }
            let ips = prev["ips"].as_array().cloned().unwrap_or_default();
            ips.iter()
                .filter_map(|ip| ip["address"].as_str()?.split('/').next())
                .find(|a| a.contains(':') == v6)
                .expect("pod address of the clients' family")
                .to_string()
        };
        let client = |port: u16, to: u16| {
            in_ns(&out.path, || {
                let s = UdpSocket::bind(format!("{client_ip}:{port}")).expect("bind client");
                s.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                s.connect(format!("{host_ip}:{to}")).expect("connect");
                s
            })
        };
        let mapped = client(40053, 9053);

        let mut pod1 = Netns::new();
        let ip1 = attach("pod-1", &pod1);
        serve_udp_tag(&pod1, 53, "pod-1");
        assert_eq!(ask(&mapped), "pod-1");
        // An entry to a port nobody maps (answered by an ICMP error): the flush must keep it.
        // Unanswered, it lives 30 s by default, less than the next steps take in the
        // kernel-matrix VM (software emulation): keep it long enough to be checked.
        sh("sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600");
        client(40054, 9054).send(b"hi").expect("send");

        Call::new("DEL", "pod-1", pods.conf(&m, None))
            .netns(&pod1.path_str())
            .run(portmap)
            .ok();
        Call::new("DEL", "pod-1", pods.bridge_conf.to_string())
            .netns(&pod1.path_str())
            .run(&bridge)
            .ok();
        pod1.delete();
        // Control: the client's entry outlives the DEL, still NATed to the dead pod; without a
        // flush the next datagram follows it there and gets no answer (checked by disabling the
        // flush: `ask` then times out).
        let dead = format!("src={ip1} ");
        let stale = udp_conntrack_to(9053);
        assert!(stale.iter().any(|l| l.contains(&dead)), "{stale:?}");
        assert_eq!(udp_conntrack_to(9054).len(), 1);

        let pod2 = Netns::new();
        let ip2 = attach("pod-2", &pod2);
        assert_ne!(
            ip1, ip2,
            "the new pod must get another address for the test to mean anything"
        );
        let left = udp_conntrack_to(9053);
        assert!(
            !left.iter().any(|l| l.contains(&dead)),
            "stale entry kept: {left:?}"
        );
        assert_eq!(
            udp_conntrack_to(9054).len(),
            1,
            "an unmapped port's entry was deleted"
        );
        serve_udp_tag(&pod2, 53, "pod-2");
        assert_eq!(ask(&mapped), "pod-2");
    });
}

#[test]
fn udp_client_keeping_its_source_port_reaches_the_replacement_pod() {
    if !privileged() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        for v6 in [false, true] {
            udp_client_follows_the_port_to_the_new_pod(&our_plugin("portmap"), backend, v6);
        }
    }
}

/// The same scenario with the reference portmap (v1.1.1 has the flush; iptables only).
#[test]
fn reference_udp_client_reaches_the_replacement_pod_too() {
    if !privileged() {
        return;
    }
    let Some(reference) = cni_suite_tests::reference_plugin("portmap") else {
        return;
    };
    for v6 in [false, true] {
        udp_client_follows_the_port_to_the_new_pod(&reference, "iptables", v6);
    }
}
