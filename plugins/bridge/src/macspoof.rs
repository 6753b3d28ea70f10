//! `macspoofchk`: frames from the pod's port must carry the pod's MAC.

use crate::errors::firewall;
use cni_protocol::CniError;

pub fn add(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: [u8; 6],
) -> Result<(), CniError> {
    firewall::macspoof::add(container_id, ifname, host_veth, mac).map_err(firewall)
}

pub fn del(container_id: &str, ifname: &str) -> Result<(), CniError> {
    firewall::macspoof::del(container_id, ifname).map_err(firewall)
}

pub fn check(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: [u8; 6],
) -> Result<(), CniError> {
    firewall::macspoof::check(container_id, ifname, host_veth, mac).map_err(firewall)
}
