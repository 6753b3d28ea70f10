//! Spec versions: parsing, the supported list, and which result shape each version uses.

use crate::error::{CniError, ErrorCode};
use std::fmt;

/// Every spec version these plugins speak, oldest first (what VERSION reports).
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The version reported as our own in the VERSION reply.
pub const CURRENT_VERSION: &str = "1.1.0";

/// The version a config without `cniVersion` is read as (the reference's rule).
pub const IMPLICIT_VERSION: &str = "0.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The three result layouts the spec has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultShape {
    /// 0.1.0 / 0.2.0: `ip4` / `ip6` objects, at most one address per family.
    Legacy,
    /// 0.3.x / 0.4.0: `interfaces`, `ips` with a `version` per entry.
    Versioned,
    /// 1.x: `ips` without `version`; 1.1 adds interface/route extras.
    Current,
}

impl Version {
    pub const V0_1_0: Version = Version::new(0, 1, 0);
    pub const V0_3_0: Version = Version::new(0, 3, 0);
    pub const V0_4_0: Version = Version::new(0, 4, 0);
    pub const V1_0_0: Version = Version::new(1, 0, 0);
    pub const V1_1_0: Version = Version::new(1, 1, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// `MAJOR[.MINOR[.PATCH]]` (empty means 0.1.0); anything else is a decode error (code 6)
    /// worded as the reference's Go parser words it.
    pub fn parse(text: &str) -> Result<Version, CniError> {
        if text.is_empty() {
            return Ok(Version::V0_1_0);
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() > 3 {
            return Err(CniError::new(
                ErrorCode::Decode,
                format!("invalid version {text:?}: too many parts"),
            ));
        }
        let mut nums = [0u32; 3];
        for (i, (part, name)) in parts.iter().zip(["major", "minor", "micro"]).enumerate() {
            nums[i] = part.parse().map_err(|_| {
                CniError::new(
                    ErrorCode::Decode,
                    format!(
                        "failed to convert {name} version part {part:?}: strconv.Atoi: parsing \
                         {part:?}: invalid syntax"
                    ),
                )
            })?;
        }
        Ok(Version::new(nums[0], nums[1], nums[2]))
    }

    pub fn shape(self) -> ResultShape {
        if self < Version::V0_3_0 {
            ResultShape::Legacy
        } else if self < Version::V1_0_0 {
            ResultShape::Versioned
        } else {
            ResultShape::Current
        }
    }

    pub fn is_supported(text: &str) -> bool {
        SUPPORTED_VERSIONS.contains(&text)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Picks the version to answer in: the highest supported of `cniVersion` and `cniVersions`
/// (spec 1.1), or an incompatibility error naming what we support.
pub fn negotiate(
    cni_version: Option<&str>,
    cni_versions: &[String],
) -> Result<(String, Version), CniError> {
    let declared = cni_version.unwrap_or(IMPLICIT_VERSION);
    let mut best: Option<(String, Version)> = None;
    for candidate in std::iter::once(declared).chain(cni_versions.iter().map(String::as_str)) {
        if !Version::is_supported(candidate) {
            continue;
        }
        let parsed = Version::parse(candidate)?;
        if best.as_ref().is_none_or(|(_, b)| parsed > *b) {
            best = Some((candidate.to_string(), parsed));
        }
    }
    if let Some(found) = best {
        return Ok(found);
    }
    // Malformed text is an incompatibility too, as in the reference; the details are Go's
    // `%q` of the string and of the list.
    let supported: Vec<String> = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{v:?}"))
        .collect();
    Err(
        CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions").with_details(
            format!(
                "config is {declared:?}, plugin supports [{}]",
                supported.join(" ")
            ),
        ),
    )
}

/// The newest version we speak.
pub fn newest_supported() -> Version {
    SUPPORTED_VERSIONS
        .iter()
        .filter_map(|v| Version::parse(v).ok())
        .max()
        .unwrap_or(Version::V1_1_0)
}

/// The VERSION reply (`{"cniVersion","supportedVersions"}`).
pub fn version_reply() -> serde_json::Value {
    serde_json::json!({
        "cniVersion": CURRENT_VERSION,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_and_rejects_malformed_versions() {
        assert_eq!(Version::parse("1").unwrap(), Version::new(1, 0, 0));
        assert_eq!(Version::parse("0.3").unwrap(), Version::new(0, 3, 0));
        assert_eq!(
            Version::parse("1.2.3.4").unwrap_err().code,
            ErrorCode::Decode
        );
        assert_eq!(Version::parse("x.1").unwrap_err().code, ErrorCode::Decode);
    }

    #[test]
    fn shapes_follow_spec_eras() {
        assert_eq!(
            Version::parse("0.2.0").unwrap().shape(),
            ResultShape::Legacy
        );
        assert_eq!(
            Version::parse("0.3.1").unwrap().shape(),
            ResultShape::Versioned
        );
        assert_eq!(
            Version::parse("0.4.0").unwrap().shape(),
            ResultShape::Versioned
        );
        assert_eq!(
            Version::parse("1.1.0").unwrap().shape(),
            ResultShape::Current
        );
    }

    #[test]
    fn negotiation_picks_highest_supported_and_names_failures() {
        assert_eq!(negotiate(None, &[]).unwrap().0, "0.1.0");
        assert_eq!(negotiate(Some("0.3.1"), &[]).unwrap().0, "0.3.1");
        let list = vec![
            "1.0.0".to_string(),
            "1.1.0".to_string(),
            "9.0.0".to_string(),
        ];
        assert_eq!(negotiate(Some("0.4.0"), &list).unwrap().0, "1.1.0");
        let err = negotiate(Some("9.9.9"), &[]).unwrap_err();
        assert_eq!(err.code, ErrorCode::IncompatibleVersion);
        assert!(err
            .details
            .starts_with(r#"config is "9.9.9", plugin supports ["0.1.0" "0.2.0""#));
        assert!(err.details.ends_with(r#" "1.1.0"]"#), "{}", err.details);
        // Malformed text: the reference answers an incompatibility, not a decode error.
        assert_eq!(
            negotiate(Some("garbage"), &[]).unwrap_err().code,
            ErrorCode::IncompatibleVersion
        );
    }
}
