//! The `process` step: run any command (a Python training script, say) in the sandbox.
//!
//! - `command = ["python3", "train.py", "--depth", "${max_depth}"]`: an argument list, never a
//!   shell string; a reference is a whole argument, and a shell's `-c` script may hold none
//!   (it reads parameters from its environment: `["sh", "-c", "echo \"$MAX_DEPTH\""]`).
//! - `inputs = { name = "s3://…" }`: each object is copied to `inputs/<name>` in the work
//!   directory (and its path given in `NIMBUS_INPUT_<NAME>`); names are plain file names.
//! - `outputs = { name = "relative/path" }`: after the command exits 0, each must be a regular
//!   file inside the work directory; it is streamed to the store and the step's output `name`
//!   is its `s3://` URI (the path is also given in `NIMBUS_OUTPUT_<NAME>`).
//! - Every pipeline parameter is in the environment under its upper-case name
//!   (`max_depth` → `MAX_DEPTH`), with `environment = { … }` on top. Nothing else of the
//!   server's environment is passed on but `PATH` and `LANG`; `HOME` is the work directory and
//!   `TMPDIR` a directory inside it.
//! - stdout and stderr go to the step's log, bounded (see [`nimbus_sandbox::log`]).
//! - `timeout_seconds` (default 3600, at most 7 days) kills the command's whole process group.
//!
//! The work directory is outside the data directory and removed whatever the outcome.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nimbus_sandbox::{Command, Ending, LogLimits, names};
use serde_json::{Value, json};

use crate::db;
use crate::engine::StepResult;
use crate::spec::references;
use crate::steps::{Context, load_to_file, save_file};

/// The server environment a command sees, besides what nimbus sets.
const KEPT_ENV: [&str; 2] = ["PATH", "LANG"];
/// Programs whose `-c` argument is a script: no reference may be pasted into it.
const SHELLS: [&str; 8] = ["sh", "bash", "dash", "zsh", "ksh", "ash", "fish", "busybox"];
/// Longest `timeout_seconds`.
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// The environment variable name of a parameter or input: its name in upper case.
fn env_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

fn table<'a>(inputs: &'a BTreeMap<String, Value>, key: &str) -> Result<Vec<(&'a String, &'a Value)>, String> {
    match inputs.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.iter().collect()),
        Some(other) => Err(format!("{key} must be a table of names, got {other}")),
    }
}

/// Checks a process step's declaration (before any run): the command's shape and references,
/// the names of inputs, outputs and environment variables, and the timeout. `field` is the
/// step's path in the definition (`steps.NAME`).
pub(crate) fn validate(field: &str, inputs: &BTreeMap<String, Value>) -> Result<(), (String, String)> {
    let bad = |key: &str, reason: String| (format!("{field}.{key}"), reason);
    let Some(Value::Array(argv)) = inputs.get("command") else {
        return Err(bad(
            "command",
            "must be a list of arguments such as [\"python3\", \"train.py\", \"--depth\", \"${max_depth}\"]; a \
             command is never run through a shell string (to use a shell, write [\"sh\", \"-c\", \"…\"] and read \
             parameters from the environment, e.g. \"$MAX_DEPTH\")"
                .into(),
        ));
    };
    if argv.is_empty() {
        return Err(bad("command", "is empty; give at least the program to run".into()));
    }
    let mut args = Vec::with_capacity(argv.len());
    for (i, a) in argv.iter().enumerate() {
        let Value::String(a) = a else {
            return Err(bad(&format!("command[{i}]"), format!("must be a string, got {a}")));
        };
        let t = a.trim();
        let whole = t.starts_with("${") && t.ends_with('}') && t.matches("${").count() == 1;
        if a.contains("${") && !whole {
            return Err(bad(
                &format!("command[{i}]"),
                format!("{a:?} pastes a reference into a longer argument; make the reference a whole argument"),
            ));
        }
        args.push(a.as_str());
    }
    let program = Path::new(args[0]).file_name().and_then(|n| n.to_str()).unwrap_or("");
    if SHELLS.contains(&program)
        && let Some(c) = args.iter().position(|a| *a == "-c")
        && let Some((j, script)) = args.iter().enumerate().skip(c + 1).find(|(_, a)| !references(a).is_empty())
    {
        return Err(bad(
            &format!("command[{j}]"),
            format!(
                "{script:?} would paste a value into a {program} script; read it from the environment instead \
                 (parameters are there in upper case, e.g. \"$MAX_DEPTH\")"
            ),
        ));
    }
    let tables = |key: &str| table(inputs, key).map_err(|e| bad(key, e));
    for (name, uri) in tables("inputs")? {
        names::file_name("input", name).map_err(|e| bad(&format!("inputs.{name}"), e))?;
        if !uri.is_string() {
            return Err(bad(&format!("inputs.{name}"), "must be an s3://bucket/key address".into()));
        }
    }
    for (name, path) in tables("outputs")? {
        names::identifier("output", name).map_err(|e| bad(&format!("outputs.{name}"), e))?;
        let path = path.as_str().ok_or_else(|| bad(&format!("outputs.{name}"), "must be a path".into()))?;
        names::relative_path("output", path).map_err(|e| bad(&format!("outputs.{name}"), e))?;
    }
    for (name, _) in tables("environment")? {
        names::env_var("environment variable", name).map_err(|e| bad(&format!("environment.{name}"), e))?;
    }
    match inputs.get("timeout_seconds") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_f64().is_some_and(|t| t > 0.0 && t <= MAX_TIMEOUT_SECS) => {}
        Some(v) if !v.is_number() => {}
        Some(v) => {
            return Err(bad(
                "timeout_seconds",
                format!("must be more than 0 and at most {MAX_TIMEOUT_SECS} (7 days), got {v}"),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn process_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let exec = ctx.execution;
    let sandbox = &ctx.p.runner.sandbox;
    sandbox.check_usable().map_err(|e| e.to_string())?;
    validate(&format!("steps.{}", ctx.step), inputs).map_err(|(field, reason)| format!("{field}: {reason}"))?;
    let work = sandbox.work_dir(&format!("{}-{}", exec.id, ctx.step)).map_err(|e| e.to_string())?;
    let root = work.path();
    let io = |what: &str, p: &Path| {
        let p = p.display().to_string();
        let what = what.to_string();
        move |e: std::io::Error| format!("cannot {what} {p}: {e}")
    };
    for dir in ["inputs", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).map_err(io("make", &root.join(dir)))?;
    }

    let argv: Vec<String> = match inputs.get("command") {
        Some(Value::Array(parts)) => {
            parts.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect()
        }
        _ => return Err("command must be a list of arguments".into()),
    };
    let mut env: Vec<(String, String)> =
        KEPT_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    env.push(("HOME".into(), root.display().to_string()));
    env.push(("TMPDIR".into(), root.join("tmp").display().to_string()));
    for (k, v) in &exec.parameters {
        env.push((env_name(k), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
    }
    env.push(("NIMBUS_EXECUTION_ID".into(), exec.id.clone()));
    env.push(("NIMBUS_STEP".into(), ctx.step.to_string()));
    env.push(("NIMBUS_WORK_DIR".into(), root.display().to_string()));

    let mut notes: Vec<String> = Vec::new();
    for (name, uri) in table(inputs, "inputs")? {
        let uri = uri.as_str().ok_or_else(|| format!("inputs.{name} must be an s3:// address"))?;
        let path = root.join("inputs").join(name);
        let (size, sha) = load_to_file(ctx.p, uri, &path).await?;
        env.push((format!("NIMBUS_INPUT_{}", env_name(name)), path.display().to_string()));
        notes.push(format!("input {name}: {uri} ({size} bytes, sha256 {}) -> inputs/{name}", &sha[..12]));
    }
    let outputs = table(inputs, "outputs")?;
    for (name, rel) in &outputs {
        let rel = rel.as_str().unwrap_or_default();
        let path = root.join(rel);
        env.push((format!("NIMBUS_OUTPUT_{}", env_name(name)), path.display().to_string()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("make", parent))?;
        }
    }
    for (k, v) in table(inputs, "environment")? {
        env.push((k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
    }
    sandbox.hand_over(root).map_err(io("hand over", root))?;
    let timeout = inputs.get("timeout_seconds").and_then(Value::as_f64).unwrap_or(3600.0);

    let cmd = Command {
        argv,
        env,
        cwd: root.to_path_buf(),
        timeout: Duration::from_secs_f64(timeout),
        log: LogLimits::default(),
        ..Command::default()
    };
    let (db, id, step) = (&ctx.p.db, &exec.id, ctx.step);
    // Progress goes to the database from a task of its own, so a slow write never holds up
    // the reading of the command's output.
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel((String::new(), String::new()));
    let writer = {
        let (db, id, step) = (db.clone(), id.clone(), step.to_string());
        tokio::spawn(async move {
            while progress_rx.changed().await.is_ok() {
                let (last, text) = progress_rx.borrow_and_update().clone();
                let _ = db::step_progress(&db, &id, &step, &last, &text).await;
            }
        })
    };
    let outcome = sandbox
        .run(&cmd, ctx.cancel.clone(), &mut |log| {
            let last = log.last_line();
            if progress_tx.borrow().0 != last {
                let _ = progress_tx.send((last, log.text()));
            }
        })
        .await;
    drop(progress_tx);
    let _ = writer.await;
    let outcome = outcome.map_err(|e| e.to_string())?;
    let log = outcome.log;
    let mut lines = notes;
    if !log.text().is_empty() {
        lines.push(log.text());
    }
    let failure = match &outcome.ending {
        Ending::Exited { success: true, .. } => None,
        Ending::Exited { code, .. } => Some(match code {
            Some(c) => format!("the command exited with status {c}"),
            None => "the command was killed by a signal".to_string(),
        }),
        Ending::TimedOut(t) => Some(format!(
            "the command ran longer than timeout_seconds = {} and was killed with its process group",
            t.as_secs_f64()
        )),
        Ending::Cancelled => Some(crate::STOPPED.to_string()),
    };
    if let Some(failure) = failure {
        let tail = log.last_lines(5).join(" | ");
        let _ = db::step_progress(db, id, step, "failed", &lines.join("\n")).await;
        return Err(if tail.is_empty() { failure } else { format!("{failure}; last lines: {tail}") });
    }

    match collect_outputs(ctx, root, &outputs, &mut lines).await {
        Ok(out) => Ok(StepResult { outputs: Value::Object(out), log: lines.join("\n") }),
        Err(e) => {
            // The command's log is kept with the failure, as for a command that failed itself.
            let _ = db::step_progress(db, id, step, "failed", &lines.join("\n")).await;
            Err(e)
        }
    }
}

/// Stores each declared output after the command succeeded; says each in `lines`.
async fn collect_outputs(
    ctx: &Context<'_>,
    root: &Path,
    outputs: &[(&String, &Value)],
    lines: &mut Vec<String>,
) -> Result<serde_json::Map<String, Value>, String> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    let mut out = serde_json::Map::new();
    for (name, rel) in outputs {
        let rel = rel.as_str().unwrap_or_default();
        let path = root.join(rel);
        // A regular file inside the work directory, not a link to something of the server's.
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|_| format!("declared output {name} ({rel}) was not written by the command"))?;
        let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&canonical_root));
        if !meta.is_file() || !inside {
            return Err(format!("declared output {name} ({rel}) must be a regular file in the work directory"));
        }
        let ct = if rel.ends_with(".csv") {
            "text/csv"
        } else if rel.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let (uri, size) = save_file(ctx, rel, &path, ct).await?;
        lines.push(format!("output {name}: {rel} ({size} bytes) -> {uri}"));
        out.insert(name.to_string(), json!(uri));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(step: Value) -> Result<(), String> {
        let inputs: BTreeMap<String, Value> = serde_json::from_value(step).unwrap();
        validate("steps.p", &inputs).map_err(|(f, r)| format!("{f}: {r}"))
    }

    #[test]
    fn declarations_that_could_inject_or_escape_are_refused() {
        let cases = [
            (json!({"command": "python3 train.py ${x}"}), "steps.p.command: must be a list of arguments"),
            (json!({"command": []}), "steps.p.command: is empty"),
            (json!({"command": ["echo", "--x=${x}"]}), "steps.p.command[1]: \"--x=${x}\" pastes a reference"),
            (json!({"command": ["sh", "-c", "${x}"]}), "steps.p.command[2]: \"${x}\" would paste a value into a sh"),
            (json!({"command": ["/bin/bash", "-c", "echo ${x}"]}), "steps.p.command[2]: \"echo ${x}\" pastes"),
            (
                json!({"command": ["true"], "inputs": {"../../../master.key": "s3://b/k"}}),
                "steps.p.inputs.../../../master.key: input",
            ),
            (
                json!({"command": ["true"], "outputs": {"model": "../x"}}),
                "steps.p.outputs.model: output \"../x\" must be",
            ),
            (json!({"command": ["true"], "outputs": {"a-b": "x"}}), "steps.p.outputs.a-b: output \"a-b\" is not"),
            (json!({"command": ["true"], "environment": {"LD_PRELOAD": "x"}}), "steps.p.environment.LD_PRELOAD:"),
            (json!({"command": ["true"], "timeout_seconds": 0}), "steps.p.timeout_seconds: must be more than 0"),
            (json!({"command": ["true"], "timeout_seconds": 1e9}), "steps.p.timeout_seconds: must be more than 0"),
        ];
        let mut failures = Vec::new();
        for (step, expected) in cases {
            match check(step.clone()) {
                Err(e) if e.starts_with(expected) => {}
                other => failures.push(format!("{step}: got {other:?}, expected {expected}…")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        check(json!({"command": ["python3", "train.py", "--depth", "${max_depth}"], "inputs": {"train.csv": "${train_file}"},
                     "outputs": {"model": "out/model.json"}, "environment": {"MODE": "fast"}, "timeout_seconds": 60}))
        .unwrap();
        check(json!({"command": ["sh", "-c", "echo \"$MAX_DEPTH\""]})).unwrap();
    }
}
