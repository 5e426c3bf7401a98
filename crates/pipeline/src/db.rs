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
        "INSERT INTO executions (id, pipeline, number, definition, parameters, status, outcome, registered_version, started_ms, ended_ms, started_by) \
         VALUES ($1, $2, $3, $4, $5, 'Running', '', NULL, $6, NULL, $7)",
    )
    .bind(&id)
    .bind(pipeline)
    .bind(number)
    .bind(serde_json::to_string(spec).expect("specs serialise"))
    .bind(serde_json::to_string(params).expect("values serialise"))
    .bind(now)
    .bind(actor)
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

const INTERRUPTED: &str = "interrupted: the server stopped while this ran";

pub(crate) async fn fail_interrupted(db: &Db) -> Result<usize, PipelineError> {
    let now = clock::now_ms();
    let mut tx = db.write().await?;
    sqlx::query("UPDATE execution_steps SET status = 'Failed', error = $1, ended_ms = $2 WHERE status = 'Running'")
        .bind(INTERRUPTED)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
    let n =
        sqlx::query("UPDATE executions SET status = 'Failed', outcome = $1, ended_ms = $2 WHERE status = 'Running'")
            .bind(format!("{INTERRUPTED}; re-run it from the failed step with `nimbus pipelines run --retry ID`"))
            .bind(now)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok(n as usize)
}

pub(crate) async fn reset_for_retry(db: &Db, id: &str) -> Result<(), PipelineError> {
    let mut tx = db.write().await?;
    sqlx::query(
        "UPDATE execution_steps SET status = 'Pending', error = NULL, started_ms = NULL, ended_ms = NULL, progress = '' \
         WHERE execution_id = $1 AND status IN ('Failed', 'Pending', 'Skipped', 'Running')",
    )
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query("UPDATE executions SET status = 'Running', outcome = '', ended_ms = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    tx.commit().await?;
    Ok(())
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

/// Records how an execution ended.
pub(crate) async fn execution_finished(
    db: &Db,
    id: &str,
    status: &str,
    outcome: &str,
    version: Option<i64>,
) -> Result<(), PipelineError> {
    db.write_one(
        sqlx::query(
            "UPDATE executions SET status = $1, outcome = $2, registered_version = $3, ended_ms = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(outcome)
        .bind(version)
        .bind(clock::now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}
