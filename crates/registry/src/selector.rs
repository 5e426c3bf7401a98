//! Selectors name the version a consumer wants: `latest-approved`, `@alias` or a number.

use std::fmt;
use std::str::FromStr;

/// Which version of a group to use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The highest-numbered `Approved` version.
    LatestApproved,
    /// The version an alias points at.
    Alias(String),
    /// A pinned version number.
    Version(i64),
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "latest-approved" {
            return Ok(Selector::LatestApproved);
        }
        if let Some(alias) = s.strip_prefix('@') {
            nimbus_core::names::alias(alias).map_err(|e| e.to_string())?;
            return Ok(Selector::Alias(alias.to_string()));
        }
        match s.parse::<i64>() {
            Ok(v) if v >= 1 => Ok(Selector::Version(v)),
            _ => Err(format!(
                "invalid selector {s:?}: use 'latest-approved', '@ALIAS' (e.g. '@production') or a version number from 1"
            )),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::LatestApproved => f.write_str("latest-approved"),
            Selector::Alias(a) => write!(f, "@{a}"),
            Selector::Version(v) => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_selectors() {
        for (text, want) in [
            ("latest-approved", Selector::LatestApproved),
            ("@production", Selector::Alias("production".into())),
            ("3", Selector::Version(3)),
        ] {
            let got: Selector = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), text);
        }
        for bad in ["0", "-1", "@Prod", "latest", "x"] {
            assert!(bad.parse::<Selector>().is_err(), "{bad}");
        }
    }
}
