//! Functions and APIs over the admin API: declare, describe, delete, and read their logs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use nimbus_core::clock::{self, rfc3339};
use nimbus_functions::logs::LogLine;
use nimbus_functions::{Function, FunctionSpec};
use nimbus_gateway::{ApiSpec, CompiledApi};
use nimbus_iam::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json_body;
use crate::AppState;
use crate::error::ApiError;

/// A function as the API shows it.
#[derive(Serialize)]
pub struct FunctionView {
    pub name: String,
    /// `$LATEST` or the number of a published version.
    pub version: String,
    pub arn: String,
    pub spec: FunctionSpec,
    /// `warm` (a model is loaded, or a process instance runs) or `cold` (scaled to zero).
    pub state: &'static str,
    /// Process functions: instances running now, and how many of them are idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_instances: Option<usize>,
    pub loaded_version: Option<i64>,
    pub loaded_at: Option<String>,
    pub init_ms: Option<f64>,
    pub in_flight: u32,
}

pub(super) fn function_view(f: &Function) -> FunctionView {
    let loaded = f.loaded();
    FunctionView {
        name: f.name.clone(),
        version: f.version.clone(),
        arn: f.arn.clone(),
        spec: f.spec.clone(),
        state: if f.is_warm() { "warm" } else { "cold" },
        instances: f.process().map(|p| p.instances()),
        idle_instances: f.process().map(|p| p.idle_instances()),
        loaded_version: loaded.as_ref().map(|l| l.version),
        loaded_at: loaded.as_ref().map(|l| rfc3339(l.loaded_ms)),
        init_ms: loaded.as_ref().map(|l| l.init_ms),
        in_flight: f.in_flight(),
    }
}

pub async fn list_functions(State(s): State<AppState>) -> Json<Vec<FunctionView>> {
    Json(s.functions.list().iter().map(|f| function_view(f)).collect())
}

fn function(s: &AppState, name: &str) -> Result<std::sync::Arc<Function>, ApiError> {
    s.functions.get(name).ok_or_else(|| nimbus_functions::FunctionsError::NotFound(name.to_string()).into())
}

pub async fn describe_function(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    Ok(Json(function_view(function(&s, &name)?.as_ref())))
}

pub async fn put_function(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let spec: FunctionSpec = json_body(&body)?;
    let changed = s.functions.put(&name, spec, &p.user).await?;
    Ok(Json(json!({ "name": name, "changed": changed, "function": function_view(function(&s, &name)?.as_ref()) })))
}

pub async fn delete_function(State(s): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    // A route may name the function itself or one of its versions or aliases (`NAME:live`).
    let uses = |target: &str| nimbus_functions::versions::split_target(target).0 == name;
    if let Some(api) = s.gateway.list().into_iter().find(|a| a.routes.iter().any(|r| uses(&r.function))) {
        return Err(ApiError::invalid(
            "function",
            format!("{name} is the integration of API {}; change or delete the API first", api.name),
        ));
    }
    s.functions.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?since=` (ms since the epoch or a duration such as `10m`), `filter`, `limit`, and for a
/// function's log `qualifier` (`$LATEST`, the default, or a version number). Every field is
/// text here and checked below, so a bad value is the admin API's 400 with a code, not the
/// extractor's plain-text rejection.
#[derive(Deserialize)]
pub struct LogQuery {
    pub since: Option<String>,
    pub filter: Option<String>,
    pub limit: Option<String>,
    pub qualifier: Option<String>,
}

fn since_ms(q: &LogQuery) -> Result<i64, ApiError> {
    parse_since(q.since.as_deref(), clock::now_ms())
}

/// `?limit=`: lines to return, newest last; 1000 when absent.
fn limit(q: &LogQuery) -> Result<usize, ApiError> {
    match q.limit.as_deref() {
        None => Ok(1000),
        Some(l) => {
            l.parse::<usize>().map_err(|_| ApiError::invalid("limit", format!("{l:?} is not a number of lines")))
        }
    }
}

/// `?since=`: epoch milliseconds, or a duration back from `now_ms` (`30s`, `10m`, `2h`, `1d`).
fn parse_since(since: Option<&str>, now_ms: i64) -> Result<i64, ApiError> {
    let Some(since) = since else { return Ok(0) };
    let bad = || {
        ApiError::invalid("since", format!("{since:?}: use a duration such as 30s, 10m, 2h, 1d, or epoch milliseconds"))
    };
    if let Ok(ms) = since.parse::<i64>() {
        return if ms >= 0 { Ok(ms) } else { Err(bad()) };
    }
    let units = [('s', 1_000i64), ('m', 60_000), ('h', 3_600_000), ('d', 86_400_000)];
    let (n, per) = units.iter().find_map(|(u, per)| since.strip_suffix(*u).map(|n| (n, *per))).ok_or_else(bad)?;
    let n: i64 = n.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
    Ok(n.checked_mul(per).map_or(0, |back| now_ms.saturating_sub(back).max(0)))
}

fn lines_view(lines: Vec<LogLine>) -> Json<Value> {
    Json(
        json!({ "lines": lines.into_iter().map(|l| json!({"time": rfc3339(l.ms), "text": l.text})).collect::<Vec<_>>() }),
    )
}

pub async fn function_logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let f = function(&s, &name)?;
    // Each published version keeps its own log. An alias is no log of its own: the versions
    // it routes to are.
    let f = match q.qualifier.as_deref().filter(|v| *v != nimbus_functions::LATEST) {
        None => f,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => s.functions.version(&name, n)?.function.clone(),
            _ => {
                return Err(ApiError::invalid(
                    "qualifier",
                    format!(
                        "{v:?}: a log belongs to $LATEST or a version number; an alias's invocations are in the logs of its versions"
                    ),
                ));
            }
        },
    };
    Ok(lines_view(f.logs.query(since_ms(&q)?, q.filter.as_deref(), limit(&q)?)))
}

/// `GET /functions/{function}/failures?limit=`: asynchronous events that used up their
/// attempts, newest first, with the waiting count.
pub async fn function_failures(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    function(&s, &name)?;
    let limit = limit(&q)?.min(1000) as i64;
    let failures = s.functions.failures(&name, limit).await?;
    let queued = s.functions.queued(&name).await?;
    Ok(Json(json!({ "function": name, "queued": queued, "failures": failures })))
}

/// An API as the API shows it.
#[derive(Serialize)]
pub struct ApiView {
    pub name: String,
    pub spec: ApiSpec,
    /// The invoke URL of each stage, relative to the server.
    pub stage_paths: Vec<String>,
}

fn api_view(a: &CompiledApi) -> ApiView {
    ApiView {
        name: a.name.clone(),
        spec: a.spec.clone(),
        stage_paths: a.stages.iter().map(|s| format!("/{}/{s}", a.name)).collect(),
    }
}

fn api(s: &AppState, name: &str) -> Result<std::sync::Arc<CompiledApi>, ApiError> {
    s.gateway.get(name).ok_or_else(|| nimbus_gateway::GatewayError::NotFound(name.to_string()).into())
}

pub async fn list_apis(State(s): State<AppState>) -> Json<Vec<ApiView>> {
    Json(s.gateway.list().iter().map(|a| api_view(a)).collect())
}

pub async fn describe_api(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<ApiView>, ApiError> {
    Ok(Json(api_view(api(&s, &name)?.as_ref())))
}

pub async fn put_api(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let spec: ApiSpec = json_body(&body)?;
    let changed = s.gateway.put(&name, spec, &p.user).await?;
    Ok(Json(json!({ "name": name, "changed": changed, "api": api_view(api(&s, &name)?.as_ref()) })))
}

pub async fn delete_api(State(s): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.gateway.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn api_logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let a = api(&s, &name)?;
    Ok(lines_view(a.access.query(since_ms(&q)?, q.filter.as_deref(), limit(&q)?)))
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_durations_and_times_and_refuses_the_rest_without_panicking() {
        let now = 1_000_000_000;
        assert_eq!(parse_since(None, now).unwrap(), 0);
        assert_eq!(parse_since(Some("10m"), now).unwrap(), now - 600_000);
        assert_eq!(parse_since(Some("123"), now).unwrap(), 123);
        assert_eq!(parse_since(Some("99999999999999999d"), now).unwrap(), 0, "an overflow means since forever");
        for bad in ["1\u{e9}", "\u{e9}", "-5m", "-1", "m", "", "10x", "1.5h", "1 m"] {
            let e = parse_since(Some(bad), now).unwrap_err();
            assert!(e.message.contains("use a duration"), "{bad}: {}", e.message);
        }
    }
}
