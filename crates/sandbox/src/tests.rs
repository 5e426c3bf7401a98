//! Runs without the confining helper (the test binary is not nimbus): process groups, timeouts,
//! cancels and bounded logs. Confinement itself is tested through the real binary
//! (`crates/nimbus/tests/it/hardening_processes.rs`).

use std::time::Duration;

use super::*;

fn unconfined() -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    (dir, Sandbox::detect(&data, None, true))
}

fn sh(script: &str, timeout: Duration, cwd: &Path) -> Command {
    Command {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        cwd: cwd.to_path_buf(),
        timeout,
        log: LogLimits::default(),
        ..Command::default()
    }
}

/// Processes whose command line contains `marker`, found by walking /proc.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) && !cmdline.contains("processes_with") {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

async fn run(sandbox: &Sandbox, cmd: &Command) -> Outcome {
    let (_tx, rx) = watch::channel(false);
    sandbox.run(cmd, rx, &mut |_| {}).await.unwrap()
}

#[tokio::test]
async fn background_children_end_with_the_command() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("bg").unwrap();
    let marker = format!("sleep 4242{}", std::process::id() % 1000);
    let cmd = sh(&format!("{marker} & echo ok"), Duration::from_secs(30), work.path());
    let outcome = run(&sandbox, &cmd).await;
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), success: true, signal: None });
    assert_eq!(outcome.log.text(), "ok");
    assert!(processes_with(&marker).is_empty(), "left behind: {:?}", processes_with(&marker));
    assert_eq!(sandbox.running(), 0);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("timeout").unwrap();
    let marker = format!("sleep 4343{}", std::process::id() % 1000);
    let cmd = sh(&format!("{marker} & {marker}; echo never"), Duration::from_millis(300), work.path());
    let outcome = run(&sandbox, &cmd).await;
    assert_eq!(outcome.ending, Ending::TimedOut(Duration::from_millis(300)));
    assert!(!outcome.log.text().contains("never"));
    assert!(processes_with(&marker).is_empty(), "left behind: {:?}", processes_with(&marker));
}

#[tokio::test]
async fn cancel_and_kill_all_end_running_commands() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("cancel").unwrap();
    let marker = format!("sleep 4444{}", std::process::id() % 1000);
    let cmd = sh(&marker, Duration::from_secs(60), work.path());
    let (tx, rx) = watch::channel(false);
    let s = sandbox.clone();
    let running = tokio::spawn(async move { s.run(&cmd, rx, &mut |_| {}).await.unwrap() });
    while processes_with(&marker).is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).unwrap();
    assert_eq!(running.await.unwrap().ending, Ending::Cancelled);
    assert!(processes_with(&marker).is_empty());

    let cmd = sh(&marker, Duration::from_secs(60), work.path());
    let (_tx, rx) = watch::channel(false);
    let s = sandbox.clone();
    let running = tokio::spawn(async move { s.run(&cmd, rx, &mut |_| {}).await.unwrap() });
    while processes_with(&marker).is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandbox.kill_all(), 1);
    let ending = running.await.unwrap().ending;
    assert!(matches!(ending, Ending::Exited { success: false, .. }), "{ending:?}");
    assert!(processes_with(&marker).is_empty());
}

#[tokio::test]
async fn output_is_bounded_and_the_environment_is_only_what_was_given() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("log").unwrap();
    let mut cmd = sh(
        "echo \"home=${HOME:-unset}\" >&2; sleep 0.2; head -c 3000000 /dev/zero | tr '\\0' x; echo; seq 1 200000",
        Duration::from_secs(30),
        work.path(),
    );
    cmd.log = LogLimits { max_line_bytes: 100, max_bytes: 64 * 1024 };
    let outcome = run(&sandbox, &cmd).await;
    let text = outcome.log.text();
    assert!(text.len() < 70 * 1024, "{}", text.len());
    assert!(text.starts_with(&format!("stderr: home=unset\n{}{}", "x".repeat(100), log::CUT)), "{}", &text[..200]);
    assert!(text.ends_with("\n200000"), "{}", &text[text.len() - 100..]);
    assert!(outcome.log.truncated());
}

#[test]
fn work_directories_are_outside_the_data_dir_and_removed() {
    let (d, sandbox) = unconfined();
    let work = sandbox.work_dir("step/../x").unwrap();
    let path = work.path().to_path_buf();
    assert!(!path.starts_with(d.path().join("data")));
    assert!(path.file_name().unwrap().to_string_lossy().starts_with("step____x-"));
    std::fs::write(path.join("f"), b"x").unwrap();
    drop(work);
    assert!(!path.exists());
    assert!(sandbox.describe().contains("NOT sandboxed"));
    let refusing = Sandbox::detect(&d.path().join("data"), None, false);
    assert!(matches!(refusing.check_usable(), Err(SandboxError::Unavailable)));
}

#[tokio::test]
async fn lines_are_streamed_in_order_as_they_arrive() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("lines").unwrap();
    let mut cmd =
        sh("echo one; echo two >&2; echo three; echo four >&2; printf five", Duration::from_secs(30), work.path());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    cmd.lines = Some(tx);
    let outcome = run(&sandbox, &cmd).await;
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), success: true, signal: None });
    drop(cmd);
    let mut got: Vec<(bool, String)> = Vec::new();
    while let Some((is_err, line)) = rx.recv().await {
        got.push((is_err, String::from_utf8(line).unwrap()));
    }
    // Each stream keeps its order; how the two interleave is up to the scheduler.
    let of = |err: bool| got.iter().filter(|(e, _)| *e == err).map(|(_, l)| l.as_str()).collect::<Vec<_>>();
    assert_eq!(of(false), ["one", "three", "five"]);
    assert_eq!(of(true), ["two", "four"]);
    // The bounded log has them too.
    for line in ["one", "stderr: two", "three", "stderr: four", "five"] {
        assert!(outcome.log.text().lines().any(|l| l == line), "{line}: {}", outcome.log.text());
    }
}

#[tokio::test]
async fn a_receiver_that_went_away_does_not_break_the_run() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("gone").unwrap();
    let mut cmd = sh("seq 1 1000; echo done", Duration::from_secs(30), work.path());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx);
    cmd.lines = Some(tx);
    let outcome = run(&sandbox, &cmd).await;
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), success: true, signal: None });
    assert_eq!(outcome.log.last_line(), "done");
}

#[tokio::test]
async fn the_ending_names_the_exit_status_or_the_signal() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("ending").unwrap();
    // (script, the ending, Lambda's words for it)
    let cases: &[(&str, Ending, &str)] = &[
        ("exit 3", Ending::Exited { code: Some(3), success: false, signal: None }, "exit status 3"),
        ("true", Ending::Exited { code: Some(0), success: true, signal: None }, "exit status 0"),
        ("kill -9 $$", Ending::Exited { code: None, success: false, signal: Some(9) }, "signal: killed"),
        ("kill -TERM $$", Ending::Exited { code: None, success: false, signal: Some(15) }, "signal: terminated"),
    ];
    let mut failures = Vec::new();
    for (script, ending, words) in cases {
        let outcome = run(&sandbox, &sh(script, Duration::from_secs(30), work.path())).await;
        if (&outcome.ending, outcome.ending.describe().as_str()) != (ending, *words) {
            failures.push(format!("{script}: {:?} ({})", outcome.ending, outcome.ending.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn signals_are_named_in_gos_words() {
    let signalled = |s| Ending::Exited { code: None, success: false, signal: Some(s) }.describe();
    let cases = [
        (6, "signal: aborted"),
        (7, "signal: bus error"),
        (11, "signal: segmentation fault"),
        (13, "signal: broken pipe"),
        (1, "signal: hangup"),
        (31, "signal: bad system call"),
        (34, "signal: signal 34"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(s, words)| signalled(*s) != *words)
        .map(|(s, words)| format!("{s}: {} instead of {words}", signalled(*s)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[tokio::test]
async fn a_memory_limit_without_the_helper_is_refused() {
    let (_d, sandbox) = unconfined();
    let work = sandbox.work_dir("memory").unwrap();
    let mut cmd = sh("echo ran", Duration::from_secs(30), work.path());
    cmd.memory = Some(match sandbox.memory_limit("refused", 64 << 20) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("skipping: no memory limit can be made here: {e}");
            return;
        }
    });
    let (_tx, rx) = watch::channel(false);
    let refused = sandbox.run(&cmd, rx, &mut |_| {}).await;
    assert!(matches!(refused, Err(SandboxError::MemoryNeedsHelper)), "{refused:?}");
    let dir = cmd.memory.as_ref().and_then(|m| m.cgroup_dir().map(Path::to_path_buf));
    drop(cmd);
    if let Some(dir) = dir {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}
