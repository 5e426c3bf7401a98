//! Authentication of admin requests (SigV4, service `nimbus`), in an order that never reads
//! an unauthenticated body:
//!
//! 1. **Signature headers**: no `Authorization` (and no presigned query) is 403 `Missing
//!    Authentication Token`; a path that normalisation would change (`//`, `.`, `..`) is 400,
//!    so the path that is verified is the path that is routed.
//! 2. **Prepare** ([`nimbus_iam::Iam::prepare`]): well-formed authorization, scope, clock within
//!    15 minutes, a known and active key. Still no body read.
//! 3. **Payload**: with a signed `x-amz-content-sha256`, the signature is verified at once and
//!    the body is then checked against the hash as it is read (uploads stream; nothing waits
//!    for the whole body). `UNSIGNED-PAYLOAD` (and presigned URLs) are accepted only for object
//!    uploads and downloads. Without the header (botocore's way outside S3) the body is read
//!    first, up to [`Body::UNSTATED_HASH_LIMIT`], to hash it.
//! 4. The route's body limit ([`Body::limit`]) holds in every case: a declared
//!    `content-length` over it is refused before reading, a body that grows over it midway is
//!    cut off.
//!
//! 5. **Authorise** ([`authorize`]): the route's IAM action on its resource ARN
//!    ([`crate::admin::ROUTES`]) against the caller's policies, before the handler reads an
//!    upload's body. A denial is 403 `AccessDenied` naming the action and resource, as AWS
//!    words it; every decision is logged with the principal and the reason.
//!
//! The caller's [`nimbus_iam::Principal`] goes into the request's extensions for handlers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nimbus_iam::sigv4::{self, Payload, UriMode};
use nimbus_iam::{IamError, Principal, RequestFacts};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::admin::{Body, resource_of, route_of};
use crate::body::{self, BodyError};
use crate::error::ApiError;

/// The admin API's SigV4 service name.
pub const SERVICE: &str = "nimbus";

/// Middleware: authenticates and authorises every admin request as described above.
pub async fn require_signature(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
    let route = route_of(req.method().as_str(), &matched);
    let kind = route.map_or(Body::Json, |r| r.body);
    let req = match authenticate(&state, req, kind, SERVICE).await {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    // An unknown path has no route: it is authenticated and then answered 404, revealing
    // nothing.
    // `sts:GetCallerIdentity` needs no permission, as in AWS: anyone signed may ask who they are.
    if let Some(route) = route.filter(|r| r.action != "sts:GetCallerIdentity") {
        let path = req.extensions().get::<OriginalUri>().map(|o| o.0.path().to_string()).unwrap_or_default();
        let rel = path.strip_prefix("/_nimbus/v1").unwrap_or(&path);
        let resource = resource_of(route, rel, &state.partition.region, &state.partition.account);
        let principal = req.extensions().get::<Principal>().cloned();
        let facts = request_facts(req.extensions());
        if let Err(e) = authorize(&state, principal.as_ref(), &facts, route.action, &resource).await {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// The facts about a request that policy conditions test: source address and transport.
pub fn request_facts(extensions: &axum::http::Extensions) -> RequestFacts {
    RequestFacts {
        source_ip: extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
        secure: extensions.get::<nimbus_core::Transport>().is_some_and(|t| t.secure),
        extra: Vec::new(),
    }
}

/// Checks the authenticated `principal` may perform `action` on `resource`; logs the
/// decision either way.
pub async fn authorize(
    state: &AppState,
    principal: Option<&Principal>,
    facts: &RequestFacts,
    action: &str,
    resource: &str,
) -> Result<(), ApiError> {
    let Some(principal) = principal else {
        return Err(ApiError { status: StatusCode::FORBIDDEN, code: "AccessDenied", message: "not signed".into() });
    };
    let verdict = state.iam.authorize(principal, action, resource, facts).await?;
    // Allowed decisions at debug (one per request), denials at info.
    macro_rules! decision {
        ($lvl:ident) => {
            tracing::$lvl!(target: "authz",
        principal = %principal.arn,
        action,
        resource,
        allowed = verdict.is_allowed(),
        reason = %verdict.reason(),
        "authorization"
    )
        };
    }
    if verdict.is_allowed() {
        decision!(debug);
    } else {
        decision!(info);
    }
    if verdict.is_allowed() {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "AccessDenied",
            message: verdict.denial(&principal.arn, action, resource),
        })
    }
}

/// Authenticates `req` for `service` with the body rules of `kind`; returns the request with
/// the principal in its extensions and its body ready for the handler (checked as it streams,
/// or already read and verified).
pub async fn authenticate(state: &AppState, req: Request, kind: Body, service: &str) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let uri = parts.extensions.get::<OriginalUri>().map(|o| o.0.clone()).unwrap_or_else(|| parts.uri.clone());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut sig_req = sigv4::Request {
        method: parts.method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body_sha256: None,
    };
    let refuse = |e: IamError| {
        tracing::info!(method = %parts.method, path = uri.path(), reason = %e, "request refused");
        ApiError::from(e)
    };
    if let Err(e @ sigv4::SigError::Missing) = sigv4::parse(&sig_req) {
        return Err(refuse(e.into()));
    }
    if !sigv4::is_normalized(uri.path()) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidPath",
            message: format!(
                "the path {:?} has an empty, '.' or '..' segment, which would be signed as another path; \
                 send each segment percent-encoded (a key segment '..' as %2E%2E)",
                uri.path()
            ),
        });
    }
    let prepared = state.iam.prepare(&sig_req, service, kind.unsigned_allowed()).await.map_err(refuse)?;
    let limit = kind.limit();
    if let Some(n) = body::declared_length(&parts.headers).filter(|n| *n > limit) {
        return Err(body_error(BodyError::TooLarge { limit }, n));
    }
    let (principal, body) = match prepared.payload().clone() {
        Payload::Signed(signed) => {
            let principal = prepared.verify(&sig_req, UriMode::Normalized).map_err(refuse)?;
            if kind.streams() {
                (principal, axum::body::Body::from_stream(body::checked_stream(body, limit, Some(signed))))
            } else {
                let bytes = body::read(body, limit).await.map_err(|e| body_error(e, 0))?;
                let found = hex::encode(Sha256::digest(&bytes));
                if found != signed {
                    return Err(body_error(BodyError::HashMismatch { signed, found }, 0));
                }
                (principal, axum::body::Body::from(bytes))
            }
        }
        Payload::Unsigned => {
            let principal = prepared.verify(&sig_req, UriMode::Normalized).map_err(refuse)?;
            if kind.streams() {
                (principal, axum::body::Body::from_stream(body::checked_stream(body, limit, None)))
            } else {
                (principal, axum::body::Body::from(body::read(body, limit).await.map_err(|e| body_error(e, 0))?))
            }
        }
        Payload::Unstated => {
            let unstated = limit.min(Body::UNSTATED_HASH_LIMIT);
            let bytes = body::read(body, unstated).await.map_err(|e| match e {
                BodyError::TooLarge { .. } if unstated < limit => ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "RequestTooLarge",
                    message: format!(
                        "a body without x-amz-content-sha256 is read into memory to be verified, so it may be at \
                         most {unstated} bytes; sign the body's SHA-256 in x-amz-content-sha256 and it is streamed \
                         (up to {limit} bytes)"
                    ),
                },
                other => body_error(other, 0),
            })?;
            let hash = hex::encode(Sha256::digest(&bytes));
            sig_req.body_sha256 = Some(&hash);
            let principal = prepared.verify(&sig_req, UriMode::Normalized).map_err(refuse)?;
            (principal, axum::body::Body::from(bytes))
        }
    };
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, body))
}

/// The answer to a body that was not accepted; `declared` is a too-large declared length.
pub fn body_error(e: BodyError, declared: u64) -> ApiError {
    let (status, code) = match &e {
        BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge"),
        BodyError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
        BodyError::HashMismatch { .. } => (StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch"),
        BodyError::Broken(_) => (StatusCode::BAD_REQUEST, "IncompleteBody"),
    };
    let message = match (&e, declared) {
        (BodyError::TooLarge { limit }, n) if n > 0 => {
            format!("the request declares {n} bytes, over this route's limit of {limit} bytes")
        }
        _ => e.to_string(),
    };
    ApiError { status, code, message }
}
