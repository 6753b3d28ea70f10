//! Kernel and firewall failures as CNI errors. They carry the failed operation and object in
//! their text (netops and masquerade add that context); the code is the spec's catch-all 999,
//! as for the reference, since no spec code describes a kernel refusal.

use cni_protocol::CniError;

pub fn kernel(e: netops::Error) -> CniError {
    CniError::internal(e.to_string())
}

pub fn from_firewall(e: firewall::Error) -> CniError {
    CniError::internal(e.to_string())
}
