//! The spec's error object (`{"cniVersion","code","msg","details"}`) and its codes.

use std::fmt;

/// Error codes from the CNI spec (0-99 reserved) plus the Go reference's 999 for uncoded
/// internal failures, which callers already know how to surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decode,
    InvalidConfig,
    /// 8: libcni's `ErrInvalidNetNS` (not in the spec's table): CNI_NETNS is the plugin's own
    /// network namespace.
    InvalidNetns,
    TryAgainLater,
    NotAvailable,
    NotAvailableDegraded,
    Internal,
    /// A code passed through from a delegated plugin.
    Other(u32),
}

impl ErrorCode {
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::InvalidNetns => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::NotAvailableDegraded => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(n) => n,
        }
    }

    pub fn from_number(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidConfig,
            8 => ErrorCode::InvalidNetns,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::NotAvailableDegraded,
            999 => ErrorCode::Internal,
            n => ErrorCode::Other(n),
        }
    }
}

/// A failure reported to the runtime as the spec's error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidConfig, msg)
    }

    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, msg)
    }

    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Internal, msg)
    }

    pub fn io(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Io, msg)
    }

    /// Prefixes the message with what was being attempted.
    pub fn context(mut self, what: impl fmt::Display) -> CniError {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The error object as the spec (and libcni) expect it on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), cni_version.into());
        obj.insert("code".into(), self.code.number().into());
        obj.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            obj.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(obj)
    }

    /// Parses an error object printed by a delegated plugin (keys as Go's decoder reads them).
    pub fn from_json(bytes: &[u8]) -> Option<CniError> {
        let v = crate::gojson::parse(bytes, &crate::gojson::ERROR).ok()?;
        let code = v.get("code")?.as_u64()?;
        let msg = v.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
        let details = v
            .get("details")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        Some(CniError {
            code: ErrorCode::from_number(u32::try_from(code).unwrap_or(999)),
            msg: msg.to_string(),
            details: details.to_string(),
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_json_omits_empty_details_and_round_trips() {
        let e = CniError::new(ErrorCode::InvalidConfig, "bad");
        let j = e.to_json("1.0.0");
        assert_eq!(
            j.to_string(),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad"}"#
        );
        let back = CniError::from_json(j.to_string().as_bytes()).unwrap();
        assert_eq!(back, e);
        let d = CniError::new(ErrorCode::Other(123), "x").with_details("y");
        assert_eq!(
            CniError::from_json(d.to_json("1.1.0").to_string().as_bytes()).unwrap(),
            d
        );
        // A delegate written in Go may be read with any key case.
        assert_eq!(
            CniError::from_json(br#"{"Code":123,"Msg":"x","DETAILS":"y"}"#).unwrap(),
            d
        );
    }
}
