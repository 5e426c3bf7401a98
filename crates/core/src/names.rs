//! Rules for the names users choose. Each check says which rule a bad name broke, so the
//! message can tell the user how to fix it.

/// A name that breaks the rules of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {value:?}: {rule}")]
pub struct InvalidName {
    /// What was being named ("bucket", "model group", "alias").
    pub kind: &'static str,
    /// The rejected value.
    pub value: String,
    /// The rule, phrased as what a valid name looks like.
    pub rule: &'static str,
}

fn check(kind: &'static str, value: &str, rule: &'static str, ok: bool) -> Result<(), InvalidName> {
    if ok { Ok(()) } else { Err(InvalidName { kind, value: value.to_string(), rule }) }
}

/// Bucket names follow S3: 3–63 characters of `a-z 0-9 . -`, starting and ending with a
/// letter or digit.
pub fn bucket(value: &str) -> Result<(), InvalidName> {
    let b = value.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    check(
        "bucket",
        value,
        "use 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit",
        ok,
    )
}

/// Object keys: 1–1024 bytes, no NUL.
pub fn object_key(value: &str) -> Result<(), InvalidName> {
    let ok = !value.is_empty() && value.len() <= 1024 && !value.contains('\0');
    check("object key", value, "use 1-1024 bytes without NUL characters", ok)
}

/// Resource names (model groups, users, pipelines, functions): 1–63 characters of
/// `A-Z a-z 0-9 - _`, starting with a letter or digit, as SageMaker allows for model package
/// groups.
pub fn resource(kind: &'static str, value: &str) -> Result<(), InvalidName> {
    let b = value.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    check(kind, value, "use 1-63 characters of A-Z, a-z, 0-9, '-' and '_', starting with a letter or digit", ok)
}

/// Alias names: 1–63 characters of `a-z 0-9 - _`, starting with a letter, and not all digits
/// (a number would read as a version) nor `latest-approved` (a selector of its own).
pub fn alias(value: &str) -> Result<(), InvalidName> {
    let b = value.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
        && value != "latest-approved"
        && value != "latest";
    check(
        "alias",
        value,
        "use 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter (not 'latest' or 'latest-approved')",
        ok,
    )
}

/// Function alias names follow Lambda: 1–128 characters of `A-Z a-z 0-9 - _`, not all digits
/// (a number names a published version).
pub fn function_alias(value: &str) -> Result<(), InvalidName> {
    let b = value.as_bytes();
    let ok = (1..=128).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && !b.iter().all(u8::is_ascii_digit);
    check(
        "function alias",
        value,
        "use 1-128 characters of A-Z, a-z, 0-9, '-' and '_', not all digits (a number names a version)",
        ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_names() {
        let cases: &[(&str, bool)] =
            &[("ab", false), ("abc", true), ("my-bucket.1", true), ("-abc", false), ("ABC", false)];
        for (name, ok) in cases {
            assert_eq!(bucket(name).is_ok(), *ok, "bucket {name}");
        }
        let cases: &[(&str, bool)] = &[
            ("production", true),
            ("Prod", false),
            ("1abc", false),
            ("latest-approved", false),
            ("a_b-c", true),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(alias(name).is_ok(), *ok, "alias {name}");
        }
        assert!(resource("model group", "titanic").is_ok());
        assert!(resource("model group", "Titanic_Model-2").is_ok());
        assert!(resource("model group", "bad/name").is_err());
        for (name, ok) in [("live", true), ("Live_2-b", true), ("12", false), ("", false), ("$LATEST", false)] {
            assert_eq!(function_alias(name).is_ok(), ok, "function alias {name}");
        }
        assert!(function_alias(&"a".repeat(128)).is_ok() && function_alias(&"a".repeat(129)).is_err());
        let err = alias("Bad").unwrap_err().to_string();
        assert!(err.contains("invalid alias name \"Bad\""), "{err}");
    }
}
