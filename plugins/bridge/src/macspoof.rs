//! TEMPORARY stub until masquerade::macspoof lands.
use cni_protocol::CniError;
pub fn add(_: &str, _: &str, _: &str, _: [u8; 6]) -> Result<(), CniError> {
    Err(CniError::internal("macspoofchk not available"))
}
pub fn del(_: &str, _: &str) -> Result<(), CniError> {
    Ok(())
}
pub fn check(_: &str, _: &str, _: &str, _: [u8; 6]) -> Result<(), CniError> {
    Ok(())
}
