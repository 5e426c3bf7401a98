//! The `process` step: run any command (a Python training script, say) in a work directory.
//!
//! - `inputs = { name = "s3://…" }`: each object is copied to `inputs/<name>` in the work
//!   directory (and its path given in `NIMBUS_INPUT_<NAME>`).
//! - `outputs = { name = "relative/path" }`: after the command exits 0, each file must exist;
//!   it is copied to the store and the step's output `name` is its `s3://` URI (the path is
//!   also given in `NIMBUS_OUTPUT_<NAME>`).
//! - Every pipeline parameter is in the environment under its upper-case name
//!   (`max_depth` → `MAX_DEPTH`), with `environment = { … }` on top. Nothing else of the
//!   server's environment is passed on but `PATH`, `HOME`, `LANG` and `TMPDIR`, so no secret
//!   of the server reaches the command.
//! - stdout and stderr go to the step's log, line by line, as they come.
//! - `timeout_seconds` (default 3600) kills the command when exceeded.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::db;
use crate::engine::StepResult;
use crate::steps::{Context, load, save};

const KEPT_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];
const MAX_LOG_LINES: usize = 20_000;

fn env_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn table<'a>(inputs: &'a BTreeMap<String, Value>, key: &str) -> Result<Vec<(&'a String, &'a Value)>, String> {
    match inputs.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.iter().collect()),
        Some(other) => Err(format!("{key} must be a table of names, got {other}")),
    }
}

pub(crate) async fn process_step(ctx: &Context<'_>, inputs: &BTreeMap<String, Value>) -> Result<StepResult, String> {
    let exec = ctx.execution;
    let work = ctx.p.work_dir.join(&exec.id).join(ctx.step);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("inputs"))
        .map_err(|e| format!("cannot make the work directory {}: {e}", work.display()))?;

    let mut command = match inputs.get("command") {
        Some(Value::String(s)) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        Some(Value::Array(parts)) if !parts.is_empty() => {
            let parts: Vec<String> =
                parts.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect();
            let mut c = tokio::process::Command::new(&parts[0]);
            c.args(&parts[1..]);
            c
        }
        _ => return Err("command must be a string (run by sh -c) or a non-empty list of arguments".into()),
    };
    command.current_dir(&work).env_clear();
    for k in KEPT_ENV {
        if let Ok(v) = std::env::var(k) {
            command.env(k, v);
        }
    }
    for (k, v) in &exec.parameters {
        command.env(env_name(k), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    }
    command.env("NIMBUS_EXECUTION_ID", &exec.id).env("NIMBUS_STEP", ctx.step).env("NIMBUS_WORK_DIR", &work);

    let mut log: Vec<String> = Vec::new();
    for (name, uri) in table(inputs, "inputs")? {
        let uri = uri.as_str().ok_or_else(|| format!("inputs.{name} must be an s3:// address"))?;
        let (bytes, sha) = load(ctx.p, uri).await?;
        let path = work.join("inputs").join(name);
        std::fs::write(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        command.env(format!("NIMBUS_INPUT_{}", env_name(name)), &path);
        log.push(format!("input {name}: {uri} ({} bytes, sha256 {}) -> inputs/{name}", bytes.len(), &sha[..12]));
    }
    let outputs = table(inputs, "outputs")?;
    for (name, rel) in &outputs {
        let rel = rel
            .as_str()
            .filter(|r| safe_relative(r))
            .ok_or_else(|| format!("outputs.{name} must be a relative path inside the work directory"))?;
        command.env(format!("NIMBUS_OUTPUT_{}", env_name(name)), work.join(rel));
        if let Some(parent) = work.join(rel).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
    }
    for (k, v) in table(inputs, "environment")? {
        command.env(k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    }
    let timeout = inputs.get("timeout_seconds").and_then(Value::as_f64).unwrap_or(3600.0);
    if timeout.is_nan() || timeout <= 0.0 {
        return Err("timeout_seconds must be above 0".into());
    }

    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| format!("cannot start the command: {e}"))?;
    let lines = Arc::new(Mutex::new(log));
    let mut readers = Vec::new();
    for (stream, tag) in [
        (child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), ""),
        (child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), "stderr: "),
    ] {
        let Some(stream) = stream else { continue };
        let lines = lines.clone();
        readers.push(tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut l = lines.lock().expect("log lock");
                if l.len() < MAX_LOG_LINES {
                    l.push(format!("{tag}{line}"));
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| format!("waiting for the command: {e}"))?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if tokio::time::Instant::now() >= deadline {
                    let _ = child.kill().await;
                    let log = lines.lock().expect("log lock").join("\n");
                    let _ = db::step_progress(&ctx.p.db, &exec.id, ctx.step, "timed out", &log).await;
                    return Err(format!("the command ran longer than timeout_seconds = {timeout} and was killed"));
                }
                let (last, log) = {
                    let l = lines.lock().expect("log lock");
                    (l.last().cloned().unwrap_or_default(), l.join("\n"))
                };
                let _ = db::step_progress(&ctx.p.db, &exec.id, ctx.step, &last, &log).await;
            }
        }
    };
    for r in readers {
        let _ = r.await;
    }
    let mut log = lines.lock().expect("log lock").clone();
    if !status.success() {
        let tail: Vec<String> = log.iter().rev().take(5).rev().cloned().collect();
        let _ = db::step_progress(&ctx.p.db, &exec.id, ctx.step, "failed", &log.join("\n")).await;
        return Err(format!("the command exited with {status}; last lines: {}", tail.join(" | ")));
    }
    let mut out = serde_json::Map::new();
    for (name, rel) in outputs {
        let rel = rel.as_str().unwrap_or_default();
        let path = work.join(rel);
        let bytes = std::fs::read(&path)
            .map_err(|_| format!("declared output {name} ({rel}) was not written by the command"))?;
        let ct = if rel.ends_with(".csv") {
            "text/csv"
        } else if rel.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let size = bytes.len();
        let uri = save(ctx, rel, bytes, ct).await?;
        log.push(format!("output {name}: {rel} ({size} bytes) -> {uri}"));
        out.insert(name.clone(), json!(uri));
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(StepResult { outputs: Value::Object(out), log: log.join("\n") })
}
