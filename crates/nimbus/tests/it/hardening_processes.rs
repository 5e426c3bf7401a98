//! The `process` step's hardening, through the real binary: commands cannot read the data
//! directory, leave no process or work directory behind (timeout, stop, shutdown, crash),
//! cannot be handed shell code through a parameter or a name, keep their logs bounded; retries
//! and leases let exactly one server run an execution.
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

#[test]
fn a_process_step_cannot_read_the_data_dir() {
    let n = Nimbus::start(&Backend::Sqlite);
    // The start-up log names the protection in force; on a machine without any, process steps
    // would be refused or unconfined, and this test means to notice.
    let log = n.server_log();
    let line = log.lines().find(|l| l.contains("process steps: ")).unwrap_or_else(|| panic!("no sandbox line: {log}"));
    let data_dir = std::fs::canonicalize(n.data_dir()).unwrap();
    assert!(
        line.contains(&format!(
            "process steps: sandboxed with Landlock (no access to {} for commands)",
            data_dir.display()
        )) || line.contains("process steps: sandboxed as uid 65534"),
        "{line}"
    );
    eprintln!("protection on this machine: {line}");

    let (_, secret) = n.credentials();
    let master_key = std::fs::read_to_string(n.data_dir().join("master.key")).unwrap().trim().to_string();
    assert_eq!(master_key.len(), 64);
    // Every way to the data directory a command could try: its absolute path, a path relative
    // to the work directory, links made in the work directory, and the server's /proc entry.
    let attempts = [
        r#"cat "$DATA"/credentials"#,
        r#"cat "$DATA"/master.key"#,
        "cat ../../../master.key",
        r#"ls -la "$DATA""#,
        r#"ln -s "$DATA" link && cat link/master.key"#,
        r#"ln "$DATA"/master.key hardlink && cat hardlink"#,
        r#"cat /proc/"$SERVER"/environ"#,
        r#"ls /proc/"$SERVER"/fd"#,
        r#"cat /proc/"$SERVER"/root"$DATA"/master.key"#,
        r#"cp "$DATA"/master.key out/key"#,
    ];
    let script = attempts.iter().map(|a| format!("{a}; echo \"attempt done: $?\"")).collect::<Vec<_>>().join("\n");
    let toml = format!(
        r#"[pipelines.leak]
model_group = "leak"

[pipelines.leak.parameters]
data = {{ type = "string", default = "" }}
server = {{ type = "string", default = "" }}

[pipelines.leak.steps.read]
kind = "process"
command = ["sh", "-c", '''{script}''']
outputs = {{ key = "out/key" }}
"#
    );
    let dir = project(&n, "leak", &toml);
    apply(&n, &dir);
    let pid = server_pid(&n).to_string();
    for data in [n.data_dir().to_path_buf(), data_dir.clone()] {
        let data_param = format!("data={}", data.display());
        let (code, out, err) =
            n.cli(&["pipelines", "run", "leak", "--param", &data_param, "--param", &format!("server={pid}"), "--wait"]);
        let id = n.json(&["pipelines", "executions", "leak"])[0]["id"].as_str().unwrap().to_string();
        let e = n.json(&["pipelines", "describe", &id]);
        let everything = format!("{out}\n{err}\n{e}");
        assert!(!everything.contains(&secret), "the admin secret leaked to the step: {everything}");
        assert!(!everything.contains(&master_key), "the master key leaked to the step: {everything}");
        // The copy of the key was not made, so the declared output is missing and the step fails.
        assert_eq!(code, 1, "{everything}");
        assert_eq!(e["status"], "Failed", "{e}");
        let read = step(&e, "read");
        let log = read["log"].as_str().unwrap();
        assert_eq!(log.matches("attempt done: ").count(), attempts.len(), "every attempt ran: {log}");
        assert!(!log.contains("attempt done: 0"), "an attempt on the data directory succeeded: {log}");
        assert!(log.contains("Permission denied"), "{log}");
        assert!(read["error"].as_str().unwrap().contains("declared output key (out/key) was not written"), "{e}");
    }
    assert_eq!(std::fs::read_to_string(n.data_dir().join("master.key")).unwrap().trim(), master_key);
}

#[test]
fn a_timed_out_step_leaves_no_process_behind() {
    let n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let toml = format!(
        r#"[pipelines.slow]
model_group = "slow"

[pipelines.slow.steps.sleep]
kind = "process"
command = ["sh", "-c", "sleep {mark} & sleep {mark} & echo ok; wait"]
timeout_seconds = 2
"#
    );
    apply(&n, &project(&n, "slow", &toml));
    let started = Instant::now();
    let id = start(&n, &["slow"]);
    wait_for_processes(&mark, 2);
    let e = wait_until_done(&n, &id, Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(e["status"], "Failed", "{e}");
    let error = step(&e, "sleep")["error"].as_str().unwrap();
    assert!(error.contains("ran longer than timeout_seconds = 2 and was killed with its process group"), "{error}");
    assert!(step(&e, "sleep")["log"].as_str().unwrap().contains("ok"), "{e}");
    assert_no_process_left(&mark, "after the timeout");
}

#[test]
fn a_background_child_does_not_hang_the_step() {
    let n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let toml = format!(
        r#"[pipelines.bg]
model_group = "bg"

[pipelines.bg.steps.spawn]
kind = "process"
command = ["sh", "-c", "sleep {mark} & echo ok"]
"#
    );
    apply(&n, &project(&n, "bg", &toml));
    let id = start(&n, &["bg"]);
    // The background sleep holds the step's stdout open for a day; the step must end when the
    // shell does, not when every copy of its pipes is closed.
    let e = wait_until_done(&n, &id, Duration::from_secs(30));
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert!(step(&e, "spawn")["log"].as_str().unwrap().contains("ok"), "{e}");
    assert_no_process_left(&mark, "after the step ended");
}

#[test]
fn a_process_in_a_new_session_does_not_outlive_its_step() {
    // `setsid` leaves the process group the sandbox kills; the step's end must still end it.
    let n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let toml = format!(
        r#"[pipelines.escape]
model_group = "escape"

[pipelines.escape.steps.spawn]
kind = "process"
command = ["sh", "-c", "setsid sleep {mark} > /dev/null 2>&1 < /dev/null & sleep 1; echo ok"]
"#
    );
    apply(&n, &project(&n, "escape", &toml));
    let id = start(&n, &["escape"]);
    wait_for_processes(&mark, 1);
    let e = wait_until_done(&n, &id, Duration::from_secs(30));
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert_no_process_left(&mark, "after the step ended");
}

/// A step that sleeps (in two processes) until the file named by its `flag` parameter exists.
fn sleep_until_flag(pipeline: &str, mark: &str) -> String {
    format!(
        r#"[pipelines.{pipeline}]
model_group = "{pipeline}"

[pipelines.{pipeline}.parameters]
flag = {{ type = "string", default = "/nonexistent" }}

[pipelines.{pipeline}.steps.work]
kind = "process"
command = ["sh", "-c", "if [ -e \"$FLAG\" ]; then echo resumed; else sleep {mark} & sleep {mark}; fi"]
"#
    )
}

#[test]
fn a_stopped_execution_leaves_no_process_behind() {
    let n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let flags = tempfile::tempdir().unwrap();
    let flag = flags.path().join("go");
    apply(&n, &project(&n, "stoppable", &sleep_until_flag("stoppable", &mark)));
    let id = start(&n, &["stoppable", "--param", &format!("flag={}", flag.display())]);
    wait_for_processes(&mark, 2);

    let out = n.ok(&["pipelines", "stop", &id]);
    assert!(out.contains(&id), "{out}");
    let e = wait_until_done(&n, &id, Duration::from_secs(30));
    assert_eq!(e["status"], "Stopped", "{e}");
    let outcome = e["outcome"].as_str().unwrap();
    assert!(outcome.contains("stopped on request by") && outcome.contains("--retry"), "{outcome}");
    assert!(step(&e, "work")["error"].as_str().unwrap().contains("stopped on request"), "{e}");
    assert_no_process_left(&mark, "after `pipelines stop`");
    let (code, _, err) = n.cli(&["pipelines", "stop", &id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only a Running execution can be stopped"), "{err}");

    // A stopped execution may be retried, with its own parameters.
    std::fs::write(&flag, b"").unwrap();
    let out = n.ok(&["pipelines", "run", "--retry", &id, "--wait"]);
    assert!(out.contains("work"), "{out}");
    let e = n.json(&["pipelines", "describe", &id]);
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert!(step(&e, "work")["log"].as_str().unwrap().contains("resumed"), "{e}");
}

#[test]
fn server_shutdown_leaves_no_process_behind() {
    let mut n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let flags = tempfile::tempdir().unwrap();
    let flag = flags.path().join("go");
    let pipeline = unique("down");
    apply(&n, &project(&n, "down", &sleep_until_flag(&pipeline, &mark)));
    let id = start(&n, &[&pipeline, "--param", &format!("flag={}", flag.display())]);
    wait_for_processes(&mark, 2);

    let stopping = Instant::now();
    assert!(n.stop(), "nimbus exits 0 on SIGTERM with a step running");
    assert!(stopping.elapsed() < Duration::from_secs(30), "shutdown took {:?}", stopping.elapsed());
    assert_no_process_left(&mark, "after the server shut down");
    assert!(work_dirs_of(&id).is_empty(), "work directories left: {:?}", work_dirs_of(&id));

    n.start_again();
    let e = n.json(&["pipelines", "describe", &id]);
    // The execution ended with the server, interrupted as by a crash (nobody asked it to stop),
    // and may be retried.
    assert_eq!(e["status"], "Failed", "{e}");
    let outcome = e["outcome"].as_str().unwrap();
    assert!(outcome.contains("interrupted: the server running it stopped (it was shut down)"), "{outcome}");
    assert!(outcome.contains("--retry"), "{outcome}");
    assert_eq!(step(&e, "work")["status"], "Failed", "{e}");
    std::fs::write(&flag, b"").unwrap();
    n.ok(&["pipelines", "run", "--retry", &id, "--wait"]);
    assert_eq!(n.json(&["pipelines", "describe", &id])["status"], "Succeeded");
}

#[test]
fn a_crashed_server_leaves_no_process_behind() {
    let mut n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    let flags = tempfile::tempdir().unwrap();
    let pipeline = unique("crash");
    apply(&n, &project(&n, "crash", &sleep_until_flag(&pipeline, &mark)));
    let id = start(&n, &[&pipeline, "--param", &format!("flag={}", flags.path().join("go").display())]);
    wait_for_processes(&mark, 2);
    n.kill9();
    // The command (and what it started in the background) dies with the server, at the latest
    // when the server comes back.
    n.start_again();
    assert_no_process_left(&mark, "after kill -9 of the server and its restart");
    assert!(work_dirs_of(&id).is_empty(), "work directories left: {:?}", work_dirs_of(&id));
}

#[test]
fn no_work_directory_is_left_behind() {
    let n = Nimbus::start(&Backend::Sqlite);
    // Unique pipeline names, so the work directories (named after the execution) are ours.
    let (failing, slow, fine) = (unique("wdfail"), unique("wdslow"), unique("wdok"));
    let toml = format!(
        r#"[pipelines.{failing}]
model_group = "wd"

[pipelines.{failing}.steps.fail]
kind = "process"
command = ["sh", "-c", "mkdir -p out/deep && echo data > out/deep/file && exit 3"]

[pipelines.{slow}]
model_group = "wd"

[pipelines.{slow}.steps.sleep]
kind = "process"
command = ["sh", "-c", "echo data > kept && sleep 1000"]
timeout_seconds = 2

[pipelines.{fine}]
model_group = "wd"

[pipelines.{fine}.steps.write]
kind = "process"
command = ["sh", "-c", "mkdir -p out && echo data > out/file"]
outputs = {{ file = "out/file" }}
"#
    );
    apply(&n, &project(&n, "wd", &toml));

    let id = start(&n, &[slow.as_str()]);
    // While it runs, its work directory is where this test looks (so the checks below can fail).
    let deadline = Instant::now() + Duration::from_secs(20);
    while work_dirs_of(&id).is_empty() {
        assert!(Instant::now() < deadline, "no work directory of {id} under {}", work_root().display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = wait_until_done(&n, &id, Duration::from_secs(30));
    assert_eq!(e["status"], "Failed", "{e}");
    assert!(e["outcome"].as_str().unwrap().contains("timeout_seconds"), "{e}");
    assert!(work_dirs_of(&id).is_empty(), "after a timeout: {:?}", work_dirs_of(&id));

    let (code, _, err) = n.cli(&["pipelines", "run", &failing, "--wait"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(work_dirs_of(&format!("{failing}-1")).is_empty(), "after a failure: {:?}", work_dirs_of(&failing));

    n.ok(&["pipelines", "run", &fine, "--wait"]);
    assert!(work_dirs_of(&format!("{fine}-1")).is_empty(), "after a success: {:?}", work_dirs_of(&fine));
}

#[test]
fn unsafe_names_are_refused_at_apply() {
    let n = Nimbus::start(&Backend::Sqlite);
    let master_key = std::fs::read(n.data_dir().join("master.key")).unwrap();
    // (what is declared, the field the error must name)
    let cases: &[(&str, &str)] = &[
        (r#"inputs = { "../../../master.key" = "s3://b/k" }"#, "steps.p.inputs.../../../master.key"),
        (r#"inputs = { "a/b" = "s3://b/k" }"#, "steps.p.inputs.a/b"),
        (r#"inputs = { ".." = "s3://b/k" }"#, "steps.p.inputs..."),
        (r#"outputs = { model = "/etc/passwd" }"#, "steps.p.outputs.model"),
        (r#"outputs = { model = "../x" }"#, "steps.p.outputs.model"),
        (r#"outputs = { model = "out/../../x" }"#, "steps.p.outputs.model"),
        (r#"environment = { LD_PRELOAD = "/tmp/x.so" }"#, "steps.p.environment.LD_PRELOAD"),
        (r#"environment = { PATH = "/tmp" }"#, "steps.p.environment.PATH"),
        ("[pipelines.x.parameters]\nPATH = { type = \"string\", default = \"/tmp\" }", "parameters.PATH"),
        ("[pipelines.x.parameters]\nLD_PRELOAD = { type = \"string\", default = \"x\" }", "parameters.LD_PRELOAD"),
        ("[pipelines.x.parameters]\nNIMBUS_X = { type = \"string\", default = \"x\" }", "parameters.NIMBUS_X"),
        (
            "[pipelines.x.parameters]\nAWS_SECRET_ACCESS_KEY = { type = \"string\", default = \"x\" }",
            "parameters.AWS_SECRET_ACCESS_KEY",
        ),
        ("[pipelines.x.parameters]\nHOME = { type = \"string\", default = \"/\" }", "parameters.HOME"),
        ("[pipelines.x.parameters]\nhome = { type = \"string\", default = \"/\" }", "parameters.home"),
        ("[pipelines.x.parameters]\nbash_env = { type = \"string\", default = \"x\" }", "parameters.bash_env"),
    ];
    let mut failures = Vec::new();
    for (i, (declared, field)) in cases.iter().enumerate() {
        // A parameter table goes after the step; a step setting goes into it.
        let (setting, table) = if declared.starts_with('[') { ("", *declared) } else { (*declared, "") };
        let toml = format!(
            "[pipelines.x]\nmodel_group = \"x\"\n\n[pipelines.x.steps.p]\nkind = \"process\"\ncommand = [\"true\"]\n{setting}\n\n{table}\n"
        );
        let dir = project(&n, &format!("case{i}"), &toml);
        let (code, out, err) = n.cli(&["apply", dir.to_str().unwrap()]);
        if code != 2 || !err.contains(field) {
            failures.push(format!("{declared}: exit {code}, expected 2 naming {field}: {err}{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(n.json(&["pipelines", "list"]).as_array().unwrap().len(), 0, "no pipeline was stored");

    // The server checks too, for clients other than `nimbus apply`.
    let signer = n.signer();
    let bodies = [
        (
            serde_json::json!({"model_group": "x", "steps": {"p": {"kind": "process", "command": ["true"],
                "inputs": {"../../../master.key": "s3://b/k"}}}}),
            "steps.p.inputs.../../../master.key",
        ),
        (
            serde_json::json!({"model_group": "x", "steps": {"p": {"kind": "process", "command": ["true"],
                "outputs": {"model": "/etc/passwd"}}}}),
            "steps.p.outputs.model",
        ),
        (
            serde_json::json!({"model_group": "x", "parameters": {"LD_PRELOAD": {"type": "string", "default": "x"}},
                "steps": {"p": {"kind": "process", "command": ["true"]}}}),
            "parameters.LD_PRELOAD",
        ),
        (
            serde_json::json!({"model_group": "x", "steps": {"p": {"kind": "process", "command": "true; cat /etc/passwd"}}}),
            "steps.p.command",
        ),
    ];
    for (body, field) in bodies {
        let (status, text) = n.http("PUT", "/_nimbus/v1/pipelines/x", body.to_string().as_bytes(), Some(&signer));
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(field), "{body}: {text}");
    }
    assert_eq!(n.json(&["pipelines", "list"]).as_array().unwrap().len(), 0, "no pipeline was stored");
    assert_eq!(std::fs::read(n.data_dir().join("master.key")).unwrap(), master_key, "the master key is unchanged");
}

#[test]
fn a_parameter_value_is_never_run_as_shell() {
    let n = Nimbus::start(&Backend::Sqlite);
    // A directory the step may write to, so a command that did run would leave its file.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let value = format!(
        "1; touch {d}/semicolon $(touch {d}/dollar) `touch {d}/backtick` && touch {d}/and | touch {d}/pipe\ntouch {d}/newline"
    );
    let toml = r#"[pipelines.inject]
model_group = "inject"

[pipelines.inject.parameters]
x = { type = "string", default = "" }
dir = { type = "string", default = "" }

[pipelines.inject.steps.shell]
kind = "process"
command = ["sh", "-c", "echo \"shell got: $X\""]

[pipelines.inject.steps.argv]
kind = "process"
command = ["echo", "argv got:", "${x}"]

[pipelines.inject.steps.control]
kind = "process"
command = ["sh", "-c", "touch \"$DIR\"/control"]
"#;
    apply(&n, &project(&n, "inject", toml));
    let out = n.ok(&[
        "pipelines",
        "run",
        "inject",
        "--param",
        &format!("x={value}"),
        "--param",
        &format!("dir={d}"),
        "--wait",
    ]);
    assert!(out.contains("inject-1"), "{out}");
    let e = n.json(&["pipelines", "describe", "inject-1"]);
    assert_eq!(e["status"], "Succeeded", "{e}");
    let made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made, ["control"], "the step can write there, and nothing in the value ran: {e}");
    let first_line = value.lines().next().unwrap();
    assert!(step(&e, "shell")["log"].as_str().unwrap().contains(&format!("shell got: {first_line}")), "{e}");
    assert!(step(&e, "argv")["log"].as_str().unwrap().contains(&format!("argv got: {first_line}")), "{e}");

    // A reference pasted into a shell script would be run as code: refused before anything runs.
    for (command, field) in [
        (r#"["sh", "-c", "echo ${x}"]"#, "steps.shell.command[2]"),
        (r#"["/bin/bash", "-c", "${x}"]"#, "steps.shell.command[2]"),
        (r#"["echo", "--x=${x}"]"#, "steps.shell.command[1]"),
    ] {
        let bad = toml.replace(r#"["sh", "-c", "echo \"shell got: $X\""]"#, command);
        let dir = project(&n, "inject-bad", &bad);
        let (code, _, err) = n.cli(&["apply", dir.to_str().unwrap()]);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(err.contains(field), "{command}: {err}");
    }
}

#[test]
fn a_long_output_line_is_truncated_with_a_marker() {
    let n = Nimbus::start(&Backend::Sqlite);
    let toml = r#"[pipelines.loud]
model_group = "loud"

[pipelines.loud.steps.line]
kind = "process"
command = ["sh", "-c", "head -c 10000000 /dev/zero | tr '\\000' x; echo; echo after the long line"]

[pipelines.loud.steps.flood]
kind = "process"
command = ["sh", "-c", "i=0; while [ $i -lt 4000 ]; do printf 'line %06d %01000d\\n' $i 0; i=$((i+1)); done; echo the last line"]
"#;
    apply(&n, &project(&n, "loud", toml));
    let out = n.ok(&["pipelines", "run", "loud", "--wait"]);
    assert!(out.contains("loud-1"), "{out}");
    let e = n.json(&["pipelines", "describe", "loud-1"]);
    let log = step(&e, "line")["log"].as_str().unwrap();
    assert!(log.len() < 64 * 1024, "a 10 MB line is kept whole-ish: {} bytes", log.len());
    assert!(log.contains(nimbus_sandbox::log::CUT), "{}", &log[log.len().saturating_sub(300)..]);
    assert!(log.contains("after the long line"), "the output goes on after the cut line");
    // 4 MB of lines: the log keeps its first and last lines within its limit, and says so.
    let log = step(&e, "flood")["log"].as_str().unwrap();
    let limits = nimbus_sandbox::LogLimits::default();
    assert!(log.len() < limits.max_bytes + 4096, "{} bytes", log.len());
    assert!(log.contains("line 000000 ") && log.contains("the last line"), "first and last lines are kept");
    assert!(log.contains("[log truncated: "), "the gap is marked");
}

/// A pipeline whose gate step fails until the file `FLAG` exists; then it trains and registers.
fn gated_registration(pipeline: &str) -> String {
    format!(
        r#"[[uploads]]
file = "train.csv"
to = "s3://{pipeline}/train.csv"

[pipelines.{pipeline}]
model_group = "{pipeline}"

[pipelines.{pipeline}.parameters]
flag = {{ type = "string", default = "/nonexistent" }}

[pipelines.{pipeline}.steps.gate]
kind = "process"
command = ["sh", "-c", "test -e \"$FLAG\" || {{ echo no flag yet; exit 1; }}"]

[pipelines.{pipeline}.steps.train]
kind = "train"
data = "s3://{pipeline}/train.csv"
target = "Survived"
feature_columns = "Pclass,Sex,Age,Fare"
categorical_columns = "Sex"
num_round = 5
after = ["gate"]

[pipelines.{pipeline}.steps.register]
kind = "register"
model = "${{steps.train.model}}"
"#
    )
}

#[test]
fn concurrent_retries_start_one_engine() {
    for backend in backends() {
        let n = Nimbus::start(&backend);
        let flags = tempfile::tempdir().unwrap();
        let flag = flags.path().join("go");
        let dir = project(&n, "gated", &gated_registration("gated"));
        let titanic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/data/train.csv");
        std::fs::copy(titanic, dir.join("train.csv")).unwrap();
        apply(&n, &dir);
        let (code, _, err) =
            n.cli(&["pipelines", "run", "gated", "--param", &format!("flag={}", flag.display()), "--wait"]);
        assert_eq!(code, 1, "{backend:?}: {err}");
        assert!(err.contains("no flag yet"), "{err}");
        std::fs::write(&flag, b"").unwrap();

        // Several retries at once (more than two, so a race has its chance): exactly one wins.
        let racers = 4;
        let barrier = std::sync::Barrier::new(racers);
        let results: Vec<(i32, String, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        n.cli(&["pipelines", "run", "--retry", "gated-1"])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = results.iter().filter(|r| r.0 == 0).count();
        assert_eq!(won, 1, "{backend:?}: exactly one retry starts: {results:?}");
        for (code, _, err) in results.iter().filter(|r| r.0 != 0) {
            assert_eq!(*code, 2, "{backend:?}: {err}");
            assert!(err.contains("cannot be retried") && err.contains("only a Failed or Stopped execution"), "{err}");
        }
        let e = wait_until_done(&n, "gated-1", Duration::from_secs(30));
        assert_eq!(e["status"], "Succeeded", "{backend:?}: {e}");
        let versions = n.json(&["models", "list", "gated"]);
        assert_eq!(versions.as_array().unwrap().len(), 1, "{backend:?}: one version: {versions}");
        let v = n.json(&["models", "describe", "gated/1"]);
        assert_eq!(v["lineage"]["pipeline_execution"], "gated-1", "{v}");
    }
}

/// Runs SQL on the metadata database of a server started on `db` (a PostgreSQL URL) or, when
/// `None`, on the SQLite file of its data directory; returns what it printed.
fn sql(n: &Nimbus, db: Option<&str>, statement: &str) -> String {
    let out = match db {
        Some(url) => {
            std::process::Command::new("psql").args([url, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", statement]).output()
        }
        None => std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(n.data_dir().join("meta.db"))
            .arg(statement)
            .output(),
    }
    .expect("psql / sqlite3 runs");
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh PostgreSQL database for servers that share it, dropped at the end.
struct SharedDatabase {
    server: String,
    name: String,
    url: String,
}

impl SharedDatabase {
    fn create(server: &str) -> SharedDatabase {
        let name = format!("nimbus_it_lease_{}", marker());
        let ok = std::process::Command::new("psql")
            .args([server, "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot create {name}");
        let mut url = url::Url::parse(server).unwrap();
        url.set_path(&format!("/{name}"));
        SharedDatabase { server: server.to_string(), name, url: url.to_string() }
    }
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([&self.server, "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .status();
    }
}

fn long_sleep(pipeline: &str, mark: &str) -> String {
    format!(
        r#"[pipelines.{pipeline}]
model_group = "{pipeline}"

[pipelines.{pipeline}.steps.sleep]
kind = "process"
command = ["sleep", "{mark}"]
"#
    )
}

#[test]
fn a_restarted_server_takes_back_its_own_executions_at_once() {
    for backend in backends() {
        let mut n = Nimbus::start(&backend);
        let mark = marker();
        apply(&n, &project(&n, "own", &long_sleep("own", &mark)));
        let id = start(&n, &["own"]);
        wait_for_processes(&mark, 1);
        n.kill9();
        // Its lease (30 s) is still live, but the execution was this server's own: the restarted
        // server knows nothing runs it any more and fails it at once.
        n.start_again();
        let e = n.json(&["pipelines", "describe", &id]);
        assert_eq!(e["status"], "Failed", "{backend:?}: {e}");
        let outcome = e["outcome"].as_str().unwrap();
        assert!(outcome.contains("interrupted") && outcome.contains("this server, before it restarted"), "{outcome}");
        assert_eq!(step(&e, "sleep")["status"], "Failed", "{e}");
        assert_no_process_left(&mark, "after kill -9 and restart");
    }
}

#[test]
fn an_execution_with_a_live_lease_elsewhere_is_not_taken_over() {
    // Two real servers on one PostgreSQL database, each with its own data directory.
    if let Ok(server) = std::env::var("NIMBUS_TEST_POSTGRES_URL")
        && !server.is_empty()
    {
        let db = SharedDatabase::create(&server);
        let mut a = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
        let mut b = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
        let mark = marker();
        apply(&a, &project(&a, "shared", &long_sleep("shared", &mark)));
        let id = start(&a, &["shared"]);
        wait_for_processes(&mark, 1);
        let owner_a = std::fs::read_to_string(a.data_dir().join("instance-id")).unwrap();
        assert_eq!(sql(&a, Some(&db.url), &format!("SELECT owner FROM executions WHERE id = '{id}'")), owner_a.trim());
        a.kill9();
        // B starts again (its start-up recovery runs) while A's lease is live: not B's to take.
        b.restart();
        let status = sql(&b, Some(&db.url), &format!("SELECT status FROM executions WHERE id = '{id}'"));
        assert_eq!(status, "Running", "a live lease of another server is left alone");
        // Once the lease has expired (written here rather than waited for), B takes it over.
        sql(&b, Some(&db.url), &format!("UPDATE executions SET lease_until_ms = 1 WHERE id = '{id}'"));
        b.restart();
        let row = sql(&b, Some(&db.url), &format!("SELECT status || ' ' || outcome FROM executions WHERE id = '{id}'"));
        assert!(
            row.starts_with("Failed ") && row.contains("whose lease expired") && row.contains(owner_a.trim()),
            "{row}"
        );
        drop(a);
    } else {
        eprintln!("two servers on one database need PostgreSQL: NIMBUS_TEST_POSTGRES_URL is not set");
    }
    // On SQLite (one server per database) the same rule, by writing the rows: an execution owned
    // by another instance with a live lease survives a restart; once expired it is taken over.
    if std::process::Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipping the SQLite half: no sqlite3 command");
        return;
    }
    let mut n = Nimbus::start(&Backend::Sqlite);
    let mark = marker();
    apply(&n, &project(&n, "elsewhere", &long_sleep("elsewhere", &mark)));
    let id = start(&n, &["elsewhere"]);
    wait_for_processes(&mark, 1);
    n.kill9();
    let future = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 600_000;
    sql(
        &n,
        None,
        &format!("UPDATE executions SET owner = 'another-server', lease_until_ms = {future} WHERE id = '{id}'"),
    );
    n.start_again();
    assert_eq!(n.json(&["pipelines", "describe", &id])["status"], "Running", "a live lease elsewhere is left alone");
    n.kill9();
    sql(&n, None, &format!("UPDATE executions SET lease_until_ms = 1 WHERE id = '{id}'"));
    n.start_again();
    let e = n.json(&["pipelines", "describe", &id]);
    assert_eq!(e["status"], "Failed", "{e}");
    let outcome = e["outcome"].as_str().unwrap();
    assert!(outcome.contains("server another-server, whose lease expired"), "{outcome}");
}

/// A server on `backend` whose metadata database the test can also reach with [`sql`]: on
/// PostgreSQL a database made here (whose URL `sql` needs), on SQLite the file in the data dir.
fn server_with_sql(backend: &Backend) -> (Option<SharedDatabase>, Nimbus) {
    match backend {
        Backend::Sqlite => (None, Nimbus::start(backend)),
        Backend::Postgres(server) => {
            let db = SharedDatabase::create(server);
            let n = Nimbus::start_with(&Backend::Sqlite, &["--database", &db.url]);
            (Some(db), n)
        }
    }
}

#[test]
fn a_server_that_lost_its_lease_stops_its_run_and_leaves_the_execution_to_the_new_holder() {
    if std::process::Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipping: no sqlite3 command to write the rows with");
        return;
    }
    for backend in backends() {
        let (db, n) = server_with_sql(&backend);
        let url = db.as_ref().map(|d| d.url.as_str());
        let mark = marker();
        apply(&n, &project(&n, "lost", &long_sleep("lost", &mark)));
        let id = start(&n, &["lost"]);
        wait_for_processes(&mark, 1);
        // Another server holds the execution now (as after a recovery of an expired lease and a
        // retry there), while this one still runs its step.
        sql(&n, url, &format!("UPDATE executions SET owner = 'new-holder' WHERE id = '{id}'"));
        // At its next heartbeat (every 10 s) this server notices and ends its copy of the run...
        let deadline = Instant::now() + Duration::from_secs(40);
        while !processes_with(&mark).is_empty() {
            assert!(Instant::now() < deadline, "{backend:?}: the step still runs on the server that lost the lease");
            std::thread::sleep(Duration::from_millis(100));
        }
        // ...and records nothing over what the new holder will record.
        std::thread::sleep(Duration::from_secs(1));
        let row =
            sql(&n, url, &format!("SELECT status || '|' || owner || '|' || outcome FROM executions WHERE id = '{id}'"));
        assert_eq!(row, "Running|new-holder|", "{backend:?}");
        let step = sql(&n, url, &format!("SELECT status FROM execution_steps WHERE execution_id = '{id}'"));
        assert_eq!(step, "Running", "{backend:?}");
        assert!(n.server_log().contains("lost the lease of a running execution"), "{backend:?}");
    }
}

#[test]
fn the_commands_exit_status_and_signal_pass_through_the_sandbox() {
    let n = Nimbus::start(&Backend::Sqlite);
    let toml = r#"[pipelines.status]
model_group = "status"

[pipelines.status.steps.exit]
kind = "process"
command = ["sh", "-c", "echo before; exit 7"]

[pipelines.signal]
model_group = "status"

[pipelines.signal.steps.kill]
kind = "process"
command = ["sh", "-c", "echo before; kill -KILL $$"]
"#;
    apply(&n, &project(&n, "status", toml));
    let (code, _, err) = n.cli(&["pipelines", "run", "status", "--wait"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the command exited with status 7; last lines: before"), "{err}");
    let (code, _, err) = n.cli(&["pipelines", "run", "signal", "--wait"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the command was killed by a signal; last lines: before"), "{err}");
}

/// Whether the kernel's Landlock can keep a command from signalling processes outside its
/// sandbox (ABI 6, Linux 6.12).
fn landlock_scopes_signals() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 12)
}

#[test]
fn a_process_step_cannot_signal_the_server() {
    let n = Nimbus::start(&Backend::Sqlite);
    if n.server_log().contains("process steps: sandboxed with Landlock") && !landlock_scopes_signals() {
        eprintln!("skipping: this kernel's Landlock cannot scope signals (before ABI 6)");
        return;
    }
    let toml = r#"[pipelines.signal]
model_group = "signal"

[pipelines.signal.parameters]
server = { type = "string", default = "" }

[pipelines.signal.steps.kill]
kind = "process"
command = ["sh", "-c", "kill -0 \"$SERVER\" && echo could signal; kill -KILL \"$SERVER\"; echo \"kill: $?\""]
"#;
    apply(&n, &project(&n, "signal", toml));
    let pid = server_pid(&n);
    let out = n.ok(&["pipelines", "run", "signal", "--param", &format!("server={pid}"), "--wait"]);
    assert!(out.contains("signal-1"), "{out}");
    let e = n.json(&["pipelines", "describe", "signal-1"]);
    let log = step(&e, "kill")["log"].as_str().unwrap();
    assert!(!log.contains("could signal") && log.contains("kill: 1"), "{log}");
    assert_eq!(server_pid(&n), pid, "the server still runs");
}

#[test]
#[ignore = "known limitation of the Landlock rules: only the /proc entries that exist when the helper starts are \
            granted (so that /proc/SERVER_PID can be left out), hence a command and its children cannot read \
            /proc/self; granting all of /proc instead would expose the server's environ (checked: Landlock does \
            not stop that as root), so the fix needs a decision on the rules"]
fn a_command_can_read_its_own_proc_entries() {
    let n = Nimbus::start(&Backend::Sqlite);
    let toml = r#"[pipelines.proc]
model_group = "proc"

[pipelines.proc.steps.self]
kind = "process"
command = ["sh", "-c", "head -1 /proc/self/status && ls /proc/self/fd > /dev/null && echo readable"]
"#;
    apply(&n, &project(&n, "proc", toml));
    let (code, _, err) = n.cli(&["pipelines", "run", "proc", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let log = step(&n.json(&["pipelines", "describe", "proc-1"]), "self")["log"].as_str().unwrap().to_string();
    assert!(log.contains("Name:\thead") && log.contains("readable"), "{log}");
}
