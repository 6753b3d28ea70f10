//! `macspoofchk`: frames from the pod's port must carry the pod's MAC.

use crate::errors::from_firewall;
use crate::errors::kernel;
use cni_protocol::CniError;
use netops::RouteSocket;

pub fn add(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: [u8; 6],
) -> Result<(), CniError> {
    firewall::macspoof::add(container_id, ifname, host_veth, mac).map_err(from_firewall)
}

pub fn del(container_id: &str, ifname: &str) -> Result<(), CniError> {
    firewall::macspoof::del(container_id, ifname).map_err(from_firewall)
}

pub fn check(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: [u8; 6],
) -> Result<(), CniError> {
    firewall::macspoof::check(container_id, ifname, host_veth, mac).map_err(from_firewall)
}

/// Removes the checks of attachments not in `keep` on ports of `bridge` or on ports that no
/// longer exist (stale whoever made them); other networks' checks stay.
pub fn gc(host: &mut RouteSocket, bridge: &str, keep: &[(&str, &str)]) -> Result<(), CniError> {
    let links = host.list_links().map_err(kernel)?;
    let bridge_index = links.iter().find(|l| l.name == bridge).map(|l| l.index);
    let owned = |port: &str| match links.iter().find(|l| l.name == port) {
        None => true,
        Some(link) => bridge_index.is_some() && link.master == bridge_index,
    };
    firewall::macspoof::gc(keep, &owned).map_err(from_firewall)
}
