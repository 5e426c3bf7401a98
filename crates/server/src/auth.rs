//! Authentication of admin requests: buffer the body (bounded), hash it, and verify the
//! SigV4 signature (service `nimbus`). The caller's [`Principal`] goes into the request's
//! extensions for handlers; the buffered body is passed on unchanged.

use axum::body::{Body, to_bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nimbus_iam::Principal;
use nimbus_iam::sigv4::{self, UriMode};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The admin API's SigV4 service name.
pub const SERVICE: &str = "nimbus";

/// Middleware: rejects unsigned or badly signed requests with 403.
pub async fn require_signature(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "RequestTooLarge",
                message: format!("request body is larger than the limit of {} bytes", state.max_body),
            }
            .into_response();
        }
    };
    let principal = match verify(&state, &parts, &bytes, SERVICE).await {
        Ok(p) => p,
        Err(e) => {
            let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |o| o.0.path());
            tracing::info!(method = %parts.method, path, reason = %e, "admin request refused");
            return ApiError::from(e).into_response();
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Verifies a request's SigV4 signature for `service` over its buffered body; the path is the
/// one the client signed (before any nesting stripped a prefix).
pub async fn verify(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    service: &str,
) -> Result<Principal, nimbus_iam::IamError> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body_sha256 = hex::encode(Sha256::digest(body));
    let uri = parts.extensions.get::<OriginalUri>().map(|o| &o.0).unwrap_or(&parts.uri);
    let sig_req = sigv4::Request {
        method: parts.method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body_sha256: Some(&body_sha256),
    };
    state.iam.authenticate(&sig_req, service, UriMode::Normalized).await
}
