//! The sandbox of `process` steps: the data directory is denied, no process or work directory
//! outlives a step, no value reaches a shell, logs are bounded, signals stay inside.

use super::*;

#[test]
fn a_process_step_cannot_read_the_data_dir() {
    cannot_read_the_data_dir(&[]);
}

#[test]
fn a_process_step_run_as_a_separate_user_cannot_read_the_data_dir() {
    if !nimbus_sandbox::is_root() {
        eprintln!("skipping: the separate-user sandbox needs the tests to run as root");
        return;
    }
    cannot_read_the_data_dir(&["--process-sandbox", "separate-user"]);
}

fn cannot_read_the_data_dir(flags: &[&str]) {
    let n = Nimbus::start_with(&Backend::Sqlite, flags);
    // The start-up log names the protection in force; on a machine without any, process steps
    // would be refused or unconfined, and this test means to notice.
    let log = n.server_log();
    let line = log
        .lines()
        .find(|l| l.contains("process steps and functions: "))
        .unwrap_or_else(|| panic!("no sandbox line: {log}"));
    let data_dir = std::fs::canonicalize(n.data_dir()).unwrap();
    let landlock = format!(
        "process steps and functions: sandboxed with Landlock (no access to {} for commands)",
        data_dir.display()
    );
    if flags.is_empty() {
        assert!(
            line.contains(&landlock) || line.contains("process steps and functions: sandboxed as uid 65534"),
            "{line}"
        );
    } else {
        assert!(line.contains("process steps and functions: sandboxed as uid 65534"), "{line}");
    }
    eprintln!("protection: {line}");

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

    // A well-behaved step still works: it reads its inputs, writes its outputs and its HOME.
    let toml = r#"[[uploads]]
file = "data.txt"
to = "s3://fine-data/data.txt"

[pipelines.fine]
model_group = "fine"

[pipelines.fine.steps.copy]
kind = "process"
command = ["sh", "-c", "mkdir -p out && id -u > out/uid && cat inputs/data > out/copy && touch \"$HOME/x\""]
inputs = { data = "s3://fine-data/data.txt" }
outputs = { uid = "out/uid", copy = "out/copy" }
"#;
    let dir = project(&n, "fine", toml);
    std::fs::write(dir.join("data.txt"), "some input\n").unwrap();
    apply(&n, &dir);
    let out = n.ok(&["pipelines", "run", "fine", "--wait"]);
    let e = n.json(&["pipelines", "describe", "fine-1"]);
    assert_eq!(e["status"], "Succeeded", "{out}\n{e}");
    let copy = n.data_dir().join("copy.txt");
    n.ok(&["store", "cp", step(&e, "copy")["outputs"]["copy"].as_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "some input\n");
    let uid = n.data_dir().join("uid.txt");
    n.ok(&["store", "cp", step(&e, "copy")["outputs"]["uid"].as_str().unwrap(), uid.to_str().unwrap()]);
    let uid = std::fs::read_to_string(&uid).unwrap();
    if flags.is_empty() {
        assert!(!uid.trim().is_empty(), "{uid}");
    } else {
        assert_eq!(uid.trim(), "65534", "the step ran as the unprivileged user");
    }
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
    if n.server_log().contains("process steps and functions: sandboxed with Landlock") && !landlock_scopes_signals() {
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
