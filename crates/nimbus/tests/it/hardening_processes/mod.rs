//! The `process` step's hardening, through the real binary: commands cannot read the data
//! directory, leave no process or work directory behind (timeout, stop, shutdown, crash),
//! cannot be handed shell code through a parameter or a name, keep their logs bounded; retries
//! and leases let exactly one server run an execution. What long-lived commands (process
//! functions' instances) need of the sandbox is in `instances`.
//!
//! Leftover processes are found by walking `/proc` for a marker unique to the test (a sleep
//! length no one else uses), so each test also checks that it could see the process while it
//! ran.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Backend, Nimbus, backends};

/// A number for `sleep` that no other process on the machine uses: it marks the processes of
/// one test.
fn marker() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("7{:07}{:03}{n:02}", std::process::id() % 10_000_000, nanos % 1000)
}

/// A name unique to this run, usable as a pipeline name (letters, digits and `-`).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", marker())
}

/// Live (not zombie) processes whose command line contains `needle`: (pid, command line).
fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
            .unwrap_or(true);
        if cmdline.contains(needle) && !zombie && pid != std::process::id() {
            found.push((pid, cmdline.trim().to_string()));
        }
    }
    found
}

/// Waits (generously) until at least `count` processes carry `needle`.
fn wait_for_processes(needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(needle).len() < count {
        assert!(Instant::now() < deadline, "the step's processes ({needle}) never showed up in /proc");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that, within a few seconds, no process carries `needle`.
fn assert_no_process_left(needle: &str, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(needle);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            // Do not leave them running for the next test either.
            for (pid, _) in &left {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            panic!("{when}: processes left behind: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a project (`nimbus.toml` with `body` after the `[project]` table) into a directory of
/// the data dir and returns that directory.
fn project(n: &Nimbus, name: &str, body: &str) -> PathBuf {
    let dir = n.data_dir().join(format!("project-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nimbus.toml"), format!("[project]\nname = \"{name}\"\n\n{body}")).unwrap();
    dir
}

/// Applies a project and expects success.
fn apply(n: &Nimbus, dir: &Path) {
    n.ok(&["apply", dir.to_str().unwrap()]);
}

/// Starts a run without waiting; returns the execution id.
fn start(n: &Nimbus, args: &[&str]) -> String {
    let mut all = vec!["pipelines", "run"];
    all.extend(args);
    n.json(&all)["id"].as_str().unwrap().to_string()
}

/// Polls an execution until it leaves `Running` (or `timeout` passes, which fails the test).
fn wait_until_done(n: &Nimbus, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let e = n.json(&["pipelines", "describe", id]);
        if e["status"] != "Running" {
            return e;
        }
        assert!(Instant::now() < deadline, "{id} still runs after {timeout:?}: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}: {e}"))
}

/// The sandbox's work root, as the server computes it (`TMPDIR/nimbus-work`).
fn work_root() -> PathBuf {
    std::env::temp_dir().join("nimbus-work")
}

/// Work directories of an execution (they are named `EXECUTION-STEP-ID`).
fn work_dirs_of(execution: &str) -> Vec<String> {
    let prefix = format!("{execution}-");
    std::fs::read_dir(work_root())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The pid of the `nimbus serve` of this data directory.
fn server_pid(n: &Nimbus) -> u32 {
    let dir = n.data_dir().display().to_string();
    let found: Vec<_> = processes_with(&dir)
        .into_iter()
        .filter(|(_, c)| c.contains(" serve ") && !c.contains("sandbox-exec"))
        .collect();
    assert_eq!(found.len(), 1, "one server for {dir}: {found:?}");
    found[0].0
}

mod executions;
mod instances;
mod sandbox;
