//! The Open Inference Protocol v2 (KServe's v2 REST API) over model functions: a model is a
//! function, its versions are registry versions.
//!
//! `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}[/versions/{v}]`
//! (metadata), `GET /v2/models/{m}/ready`, `POST /v2/models/{m}[/versions/{v}]/infer`.
//! Errors are `{"error": …}`: 404 for an unknown model or version, 400 for a bad request.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nimbus_functions::{Answer, Function, InvokeError};
use serde_json::json;

use crate::AppState;

/// The `platform` the metadata reports.
const PLATFORM: &str = "nimbus_xgboost_json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(|| async { axum::Json(json!({"live": true})) }))
        .route("/health/ready", get(|| async { axum::Json(json!({"ready": true})) }))
        .route("/models/{model}", get(metadata))
        .route("/models/{model}/ready", get(ready))
        .route("/models/{model}/versions/{version}", get(version_metadata))
        .route("/models/{model}/infer", post(infer))
        .route("/models/{model}/versions/{version}/infer", post(version_infer))
        .layer(axum::extract::DefaultBodyLimit::max(nimbus_gateway::MAX_BODY_BYTES))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

// The error is the handler's own answer; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn function(s: &AppState, model: &str) -> Result<Arc<Function>, Response> {
    // Unauthenticated: name nothing but what was asked for.
    s.functions.get(model).ok_or_else(|| error(StatusCode::NOT_FOUND, format!("model {model} does not exist")))
}

/// A model that cannot serve now: the reason (which may name files and versions) goes to the
/// log under a request id; the caller gets the id.
fn unavailable(model: &str, reason: &str) -> Response {
    let id = nimbus_core::request_id();
    tracing::warn!(request_id = %id, model, "model unavailable: {reason}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("model {model} is not available now; the server's log has the reason under request id {id}"),
    )
}

#[allow(clippy::result_large_err)]
fn parse_version(version: &str) -> Result<i64, Response> {
    version
        .parse::<i64>()
        .map_err(|_| error(StatusCode::NOT_FOUND, format!("version {version:?} is not a version number")))
}

async fn describe(s: &AppState, model: &str, version: Option<i64>) -> Response {
    let f = match function(s, model) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let served = match f.resolve().await {
        Ok(v) => v,
        Err(e) => return unavailable(model, &e.to_string()),
    };
    if let Some(v) = version.filter(|v| *v != served.version) {
        return error(
            StatusCode::NOT_FOUND,
            format!("model {model} serves version {}, not version {v}", served.version),
        );
    }
    let meta = nimbus_ml::protocols::model_metadata(
        model,
        &[served.version.to_string()],
        PLATFORM,
        &served.input_schema,
        &served.output_schema,
    );
    axum::Json(meta).into_response()
}

async fn metadata(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    describe(&s, &model, None).await
}

async fn version_metadata(State(s): State<AppState>, Path((model, version)): Path<(String, String)>) -> Response {
    match parse_version(&version) {
        Ok(v) => describe(&s, &model, Some(v)).await,
        Err(r) => r,
    }
}

async fn ready(State(s): State<AppState>, Path(model): Path<String>) -> Response {
    match function(&s, &model) {
        Ok(f) => {
            let ready = f.loaded().is_some() || f.resolve().await.is_ok();
            axum::Json(json!({"name": model, "ready": ready})).into_response()
        }
        Err(r) => r,
    }
}

async fn run(s: &AppState, model: &str, version: Option<i64>, body: &[u8]) -> Response {
    let f = match function(s, model) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match f.infer(&nimbus_functions::Call::new(), version, body).await {
        Ok(inv) => answer(inv.answer),
        Err(InvokeError::Throttled { .. } | InvokeError::Busy { .. }) => {
            error(StatusCode::TOO_MANY_REQUESTS, "too many concurrent requests".into())
        }
        Err(InvokeError::Timeout(t)) => error(StatusCode::GATEWAY_TIMEOUT, format!("inference timed out after {t} s")),
        Err(InvokeError::Unavailable(m)) => unavailable(model, &m),
    }
}

fn answer(a: Answer) -> Response {
    let mut res = Response::new(axum::body::Body::from(a.body));
    *res.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert("content-type", HeaderValue::from_static(a.content_type));
    res
}

async fn infer(State(s): State<AppState>, Path(model): Path<String>, body: Bytes) -> Response {
    run(&s, &model, None, &body).await
}

async fn version_infer(
    State(s): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match parse_version(&version) {
        Ok(v) => run(&s, &model, Some(v), &body).await,
        Err(r) => r,
    }
}
