//! Names of the kernel objects an attachment owns, derived from the attachment itself so that
//! every verb (and a retried ADD after a crash) finds them again without stored state.

use sha2::{Digest, Sha256};

/// Host end of the pod's veth pair: `veth` + 11 hex digits of SHA-256(containerID, ifname).
///
/// 44 bits keep the chance of two pods on one node colliding below one in a billion at 1000
/// pods, and the name never collides with the reference's random `veth` + 8 hex names. Being
/// derived, a veth left by an ADD that was killed halfway is recognised and replaced.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(container_id.as_bytes());
    hasher.update([0]);
    hasher.update(ifname.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("veth{}", &hex[..11])
}

/// Bridge-side end of the VLAN gateway's veth pair (`<bridge>.<vid>` is the other end): the
/// same `veth` + 11 hex form, hashed from a text no attachment can produce (ifname is never
/// empty), so the port is found again without stored state.
pub fn vlan_gateway_port_name(bridge: &str, vid: u16) -> String {
    host_veth_name(&format!("vlan-gateway {bridge}.{vid}"), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_distinct_and_fit_ifnamsiz() {
        let a = host_veth_name("abc", "eth0");
        assert_eq!(a, host_veth_name("abc", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_ne!(a, host_veth_name("abc", "eth1"));
        // The separator keeps ("ab", "ceth0") and ("abc", "eth0") apart.
        assert_ne!(a, host_veth_name("ab", "ceth0"));
        let g = vlan_gateway_port_name("cni0", 100);
        assert_eq!((g.len(), g.starts_with("veth")), (15, true));
        assert_ne!(g, vlan_gateway_port_name("cni0", 101));
    }
}
