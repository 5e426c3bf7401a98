//! What a long-lived command (a process function's instance) needs of the sandbox, through the
//! real helper (`nimbus sandbox-exec`): its ending in Lambda's words across the supervisor, a
//! memory limit (killed past it, its peak readable while it runs, its cgroup gone after), lines
//! streamed as they come, and a directory it can read and run but not change.
//!
//! These drive `nimbus_sandbox::Sandbox` directly with this build's binary as the helper, as the
//! server does. Tests that need a memory cgroup or Landlock say so and skip where the machine
//! has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_sandbox::{Choice, Command, Ending, MemoryControl, MemoryLimit, Outcome, Protection, Sandbox};

const MIB: u64 = 1024 * 1024;

/// A sandbox of the real helper for a fresh data directory (kept alive by the returned dir).
fn sandbox(choice: Choice) -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_nimbus"));
    (dir, Sandbox::choose(&data, Some(helper), false, choice))
}

fn sh(script: &str, cwd: &Path) -> Command {
    Command {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        cwd: cwd.to_path_buf(),
        timeout: Duration::from_secs(120),
        ..Command::default()
    }
}

async fn run(sandbox: &Sandbox, cmd: &Command) -> Outcome {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    sandbox.run(cmd, rx, &mut |_| {}).await.unwrap()
}

/// The memory limit, or why this machine cannot test it.
fn cgroup_limit(sandbox: &Sandbox, label: &str, bytes: u64) -> Option<Arc<MemoryLimit>> {
    if *sandbox.memory_control() == MemoryControl::AddressSpace {
        eprintln!("skipping: no writable memory cgroup on this machine ({})", sandbox.describe());
        return None;
    }
    Some(sandbox.memory_limit(label, bytes).unwrap())
}

/// Waits (generously) for a dropped limit's cgroup to be removed.
fn assert_removed(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() {
        assert!(Instant::now() < deadline, "the memory cgroup {} is left", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `nimbus sandbox-exec ARGS` to its end, holding its stdin (its stop switch) open.
fn helper(args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .arg("sandbox-exec")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    out
}

#[tokio::test]
async fn the_commands_ending_passes_through_the_supervisor_in_lambdas_words() {
    let mut choices = vec![Choice::Auto];
    if nimbus_sandbox::is_root() {
        choices.push(Choice::SeparateUser);
    }
    // (script, Lambda's words for its ending)
    let cases = [
        ("exit 3", "exit status 3"),
        ("exit 0", "exit status 0"),
        // A code above 128 is the command's own, not a signal.
        ("exit 137", "exit status 137"),
        ("kill -9 $$", "signal: killed"),
        ("kill -SEGV $$", "signal: segmentation fault"),
        ("kill -BUS $$", "signal: bus error"),
        ("kill -ABRT $$", "signal: aborted"),
        ("kill -TERM $$", "signal: terminated"),
        ("kill -PIPE $$", "signal: broken pipe"),
    ];
    let mut failures = Vec::new();
    for choice in choices {
        let (_d, sandbox) = sandbox(choice);
        assert_ne!(*sandbox.protection(), Protection::Unconfined, "{}", sandbox.describe());
        let work = sandbox.work_dir("ending").unwrap();
        for (script, words) in cases {
            let outcome = run(&sandbox, &sh(script, work.path())).await;
            if outcome.ending.describe() != words {
                failures.push(format!("{choice:?} {script}: {:?} ({})", outcome.ending, outcome.log.text()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_command_past_its_memory_limit_is_killed_and_the_kill_is_seen() {
    let (_d, sandbox) = sandbox(Choice::Auto);
    let Some(limit) = cgroup_limit(&sandbox, "over", 64 * MIB) else { return };
    let dir = limit.cgroup_dir().unwrap().to_path_buf();
    assert!(dir.exists());
    let work = sandbox.work_dir("over").unwrap();
    let mut cmd =
        sh("echo start; exec python3 -c 'x = b\"x\" * (300 * 1024 * 1024); print(\"survived\")'", work.path());
    cmd.memory = Some(limit.clone());
    let outcome = run(&sandbox, &cmd).await;
    assert_eq!(outcome.ending.describe(), "signal: killed", "{}", outcome.log.text());
    assert!(!outcome.log.text().contains("survived"), "{}", outcome.log.text());
    assert!(limit.exceeded(), "the OOM kill is seen");
    let peak = limit.peak_bytes().expect("a peak");
    assert!((32 * MIB..=65 * MIB).contains(&peak), "peak {peak} for a 64 MiB limit");
    drop(cmd);
    drop(limit);
    assert_removed(&dir);
}

#[tokio::test]
async fn a_command_under_its_limit_reports_its_peak_while_it_runs() {
    let (_d, sandbox) = sandbox(Choice::Auto);
    let Some(limit) = cgroup_limit(&sandbox, "under", 256 * MIB) else { return };
    let dir = limit.cgroup_dir().unwrap().to_path_buf();
    let work = sandbox.work_dir("under").unwrap();
    // Holds 40 MiB, says so, and waits to be stopped, as a function instance between invocations.
    let script = "import sys, time\nx = b'x' * (40 * 1024 * 1024)\nprint('allocated', flush=True)\ntime.sleep(600)";
    let mut cmd = sh(&format!("exec python3 -c \"{script}\""), work.path());
    cmd.memory = Some(limit.clone());
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    cmd.lines = Some(lines_tx);
    let (stop, cancel) = tokio::sync::watch::channel(false);
    let s = sandbox.clone();
    let running = tokio::spawn(async move { s.run(&cmd, cancel, &mut |_| {}).await.unwrap() });
    match lines.recv().await {
        Some((false, line)) if line == b"allocated" => {}
        other => panic!("expected the line `allocated`, got {other:?}"),
    }
    let peak = limit.peak_bytes().expect("a peak while it runs");
    assert!((40 * MIB..256 * MIB).contains(&peak), "peak {peak} for 40 MiB held");
    assert!(!limit.exceeded());
    // The command's processes are in the group, and the supervisor is not.
    let members = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    let commands: Vec<String> = members
        .lines()
        .map(|pid| {
            String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
                .replace('\0', " ")
        })
        .collect();
    assert!(commands.iter().any(|c| c.contains("python3 -c")), "{commands:?}");
    assert!(!commands.iter().any(|c| c.contains("sandbox-exec")), "{commands:?}");
    stop.send(true).unwrap();
    assert_eq!(running.await.unwrap().ending, Ending::Cancelled);
    assert!(limit.peak_bytes().unwrap() >= peak, "the peak does not go down");
    drop(limit);
    assert_removed(&dir);
}

#[test]
fn the_address_space_limit_is_applied_by_the_confined_part() {
    // The fallback where no memory cgroup is writable, driven through the helper's arguments.
    let status = |limit: u64| {
        let limit = limit.to_string();
        let out = helper(&["--rlimit-as", &limit, "--", "python3", "-c", "x = b'x' * (300 * 1024 * 1024)"]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = status(200 * MIB);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("MemoryError"), "{err}");
    let (code, err) = status(4096 * MIB);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_cgroup_that_cannot_be_joined_is_refused_not_ignored() {
    let out = helper(&["--cgroup", "/nonexistent/cgroup", "--", "echo", "ran"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty(), "the command ran: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot join the memory cgroup /nonexistent/cgroup"), "{err}");
}

#[tokio::test]
async fn leftover_groups_of_a_dead_server_are_swept_at_start() {
    let (_d, sandbox) = sandbox(Choice::Auto);
    let parent = match sandbox.memory_control() {
        MemoryControl::CgroupV1(p) | MemoryControl::CgroupV2(p) => p.clone(),
        MemoryControl::AddressSpace => {
            eprintln!("skipping: no writable memory cgroup on this machine ({})", sandbox.describe());
            return;
        }
    };
    // A pid no process has now: that of a finished child.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let leftover = parent.join(format!("nimbus-{dead}-crashed-1"));
    let live = parent.join(format!("nimbus-{}-live-1", std::process::id()));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::create_dir(&live).unwrap();
    let (_d2, _again) = self::sandbox(Choice::Auto);
    let (leftover_kept, live_kept) = (leftover.exists(), live.exists());
    let _ = std::fs::remove_dir(&leftover);
    std::fs::remove_dir(&live).unwrap();
    assert!(!leftover_kept, "the dead server's group is removed");
    assert!(live_kept, "a live server's group is kept");
}

#[tokio::test]
async fn a_read_only_directory_can_be_read_and_run_but_not_changed() {
    let (_d, sandbox) = sandbox(Choice::Auto);
    if *sandbox.protection() != Protection::Landlock {
        eprintln!("skipping: Landlock is not available here ({})", sandbox.describe());
        return;
    }
    let code = tempfile::tempdir().unwrap();
    let task = code.path().join("task");
    std::fs::create_dir_all(task.join("lib")).unwrap();
    std::fs::write(task.join("app.txt"), "the code\n").unwrap();
    std::fs::write(task.join("run.sh"), "#!/bin/sh\necho handler ran\n").unwrap();
    std::fs::set_permissions(task.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let work = sandbox.work_dir("readonly").unwrap();
    // Each attempt prints `NAME: ok` or `NAME: denied`.
    let attempts = [
        ("read", "cat \"$T\"/app.txt", true),
        ("list", "ls \"$T\"/lib", true),
        ("run", "\"$T\"/run.sh", true),
        ("write", "echo changed > \"$T\"/app.txt", false),
        ("append", "echo more >> \"$T\"/app.txt", false),
        ("create", "touch \"$T\"/new", false),
        ("mkdir", "mkdir \"$T\"/lib/new", false),
        ("remove", "rm -f \"$T\"/app.txt", false),
        ("rename", "mv \"$T\"/app.txt \"$T\"/moved", false),
        ("move out", "mv \"$T\"/app.txt ./moved", false),
        ("work dir", "echo x > ./written", true),
    ];
    let script: String = attempts
        .iter()
        .map(|(name, a, _)| format!("if {a} >/dev/null 2>&1; then echo '{name}: ok'; else echo '{name}: denied'; fi\n"))
        .collect();
    let mut cmd = sh(&script, work.path());
    cmd.env.push(("T".into(), task.display().to_string()));
    cmd.read_only = vec![task.clone()];
    let outcome = run(&sandbox, &cmd).await;
    let log = outcome.log.text();
    let wrong: Vec<String> = attempts
        .iter()
        .filter(|(name, _, allowed)| !log.contains(&format!("{name}: {}", if *allowed { "ok" } else { "denied" })))
        .map(|(name, _, allowed)| format!("{name} should be {}", if *allowed { "allowed" } else { "denied" }))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}\n{log}");
    assert_eq!(std::fs::read_to_string(task.join("app.txt")).unwrap(), "the code\n");
    assert!(!task.join("new").exists() && !task.join("moved").exists());
}

#[tokio::test]
async fn as_the_separate_user_a_writable_read_only_directory_is_refused() {
    if !nimbus_sandbox::is_root() {
        eprintln!("skipping: the separate-user sandbox needs the tests to run as root");
        return;
    }
    let (_d, sandbox) = sandbox(Choice::SeparateUser);
    let code = tempfile::tempdir().unwrap();
    let task = code.path().join("task");
    std::fs::create_dir(&task).unwrap();
    std::fs::write(task.join("app.txt"), "the code\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(code.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = sandbox.work_dir("readonly").unwrap();
    let mut cmd = sh("cat \"$T\"/app.txt; touch \"$T\"/new && echo created", work.path());
    cmd.env.push(("T".into(), task.display().to_string()));
    cmd.read_only = vec![task.clone()];

    std::fs::set_permissions(&task, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let refused = sandbox.run(&cmd, rx, &mut |_| {}).await;
    assert!(matches!(refused, Err(nimbus_sandbox::SandboxError::ReadOnlyWritable { .. })), "{refused:?}");

    std::fs::set_permissions(&task, std::fs::Permissions::from_mode(0o555)).unwrap();
    let log = run(&sandbox, &cmd).await.log.text();
    assert!(log.contains("the code") && !log.contains("created"), "{log}");
    assert!(!task.join("new").exists());
}
