//! Runs an execution: the steps in dependency order, each resolved against the parameters
//! and earlier outputs, served from cache when its inputs are unchanged, and recorded as it
//! goes. A `condition` that does not hold skips what depends on it and ends the run as not
//! registered, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use tokio::sync::watch;

use crate::spec::{Reference, StepKind, interpolate, references};
use crate::{HEARTBEAT, Pipelines, STOPPED, db, steps};

/// Bumped when a built-in step changes what it computes, so old cache entries stop matching.
const ENGINE_VERSION: &str = "nimbus-pipeline-1";

/// What a step reports back.
pub(crate) struct StepResult {
    pub outputs: Value,
    pub log: String,
}

/// Runs (or continues, after a retry) the execution `id`, which this server owns, renewing its
/// lease while it runs. `stop` turning true stops it (a user's stop, or shutdown). Never
/// panics on step failure: the failure is recorded on the step and the execution.
pub async fn run(p: Pipelines, id: String, stop: watch::Receiver<bool>) {
    let heartbeat = tokio::spawn(heartbeat(p.clone(), id.clone()));
    if let Err(e) = run_inner(&p, &id, stop).await {
        tracing::error!(execution = %id, error = %e, "pipeline execution failed to record its state");
        let outcome = format!("internal error: {e}");
        let _ = db::finish_owned(&p.db, &id, &p.runner.instance, None, "Failed", &outcome, None).await;
    }
    heartbeat.abort();
}

/// Renews the lease every [`HEARTBEAT`]; stops the execution when someone asked for it
/// through another server, or when this server lost the lease.
async fn heartbeat(p: Pipelines, id: String) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let stop = match db::renew_lease(&p.db, &id, &p.runner.instance).await {
            Ok(db::Lease::Held { stop_requested }) => stop_requested,
            Ok(db::Lease::Lost) => {
                tracing::warn!(execution = %id, "lost the lease of a running execution; stopping it here");
                true
            }
            Err(e) => {
                tracing::warn!(execution = %id, error = %e, "could not renew an execution's lease");
                false
            }
        };
        if stop {
            p.stop_local(&id);
        }
    }
}

async fn run_inner(p: &Pipelines, id: &str, stop: watch::Receiver<bool>) -> Result<(), crate::PipelineError> {
    let exec = p.execution(id).await?;
    let mut outputs: BTreeMap<String, Value> = BTreeMap::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    let mut not_registered: Option<String> = None;
    let mut registered: Option<i64> = None;
    for step in &exec.steps {
        if matches!(step.status.as_str(), "Succeeded" | "Cached") {
            outputs.insert(step.name.clone(), step.outputs.clone());
            if let Some(v) = step.outputs.get("version").and_then(Value::as_i64) {
                registered = Some(v);
            }
            if step.outputs.get("result") == Some(&Value::Bool(false)) {
                not_registered = step.outputs.get("reason").and_then(Value::as_str).map(str::to_string);
                skipped.insert(step.name.clone());
            }
            continue;
        }
        if *stop.borrow() {
            return stopped(p, id, &step.name).await;
        }
        let spec = &exec.spec.steps[&step.name];
        let mut needs: BTreeSet<String> = spec.after.iter().cloned().collect();
        for v in spec.inputs.values() {
            collect_steps(v, &mut needs);
        }
        if needs.iter().any(|n| skipped.contains(n)) {
            skipped.insert(step.name.clone());
            db::step_finished(&p.db, id, &step.name, "Skipped", &Value::Null, "", None).await?;
            continue;
        }
        let lookup = |r: &Reference| match r {
            Reference::Param(name) => exec.parameters.get(name).cloned(),
            Reference::Output { step, output } => outputs.get(step).and_then(|o| o.get(output)).cloned(),
        };
        let resolved: Result<BTreeMap<String, Value>, String> =
            spec.inputs.iter().map(|(k, v)| Ok((k.clone(), interpolate(v, &lookup)?))).collect();
        let resolved = match resolved {
            Ok(r) => r,
            Err(e) => return fail(p, id, &step.name, &format!("input: {e}")).await,
        };
        let key = cache_key(p, spec.kind, &resolved).await;
        let cacheable = spec.cache.unwrap_or(spec.kind.caches_by_default()) && spec.kind != StepKind::Register;
        if cacheable && let Some(cached) = db::cached_outputs(&p.db, &exec.pipeline, &step.name, &key).await? {
            db::step_started(&p.db, id, &step.name, &key).await?;
            db::step_finished(
                &p.db,
                id,
                &step.name,
                "Cached",
                &cached,
                "served from cache: inputs, parameters and code unchanged",
                None,
            )
            .await?;
            if cached.get("result") == Some(&Value::Bool(false)) {
                not_registered = cached.get("reason").and_then(Value::as_str).map(str::to_string);
                skipped.insert(step.name.clone());
            }
            outputs.insert(step.name.clone(), cached);
            continue;
        }
        db::step_started(&p.db, id, &step.name, &key).await?;
        let ctx = steps::Context { p, execution: &exec, step: &step.name, cancel: stop.clone() };
        match steps::run(&ctx, spec.kind, &resolved).await {
            Ok(result) => {
                db::step_finished(&p.db, id, &step.name, "Succeeded", &result.outputs, &result.log, None).await?;
                if let Some(v) = result.outputs.get("version").and_then(Value::as_i64) {
                    registered = Some(v);
                }
                if result.outputs.get("result") == Some(&Value::Bool(false)) {
                    not_registered = result.outputs.get("reason").and_then(Value::as_str).map(str::to_string);
                    skipped.insert(step.name.clone());
                }
                outputs.insert(step.name.clone(), result.outputs);
            }
            Err(_) if *stop.borrow() => return stopped(p, id, &step.name).await,
            Err(e) => return fail(p, id, &step.name, &e).await,
        }
    }
    let outcome = match (registered, not_registered) {
        (Some(v), _) => format!("registered {} version {v}", exec.spec.model_group),
        (None, Some(reason)) => format!("not registered: {reason}"),
        (None, None) => "finished; no register step ran".to_string(),
    };
    finish(p, id, None, "Succeeded", &outcome, registered).await
}

/// Records the end of the execution, unless this server lost it meanwhile (then whoever holds
/// it now records its end).
async fn finish(
    p: &Pipelines,
    id: &str,
    step: Option<db::StepEnd<'_>>,
    status: &str,
    outcome: &str,
    version: Option<i64>,
) -> Result<(), crate::PipelineError> {
    if !db::finish_owned(&p.db, id, &p.runner.instance, step, status, outcome, version).await? {
        tracing::warn!(execution = %id, status, outcome, "not recording the end of an execution this server no longer holds");
    }
    Ok(())
}

async fn fail(p: &Pipelines, id: &str, step: &str, error: &str) -> Result<(), crate::PipelineError> {
    tracing::warn!(execution = %id, step, error, "pipeline step failed");
    let log = p.execution(id).await?.steps.iter().find(|s| s.name == step).map(|s| s.log.clone()).unwrap_or_default();
    let end = db::StepEnd { step, status: "Failed", log: &log, error: Some(error) };
    finish(p, id, Some(end), "Failed", &format!("step {step} failed: {error}"), None).await
}

/// Ends an execution whose stop switch turned, at `step`: `Stopped` when someone asked for it;
/// otherwise this server is shutting down (`Failed`, interrupted, as after a crash) or lost the
/// lease (then nothing is recorded here: the execution is no longer this server's).
async fn stopped(p: &Pipelines, id: &str, step: &str) -> Result<(), crate::PipelineError> {
    let log = p.execution(id).await?.steps.iter().find(|s| s.name == step).map(|s| s.log.clone()).unwrap_or_default();
    match db::stop_requested_by(&p.db, id).await? {
        Some(by) => {
            let error = format!("{STOPPED} by {by}");
            let outcome =
                format!("{STOPPED} by {by} at step {step}; re-run it with `nimbus pipelines run --retry {id}`");
            let end = db::StepEnd { step, status: "Failed", log: &log, error: Some(&error) };
            finish(p, id, Some(end), "Stopped", &outcome, None).await
        }
        None => {
            let reason = format!("{} (it was shut down)", db::INTERRUPTED);
            let outcome = format!(
                "{reason} at step {step}; re-run it from the failed step with `nimbus pipelines run --retry {id}`"
            );
            let end = db::StepEnd { step, status: "Failed", log: &log, error: Some(&reason) };
            finish(p, id, Some(end), "Failed", &outcome, None).await
        }
    }
}

fn collect_steps(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            for r in references(s) {
                if let Reference::Output { step, .. } = r {
                    out.insert(step);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_steps(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_steps(x, out)),
        _ => {}
    }
}

/// The cache key of a step: its kind, its resolved inputs, the digests of every stored object
/// they name, and the engine version.
async fn cache_key(p: &Pipelines, kind: StepKind, inputs: &BTreeMap<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(ENGINE_VERSION);
    h.update(serde_json::to_string(&kind).unwrap_or_default());
    h.update(serde_json::to_string(inputs).unwrap_or_default());
    for v in inputs.values() {
        if let Some((bucket, key)) = v.as_str().and_then(nimbus_store::parse_uri)
            && let Ok(info) = p.store.head(bucket, key).await
        {
            h.update(info.sha256);
        }
    }
    hex::encode(h.finalize())
}
