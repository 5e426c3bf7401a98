//! The child-process sandbox: how nimbus runs a command it did not write (a pipeline's
//! `process` step now, process functions later) so that the command cannot reach the server's
//! own files, outlive its time, or exhaust the server's memory with its output.
//!
//! - [`Sandbox::detect`] picks the strongest protection the machine offers and says which
//!   ([`Protection`]): Landlock, where the kernel has it, denies the child every access to the
//!   data directory (and to the server's `/proc/PID`); otherwise, when nimbus runs as root,
//!   the child runs as an unprivileged uid, which the 0700 data directory keeps out; otherwise
//!   there is none, and commands are refused unless the operator allowed unconfined ones.
//! - [`Sandbox::run`] starts the child in its own process group, in a work directory outside
//!   the data directory ([`WorkDir`], removed whatever the outcome), with exactly the
//!   environment given. Every process the command starts ends with it: on timeout, on cancel,
//!   when the command ends (background children, even ones in a new session, die with it), at
//!   [`Sandbox::kill_all`] (server shutdown) and when the server dies. Confined commands run
//!   under a supervising helper ([`confine`]) that is the subreaper of all their processes and
//!   kills them when the command ends or the server closes its stdin; unconfined ones have
//!   their process group killed. Output is collected line by line into a bounded [`log::Log`],
//!   and streamed line by line to whoever asked ([`Command::lines`]). The ending says how the
//!   command ended, in Lambda's words too ([`Ending::describe`]).
//! - [`memory`] limits the memory of a command (a cgroup of its own, or `RLIMIT_AS`) and reads
//!   its peak; [`Command::read_only`] gives a command directories it may read but not change.
//! - [`names`] validates the names a user gives inputs, outputs and parameters.
//!
//! Confinement is applied by the nimbus binary itself, re-executed as
//! `nimbus sandbox-exec …` ([`confine`]): the supervisor starts a confined part that restricts
//! itself with Landlock (or switches uid) and `exec`s the command, which inherits the
//! restrictions. No `unsafe` code is needed for any of it.
#![forbid(unsafe_code)]

pub mod confine;
pub mod log;
pub mod memory;
pub mod names;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::watch;

pub use log::{Log, LogLimits};
pub use memory::{MemoryControl, MemoryLimit};

/// The unprivileged uid and gid of the separate-user protection (`nobody`/`nogroup`).
pub const UNPRIVILEGED_ID: u32 = 65534;

/// How long output readers may linger after the process group was killed (a descendant
/// that left the group can hold the pipes open).
const READER_GRACE: Duration = Duration::from_secs(2);
/// How long a supervising helper may take to end the command's processes once told to stop,
/// before its process group is killed outright.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);

/// What keeps a child out of the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Landlock rules deny every access to the data directory.
    Landlock,
    /// The child runs as [`UNPRIVILEGED_ID`], which cannot enter the 0700 data directory.
    SeparateUser,
    /// Nothing: the child could read the data directory. Used only when allowed explicitly.
    Unconfined,
}

/// Why a command was not run, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No protection is available and unconfined commands were not allowed.
    #[error(
        "no sandbox is available on this machine (no Landlock, and nimbus is not running as root), so commands would \
         be able to read the data directory; start the server with --allow-unconfined-processes to run them anyway"
    )]
    Unavailable,
    /// The work directory could not be made.
    #[error("cannot make a work directory under {root}: {source}")]
    WorkDir {
        root: String,
        #[source]
        source: std::io::Error,
    },
    /// The command could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The command line is empty.
    #[error("the command is empty; give at least the program to run")]
    EmptyCommand,
    /// The memory cgroup of a limit could not be made.
    #[error("cannot make a memory cgroup under {dir}: {source}")]
    MemoryLimit {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    /// A memory limit was asked for a run without the confining helper, which applies it.
    #[error(
        "a memory limit needs the confining helper (`nimbus sandbox-exec`), and this sandbox has none; the command \
         was not run"
    )]
    MemoryNeedsHelper,
    /// A read-only directory of a run as the separate user is writable by that user.
    #[error(
        "{path} was to be read-only for the command, but uid {UNPRIVILEGED_ID} could change it (it owns it, it is \
         group- or world-writable, or it is missing); make it a root-owned directory, 0555"
    )]
    ReadOnlyWritable { path: String },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The command ended by itself (or by [`Sandbox::kill_all`]): `code` is its exit status,
    /// `None` when a signal ended it, and then `signal` is that signal's number.
    Exited { code: Option<i32>, success: bool, signal: Option<i32> },
    /// It ran longer than its timeout and its process group was killed.
    TimedOut(Duration),
    /// It was cancelled (by a user, or the server shutting down) and its group was killed.
    Cancelled,
}

impl Ending {
    /// The ending in the words of Go's `os/exec` (`ProcessState.String()`), which Lambda prints
    /// in `Runtime exited with error: …`: `exit status 1`, `signal: killed`,
    /// `signal: segmentation fault`. A timeout and a cancel are said plainly.
    pub fn describe(&self) -> String {
        match self {
            Ending::Exited { code: Some(code), .. } => format!("exit status {code}"),
            Ending::Exited { signal: Some(signal), .. } => format!("signal: {}", signal_name(*signal)),
            Ending::Exited { .. } => "signal: unknown signal".to_string(),
            Ending::TimedOut(t) => format!("timed out after {t:?} and killed"),
            Ending::Cancelled => "cancelled and killed".to_string(),
        }
    }
}

/// A signal's name as Go's `syscall.Signal.String()` gives it on Linux.
fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    usize::try_from(signal)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {signal}"), |n| n.to_string())
}

/// A finished run: how it ended and what it printed.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub log: Log,
}

/// One command to run.
#[derive(Clone, Debug, Default)]
pub struct Command {
    /// Program and arguments, passed as they are (never through a shell).
    pub argv: Vec<String>,
    /// The whole environment of the child; nothing of the server's is inherited.
    pub env: Vec<(String, String)>,
    /// Working directory (normally a [`WorkDir`]).
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub log: LogLimits,
    /// Where each output line also goes as it arrives, `(is_stderr, line without its newline)`,
    /// besides the bounded log. A receiver that went away does not disturb the run.
    pub lines: Option<tokio::sync::mpsc::UnboundedSender<(bool, Vec<u8>)>>,
    /// The memory limit of the command's processes (see [`Sandbox::memory_limit`]). It needs the
    /// confining helper, which applies it before the command starts; a run without the helper
    /// fails with [`SandboxError::MemoryNeedsHelper`] rather than run unlimited (adding the
    /// process to the group after it started would leave what it forked before outside).
    pub memory: Option<Arc<MemoryLimit>>,
    /// Directories the command may read and execute beneath but not change (the function's
    /// code). With Landlock the rules enforce it (the directories on the way to each get no
    /// grant of their own, as for the data directory, so none should lie above the work
    /// directory); as the separate user the directory's own modes do (it must be root-owned and
    /// not group- or world-writable, 0555 with 0444 files: the top directory is checked, the
    /// run refused otherwise); unconfined nothing does.
    pub read_only: Vec<PathBuf>,
}

/// A work directory outside the data directory, removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a work directory");
        }
    }
}

/// The sandbox of one server: its protection and the process groups it is running.
#[derive(Clone, Debug)]
pub struct Sandbox {
    protection: Protection,
    allowed: bool,
    /// The canonical data directory, denied to children.
    data_dir: PathBuf,
    /// Where work directories go (outside the data directory).
    work_root: PathBuf,
    /// The nimbus binary, re-executed as the confining helper.
    helper: Option<PathBuf>,
    /// The process groups running now, by group id.
    live: Arc<Mutex<HashMap<i32, Live>>>,
    /// How memory limits are applied here.
    memory: MemoryControl,
}

/// A command running now.
#[derive(Debug)]
struct Live {
    /// Run under a supervising helper, which ends it (rather than by killing its group).
    supervised: bool,
    /// The supervisor's stdin until it is closed, which tells the supervisor to end everything.
    stdin: Option<tokio::process::ChildStdin>,
}

/// Which protection to use: the strongest available, or one named by the operator (which is
/// used only when available; otherwise commands are unconfined, and so refused unless allowed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    #[default]
    Auto,
    Landlock,
    SeparateUser,
}

impl Sandbox {
    /// The strongest protection available for keeping children out of `data_dir`. `helper`
    /// is the nimbus binary (which confines with `sandbox-exec`); without it only unconfined
    /// runs are possible. `allow_unconfined` lets commands run when nothing else is available.
    pub fn detect(data_dir: &Path, helper: Option<PathBuf>, allow_unconfined: bool) -> Sandbox {
        Sandbox::choose(data_dir, helper, allow_unconfined, Choice::Auto)
    }

    /// As [`Sandbox::detect`], with the protection `choice` names.
    pub fn choose(data_dir: &Path, helper: Option<PathBuf>, allow_unconfined: bool, choice: Choice) -> Sandbox {
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let landlock = helper.is_some() && confine::landlock_available();
        let separate = helper.is_some() && is_root();
        let protection = match choice {
            Choice::Auto if landlock => Protection::Landlock,
            Choice::Auto if separate => Protection::SeparateUser,
            Choice::Landlock if landlock => Protection::Landlock,
            Choice::SeparateUser if separate => Protection::SeparateUser,
            _ => Protection::Unconfined,
        };
        let mut work_root = std::env::temp_dir().join("nimbus-work");
        if work_root.starts_with(&data_dir) {
            // TMPDIR inside the data directory: use the directory beside it instead.
            work_root = data_dir.parent().unwrap_or(Path::new("/")).join(".nimbus-work");
        }
        let memory = MemoryControl::detect();
        let swept = memory::sweep(&memory);
        if swept > 0 {
            tracing::warn!(groups = swept, "removed the memory cgroups a stopped server left behind");
        }
        Sandbox { protection, allowed: allow_unconfined, data_dir, work_root, helper, live: Default::default(), memory }
    }

    /// How memory limits are applied on this machine (chosen when the sandbox was made).
    pub fn memory_control(&self) -> &MemoryControl {
        &self.memory
    }

    /// A memory limit of `limit_bytes` for the commands given it ([`Command::memory`]), named
    /// after `label`. Its cgroup (if any) is made now and removed when the last `Arc` is dropped.
    pub fn memory_limit(&self, label: &str, limit_bytes: u64) -> Result<Arc<MemoryLimit>, SandboxError> {
        self.memory.limit(label, limit_bytes).map(Arc::new).map_err(|source| SandboxError::MemoryLimit {
            dir: match &self.memory {
                MemoryControl::CgroupV1(d) | MemoryControl::CgroupV2(d) => d.display().to_string(),
                MemoryControl::AddressSpace => String::new(),
            },
            source,
        })
    }

    /// The protection in force.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// One line for the start-up log: which protection is active, and how memory is limited.
    pub fn describe(&self) -> String {
        format!("{}; {}", self.describe_protection(), self.memory.describe())
    }

    fn describe_protection(&self) -> String {
        match (&self.protection, self.allowed) {
            (Protection::Landlock, _) => {
                format!("sandboxed with Landlock (no access to {} for commands)", self.data_dir.display())
            }
            (Protection::SeparateUser, _) => {
                format!("sandboxed as uid {UNPRIVILEGED_ID} (the 0700 data directory is closed to commands)")
            }
            (Protection::Unconfined, true) => {
                "NOT sandboxed (no Landlock and not root): commands can read the data directory; allowed by \
                 --allow-unconfined-processes"
                    .to_string()
            }
            (Protection::Unconfined, false) => {
                "no sandbox available (no Landlock and not root): process steps are refused; start with \
                 --allow-unconfined-processes to run them unconfined"
                    .to_string()
            }
        }
    }

    /// Fails when commands may not run here.
    pub fn check_usable(&self) -> Result<(), SandboxError> {
        match (&self.protection, self.allowed) {
            (Protection::Unconfined, false) => Err(SandboxError::Unavailable),
            _ => Ok(()),
        }
    }

    /// A fresh, empty work directory named after `label`, outside the data directory.
    pub fn work_dir(&self, label: &str) -> Result<WorkDir, SandboxError> {
        let fail = |source| SandboxError::WorkDir { root: self.work_root.display().to_string(), source };
        let safe: String =
            label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(80).collect();
        let path = self.work_root.join(format!("{safe}-{}", nimbus_core::new_id()));
        std::fs::create_dir_all(&path).map_err(fail)?;
        let dir = WorkDir { path };
        if self.protection == Protection::SeparateUser {
            // The unprivileged child owns its work directory, and nothing else.
            chown(&self.work_root, false).map_err(fail)?;
            chown(dir.path(), false).map_err(fail)?;
        }
        Ok(dir)
    }

    /// Makes everything under `dir` usable by the child (for files written into the work
    /// directory after [`Sandbox::work_dir`], such as inputs).
    pub fn hand_over(&self, dir: &Path) -> std::io::Result<()> {
        if self.protection == Protection::SeparateUser { chown(dir, true) } else { Ok(()) }
    }

    /// Runs `cmd` to its end, its timeout, or `cancel` turning true. `on_progress` sees the log
    /// so far about every 250 ms while it runs.
    pub async fn run(
        &self,
        cmd: &Command,
        mut cancel: watch::Receiver<bool>,
        on_progress: &mut (dyn FnMut(&Log) + Send),
    ) -> Result<Outcome, SandboxError> {
        self.check_usable()?;
        let program = cmd.argv.first().ok_or(SandboxError::EmptyCommand)?;
        if cmd.memory.is_some() && self.helper.is_none() {
            return Err(SandboxError::MemoryNeedsHelper);
        }
        if self.protection == Protection::SeparateUser {
            for dir in &cmd.read_only {
                check_closed_to_the_user(dir)?;
            }
        }
        // The helper applies the confinement and the memory limit; an unconfined command with a
        // limit runs under it too, just without restrictions.
        let supervised = self.helper.is_some() && (self.protection != Protection::Unconfined || cmd.memory.is_some());
        let mut child = match (supervised, &self.helper) {
            (false, _) | (_, None) => {
                let mut c = tokio::process::Command::new(program);
                c.args(&cmd.argv[1..]);
                c
            }
            (true, Some(helper)) => {
                let mut c = tokio::process::Command::new(helper);
                c.arg(confine::SUBCOMMAND);
                match self.protection {
                    Protection::Landlock => {
                        c.arg("--deny").arg(&self.data_dir);
                        c.arg("--deny").arg(format!("/proc/{}", std::process::id()));
                        for dir in &cmd.read_only {
                            c.arg("--read-only").arg(dir);
                        }
                    }
                    Protection::SeparateUser => {
                        c.arg("--uid").arg(UNPRIVILEGED_ID.to_string()).arg("--gid").arg(UNPRIVILEGED_ID.to_string());
                    }
                    Protection::Unconfined => {}
                }
                match cmd.memory.as_deref().map(MemoryLimit::helper_arg) {
                    Some(memory::HelperArg::Cgroup(dir)) => {
                        c.arg("--cgroup").arg(dir);
                    }
                    Some(memory::HelperArg::AddressSpace(bytes)) => {
                        c.arg("--rlimit-as").arg(bytes.to_string());
                    }
                    None => {}
                }
                // Only a work directory of ours may be removed by the helper (after a stop).
                if cmd.cwd.starts_with(&self.work_root) {
                    c.arg("--work-dir").arg(&cmd.cwd);
                }
                c.arg("--").args(&cmd.argv);
                c
            }
        };
        child
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cmd.cwd)
            .process_group(0)
            // A supervisor's stdin is its stop switch; a command's is empty.
            .stdin(if supervised { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Killing a supervisor would keep it from ending the command's processes; a dropped
            // run closes its stdin instead (see `GroupGuard`).
            .kill_on_drop(!supervised);
        let mut child = child.spawn().map_err(|source| SandboxError::Spawn { program: program.clone(), source })?;
        let group = child.id().map(|id| id as i32);
        if let (Some(memory), Some(g)) = (&cmd.memory, group) {
            memory.attach(g);
        }
        let _guard = group.map(|g| GroupGuard::new(self.live.clone(), g, supervised, child.stdin.take()));

        let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<(bool, Vec<u8>)>(256);
        let mut readers = Vec::new();
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
        for (stream, is_err) in [(stdout, false), (stderr, true)] {
            if let Some(stream) = stream {
                readers.push(tokio::spawn(log::read_lines(stream, is_err, cmd.log.max_line_bytes, lines_tx.clone())));
            }
        }
        drop(lines_tx);

        let mut log = Log::new(cmd.log);
        let take = |log: &mut Log, is_err: bool, bytes: Vec<u8>| {
            log.push(is_err, &bytes);
            // A receiver that went away only stops the streaming.
            if let Some(to) = &cmd.lines {
                let _ = to.send((is_err, bytes));
            }
        };
        let deadline = tokio::time::Instant::now() + cmd.timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut lines_open = true;
        let ending = loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_err(|source| SandboxError::Spawn { program: program.clone(), source })?;
                    break Ending::Exited { code: status.code(), success: status.success(), signal: status.signal() };
                }
                line = lines_rx.recv(), if lines_open => match line {
                    Some((is_err, bytes)) => take(&mut log, is_err, bytes),
                    None => lines_open = false,
                },
                _ = tokio::time::sleep_until(deadline) => break Ending::TimedOut(cmd.timeout),
                changed = cancel.changed() => {
                    if changed.is_err() || *cancel.borrow() {
                        break Ending::Cancelled;
                    }
                }
                _ = tick.tick() => on_progress(&log),
            }
        };
        // Everything the command started ends with it, including children it left in the
        // background: a supervisor, told by its stdin closing, ends them all and exits; the
        // group is killed after that (or when the supervisor does not exit in time).
        if let Some(g) = group {
            if supervised {
                self.release(g);
                let _ = tokio::time::timeout(SUPERVISOR_GRACE, child.wait()).await;
            }
            kill_group(g);
        }
        let _ = child.wait().await;
        // Drain what was printed; a process that escaped the group must not hold us here.
        let drain = async {
            while let Some((is_err, bytes)) = lines_rx.recv().await {
                take(&mut log, is_err, bytes);
            }
        };
        let _ = tokio::time::timeout(READER_GRACE, drain).await;
        for r in readers {
            r.abort();
        }
        Ok(Outcome { ending, log })
    }

    /// Ends every command this sandbox started and that still runs (server shutdown): tells
    /// each supervisor to end its command's processes, and kills unconfined commands' groups.
    pub fn kill_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for (g, run) in live.iter_mut() {
            if run.supervised {
                drop(run.stdin.take());
            } else {
                kill_group(*g);
            }
        }
        live.len()
    }

    /// Closes the stdin of the supervisor of `group`: it ends the command and its processes.
    fn release(&self, group: i32) {
        let stdin =
            self.live.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&group).and_then(|run| run.stdin.take());
        drop(stdin);
    }

    /// Process groups running now.
    pub fn running(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Keeps a process group in the live set while its run lasts. When a run is dropped midway, a
/// supervised command is ended by its supervisor (its stdin closes with the entry); an
/// unconfined one by killing its group.
struct GroupGuard {
    live: Arc<Mutex<HashMap<i32, Live>>>,
    group: i32,
    supervised: bool,
}

impl GroupGuard {
    fn new(
        live: Arc<Mutex<HashMap<i32, Live>>>,
        group: i32,
        supervised: bool,
        stdin: Option<tokio::process::ChildStdin>,
    ) -> GroupGuard {
        live.lock().unwrap_or_else(|e| e.into_inner()).insert(group, Live { supervised, stdin });
        GroupGuard { live, group, supervised }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.supervised {
            kill_group(self.group);
        }
        let stdin = self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.group);
        drop(stdin);
    }
}

fn kill_group(group: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        // ESRCH (the group is already gone) is the usual case and fine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Refuses a read-only directory that the separate user could change: owned by it, or
/// writable by group or others.
fn check_closed_to_the_user(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let writable = match std::fs::metadata(dir) {
        Ok(m) => m.uid() == UNPRIVILEGED_ID || m.mode() & 0o022 != 0,
        Err(_) => true,
    };
    if writable { Err(SandboxError::ReadOnlyWritable { path: dir.display().to_string() }) } else { Ok(()) }
}

fn chown(path: &Path, recursive: bool) -> std::io::Result<()> {
    let id = Some(rustix::fs::Uid::from_raw(UNPRIVILEGED_ID));
    let gid = Some(rustix::fs::Gid::from_raw(UNPRIVILEGED_ID));
    rustix::fs::chown(path, id, gid)?;
    if recursive && path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown(&entry?.path(), true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
