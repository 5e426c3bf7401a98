//! The confining helper: `nimbus sandbox-exec [--deny DIR]… [--uid N --gid N] -- PROGRAM ARGS…`.
//!
//! The server starts the helper instead of the command. The helper asks the kernel to kill
//! it when its parent dies, restricts itself, and `exec`s the command, which keeps every
//! restriction:
//!
//! - `--deny DIR`: Landlock. Landlock rules only ever grant access, so "everything but DIR" is
//!   written as a grant of full access to every entry of every directory on the way from `/`
//!   to DIR, except the next step towards DIR. The directories on the way themselves get no
//!   grant (a command cannot list `/` or create files directly in it; its work directory and
//!   `TMPDIR` are elsewhere). Symbolic links are not followed into grants. Where the kernel
//!   has Landlock ABI 6, the command also may not signal processes outside its sandbox (the
//!   server) nor reach abstract UNIX sockets outside it.
//! - `--uid N --gid N`: switch to that user (and drop supplementary groups) before the exec.
//!
//! The helper refuses to run the command when a restriction it was asked for cannot be
//! enforced: it fails closed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    path_beneath_rules,
};

/// The hidden subcommand of the nimbus binary that runs the helper.
pub const SUBCOMMAND: &str = "sandbox-exec";

/// The newest Landlock ABI asked for; older kernels get what they support (best effort), but
/// never less than file-system access control (ABI 1).
const ABI_WANTED: ABI = ABI::V6;

/// Whether the running kernel enforces Landlock.
pub fn landlock_available() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .is_ok()
}

/// What the helper was asked to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    pub deny: Vec<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub argv: Vec<OsString>,
}

/// Parses the helper's arguments (after the subcommand).
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Confinement, String> {
    let mut c = Confinement::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.to_str() {
            Some("--deny") => c.deny.push(PathBuf::from(value("--deny")?)),
            Some("--uid") => c.uid = Some(value("--uid")?.to_string_lossy().parse().map_err(|_| "--uid: a number")?),
            Some("--gid") => c.gid = Some(value("--gid")?.to_string_lossy().parse().map_err(|_| "--gid: a number")?),
            Some("--") => {
                c.argv = args.collect();
                break;
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    if c.argv.is_empty() {
        return Err("no command after --".into());
    }
    Ok(c)
}

/// Restricts this process as asked and replaces it with the command. Returns only on failure.
pub fn exec(c: &Confinement) -> String {
    // Dies with the server, even when the server is killed without a chance to clean up.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)) {
        return format!("cannot ask to be killed with the server: {e}");
    }
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
        return "the server is gone".into();
    }
    if !c.deny.is_empty()
        && let Err(e) = restrict(&c.deny)
    {
        return e;
    }
    let mut cmd = std::process::Command::new(&c.argv[0]);
    cmd.args(&c.argv[1..]);
    if let Some(gid) = c.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = c.uid {
        cmd.uid(uid);
    }
    let e = cmd.exec();
    format!("cannot run {:?}: {e}", c.argv[0])
}

/// Applies Landlock rules granting everything but `deny` to this process and its future
/// children.
fn restrict(deny: &[PathBuf]) -> Result<(), String> {
    let deny: Vec<PathBuf> = deny.iter().map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())).collect();
    let grants = granted_paths(&deny);
    let access = AccessFs::from_all(ABI_WANTED);
    let fail = |e: landlock::RulesetError| format!("cannot set up the Landlock sandbox: {e}");
    let ruleset = Ruleset::default().handle_access(access).map_err(fail)?;
    let ruleset = match ruleset.scope(Scope::from_all(ABI_WANTED)) {
        Ok(r) => r,
        Err(e) => return Err(fail(e)),
    };
    let status = ruleset
        .create()
        .map_err(fail)?
        .add_rules(path_beneath_rules(&grants, access))
        .map_err(fail)?
        .restrict_self()
        .map_err(fail)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("the kernel did not enforce the Landlock sandbox; refusing to run the command unconfined".into());
    }
    Ok(())
}

/// Every path to grant so that all but `deny` (and what lies beneath) is reachable: the
/// entries of each directory on the way to a denied path, other than the way itself.
pub fn granted_paths(deny: &[PathBuf]) -> Vec<PathBuf> {
    let denied: HashSet<&Path> = deny.iter().map(PathBuf::as_path).collect();
    let on_the_way: HashSet<&Path> = deny.iter().flat_map(|d| d.ancestors().skip(1)).collect();
    let mut grants = Vec::new();
    let mut dirs: Vec<&Path> = on_the_way.iter().copied().collect();
    dirs.sort();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if denied.contains(path.as_path()) || on_the_way.contains(path.as_path()) {
                continue;
            }
            // A link is not followed into a grant: its target may be the denied directory.
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            grants.push(path);
        }
    }
    grants.sort();
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_everything_beside_the_way_to_the_denied_directory() {
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        for d in ["a/data/objects", "a/other", "b"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("a/file"), b"").unwrap();
        std::os::unix::fs::symlink(r.join("a/data"), r.join("a/link-to-data")).unwrap();
        let grants = granted_paths(&[r.join("a/data")]);
        let mine: Vec<String> =
            grants.iter().filter_map(|g| g.strip_prefix(&r).ok()).map(|p| p.display().to_string()).collect();
        assert_eq!(mine, ["a/file", "a/other", "b"]);
        assert!(!grants.iter().any(|g| g.starts_with(r.join("a/data"))));
        assert!(grants.iter().any(|g| g == Path::new("/usr") || g == Path::new("/etc")), "{grants:?}");
    }

    #[test]
    fn parses_what_the_sandbox_passes() {
        let args = ["--deny", "/d", "--uid", "65534", "--gid", "65534", "--", "sh", "-c", "x"].map(OsString::from);
        let c = parse_args(args).unwrap();
        assert_eq!((c.deny, c.uid, c.gid, c.argv.len()), (vec![PathBuf::from("/d")], Some(65534), Some(65534), 3));
        assert!(parse_args(["--deny"].map(OsString::from)).is_err());
        assert!(parse_args(["--deny", "/d"].map(OsString::from)).unwrap_err().contains("no command"));
    }
}
