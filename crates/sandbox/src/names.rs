//! The names a user gives what a command receives: input file names, output names and
//! environment variable names. Each check says what a valid name looks like.

/// Environment variables a user may not set: the ones nimbus sets itself, and the ones that
/// change what a program loads or runs before its own code (`LD_PRELOAD`, `BASH_ENV`, …).
const RESERVED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR", "SHELL", "IFS", "ENV", "BASH_ENV", "PWD"];
const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "NIMBUS_", "AWS_", "LAMBDA_", "_HANDLER"];

/// A plain file name for an input copied into the work directory: 1-128 characters of
/// `A-Z a-z 0-9 . _ -`, not `.` or `..`.
pub fn file_name(what: &str, name: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a plain file name; use 1-128 characters of letters, digits, '.', '_' and '-' \
             (no '/', not '.' or '..')"
        ))
    }
}

/// An identifier (an output name, a parameter name): a letter or `_`, then letters, digits
/// and `_`, at most 64 characters.
pub fn identifier(what: &str, name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {name:?} is not an identifier; use a letter or '_' then letters, digits and '_'"))
    }
}

/// An environment variable a user may set: an [`identifier`] that is none of the reserved
/// names (`PATH`, `HOME`, `LD_*`, `NIMBUS_*`, `AWS_*`, …).
pub fn env_var(what: &str, name: &str) -> Result<(), String> {
    identifier(what, name)?;
    let upper = name.to_ascii_uppercase();
    if RESERVED_ENV.contains(&upper.as_str()) || RESERVED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Err(format!(
            "{what} {name:?} would set the environment variable {upper}, which nimbus reserves (PATH, HOME, LANG, \
             TMPDIR, SHELL, IFS, ENV, BASH_ENV, LD_*, DYLD_*, NIMBUS_*, AWS_*, LAMBDA_*); choose another name"
        ));
    }
    Ok(())
}

/// A relative path inside the work directory: `Normal` components only (no `..`, no root).
pub fn relative_path(what: &str, path: &str) -> Result<(), String> {
    use std::path::{Component, Path};
    let ok = !path.is_empty()
        && path.len() <= 1024
        && !path.contains('\0')
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {path:?} must be a relative path inside the work directory (no '..', no leading '/')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_override_are_refused() {
        for bad in ["../../../master.key", "a/b", "..", ".", "", "/etc/passwd", "a b"] {
            assert!(file_name("input", bad).is_err(), "{bad}");
        }
        for good in ["train.csv", "model-1.json", ".hidden"] {
            assert!(file_name("input", good).is_ok(), "{good}");
        }
        for bad in ["PATH", "path", "LD_PRELOAD", "ld_library_path", "NIMBUS_X", "AWS_SECRET_ACCESS_KEY", "BASH_ENV"] {
            let e = env_var("parameter", bad).unwrap_err();
            assert!(e.contains("reserves"), "{bad}: {e}");
        }
        assert!(env_var("parameter", "max_depth").is_ok());
        assert!(env_var("parameter", "1x").unwrap_err().contains("not an identifier"));
        assert!(identifier("output", "model").is_ok() && identifier("output", "a-b").is_err());
        assert!(relative_path("output", "out/model.json").is_ok());
        for bad in ["../x", "/x", "a/../../b", ""] {
            assert!(relative_path("output", bad).is_err(), "{bad}");
        }
    }
}
