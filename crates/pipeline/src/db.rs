//! Pipelines and executions in the metadata database.

use std::collections::BTreeMap;

use nimbus_core::clock;
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row, any::AnyRow};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::PipelineError;
use crate::spec::PipelineSpec;

/// A stored pipeline.
#[derive(Clone, Debug)]
pub struct PipelineInfo {
    pub name: String,
    pub spec: PipelineSpec,
    /// SHA-256 of the definition's JSON.
    pub digest: String,
    pub updated_ms: i64,
    pub updated_by: String,
    /// How many executions it has had.
    pub executions: i64,
}

/// One step of an execution.
#[derive(Clone, Debug)]
pub struct StepRun {
    pub name: String,
    pub kind: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Skipped` or `Cached`.
    pub status: String,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub outputs: Value,
    pub log: String,
    pub progress: String,
    pub error: Option<String>,
}

/// An execution of a pipeline.
#[derive(Clone, Debug)]
pub struct Execution {
    pub id: String,
    pub pipeline: String,
    pub spec: PipelineSpec,
    pub parameters: BTreeMap<String, Value>,
    /// `Running`, `Succeeded` or `Failed`.
    pub status: String,
    /// What came of it: the registered version, or why nothing was registered.
    pub outcome: String,
    pub registered_version: Option<i64>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub started_by: String,
    pub steps: Vec<StepRun>,
}

fn json_err(field: &str, e: serde_json::Error) -> PipelineError {
    PipelineError::Invalid { field: field.to_string(), reason: format!("stored value is damaged: {e}") }
}

pub(crate) async fn put_pipeline(db: &Db, name: &str, spec: &PipelineSpec, actor: &str) -> Result<(), PipelineError> {
    let definition = serde_json::to_string(spec).expect("specs serialise");
    let digest = hex::encode(Sha256::digest(definition.as_bytes()));
    db.write_one(
        sqlx::query(
            "INSERT INTO pipelines (name, definition, digest, next_execution, updated_ms, updated_by) VALUES ($1, $2, $3, 1, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, digest = excluded.digest, \
             updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
        )
        .bind(name)
        .bind(&definition)
        .bind(&digest)
        .bind(clock::now_ms())
        .bind(actor)
    )
    .await?;
    Ok(())
}

fn pipeline_from_row(r: &AnyRow) -> Result<PipelineInfo, PipelineError> {
    let definition: String = r.try_get("definition")?;
    Ok(PipelineInfo {
        name: r.try_get("name")?,
        spec: serde_json::from_str(&definition).map_err(|e| json_err("definition", e))?,
        digest: r.try_get("digest")?,
        updated_ms: r.try_get("updated_ms")?,
        updated_by: r.try_get("updated_by")?,
        executions: r.try_get::<i64, _>("next_execution")? - 1,
    })
}

const PIPELINE_COLUMNS: &str = "name, definition, digest, next_execution, updated_ms, updated_by";

pub(crate) async fn list_pipelines(db: &Db) -> Result<Vec<PipelineInfo>, PipelineError> {
    let rows =
        sqlx::query(&format!("SELECT {PIPELINE_COLUMNS} FROM pipelines ORDER BY name")).fetch_all(db.pool()).await?;
    rows.iter().map(pipeline_from_row).collect()
}

pub(crate) async fn get_pipeline(db: &Db, name: &str) -> Result<Option<PipelineInfo>, PipelineError> {
    let row = sqlx::query(&format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE name = $1"))
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(pipeline_from_row).transpose()
}

pub(crate) async fn create_execution(
    db: &Db,
    pipeline: &str,
    spec: &PipelineSpec,
    order: &[String],
    params: &BTreeMap<String, Value>,
    actor: &str,
    owner: &str,
) -> Result<String, PipelineError> {
    let now = clock::now_ms();
    let mut tx = db.write().await?;
    let number: i64 = sqlx::query(
        "UPDATE pipelines SET next_execution = next_execution + 1 WHERE name = $1 RETURNING next_execution - 1 AS n",
    )
    .bind(pipeline)
    .fetch_optional(&mut *tx.tx)
    .await?
    .ok_or_else(|| PipelineError::NotFound(pipeline.to_string()))?
    .try_get("n")?;
    let id = format!("{pipeline}-{number}");
    sqlx::query(
        "INSERT INTO executions (id, pipeline, number, definition, parameters, status, outcome, registered_version, started_ms, ended_ms, started_by, owner, lease_until_ms) \
         VALUES ($1, $2, $3, $4, $5, 'Running', '', NULL, $6, NULL, $7, $8, $9)",
    )
    .bind(&id)
    .bind(pipeline)
    .bind(number)
    .bind(serde_json::to_string(spec).expect("specs serialise"))
    .bind(serde_json::to_string(params).expect("values serialise"))
    .bind(now)
    .bind(actor)
    .bind(owner)
    .bind(now + crate::LEASE.as_millis() as i64)
    .execute(&mut *tx.tx)
    .await?;
    for (position, step) in order.iter().enumerate() {
        let kind = serde_json::to_value(spec.steps[step].kind).expect("kinds serialise");
        sqlx::query(
            "INSERT INTO execution_steps (execution_id, step, position, kind, status, outputs, log, progress) VALUES ($1, $2, $3, $4, 'Pending', '{}', '', '')",
        )
        .bind(&id)
        .bind(step)
        .bind(position as i64)
        .bind(kind.as_str().unwrap_or_default())
        .execute(&mut *tx.tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

pub(crate) const INTERRUPTED: &str = "interrupted: the server running it stopped";

/// What a recovery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Executions marked failed (a step was left unfinished).
    pub failed: usize,
    /// Executions whose every step had finished, marked succeeded.
    pub finished: usize,
}

/// Takes over the executions whose lease expired, and with `own` those owned by that instance
/// (this server before a restart): each in its own transaction that re-checks, so two servers
/// recovering at once do each execution once.
pub(crate) async fn recover_expired(db: &Db, own: Option<&str>) -> Result<Recovered, PipelineError> {
    let now = clock::now_ms();
    // "" never names an owner, so `None` takes over expired leases only.
    let own = own.unwrap_or("");
    let rows = sqlx::query(
        "SELECT id FROM executions WHERE status = 'Running' \
         AND (lease_until_ms IS NULL OR lease_until_ms < $1 OR owner = $2)",
    )
    .bind(now)
    .bind(own)
    .fetch_all(db.pool())
    .await?;
    let mut done = Recovered::default();
    for r in rows {
        let id: String = r.try_get("id")?;
        let mut tx = db.write().await?;
        let row = sqlx::query(&format!(
            "SELECT registered_version, owner FROM executions WHERE id = $1 AND status = 'Running' \
             AND (lease_until_ms IS NULL OR lease_until_ms < $2 OR owner = $3){}",
            db.for_update()
        ))
        .bind(&id)
        .bind(now)
        .bind(own)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(row) = row else { continue };
        let registered: Option<i64> = row.try_get("registered_version")?;
        let owner: Option<String> = row.try_get("owner")?;
        let unfinished: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM execution_steps WHERE execution_id = $1 AND status IN ('Pending', 'Running', 'Failed')",
        )
        .bind(&id)
        .fetch_one(&mut *tx.tx)
        .await?
        .try_get("n")?;
        if unfinished == 0 {
            let outcome = match registered {
                Some(v) => format!("registered version {v} (finished when its server stopped)"),
                None => "finished (its server stopped before recording the end)".to_string(),
            };
            sqlx::query("UPDATE executions SET status = 'Succeeded', outcome = $1, ended_ms = $2 WHERE id = $3")
                .bind(outcome)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx.tx)
                .await?;
            done.finished += 1;
        } else {
            let reason = match &owner {
                Some(o) if o == own => format!("{INTERRUPTED} (this server, before it restarted)"),
                Some(o) => format!("{INTERRUPTED} (server {o}, whose lease expired)"),
                None => INTERRUPTED.to_string(),
            };
            sqlx::query(
                "UPDATE execution_steps SET status = 'Failed', error = $1, ended_ms = $2 WHERE execution_id = $3 AND status = 'Running'",
            )
            .bind(&reason)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx.tx)
            .await?;
            sqlx::query("UPDATE executions SET status = 'Failed', outcome = $1, ended_ms = $2 WHERE id = $3")
                .bind(format!("{reason}; re-run it from the failed step with `nimbus pipelines run --retry {id}`"))
                .bind(now)
                .bind(&id)
                .execute(&mut *tx.tx)
                .await?;
            done.failed += 1;
        }
        tx.commit().await?;
    }
    Ok(done)
}

/// Resets a failed or stopped execution for a retry by `owner`; `false` when it is neither
/// (the check and the reset are one transaction, so only one retry wins).
pub(crate) async fn reset_for_retry(db: &Db, id: &str, owner: &str) -> Result<bool, PipelineError> {
    let now = clock::now_ms();
    let mut tx = db.write().await?;
    let n = sqlx::query(
        "UPDATE executions SET status = 'Running', outcome = '', ended_ms = NULL, owner = $1, lease_until_ms = $2, \
         stop_requested_by = NULL WHERE id = $3 AND status IN ('Failed', 'Stopped')",
    )
    .bind(owner)
    .bind(now + crate::LEASE.as_millis() as i64)
    .bind(id)
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE execution_steps SET status = 'Pending', error = NULL, started_ms = NULL, ended_ms = NULL, progress = '' \
         WHERE execution_id = $1 AND status IN ('Failed', 'Pending', 'Skipped', 'Running')",
    )
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The state of an execution's lease after a renewal.
pub(crate) enum Lease {
    /// Still ours; `stop_requested` when someone asked it to stop.
    Held { stop_requested: bool },
    /// Another server took it over, or it ended.
    Lost,
}

/// Extends the lease of an execution `owner` runs.
pub(crate) async fn renew_lease(db: &Db, id: &str, owner: &str) -> Result<Lease, PipelineError> {
    let until = clock::now_ms() + crate::LEASE.as_millis() as i64;
    let n = db
        .write_one(
            sqlx::query(
                "UPDATE executions SET lease_until_ms = $1 WHERE id = $2 AND owner = $3 AND status = 'Running'",
            )
            .bind(until)
            .bind(id)
            .bind(owner),
        )
        .await?;
    if n == 0 {
        return Ok(Lease::Lost);
    }
    Ok(Lease::Held { stop_requested: stop_requested_by(db, id).await?.is_some() })
}

/// Records that `actor` asked a running execution to stop.
pub(crate) async fn request_stop(db: &Db, id: &str, actor: &str) -> Result<(), PipelineError> {
    db.write_one(
        sqlx::query("UPDATE executions SET stop_requested_by = $1 WHERE id = $2 AND status = 'Running'")
            .bind(actor)
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Who asked the execution to stop, if anyone.
pub(crate) async fn stop_requested_by(db: &Db, id: &str) -> Result<Option<String>, PipelineError> {
    let row = sqlx::query("SELECT stop_requested_by FROM executions WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get::<Option<String>, _>("stop_requested_by")).transpose()?.flatten())
}

const EXECUTION_COLUMNS: &str =
    "id, pipeline, definition, parameters, status, outcome, registered_version, started_ms, ended_ms, started_by";

fn execution_from_row(r: &AnyRow, steps: Vec<StepRun>) -> Result<Execution, PipelineError> {
    let definition: String = r.try_get("definition")?;
    let parameters: String = r.try_get("parameters")?;
    Ok(Execution {
        id: r.try_get("id")?,
        pipeline: r.try_get("pipeline")?,
        spec: serde_json::from_str(&definition).map_err(|e| json_err("definition", e))?,
        parameters: serde_json::from_str(&parameters).map_err(|e| json_err("parameters", e))?,
        status: r.try_get("status")?,
        outcome: r.try_get("outcome")?,
        registered_version: r.try_get("registered_version")?,
        started_ms: r.try_get("started_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        started_by: r.try_get("started_by")?,
        steps,
    })
}

pub(crate) async fn list_executions(db: &Db, pipeline: &str) -> Result<Vec<Execution>, PipelineError> {
    let rows =
        sqlx::query(&format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE pipeline = $1 ORDER BY number DESC"))
            .bind(pipeline)
            .fetch_all(db.pool())
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        out.push(execution_from_row(r, steps(db, &id).await?)?);
    }
    Ok(out)
}

pub(crate) async fn get_execution(db: &Db, id: &str) -> Result<Option<Execution>, PipelineError> {
    let row = sqlx::query(&format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(r) => Ok(Some(execution_from_row(&r, steps(db, id).await?)?)),
        None => Ok(None),
    }
}

async fn steps(db: &Db, id: &str) -> Result<Vec<StepRun>, PipelineError> {
    let rows = sqlx::query(
        "SELECT step, kind, status, started_ms, ended_ms, outputs, log, progress, error FROM execution_steps WHERE execution_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let outputs: String = r.try_get("outputs")?;
            Ok(StepRun {
                name: r.try_get("step")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                started_ms: r.try_get("started_ms")?,
                ended_ms: r.try_get("ended_ms")?,
                outputs: serde_json::from_str(&outputs).map_err(|e| json_err("outputs", e))?,
                log: r.try_get("log")?,
                progress: r.try_get("progress")?,
                error: r.try_get("error")?,
            })
        })
        .collect()
}

/// Marks a step running.
pub(crate) async fn step_started(db: &Db, id: &str, step: &str, cache_key: &str) -> Result<(), PipelineError> {
    db.write_one(
        sqlx::query("UPDATE execution_steps SET status = 'Running', started_ms = $1, cache_key = $2 WHERE execution_id = $3 AND step = $4")
            .bind(clock::now_ms())
            .bind(cache_key)
            .bind(id)
            .bind(step)
    )
    .await?;
    Ok(())
}

/// Records a step's progress line and log so far.
pub(crate) async fn step_progress(
    db: &Db,
    id: &str,
    step: &str,
    progress: &str,
    log: &str,
) -> Result<(), PipelineError> {
    db.write_one(
        sqlx::query("UPDATE execution_steps SET progress = $1, log = $2 WHERE execution_id = $3 AND step = $4")
            .bind(progress)
            .bind(log)
            .bind(id)
            .bind(step),
    )
    .await?;
    Ok(())
}

/// Records how a step ended.
pub(crate) async fn step_finished(
    db: &Db,
    id: &str,
    step: &str,
    status: &str,
    outputs: &Value,
    log: &str,
    error: Option<&str>,
) -> Result<(), PipelineError> {
    db.write_one(
        sqlx::query(
            "UPDATE execution_steps SET status = $1, outputs = $2, log = $3, error = $4, ended_ms = $5, \
             started_ms = COALESCE(started_ms, $5) WHERE execution_id = $6 AND step = $7",
        )
        .bind(status)
        .bind(outputs.to_string())
        .bind(log)
        .bind(error)
        .bind(clock::now_ms())
        .bind(id)
        .bind(step),
    )
    .await?;
    Ok(())
}

/// The outputs of an earlier successful run of a step with the same cache key.
pub(crate) async fn cached_outputs(
    db: &Db,
    pipeline: &str,
    step: &str,
    cache_key: &str,
) -> Result<Option<Value>, PipelineError> {
    let row = sqlx::query(
        "SELECT s.outputs FROM execution_steps s JOIN executions e ON e.id = s.execution_id \
         WHERE e.pipeline = $1 AND s.step = $2 AND s.cache_key = $3 AND s.status IN ('Succeeded', 'Cached') ORDER BY s.ended_ms DESC LIMIT 1",
    )
    .bind(pipeline)
    .bind(step)
    .bind(cache_key)
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(r) => {
            let text: String = r.try_get("outputs")?;
            Ok(Some(serde_json::from_str(&text).map_err(|e| json_err("outputs", e))?))
        }
        None => Ok(None),
    }
}

/// Registers a version and records it as the result of the register step `step` (and as the
/// execution's registered version) in one transaction. When the step already holds a version
/// (a retry after a crash that followed the commit), that version is returned instead.
pub(crate) async fn register_in_step(
    p: &crate::Pipelines,
    id: &str,
    step: &str,
    group: &str,
    new: &nimbus_registry::NewVersion,
    actor: &str,
) -> Result<nimbus_registry::ModelVersion, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut tx = p.db.write().await.map_err(|x| e(&x))?;
    let current = sqlx::query(&format!(
        "SELECT status, outputs FROM execution_steps WHERE execution_id = $1 AND step = $2{}",
        p.db.for_update()
    ))
    .bind(id)
    .bind(step)
    .fetch_optional(&mut *tx.tx)
    .await
    .map_err(|x| e(&x))?;
    if let Some(row) = current {
        let status: String = row.try_get("status").map_err(|x| e(&x))?;
        let outputs: String = row.try_get("outputs").map_err(|x| e(&x))?;
        let version = serde_json::from_str::<Value>(&outputs).ok().and_then(|o| o["version"].as_i64());
        if let (true, Some(v)) = (status == "Succeeded", version) {
            drop(tx);
            return p.registry.version(group, v).await.map_err(|x| e(&x));
        }
    }
    let registered = p.registry.register_in(&mut tx, group, new, actor).await.map_err(|x| e(&x))?;
    let outputs = serde_json::json!({"version": registered.version, "group": group});
    let log = format!("registered {group} version {} ({})", registered.version, registered.status);
    sqlx::query(
        "UPDATE execution_steps SET status = 'Succeeded', outputs = $1, log = $2, ended_ms = $3 WHERE execution_id = $4 AND step = $5",
    )
    .bind(outputs.to_string())
    .bind(log)
    .bind(clock::now_ms())
    .bind(id)
    .bind(step)
    .execute(&mut *tx.tx)
    .await
    .map_err(|x| e(&x))?;
    sqlx::query("UPDATE executions SET registered_version = $1 WHERE id = $2")
        .bind(registered.version)
        .bind(id)
        .execute(&mut *tx.tx)
        .await
        .map_err(|x| e(&x))?;
    tx.commit().await.map_err(|x| e(&x))?;
    p.registry.registered(registered).await.map_err(|x| e(&x))
}

/// How the step an execution ended at ended, recorded with the execution's end.
pub(crate) struct StepEnd<'a> {
    pub step: &'a str,
    pub status: &'a str,
    pub log: &'a str,
    pub error: Option<&'a str>,
}

/// Records how an execution that `owner` runs ended (and, with `step`, how the step it ended
/// at did) in one transaction, only while `owner` still holds it: a server that lost its lease
/// (the execution was taken over, failed by a recovery or retried elsewhere) must not write
/// over what the new holder records. `false` when `owner` no longer held it.
pub(crate) async fn finish_owned(
    db: &Db,
    id: &str,
    owner: &str,
    step: Option<StepEnd<'_>>,
    status: &str,
    outcome: &str,
    version: Option<i64>,
) -> Result<bool, PipelineError> {
    let now = clock::now_ms();
    let mut tx = db.write().await?;
    let held = sqlx::query(
        "UPDATE executions SET status = $1, outcome = $2, registered_version = $3, ended_ms = $4 \
         WHERE id = $5 AND owner = $6 AND status = 'Running'",
    )
    .bind(status)
    .bind(outcome)
    .bind(version)
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    if held == 0 {
        return Ok(false);
    }
    if let Some(s) = step {
        sqlx::query(
            "UPDATE execution_steps SET status = $1, outputs = $2, log = $3, error = $4, ended_ms = $5, \
             started_ms = COALESCE(started_ms, $5) WHERE execution_id = $6 AND step = $7",
        )
        .bind(s.status)
        .bind(Value::Null.to_string())
        .bind(s.log)
        .bind(s.error)
        .bind(now)
        .bind(id)
        .bind(s.step)
        .execute(&mut *tx.tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
