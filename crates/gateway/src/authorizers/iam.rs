//! The `iam` authorizer: the request is SigV4-signed with service `execute-api` (as
//! requests-aws4auth and botocore sign it), and the caller's policies must allow
//! `execute-api:Invoke` on `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
//!
//! In order: no signature → 403 `Missing Authentication Token`; the key, scope and clock are
//! checked before the body is read ([`nimbus_iam::Iam::prepare`]); the body is read (bounded)
//! and its hash checked or computed; the signature is verified; then the policy decides. A
//! denial is API Gateway's `{"Message": "User: … is not authorized to perform: …"}`.

use std::net::IpAddr;

use axum::http::request::Parts;
use bytes::Bytes;
use nimbus_iam::sigv4::{self, Payload, UriMode};
use nimbus_iam::{Iam, IamError, RequestFacts};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Identity;
use crate::request::Refused;

/// The SigV4 service name of API Gateway.
pub const SERVICE: &str = "execute-api";

/// The IAM action a caller needs.
pub const ACTION: &str = "execute-api:Invoke";

/// The route's resource ARN for this request.
pub fn resource_arn(iam: &Iam, api: &str, stage: &str, method: &str, route_path: &str) -> String {
    let p = iam.partition();
    format!(
        "arn:aws:execute-api:{}:{}:{api}/{stage}/{method}/{}",
        p.region,
        p.account,
        route_path.trim_start_matches('/')
    )
}

fn forbidden(message: String) -> Refused {
    let reason = message.clone();
    Refused::json(403, json!({ "message": message })).because(reason)
}

fn refusal(e: IamError) -> Refused {
    match e {
        IamError::Signature(s) => forbidden(s.to_string()),
        other => {
            tracing::error!("iam authorizer failed: {other}");
            Refused::json(500, json!({ "message": "Internal Server Error" })).because("policy evaluation failed".into())
        }
    }
}

/// Authenticates and authorises; returns the caller, the body it signed and why it was allowed.
pub async fn authorize(
    iam: &Iam,
    parts: &Parts,
    body: axum::body::Body,
    resource: &str,
    source_ip: Option<IpAddr>,
    secure: bool,
) -> Result<(Identity, Bytes, String), Refused> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut req = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body_sha256: None,
    };
    if let Err(sigv4::SigError::Missing) = sigv4::parse(&req) {
        return Err(forbidden("Missing Authentication Token".into()));
    }
    let prepared = iam.prepare(&req, SERVICE, false).await.map_err(refusal)?;
    let bytes = crate::request::read_body(body).await?;
    let found = hex::encode(Sha256::digest(&bytes));
    if let Payload::Signed(signed) = prepared.payload()
        && !sigv4::constant_time_eq(signed.as_bytes(), found.as_bytes())
    {
        return Err(forbidden(sigv4::SigError::BodyHashMismatch.to_string()));
    }
    req.body_sha256 = Some(&found);
    let principal = prepared.verify(&req, UriMode::Normalized).map_err(refusal)?;
    let facts = RequestFacts { source_ip, secure, extra: Vec::new() };
    let verdict = iam.authorize(&principal, ACTION, resource, &facts).await.map_err(refusal)?;
    // Allowed decisions at debug (one per request), denials at info.
    macro_rules! decision {
        ($lvl:ident) => {
            tracing::$lvl!(target: "authz",
        principal = %principal.arn,
        action = ACTION,
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
    if !verdict.is_allowed() {
        return Err(Refused::json(403, json!({ "Message": verdict.denial(&principal.arn, ACTION, resource) }))
            .because(format!("{} {ACTION} on {resource}: {}", principal.arn, verdict.reason())));
    }
    Ok((Identity::Iam(principal), bytes, verdict.reason()))
}
