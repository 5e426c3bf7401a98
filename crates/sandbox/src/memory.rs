//! Memory limits for commands: which control the machine offers ([`MemoryControl`], chosen
//! once when the sandbox is made), one limit for one command ([`MemoryLimit`]: its peak, whether
//! the kernel killed something in it for memory), and the sweep of groups a crashed server left.
//!
//! - **cgroup v2**, where the server's own cgroup (`0::PATH` in `/proc/self/cgroup`) is writable
//!   and may hand the `memory` controller to children: a child group per limit with
//!   `memory.max` (no swap, and the whole group killed together on OOM where the kernel allows).
//! - **cgroup v1**, where the server's memory-controller group is writable: a child group with
//!   `memory.limit_in_bytes` (and the same memory + swap limit where swap is accounted).
//! - Otherwise **`RLIMIT_AS`**, set on the command's process before it is executed: it limits
//!   the address space of each process (not their sum, and counting reservations that are
//!   never touched), its peak is the largest resident high-water mark (`VmHWM`) seen, and a
//!   process that hits it sees failed allocations rather than a kill, so
//!   [`MemoryLimit::exceeded`] cannot tell.
//!
//! The group is joined by the command's own processes, never by the supervisor: the confined
//! part of `sandbox-exec` writes itself into `cgroup.procs` before it restricts itself and
//! executes the command, and refuses to run when it cannot ([`crate::confine`]). Groups are
//! named `nimbus-PID-LABEL-ID` (PID the server's), so that a later server can tell a leftover
//! of a dead one from a group of a live one.
//!
//! What does not live here: starting the command (see [`crate::Sandbox::run`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The prefix of every memory group nimbus makes.
const PREFIX: &str = "nimbus-";
/// How long the removal of a group that still holds exiting processes is retried.
const REMOVE_TRIES: u32 = 50;
const REMOVE_PAUSE: Duration = Duration::from_millis(100);

/// How the memory of commands is limited on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryControl {
    /// A cgroup v2 directory of ours whose children have the `memory` controller.
    CgroupV2(PathBuf),
    /// A cgroup v1 memory-controller directory of ours, where children can be made.
    CgroupV1(PathBuf),
    /// No writable memory cgroup: `RLIMIT_AS` on each of the command's processes.
    AddressSpace,
}

impl MemoryControl {
    /// The best control this process can use, probed by making (and removing) a child group.
    pub fn detect() -> MemoryControl {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for (version, dir) in candidates(&cgroup, &mountinfo) {
            match version {
                Version::V2 if usable_v2(&dir) => return MemoryControl::CgroupV2(dir),
                Version::V1 if usable_v1(&dir) => return MemoryControl::CgroupV1(dir),
                _ => {}
            }
        }
        MemoryControl::AddressSpace
    }

    /// Words for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            MemoryControl::CgroupV2(dir) => format!("memory limits by cgroup v2 under {}", dir.display()),
            MemoryControl::CgroupV1(dir) => format!("memory limits by cgroup v1 under {}", dir.display()),
            MemoryControl::AddressSpace => {
                "memory limits by RLIMIT_AS per process (no writable memory cgroup: peaks are approximate and \
                 out-of-memory kills are not seen)"
                    .to_string()
            }
        }
    }

    /// Makes the group of one limit (nothing for `RLIMIT_AS`).
    pub(crate) fn limit(&self, label: &str, limit_bytes: u64) -> std::io::Result<MemoryLimit> {
        let group = match self {
            MemoryControl::AddressSpace => Group::AddressSpace { supervisor: Mutex::new(None) },
            MemoryControl::CgroupV1(parent) | MemoryControl::CgroupV2(parent) => {
                let v2 = matches!(self, MemoryControl::CgroupV2(_));
                let dir = parent.join(group_name(label));
                std::fs::create_dir(&dir)?;
                // From here on the group is removed on failure (the limit's drop).
                let limit = MemoryLimit {
                    group: Group::Cgroup { v2, dir: dir.clone() },
                    limit_bytes,
                    seen: 0.into(),
                    peak_file: Mutex::new(None),
                };
                let bytes = limit_bytes.to_string();
                if v2 {
                    std::fs::write(dir.join("memory.max"), &bytes)?;
                    // Best effort: no swap (where swap is accounted), and the whole group killed
                    // together on OOM, as a Lambda instance dies whole.
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    let _ = std::fs::write(dir.join("memory.oom.group"), "1");
                } else {
                    std::fs::write(dir.join("memory.limit_in_bytes"), &bytes)?;
                    // Memory + swap at the same limit means no swap; absent without swap accounting.
                    let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes);
                }
                return Ok(limit);
            }
        };
        Ok(MemoryLimit { group, limit_bytes, seen: 0.into(), peak_file: Mutex::new(None) })
    }
}

/// One command's memory limit. Shared (`Arc`) between whoever reads its peak and the runs that
/// use it; dropping the last one removes its group.
#[derive(Debug)]
pub struct MemoryLimit {
    group: Group,
    limit_bytes: u64,
    /// The largest usage seen, for controls that offer no peak of their own.
    seen: AtomicU64,
    /// The group's peak file, opened once: it is read after every invocation.
    peak_file: Mutex<Option<std::fs::File>>,
}

#[derive(Debug)]
enum Group {
    Cgroup {
        v2: bool,
        dir: PathBuf,
    },
    /// The command's processes are the descendants of the supervisor last attached.
    AddressSpace {
        supervisor: Mutex<Option<i32>>,
    },
}

/// What the supervising helper is told to apply for a limit.
pub(crate) enum HelperArg<'a> {
    Cgroup(&'a Path),
    AddressSpace(u64),
}

impl MemoryLimit {
    /// The limit, bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The group's directory (none for `RLIMIT_AS`).
    pub fn cgroup_dir(&self) -> Option<&Path> {
        match &self.group {
            Group::Cgroup { dir, .. } => Some(dir),
            Group::AddressSpace { .. } => None,
        }
    }

    /// The most memory the command has used so far (readable while it runs), bytes; `None`
    /// when the kernel does not tell.
    pub fn peak_bytes(&self) -> Option<u64> {
        let now = match &self.group {
            Group::Cgroup { v2, dir } => {
                let name = if *v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
                if let Some(peak) = self.read_peak_file(&dir.join(name)) {
                    return Some(peak);
                }
                if !*v2 {
                    return None;
                }
                // Before Linux 5.19: the current usage, the largest seen kept below.
                read_number(&dir.join("memory.current"))
            }
            Group::AddressSpace { supervisor } => {
                let root = *supervisor.lock().unwrap_or_else(|e| e.into_inner());
                root.map(|root| {
                    crate::confine::descendants(root).into_iter().filter_map(high_water_mark).max().unwrap_or(0)
                })
            }
        };
        let seen = self.seen.fetch_max(now.unwrap_or(0), Ordering::Relaxed).max(now.unwrap_or(0));
        (seen > 0).then_some(seen)
    }

    /// Reads the peak file, opening it on first use and then re-reading it from its start.
    fn read_peak_file(&self, path: &Path) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut file = self.peak_file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            *file = std::fs::File::open(path).ok();
        }
        let mut buf = [0u8; 32];
        let n = file.as_ref()?.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Whether the kernel killed a process of the group for exceeding the limit. Always false
    /// for `RLIMIT_AS`, whose processes see failed allocations instead.
    pub fn exceeded(&self) -> bool {
        let (v2, dir) = match &self.group {
            Group::Cgroup { v2, dir } => (*v2, dir),
            Group::AddressSpace { .. } => return false,
        };
        let events = if v2 { "memory.events" } else { "memory.oom_control" };
        let text = std::fs::read_to_string(dir.join(events)).unwrap_or_default();
        if let Some(kills) = field(&text, "oom_kill") {
            return kills > 0;
        }
        // Kernels before 4.13 count no OOM kills: the limit was hit (v1), or the group is in OOM.
        if v2 {
            return field(&text, "oom").is_some_and(|n| n > 0);
        }
        field(&text, "under_oom").is_some_and(|n| n > 0)
            || read_number(&dir.join("memory.memsw.failcnt")).is_some_and(|n| n > 0)
    }

    /// What `sandbox-exec` is asked to do.
    pub(crate) fn helper_arg(&self) -> HelperArg<'_> {
        match &self.group {
            Group::Cgroup { dir, .. } => HelperArg::Cgroup(dir),
            Group::AddressSpace { .. } => HelperArg::AddressSpace(self.limit_bytes),
        }
    }

    /// Records the supervisor of the run now using the limit (its descendants' peaks count).
    pub(crate) fn attach(&self, supervisor: i32) {
        if let Group::AddressSpace { supervisor: s } = &self.group {
            *s.lock().unwrap_or_else(|e| e.into_inner()) = Some(supervisor);
        }
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        drop(self.peak_file.get_mut().map(Option::take));
        let Group::Cgroup { dir, .. } = &self.group else { return };
        if remove_group(dir).is_ok() {
            return;
        }
        // Processes still exiting (or, had any escaped the run's end, still running: only the
        // command's processes are ever put in the group, so they are killed) keep the group;
        // retry away from the caller, which may be an async task.
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut last = None;
            for _ in 0..REMOVE_TRIES {
                kill_members(&dir);
                std::thread::sleep(REMOVE_PAUSE);
                match remove_group(&dir) {
                    Ok(()) => return,
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                tracing::warn!(path = %dir.display(), error = %e, "could not remove a memory cgroup");
            }
        });
    }
}

/// Removes the empty groups of dead servers under the control's directory (left by a crash);
/// returns how many.
pub fn sweep(control: &MemoryControl) -> usize {
    let (MemoryControl::CgroupV1(parent) | MemoryControl::CgroupV2(parent)) = control else { return 0 };
    let mut removed = 0;
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_pid) else { continue };
        // A group of a live server may be empty between its runs; only a dead one's are taken.
        if Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        let empty = std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
        if empty && std::fs::remove_dir(&dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `nimbus-PID-LABEL-ID` for a label (made safe) and a fresh id.
fn group_name(label: &str) -> String {
    let safe: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(60).collect();
    format!("{PREFIX}{}-{safe}-{}", std::process::id(), nimbus_core::new_id())
}

/// The pid of the server that made a group named `name`, when nimbus made it.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

fn remove_group(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn kill_members(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The number after `key` on its line of a `key value` file.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A process's resident high-water mark (`VmHWM`), bytes.
fn high_water_mark(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim().parse::<u64>();
    kb.ok().map(|kb| kb * 1024)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V2,
    V1,
}

/// The server's own memory cgroup directories, best first: the v2 group (of the `0::PATH` line)
/// where cgroup2 is mounted, then the v1 group of the `memory` controller where it is mounted.
fn candidates(cgroup: &str, mountinfo: &str) -> Vec<(Version, PathBuf)> {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let mut out = Vec::new();
    let own = |controllers: &dyn Fn(&str) -> bool| {
        cgroup.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers(names).then(|| path.to_string())
        })
    };
    if let Some(path) = own(&|names| names.is_empty()) {
        for m in mounts.iter().filter(|m| m.fstype == "cgroup2") {
            if let Some(dir) = m.dir_of(&path) {
                out.push((Version::V2, dir));
            }
        }
    }
    if let Some(path) = own(&|names| names.split(',').any(|n| n == "memory")) {
        let memory = |m: &&Mount| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "memory");
        for m in mounts.iter().filter(memory) {
            if let Some(dir) = m.dir_of(&path) {
                out.push((Version::V1, dir));
            }
        }
    }
    out
}

/// One line of `/proc/self/mountinfo`: `ID PARENT DEV ROOT MOUNT_POINT OPTS… - FSTYPE SOURCE SUPER_OPTS`.
struct Mount {
    root: String,
    point: PathBuf,
    fstype: String,
    options: String,
}

impl Mount {
    fn parse(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, _source, options) = (right.next()?, right.next()?, right.next().unwrap_or(""));
        Some(Mount {
            root: unescape(left.get(3)?),
            point: PathBuf::from(unescape(left.get(4)?)),
            fstype: fstype.to_string(),
            options: options.to_string(),
        })
    }

    /// Where the group at `path` (as `/proc/self/cgroup` names it) is under this mount.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rel = Path::new(path).strip_prefix(&self.root).ok()?;
        Some(self.point.join(rel))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether children of the v2 group `dir` get the memory controller, enabling it when it is not
/// yet: the group must offer it (`cgroup.controllers`), and hand it down (`cgroup.subtree_control`;
/// the kernel refuses while the group itself holds processes, except at the root).
fn usable_v2(dir: &Path) -> bool {
    let has =
        |file: &str| std::fs::read_to_string(dir.join(file)).is_ok_and(|t| t.split_whitespace().any(|c| c == "memory"));
    if !has("cgroup.controllers") {
        return false;
    }
    if !has("cgroup.subtree_control") && std::fs::write(dir.join("cgroup.subtree_control"), "+memory").is_err() {
        return false;
    }
    probe(dir, "memory.max")
}

/// Whether a child of the v1 memory group `dir` can be made here.
fn usable_v1(dir: &Path) -> bool {
    probe(dir, "memory.limit_in_bytes")
}

/// Makes and removes a child group of `dir`, which must have `file`.
fn probe(dir: &Path, file: &str) -> bool {
    let child = dir.join(group_name("probe"));
    if std::fs::create_dir(&child).is_err() {
        return false;
    }
    let usable = child.join(file).exists();
    let _ = std::fs::remove_dir(&child);
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /inner /mnt/my\\040cgroups rw - cgroup2 none rw";

    #[test]
    fn finds_our_groups_under_their_mounts() {
        let cgroup = "4:memory:/process_api/a18c\n2:cpu,cpuacct:/\n0::/inner/svc\n";
        let found = candidates(cgroup, MOUNTINFO);
        assert_eq!(
            found,
            [
                (Version::V2, PathBuf::from("/sys/fs/cgroup/unified/inner/svc")),
                (Version::V2, PathBuf::from("/mnt/my cgroups/svc")),
                (Version::V1, PathBuf::from("/sys/fs/cgroup/memory/process_api/a18c")),
            ]
        );
        // Pure v2 (no memory line): only the unified group.
        let found = candidates("0::/\n", MOUNTINFO);
        assert_eq!(found[0], (Version::V2, PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(found.iter().all(|(v, _)| *v == Version::V2));
        assert!(candidates("", MOUNTINFO).is_empty());
    }

    #[test]
    fn reads_the_kernels_counters() {
        assert_eq!(field("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill"), Some(2));
        assert_eq!(field("low 0\nhigh 0\nmax 5\noom 1\noom_kill 0\n", "oom"), Some(1));
        assert_eq!(field("under_oom 0\n", "oom_kill"), None);
    }

    #[test]
    fn only_groups_of_dead_servers_are_swept() {
        let name = group_name("fn/a b");
        assert!(name.starts_with(&format!("nimbus-{}-fn_a_b-", std::process::id())), "{name}");
        assert_eq!(owner_pid(&name), Some(std::process::id()));
        assert_eq!(owner_pid("nimbus-server"), None);
        assert_eq!(owner_pid("other-1-x"), None);
    }
}
