//! `nimbus up examples/titanic`, the one-command demo, as a newcomer runs it: it trains,
//! approves, answers the seeds' passengers, prints commands that work, and keeps serving; a
//! second run on the same data directory reuses the model.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Starts `nimbus up` and collects its stdout until it says it is serving. (A panic here
/// leaves the child to the test process's exit.)
#[allow(clippy::zombie_processes)]
fn up(data_dir: &Path) -> (Child, Vec<String>, Receiver<String>) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["up", example.to_str().unwrap(), "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("NIMBUS_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
            panic!("nimbus up never said it was serving:\n{}", lines.join("\n"));
        });
        lines.push(line.clone());
        if line.starts_with("Serving on ") {
            return (child, lines, rx);
        }
    }
}

fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "nimbus up exits 0 on SIGTERM");
}

#[test]
fn up_trains_approves_serves_and_prints_commands_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, _rx) = up(dir.path());
    let out = lines.join("\n");
    for want in [
        "function predict: create (serves model group titanic, latest-approved)",
        "Model group titanic has no version yet: running pipeline titanic",
        "registered titanic version 1",
        "approved titanic version 1 (up.auto_approve = true",
        "-> 200 OK in ",
        "{\"predictions\":[0,0,1]}",
    ] {
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
    }
    // The printed gateway curl works as printed (run through sh, as a user would paste it).
    let curl = lines.iter().find(|l| l.trim_start().starts_with("curl -s -X POST http")).expect("a curl line").trim();
    let answer = Command::new("sh").args(["-c", curl]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&answer.stdout), "{\"predictions\":[0,0,1]}", "{curl}");
    let rie = lines.iter().find(|l| l.contains("/2015-03-31/functions/function/invocations")).unwrap().trim();
    let answer = Command::new("sh").args(["-c", rie]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&answer.stdout), r#"{"statusCode":200,"body":"{\"predictions\":[0,0,1]}"}"#);
    stop(child);

    // Again on the same data directory: nothing to train, the model is already approved.
    let (child, lines, _rx) = up(dir.path());
    let out = lines.join("\n");
    assert!(!out.contains("running pipeline") && !out.contains("approved titanic"), "{out}");
    assert!(out.contains("function predict: unchanged") && out.contains("{\"predictions\":[0,0,1]}"), "{out}");
    stop(child);
}
