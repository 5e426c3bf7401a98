//! Pipelines and executions over the admin API.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use nimbus_core::clock::rfc3339;
use nimbus_iam::Principal;
use nimbus_pipeline::{Execution, PipelineInfo, PipelineSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json_body;
use crate::AppState;
use crate::error::ApiError;

#[derive(Serialize)]
pub struct PipelineView {
    pub name: String,
    pub description: String,
    pub model_group: String,
    pub digest: String,
    pub updated_at: String,
    pub updated_by: String,
    pub executions: i64,
    pub definition: PipelineSpec,
}

impl From<PipelineInfo> for PipelineView {
    fn from(p: PipelineInfo) -> Self {
        PipelineView {
            name: p.name,
            description: p.spec.description.clone(),
            model_group: p.spec.model_group.clone(),
            digest: p.digest,
            updated_at: rfc3339(p.updated_ms),
            updated_by: p.updated_by,
            executions: p.executions,
            definition: p.spec,
        }
    }
}

#[derive(Serialize)]
pub struct StepView {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub progress: String,
    pub outputs: Value,
    pub log: String,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct ExecutionView {
    pub id: String,
    pub pipeline: String,
    pub status: String,
    pub outcome: String,
    pub registered_version: Option<i64>,
    pub model_group: String,
    pub parameters: BTreeMap<String, Value>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub started_by: String,
    pub steps: Vec<StepView>,
}

impl From<Execution> for ExecutionView {
    fn from(e: Execution) -> Self {
        ExecutionView {
            model_group: e.spec.model_group.clone(),
            duration_ms: e.ended_ms.map(|t| t - e.started_ms),
            started_at: rfc3339(e.started_ms),
            ended_at: e.ended_ms.map(rfc3339),
            steps: e
                .steps
                .into_iter()
                .map(|s| StepView {
                    duration_ms: s.started_ms.zip(s.ended_ms).map(|(a, b)| b - a),
                    started_at: s.started_ms.map(rfc3339),
                    ended_at: s.ended_ms.map(rfc3339),
                    name: s.name,
                    kind: s.kind,
                    status: s.status,
                    progress: s.progress,
                    outputs: s.outputs,
                    log: s.log,
                    error: s.error,
                })
                .collect(),
            id: e.id,
            pipeline: e.pipeline,
            status: e.status,
            outcome: e.outcome,
            registered_version: e.registered_version,
            parameters: e.parameters,
            started_by: e.started_by,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartExecution {
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
}

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<PipelineView>>, ApiError> {
    Ok(Json(s.pipelines.list().await?.into_iter().map(Into::into).collect()))
}

pub async fn describe(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<PipelineView>, ApiError> {
    Ok(Json(s.pipelines.get(&name).await?.into()))
}

pub async fn put(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PipelineView>, ApiError> {
    let spec: PipelineSpec = json_body(&body)?;
    Ok(Json(s.pipelines.put(&name, &spec, &p.user).await?.into()))
}

pub async fn executions(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ExecutionView>>, ApiError> {
    Ok(Json(s.pipelines.executions(&name).await?.into_iter().map(Into::into).collect()))
}

pub async fn start(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ExecutionView>), ApiError> {
    let req: StartExecution =
        if body.is_empty() { StartExecution { parameters: BTreeMap::new() } } else { json_body(&body)? };
    let e = s.pipelines.start(&name, &req.parameters, &p.user).await?;
    Ok((StatusCode::CREATED, Json(e.into())))
}

pub async fn execution(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(s.pipelines.execution(&id).await?.into()))
}

pub async fn retry(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(s.pipelines.retry(&id).await?.into()))
}

/// Stops a running execution: its current step is killed and it ends `Stopped` (retryable).
pub async fn stop(
    State(s): State<AppState>,
    axum::extract::Extension(p): axum::extract::Extension<nimbus_iam::Principal>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(s.pipelines.stop(&id, &p.user).await?.into()))
}
