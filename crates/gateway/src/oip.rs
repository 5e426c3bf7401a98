//! The Open Inference Protocol v2 (KServe's v2 REST API) on a gateway route with
//! `protocol = "oip"`, for the route's function: a model is a function, its versions are
//! registry versions. Reachable only through a route, so the route's authorization applies.
//!
//! Paths after the stage (an optional `/v2` prefix is the protocol's own): `GET
//! /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}[/versions/{v}]` (metadata),
//! `GET /v2/models/{m}/ready`, `POST /v2/models/{m}[/versions/{v}]/infer`. `{m}` must be the
//! route's function. Errors are `{"error": …}`: 404 for an unknown model, version or path,
//! 400 for a bad request.

use nimbus_functions::{Answer, Call, Function, InvokeError};
use serde_json::json;

/// The `platform` the metadata reports.
const PLATFORM: &str = "nimbus_xgboost_json";

fn error(status: u16, message: String) -> Answer {
    Answer::json(status, &json!({ "error": message }))
}

/// A model that cannot serve now: the reason (which may name files and versions) goes to the
/// log under the request id; the caller gets the id.
fn unavailable(call: &Call, model: &str, reason: &str) -> Answer {
    tracing::warn!(request_id = %call.request_id, model, "model unavailable: {reason}");
    error(
        503,
        format!(
            "model {model} is not available now; the server's log has the reason under request id {}",
            call.request_id
        ),
    )
}

/// Answers one OIP request on `path` (after the stage) for `function`.
pub async fn answer(function: &Function, call: &Call, method: &str, path: &str, body: &[u8]) -> Answer {
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let version = |v: &str| v.parse::<i64>().map_err(|_| error(404, format!("version {v:?} is not a version number")));
    let model_is = |m: &str| {
        if m == function.name { Ok(()) } else { Err(error(404, format!("model {m} does not exist"))) }
    };
    let result = match (method, segments.as_slice()) {
        ("GET", ["health", "live"]) => Ok(Answer::json(200, &json!({"live": true}))),
        ("GET", ["health", "ready"]) => Ok(Answer::json(200, &json!({"ready": true}))),
        ("GET", ["models", m]) => match model_is(m) {
            Ok(()) => Ok(describe(function, call, None).await),
            Err(e) => Err(e),
        },
        ("GET", ["models", m, "versions", v]) => match (model_is(m), version(v)) {
            (Ok(()), Ok(v)) => Ok(describe(function, call, Some(v)).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        ("GET", ["models", m, "ready"]) => match model_is(m) {
            Ok(()) => {
                let ready = function.loaded().is_some() || function.resolve().await.is_ok();
                Ok(Answer::json(200, &json!({"name": m, "ready": ready})))
            }
            Err(e) => Err(e),
        },
        ("POST", ["models", m, "infer"]) => match model_is(m) {
            Ok(()) => Ok(infer(function, call, None, body).await),
            Err(e) => Err(e),
        },
        ("POST", ["models", m, "versions", v, "infer"]) => match (model_is(m), version(v)) {
            (Ok(()), Ok(v)) => Ok(infer(function, call, Some(v), body).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        _ => Err(error(404, format!("{method} {path} is not an Open Inference Protocol v2 path"))),
    };
    result.unwrap_or_else(|e| e)
}

async fn describe(f: &Function, call: &Call, version: Option<i64>) -> Answer {
    let served = match f.resolve().await {
        Ok(v) => v,
        Err(e) => return unavailable(call, &f.name, &e.to_string()),
    };
    if let Some(v) = version.filter(|v| *v != served.version) {
        return error(404, format!("model {} serves version {}, not version {v}", f.name, served.version));
    }
    let meta = nimbus_ml::protocols::model_metadata(
        &f.name,
        &[served.version.to_string()],
        PLATFORM,
        &served.input_schema,
        &served.output_schema,
    );
    Answer::json(200, &meta)
}

async fn infer(f: &Function, call: &Call, version: Option<i64>, body: &[u8]) -> Answer {
    match f.infer(call, version, body).await {
        Ok(inv) => inv.answer,
        Err(InvokeError::Throttled { .. } | InvokeError::Busy { .. }) => {
            error(429, "too many concurrent requests".into())
        }
        Err(InvokeError::Timeout(t)) => error(504, format!("inference timed out after {t} s")),
        Err(InvokeError::Unavailable(m)) => unavailable(call, &f.name, &m),
        Err(e @ InvokeError::Function { .. }) => unavailable(call, &f.name, &e.to_string()),
    }
}
