//! The `jwt:NAME` authorizer: a bearer token from `Authorization` (with or without
//! `Bearer `), verified against the authorizer's issuer, audience and the route's scopes by
//! [`nimbus_oauth::Verifier`] (signatures of tokens seen before are cached until `exp`; the
//! time, audience and scope checks run on every request). Every failure is 401
//! `{"message":"Unauthorized"}` with `www-authenticate: Bearer … error="invalid_token"`; the
//! reason goes to the access log only.

use axum::http::HeaderMap;
use nimbus_oauth::{JwtAuthorizerSpec, JwtError, Verifier};
use serde_json::json;

use super::Identity;
use crate::request::Refused;

/// Verifies the request's token for `spec` and the route's `scopes`.
pub async fn authorize(
    verifier: &Verifier,
    spec: &JwtAuthorizerSpec,
    scopes: &[String],
    headers: &HeaderMap,
) -> Result<Identity, Refused> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match verifier.verify(spec, authorization, scopes).await {
        Ok(v) => Ok(Identity::Jwt { claims: v.claims, scopes: v.scopes }),
        Err(e) => {
            tracing::info!(target: "authz", issuer = %spec.issuer, reason = %e, allowed = false, "jwt authorization");
            // DESIGN §4: every failure is `invalid_token`; the description says which kind
            // without echoing anything of the token.
            let description = match &e {
                JwtError::Missing => "a bearer token is required",
                JwtError::InsufficientScope => "the token lacks the scope this route needs",
                JwtError::Expired => "the token has expired",
                _ => "the token is not valid for this route",
            };
            let scope = scopes.join(" ");
            let challenge =
                format!("Bearer scope=\"{scope}\" error=\"invalid_token\" error_description=\"{description}\"");
            Err(Refused::json(401, json!({ "message": "Unauthorized" }))
                .with_header("www-authenticate", challenge)
                .because(format!("jwt:{} {e}", spec.issuer)))
        }
    }
}
