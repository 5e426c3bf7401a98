//! The confining helper: `nimbus sandbox-exec [--deny DIR]… [--read-only DIR]… [--uid N --gid N]
//! [--cgroup DIR | --rlimit-as BYTES] [--work-dir DIR] -- PROGRAM ARGS…`.
//!
//! The server starts the helper instead of the command. The helper runs in two parts:
//!
//! - The **supervisor** (the process the server started) makes itself the "child subreaper" of
//!   everything below it, so that a process the command leaves behind (in the background, in a
//!   new session, or orphaned by a crash of its parent) becomes its child instead of init's and
//!   cannot slip away. It starts the confined part and waits. When the command ends, or the
//!   server closes the supervisor's stdin (a timeout, a stop, the server shutting down or
//!   dying, even by `kill -9`), it kills every process below it, reaps them, and exits with the
//!   command's status: the code it exited with, or death by the signal that ended it (see
//!   `die_by`), so the server reads the command's own ending from the supervisor's. After a
//!   stop it also removes the work directory (`--work-dir`), which a dead server could not. Its stdin must therefore be a pipe the server holds open for as
//!   long as the command may run (an empty stdin stops the command at once).
//! - The **confined part** (`sandbox-exec --inner …`) asks the kernel to kill it when the
//!   supervisor dies, restricts itself, and `exec`s the command, which keeps every
//!   restriction, applied in this order:
//!   - `--cgroup DIR`: join the memory cgroup `DIR` (write `0` to its `cgroup.procs`), so that
//!     the command and all it starts are counted and limited there, and the supervisor is not.
//!   - `--rlimit-as BYTES`: limit the address space of the command's processes instead.
//!   - `--deny DIR`: Landlock. Landlock rules only ever grant access, so "everything but DIR"
//!     is written as a grant of full access to every entry of every directory on the way from
//!     `/` to DIR, except the next step towards DIR. The directories on the way themselves get
//!     no grant (a command cannot list `/` or create files directly in it; its work directory
//!     and `TMPDIR` are elsewhere). Symbolic links are not followed into grants. Where the
//!     kernel has Landlock ABI 6, the command also may not signal processes outside its
//!     sandbox (the server, the supervisor) nor reach abstract UNIX sockets outside it.
//!   - `--read-only DIR` (with Landlock): DIR is carved out of the full grants like a denied
//!     directory, then granted read, list and execute beneath it, and nothing else: the command
//!     can run the code there but not write, create, rename or remove anything in it. Like a
//!     denied directory, the directories on the way to DIR get no grant of their own (so no
//!     new entries directly in them), which is why it should not lie above the work directory.
//!   - `--uid N --gid N`: switch to that user (and drop supplementary groups) before the exec.
//!
//! The helper refuses to run the command when a restriction it was asked for cannot be
//! enforced: it fails closed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

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
    /// Directories the command may read and execute beneath, but not change (Landlock).
    pub read_only: Vec<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The memory cgroup the command's processes join.
    pub cgroup: Option<PathBuf>,
    /// The address-space limit of each of the command's processes, bytes.
    pub rlimit_as: Option<u64>,
    /// The command's work directory, removed by the supervisor when the command was stopped.
    pub work_dir: Option<PathBuf>,
    /// The confined part (started by the supervisor), rather than the supervisor.
    pub inner: bool,
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
            Some("--read-only") => c.read_only.push(PathBuf::from(value("--read-only")?)),
            Some("--cgroup") => c.cgroup = Some(PathBuf::from(value("--cgroup")?)),
            Some("--rlimit-as") => {
                c.rlimit_as = Some(
                    value("--rlimit-as")?.to_string_lossy().parse().map_err(|_| "--rlimit-as: a number of bytes")?,
                )
            }
            Some("--uid") => c.uid = Some(value("--uid")?.to_string_lossy().parse().map_err(|_| "--uid: a number")?),
            Some("--gid") => c.gid = Some(value("--gid")?.to_string_lossy().parse().map_err(|_| "--gid: a number")?),
            Some("--work-dir") => c.work_dir = Some(PathBuf::from(value("--work-dir")?)),
            Some("--inner") => c.inner = true,
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

/// Runs the helper: the supervisor, or (with `--inner`) the confined part, which restricts
/// this process as asked and replaces it with the command. Returns only on failure.
pub fn exec(c: &Confinement) -> String {
    if c.inner { confine_and_exec(c) } else { supervise(c) }
}

/// The arguments that start the confined part with the same confinement.
fn inner_args(c: &Confinement) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![SUBCOMMAND.into(), "--inner".into()];
    for d in &c.deny {
        args.extend(["--deny".into(), d.clone().into_os_string()]);
    }
    for d in &c.read_only {
        args.extend(["--read-only".into(), d.clone().into_os_string()]);
    }
    if let Some(dir) = &c.cgroup {
        args.extend(["--cgroup".into(), dir.clone().into_os_string()]);
    }
    if let Some(bytes) = c.rlimit_as {
        args.extend(["--rlimit-as".into(), bytes.to_string().into()]);
    }
    if let Some(uid) = c.uid {
        args.extend(["--uid".into(), uid.to_string().into()]);
    }
    if let Some(gid) = c.gid {
        args.extend(["--gid".into(), gid.to_string().into()]);
    }
    args.push("--".into());
    args.extend(c.argv.iter().cloned());
    args
}

/// How often the supervisor looks at the command and its stdin.
const POLL: Duration = Duration::from_millis(20);
/// How long the supervisor keeps killing what is left before it gives up (a process stuck in
/// the kernel cannot be killed; the server's own kill of the process group follows).
const CLEANUP_LIMIT: Duration = Duration::from_secs(10);

/// The supervisor: starts the confined part, waits for it or for the server to close stdin,
/// then kills and reaps everything below itself, and exits with the command's status.
fn supervise(c: &Confinement) -> String {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        return format!("cannot become the subreaper of the command's processes: {e}");
    }
    // The server holds the other end of stdin: end of file means stop, whether the server
    // asked (it closed the pipe) or died (the kernel closed it).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("cannot find the nimbus binary to confine the command: {e}"),
    };
    let child = match std::process::Command::new(exe).args(inner_args(c)).stdin(std::process::Stdio::null()).spawn() {
        Ok(child) => child,
        Err(e) => return format!("cannot start the confined command: {e}"),
    };
    let command = Pid::from_child(&child);
    let mut status = None;
    while status.is_none() && !stop.load(Ordering::SeqCst) {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, s))) if pid == command => status = Some(s),
            // An orphan of the command, reparented here, ended: reaped, nothing more.
            Ok(Some(_)) => continue,
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return format!("lost the command: {e}"),
        }
    }
    end_everything_below();
    match status {
        Some(s) => match s.exit_status() {
            Some(code) => std::process::exit(code),
            None => die_by(s.terminating_signal().unwrap_or(9)),
        },
        None => {
            // Stopped: the server will not collect anything from the work directory, and when
            // it died nothing else would remove it.
            if let Some(dir) = &c.work_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
            std::process::exit(137);
        }
    }
}

/// Ends the supervisor by the signal `raw` that ended the command, so the server sees the
/// command's ending as its own (an exit code could not be told apart from the command's).
///
/// - No core file is written for the supervisor (its dump would be mistaken for the command's).
/// - Rust's runtime handles SIGSEGV and SIGBUS (to report stack overflows): its handler puts the
///   default action back and returns, so the signal is sent a second time.
/// - Rust's runtime ignores SIGPIPE, and an ignored signal cannot end a process. Executing a
///   program resets SIGPIPE to its default (the standard library does that for every program it
///   starts), so the supervisor becomes `kill` and sends SIGPIPE to itself (the same pid, so
///   the server still waits for this process). Only for SIGPIPE: a signal ignored for another
///   reason would stay ignored in `kill`, which would then exit 0.
/// - Only when all of that fails does it exit with 128 + the signal, as a shell would.
fn die_by(raw: i32) -> ! {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let me = rustix::process::getpid();
    if let Some(signal) = Signal::from_named_raw(raw) {
        for _ in 0..2 {
            // A signal with its default action ends the process before `kill` returns.
            let _ = rustix::process::kill_process(me, signal);
        }
    }
    if Signal::from_named_raw(raw) == Some(Signal::PIPE) {
        let pid = me.as_raw_nonzero().get().to_string();
        for kill in ["/bin/kill", "/usr/bin/kill"] {
            let _ = std::process::Command::new(kill).args(["-PIPE", pid.as_str()]).env_clear().exec();
        }
    }
    std::process::exit(128 + raw)
}

/// Kills every process below this one and reaps them, until none is left (processes orphaned
/// while this runs are reparented here, so they are found on the next round).
fn end_everything_below() {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let deadline = Instant::now() + CLEANUP_LIMIT;
    loop {
        for pid in descendants(me) {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                // No child left at all: everything below has ended and been reaped.
                Err(_) => return,
            }
        }
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The processes below `root`, from `/proc/*/stat`.
pub(crate) fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses, so split at the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// The confined part: restricts this process as asked and replaces it with the command.
fn confine_and_exec(c: &Confinement) -> String {
    // Dies with the supervisor, even when it is killed without a chance to clean up.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)) {
        return format!("cannot ask to be killed with the supervisor: {e}");
    }
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
        return "the supervisor is gone".into();
    }
    // The memory limit first: the command's processes must be in its group before they can
    // allocate, and joining needs a write this process may no longer make once confined.
    if let Some(dir) = &c.cgroup
        && let Err(e) = std::fs::write(dir.join("cgroup.procs"), "0")
    {
        return format!(
            "cannot join the memory cgroup {}: {e}; refusing to run without the memory limit",
            dir.display()
        );
    }
    if let Some(bytes) = c.rlimit_as {
        let limit = rustix::process::Rlimit { current: Some(bytes), maximum: Some(bytes) };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::As, limit) {
            return format!("cannot limit the address space to {bytes} bytes: {e}");
        }
    }
    if (!c.deny.is_empty() || !c.read_only.is_empty())
        && let Err(e) = restrict(&c.deny, &c.read_only)
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
/// children, and only reading (and executing) beneath `read_only`.
fn restrict(deny: &[PathBuf], read_only: &[PathBuf]) -> Result<(), String> {
    let deny: Vec<PathBuf> = deny.iter().map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())).collect();
    let mut read: Vec<PathBuf> = Vec::new();
    for r in read_only {
        let r = std::fs::canonicalize(r)
            .map_err(|e| format!("cannot find the read-only directory {}: {e}", r.display()))?;
        // A read grant above or beneath a denied directory would open it.
        if let Some(d) = deny.iter().find(|d| r.starts_with(d) || d.starts_with(&r)) {
            return Err(format!(
                "the read-only directory {} overlaps the denied directory {}; refusing to run",
                r.display(),
                d.display()
            ));
        }
        read.push(r);
    }
    let carved: Vec<PathBuf> = deny.iter().chain(&read).cloned().collect();
    let grants = granted_paths(&carved);
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
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(ABI_WANTED)))
        .map_err(fail)?
        .restrict_self()
        .map_err(fail)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("the kernel did not enforce the Landlock sandbox; refusing to run the command unconfined".into());
    }
    Ok(())
}

/// Every path to grant so that all but `deny` (and what lies beneath) is reachable: the
/// entries of each directory on the way to a denied (or read-only) path, other than the way
/// itself.
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
        let args = [
            "--deny",
            "/d",
            "--read-only",
            "/code",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--cgroup",
            "/cg",
            "--work-dir",
            "/w",
            "--",
            "sh",
            "-c",
            "x",
        ]
        .map(OsString::from);
        let c = parse_args(args.clone()).unwrap();
        assert_eq!((&c.deny, c.uid, c.gid, c.argv.len()), (&vec![PathBuf::from("/d")], Some(65534), Some(65534), 3));
        assert_eq!((c.work_dir.as_deref(), c.inner), (Some(Path::new("/w")), false));
        assert_eq!(
            (c.read_only.as_slice(), c.cgroup.as_deref()),
            ([PathBuf::from("/code")].as_slice(), Some(Path::new("/cg")))
        );
        let c = parse_args(["--rlimit-as", "1048576", "--", "true"].map(OsString::from)).unwrap();
        assert_eq!(c.rlimit_as, Some(1 << 20));
        let inner = parse_args(inner_args(&c).into_iter().skip(1)).unwrap();
        assert_eq!(inner, Confinement { inner: true, ..c });
        assert!(parse_args(["--rlimit-as", "lots", "--", "true"].map(OsString::from)).is_err());
        let c = parse_args(args).unwrap();
        // The supervisor starts the confined part with the same confinement (and no work dir).
        let inner = parse_args(inner_args(&c).into_iter().skip(1)).unwrap();
        assert_eq!(inner, Confinement { work_dir: None, inner: true, ..c });
        assert!(parse_args(["--deny"].map(OsString::from)).is_err());
        assert!(parse_args(["--deny", "/d"].map(OsString::from)).unwrap_err().contains("no command"));
    }
}
