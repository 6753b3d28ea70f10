//! The bridge verbs. ADD reads as the sequence of steps it takes; every step that creates
//! something registers how to undo it, so a failed ADD leaves nothing behind.

use crate::config::{format_mac, BridgeConf};
use crate::errors::kernel;
use crate::naming::host_veth_name;
use crate::plan::{plan, AddressPlan};
use crate::{check, container, host, macspoof, masq};
use cni_protocol::result::Interface;
use cni_protocol::{crash, delegate};
use cni_protocol::{CniError, CniResult, Command, ErrorCode, Plugin, Request};
use netops::{AddrGenMode, Link, MacAddr, Netns, RouteSocket, VethEnd};
use std::path::Path;

pub struct Bridge;

/// What a failed ADD must take back, in reverse order of creation.
enum Undo {
    HostVeth(String),
    IpamLease(String),
    Masquerade,
    MacSpoofCheck,
}

struct Rollback<'a> {
    req: &'a Request,
    steps: Vec<Undo>,
}

impl Rollback<'_> {
    fn run(self, host: &mut RouteSocket) {
        let attachment = attachment(self.req);
        for step in self.steps.into_iter().rev() {
            let outcome = match &step {
                Undo::HostVeth(name) => host.delete_link_by_name(name).map(|_| ()).map_err(kernel),
                Undo::IpamLease(plugin) => {
                    delegate::delegate(plugin, Command::Del, &self.req.invocation, &self.req.stdin)
                }
                Undo::Masquerade => masq::del(&attachment),
                Undo::MacSpoofCheck => macspoof::del(
                    &self.req.invocation.container_id,
                    &self.req.invocation.ifname,
                ),
            };
            if let Err(e) = outcome {
                cni_protocol::cni_log!("rolling back a failed ADD: {}", e.msg);
            }
        }
    }
}

fn attachment(req: &Request) -> firewall::Attachment<'_> {
    firewall::Attachment {
        network: &req.config.name,
        container_id: &req.invocation.container_id,
        ifname: &req.invocation.ifname,
    }
}

fn load(req: &Request) -> Result<BridgeConf, CniError> {
    BridgeConf::load(&req.raw, &req.config, &req.invocation.args)
}

/// CNI_NETNS, which ADD and CHECK need.
pub(crate) fn netns_path(req: &Request) -> Result<&Path, CniError> {
    req.invocation.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "required env variables [CNI_NETNS] missing",
        )
    })
}

/// Opens CNI_NETNS; a path that is missing or not a network namespace is the runtime's error.
pub(crate) fn open_netns(path: &Path) -> Result<Netns, CniError> {
    Netns::open(path).map_err(|e| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("failed to open netns {:?}: {e}", path.display()),
        )
    })
}

fn mac_text(mac: Option<MacAddr>) -> Option<String> {
    mac.map(|m| format_mac(&m.octets()))
}

fn interface(link: &Link, sandbox: Option<&str>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: mac_text(link.mac),
        sandbox: sandbox.map(str::to_string),
        ..Interface::default()
    }
}

/// The veth pair: host end on the bridge at birth without IPv6 link-local (DESIGN.md §8),
/// container end born in the netns under CNI_IFNAME.
fn create_veth(
    host: &mut RouteSocket,
    netns: &Netns,
    conf: &BridgeConf,
    bridge: &Link,
    host_name: &str,
    ifname: &str,
) -> Result<Link, CniError> {
    let mut host_end = VethEnd::new(host_name);
    host_end.mtu = conf.mtu;
    host_end.master = Some(bridge.index);
    host_end.up = true;
    host_end.addr_gen_mode = Some(AddrGenMode::None);
    let mut peer = VethEnd::new(ifname);
    peer.mtu = conf.mtu;
    peer.mac = conf.mac.map(MacAddr);
    match host.create_veth(&host_end, &peer, Some(netns)) {
        Ok(link) => return Ok(link),
        Err(e) if !e.is_exists() => {
            return Err(CniError::internal(format!("failed to make veth pair: {e}")))
        }
        Err(_) => {}
    }
    // Our host-side name is derived from this attachment, so a veth of that name can only be
    // the remains of an earlier ADD of the same attachment that was killed halfway: replace it.
    if host.delete_link_by_name(host_name).map_err(kernel)? {
        cni_protocol::cni_log!("replaced {host_name}, left over from an interrupted ADD");
        if let Ok(link) = host.create_veth(&host_end, &peer, Some(netns)) {
            return Ok(link);
        }
    }
    Err(CniError::internal(format!(
        "container veth name ({ifname:?}) peer provided ({host_name:?}) already exists"
    )))
}

/// Link-layer state ADD builds while the IPAM plugin runs.
struct Wiring {
    netns: Netns,
    container: RouteSocket,
    bridge: Link,
    host_veth: Link,
    container_link: Link,
}

fn wire(
    req: &Request,
    conf: &BridgeConf,
    host: &mut RouteSocket,
    (netns, bridge): (Netns, Link),
    undo: &mut Vec<Undo>,
) -> Result<Wiring, CniError> {
    let inv = &req.invocation;
    let mut container = RouteSocket::open_in(&netns).map_err(kernel)?;
    let host_name = host_veth_name(&inv.container_id, &inv.ifname);
    // Registered first: deleting by our derived name is harmless if creation failed.
    undo.push(Undo::HostVeth(host_name.clone()));
    let host_veth = create_veth(host, &netns, conf, &bridge, &host_name, &inv.ifname)?;
    crash::point("veth-created");
    let _ = netops::set_accept_ra(&host_name, 0);
    host::configure_port(host, conf, host_veth.index)?;
    let container_link = container
        .link_by_name(&inv.ifname)
        .map_err(kernel)?
        .ok_or_else(|| CniError::internal(format!("{:?} vanished from its netns", inv.ifname)))?;
    Ok(Wiring {
        netns,
        container,
        bridge,
        host_veth,
        container_link,
    })
}

impl Bridge {
    fn add_steps(
        &self,
        req: &Request,
        conf: &BridgeConf,
        host: &mut RouteSocket,
        undo: &mut Vec<Undo>,
    ) -> Result<CniResult, CniError> {
        let inv = &req.invocation;
        // A missing IPAM plugin fails the ADD before anything is created.
        if let Some(plugin) = &conf.ipam {
            delegate::find_plugin(plugin, &inv.path)?;
        }
        // Refusals that cost no more than a lookup come before IPAM, so a bad netns or a
        // bridge name taken by another device leaves no trace in its state.
        let netns = open_netns(netns_path(req)?)?;
        if conf.ipam.is_none() {
            // An L2-only result has no address, which 0.1.0/0.2.0 cannot print: fail with the
            // reference's conversion error before making anything (the reference makes the
            // attachment, fails to print it and leaves it behind).
            CniResult::default().render(&req.version_text, req.version)?;
        }
        let bridge = host::ensure_bridge(host, conf)?;
        // IPAM runs in its own process: start it first and wire the link meanwhile.
        let (wiring, ipam) = std::thread::scope(|scope| {
            let ipam = conf.ipam.as_deref().map(|plugin| {
                scope.spawn(move || {
                    let leased = delegate::delegate_add(plugin, inv, &req.stdin, req.version);
                    if leased.is_ok() {
                        crash::point("ipam-returned");
                    }
                    leased
                })
            });
            let wiring = wire(req, conf, host, (netns, bridge), undo);
            let ipam = ipam.map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(delegate::Failure {
                        error: CniError::internal("IPAM delegation panicked"),
                        state_unknown: true,
                    })
                })
            });
            (wiring, ipam)
        });
        // Undo the delegate's ADD if it succeeded, or died without answering (it may have
        // written a lease first); not if it refused, which may concern another ADD's lease.
        let ipam_holds_state = match &ipam {
            Some(Ok(_)) => true,
            Some(Err(failure)) => failure.state_unknown,
            None => false,
        };
        if let (true, Some(plugin)) = (ipam_holds_state, &conf.ipam) {
            undo.push(Undo::IpamLease(plugin.clone()));
        }
        let ipam = ipam.map(|r| r.map_err(|failure| failure.error));
        let Wiring {
            netns,
            mut container,
            bridge,
            host_veth,
            container_link,
        } = wiring?;
        let ipam = ipam.transpose()?;

        let mut result = CniResult::default();
        let mut vlan_gateway = None;
        if let Some(ipam) = ipam {
            let plan: AddressPlan = plan(conf, &ipam)?;
            let has_ipv6 = plan.ips.iter().any(|i| i.address.is_ipv6());
            container::write_sysctls(&netns, conf, &inv.ifname, has_ipv6)?;
            container::configure_interface(&mut container, conf, &container_link, &plan)?;
            if conf.is_gateway {
                // A `vlan` network's gateway lives on `<bridge>.<vid>`, listed in the result
                // after the container's interface, as the reference does.
                let target = if conf.vlan != 0 && !plan.bridge_addresses.is_empty() {
                    let gateway = host::ensure_vlan_gateway(host, conf, &bridge)?;
                    vlan_gateway = Some(interface(&gateway, None));
                    gateway
                } else {
                    bridge.clone()
                };
                host::ensure_gateway_addresses(host, conf, &target, &plan.bridge_addresses)?;
                host::enable_forwarding(plan.has_ipv4_gateway(), plan.has_ipv6_gateway())?;
                crash::point("gateway-set");
            }
            if conf.ip_masq {
                let addresses: Vec<_> = plan.ips.iter().map(|i| i.address).collect();
                undo.push(Undo::Masquerade);
                masq::add(conf, &attachment(req), &addresses)?;
                crash::point("masquerade-set");
            }
            result.ips = plan.ips;
            result.routes = plan.routes;
            result.dns = ipam.dns;
        } else {
            // No sysctls here: the reference sets accept_dad/arp_notify only on an L3 interface.
            if !conf.disable_container_interface {
                container.set_link_up(container_link.index).map_err(|e| {
                    CniError::internal(format!("failed to set {:?} up: {e}", inv.ifname))
                })?;
            }
        }
        if conf.mac_spoof_check {
            let mac = container_link.mac.ok_or_else(|| {
                CniError::internal(format!("{:?} has no MAC address", inv.ifname))
            })?;
            undo.push(Undo::MacSpoofCheck);
            macspoof::add(
                &inv.container_id,
                &inv.ifname,
                &host_veth.name,
                mac.octets(),
            )?;
            crash::point("macspoof-set");
        }

        // The bridge's MAC follows its ports until pinned: report what it is now, as the
        // reference does (it re-reads the bridge at the end of ADD).
        let bridge_now = host
            .link_by_index(bridge.index)
            .map_err(kernel)?
            .unwrap_or(bridge);
        result.interfaces = vec![
            interface(&bridge_now, None),
            interface(&host_veth, None),
            interface(
                &container_link,
                inv.netns.as_deref().map(|p| p.to_string_lossy()).as_deref(),
            ),
        ];
        result.interfaces.extend(vlan_gateway);
        if !conf.dns.is_empty() {
            result.dns = conf.dns.clone();
        }
        Ok(result)
    }

    /// Deletes the attachment's veth pair, through the container side when the netns is there
    /// (a pair the reference made has a random host-side name), else by our derived name.
    fn delete_veth(&self, req: &Request, host: &mut RouteSocket) -> Result<(), CniError> {
        let inv = &req.invocation;
        if let Some(path) = &inv.netns {
            match Netns::open(path) {
                Ok(netns) => {
                    let deleted = RouteSocket::open_in(&netns)
                        .and_then(|mut c| c.delete_link_by_name(&inv.ifname))
                        .map_err(kernel)?;
                    if deleted {
                        return Ok(());
                    }
                }
                // Gone (the usual second DEL): nothing to do on the container side.
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                // Not a netns (e.g. a leftover file): still release everything else.
                Err(e) => cni_protocol::cni_log!("DEL: ignoring CNI_NETNS {}: {e}", path.display()),
            }
        }
        // No container side to delete through (netns gone or unusable): our host end has a
        // derived name, so remove it directly in case the netns outlived its path.
        host.delete_link_by_name(&host_veth_name(&inv.container_id, &inv.ifname))
            .map_err(kernel)?;
        Ok(())
    }
}

impl Plugin for Bridge {
    fn schema(&self) -> &'static cni_protocol::gojson::Node {
        &crate::config::SCHEMA
    }

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = load(req)?;
        let mut host = RouteSocket::open().map_err(kernel)?;
        let mut undo = Vec::new();
        let outcome = self.add_steps(req, &conf, &mut host, &mut undo);
        if outcome.is_err() {
            Rollback { req, steps: undo }.run(&mut host);
        }
        outcome
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = load(req)?;
        let mut host = RouteSocket::open().map_err(kernel)?;
        // Everything is attempted even when a step fails; the first failure is reported.
        let mut failures: Vec<CniError> = Vec::new();
        // Masquerade first, its backend kept open until the end (see masq::del_keep_open):
        // the kernel's deferred free of the removed rules then overlaps the veth deletion.
        let mut masq_backend = None;
        if conf.ip_masq {
            let (result, backend) = masq::del_keep_open(&attachment(req));
            masq_backend = backend;
            if let Err(e) = result {
                failures.push(e);
            }
            crash::point("masquerade-removed");
        }
        if let Err(e) = self.delete_veth(req, &mut host) {
            failures.push(e);
        }
        crash::point("veth-deleted");
        if let Some(plugin) = &conf.ipam {
            if let Err(e) = delegate::delegate(plugin, Command::Del, &req.invocation, &req.stdin) {
                failures.push(e);
            }
            crash::point("ipam-released");
        }
        drop(masq_backend);
        if conf.mac_spoof_check {
            let inv = &req.invocation;
            if let Err(e) = macspoof::del(&inv.container_id, &inv.ifname) {
                failures.push(e);
            }
            crash::point("macspoof-removed");
        }
        match failures.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(first),
        }
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = load(req)?;
        check::check(req, &conf)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let conf = load(req)?;
        let mut failures = Vec::new();
        if let Some(plugin) = &conf.ipam {
            if let Err(e) = delegate::delegate(plugin, Command::Gc, &req.invocation, &req.stdin) {
                failures.push(e);
            }
        }
        match req.config.gc_valid_attachments() {
            None => cni_protocol::cni_log!("GC without cni.dev/valid-attachments: nothing removed"),
            Some(valid) => {
                let keep: Vec<firewall::Attachment> = valid
                    .iter()
                    .map(|v| firewall::Attachment {
                        network: &req.config.name,
                        container_id: &v.container_id,
                        ifname: &v.ifname,
                    })
                    .collect();
                if let Err(e) = masq::gc(&req.config.name, &keep) {
                    failures.push(e);
                }
                // Checked whatever the config says now: it may have had macspoofchk before.
                let spoof_keep: Vec<(&str, &str)> = valid
                    .iter()
                    .map(|v| (v.container_id.as_str(), v.ifname.as_str()))
                    .collect();
                let spoof = RouteSocket::open()
                    .map_err(kernel)
                    .and_then(|mut host| macspoof::gc(&mut host, &conf.bridge, &spoof_keep));
                match spoof {
                    Err(e) if conf.mac_spoof_check => failures.push(e),
                    Err(e) => cni_protocol::cni_log!("GC of macspoofchk state: {}", e.msg),
                    Ok(()) => {}
                }
            }
        }
        match failures.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(first),
        }
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = load(req)?;
        match &conf.ipam {
            Some(plugin) => {
                delegate::delegate(plugin, Command::Status, &req.invocation, &req.stdin)
            }
            None => Ok(()),
        }
    }
}
