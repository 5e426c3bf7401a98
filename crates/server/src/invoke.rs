//! Lambda's Invoke API: `POST /2015-03-31/functions/{name}/invocations`, SigV4-signed with
//! service `lambda` as boto3 and the AWS CLI sign it.
//!
//! `?Qualifier=` (or `NAME:QUALIFIER` in the path) names `$LATEST`, a published version or an
//! alias ([`nimbus_functions::Functions::resolve`]); `X-Amz-Executed-Version` says which
//! version ran. `X-Amz-Invocation-Type` is `RequestResponse` (default: the function's answer),
//! `Event` (202, runs in the background) or `DryRun` (204, checks only). `X-Amz-Log-Type: Tail`
//! returns the invocation's log lines, base64, in `X-Amz-Log-Result`. A function error answers
//! 200 with `X-Amz-Function-Error: Unhandled` and `{"errorMessage", "errorType"}`, as AWS does.
//! The local emulator's path, `/2015-03-31/functions/function/invocations`, invokes the
//! default function and, with `--allow-unsigned-local-invoke` (on in `nimbus up`), needs no
//! signature from a loopback address, like the emulator. The signature is checked before the
//! payload is read.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use nimbus_functions::queue::QueueError;
use nimbus_functions::{Call, Function, InvokeError};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

/// The SigV4 service name of the Invoke API.
pub const SERVICE: &str = "lambda";

/// The IAM action an invocation needs.
pub const ACTION: &str = "lambda:InvokeFunction";

/// The function name the local emulator's path uses.
pub const EMULATOR_NAME: &str = "function";

/// Largest synchronous invocation payload, as Lambda allows.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// Log bytes returned with `X-Amz-Log-Type: Tail`.
const TAIL_BYTES: usize = 4096;

#[derive(Deserialize)]
pub struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// A Lambda service error: `{"Type": "User", "message": …}` with `x-amzn-ErrorType`.
fn lambda_error(status: StatusCode, error_type: &'static str, message: String) -> Response {
    let mut res = (status, axum::Json(json!({ "Type": "User", "message": message }))).into_response();
    res.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    res
}

pub async fn invoke(
    State(state): State<AppState>,
    Path(target): Path<String>,
    Query(q): Query<InvokeQuery>,
    req: Request,
) -> Response {
    // `NAME:QUALIFIER` in the path is the same as `?Qualifier=` (Lambda's partial form); both
    // must agree when both are given.
    let (name, in_path) = nimbus_functions::versions::split_target(&target);
    let qualifier = match (q.qualifier.as_deref(), in_path) {
        (Some(a), Some(b)) if a != b => {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!(
                    "The derived qualifier from the function name ({b}) does not match the specified qualifier ({a})"
                ),
            );
        }
        (a, b) => a.or(b).filter(|q| *q != nimbus_functions::LATEST),
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let emulator = name == EMULATOR_NAME && state.functions.get(EMULATOR_NAME).is_none();
    let local = peer.is_some_and(|p| p.ip().is_loopback());
    let p = &state.partition;
    let unqualified_arn = format!("arn:aws:lambda:{}:{}:function:{name}", p.region, p.account);
    let req = if emulator && local && state.allow_unsigned_local_invoke {
        req
    } else {
        let req = match crate::auth::authenticate(&state, req, crate::admin::Body::Invocation, SERVICE).await {
            Ok(req) => req,
            Err(e) => return lambda_refusal(e),
        };
        // `lambda:InvokeFunction` on the ARN the caller named, as Lambda checks it: a version
        // or alias is its own resource (`function:NAME:live`), which `function:NAME` does not
        // cover.
        let arn = match qualifier {
            Some(q) => format!("{unqualified_arn}:{q}"),
            None => unqualified_arn.clone(),
        };
        let principal = req.extensions().get::<nimbus_iam::Principal>().cloned();
        let facts = crate::auth::request_facts(req.extensions());
        if let Err(e) = crate::auth::authorize(&state, principal.as_ref(), &facts, ACTION, &arn).await {
            return lambda_refusal(e);
        }
        req
    };
    let (parts, body) = req.into_parts();
    let payload = match crate::body::read(body, MAX_PAYLOAD as u64).await {
        Ok(p) => p,
        Err(crate::body::BodyError::TooLarge { .. }) => {
            return lambda_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                format!("Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation"),
            );
        }
        Err(e) => return lambda_refusal(crate::auth::body_error(e, 0)),
    };
    let base = if emulator { state.functions.default_function() } else { state.functions.get(name) };
    let Some(base) = base else {
        let message = if emulator {
            "no default function: mark one with default = true in nimbus.toml, or name it in the path".to_string()
        } else {
            format!("Function not found: {unqualified_arn}")
        };
        return lambda_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", message);
    };
    let function = match state.functions.resolve(&base.name, qualifier) {
        Ok(f) => f,
        Err(e @ nimbus_functions::FunctionsError::Invalid { .. }) => {
            return lambda_error(StatusCode::BAD_REQUEST, "InvalidParameterValueException", e.to_string());
        }
        Err(e) => {
            let q = qualifier.unwrap_or_default();
            return lambda_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Function not found: {}:{q} ({e})", base.arn),
            );
        }
    };
    let header = |h: &str| parts.headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    match header("x-amz-invocation-type") {
        "" | "RequestResponse" => request_response(function, payload, header("x-amz-log-type") == "Tail").await,
        "Event" => {
            // The qualifier as given is queued: an alias picks its version at each attempt, so
            // which version will run is not known yet.
            let queued = qualifier.unwrap_or(nimbus_functions::LATEST);
            let alias = matches!(nimbus_functions::Qualifier::parse(queued), Ok(nimbus_functions::Qualifier::Alias(_)));
            match state.functions.enqueue(&function.name, queued, &payload).await {
                Ok(id) => {
                    let mut res = executed(StatusCode::ACCEPTED, Body::empty(), &function.version);
                    if alias {
                        res.headers_mut().remove("x-amz-executed-version");
                    }
                    if let Ok(v) = HeaderValue::from_str(&id) {
                        res.headers_mut().insert("x-amzn-requestid", v);
                    }
                    res
                }
                Err(e @ QueueError::Full(_)) => {
                    lambda_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", e.to_string())
                }
                Err(e @ QueueError::TooLarge(_)) => {
                    lambda_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException", e.to_string())
                }
                Err(e @ QueueError::Invalid(_)) => {
                    lambda_error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", e.to_string())
                }
                Err(QueueError::Meta(e)) => {
                    tracing::error!("cannot queue an asynchronous event: {e}");
                    lambda_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "ServiceException",
                        "the event was not queued; retry".into(),
                    )
                }
            }
        }
        "DryRun" => executed(StatusCode::NO_CONTENT, Body::empty(), &function.version),
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            format!("X-Amz-Invocation-Type {other:?} is not one of RequestResponse, Event, DryRun"),
        ),
    }
}

/// A refused request in Lambda's error shape.
fn lambda_refusal(e: crate::error::ApiError) -> Response {
    let kind = match e.status {
        StatusCode::FORBIDDEN => "AccessDeniedException",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeException",
        _ => "InvalidRequestContentException",
    };
    let mut res = (e.status, axum::Json(json!({ "message": e.message }))).into_response();
    res.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(kind));
    res
}

/// An answer with `X-Amz-Executed-Version`: `$LATEST` or the number of the version that ran.
fn executed(status: StatusCode, body: Body, version: &str) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(version) {
        res.headers_mut().insert("x-amz-executed-version", v);
    }
    res
}

async fn request_response(function: std::sync::Arc<Function>, payload: Bytes, tail: bool) -> Response {
    let call = Call::new();
    let (mut res, log) = match function.invoke_event(&call, payload).await {
        Ok(answer) => {
            (executed(StatusCode::OK, Body::from(answer), &function.version), tail_lines(&function, &call, tail).await)
        }
        Err(InvokeError::Throttled { .. } | InvokeError::Busy { .. }) => {
            return lambda_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.".into());
        }
        Err(e) => {
            let mut res = executed(StatusCode::OK, Body::from(e.payload()), &function.version);
            res.headers_mut().insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
            (res, tail_lines(&function, &call, tail).await)
        }
    };
    res.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&call.request_id) {
        res.headers_mut().insert("x-amzn-requestid", id);
    }
    if tail {
        let text = log.join("\n") + "\n";
        let start = text.len().saturating_sub(TAIL_BYTES);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[start..]);
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            res.headers_mut().insert("x-amz-log-result", v);
        }
    }
    res
}

/// The invocation's log lines, for `X-Amz-Log-Type: Tail`: its START … REPORT and what its
/// instance printed meanwhile.
async fn tail_lines(function: &Function, call: &Call, tail: bool) -> Vec<String> {
    if !tail {
        return Vec::new();
    }
    // A process function's REPORT is written a moment after its answer.
    let report = format!("REPORT RequestId: {}", call.request_id);
    for _ in 0..50 {
        let lines = function.logs.query(0, Some(&call.request_id), 256);
        if lines.iter().any(|l| l.text.starts_with(&report)) {
            return lines.into_iter().map(|l| l.text).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    function.logs.query(0, Some(&call.request_id), 256).into_iter().map(|l| l.text).collect()
}

/// `GET /metrics`: Prometheus text of functions and the gateway.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    state.functions.render_metrics(&mut out);
    state.gateway.render_metrics(&mut out);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
    (headers, out).into_response()
}
