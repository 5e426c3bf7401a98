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
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0), success: true });
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
