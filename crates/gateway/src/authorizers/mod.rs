//! The authorize stage: who is calling a route, per the route's `auth`. One file per
//! authorizer; each answers API Gateway's exact refusal when the caller may not go on.
//!
//! | `auth` | file | refusal |
//! | --- | --- | --- |
//! | `none` (default) | — | — |
//! | `api_key` | [`api_key`] | 403 `{"message":"Forbidden"}` (the key is checked with its plan in the throttle stage) |
//! | `iam` | [`iam`] | 403 `Missing Authentication Token`, a signature error, or `{"Message":"User: … is not authorized …"}` |
//! | `jwt:NAME` | [`jwt`] | 401 `{"message":"Unauthorized"}` with `www-authenticate` |
//!
//! Function (Lambda) authorizers come with process functions; [`Auth::parse`] names them so
//! a declaration gets a clear error today and the stage has its place for them.

pub mod api_key;
pub mod iam;
pub mod jwt;

use std::sync::Arc;

/// A route's declared authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    ApiKey,
    Iam,
    Jwt(String),
}

impl Auth {
    /// Parses a route's `auth` (absent = `none`).
    pub fn parse(text: Option<&str>) -> Result<Auth, String> {
        match text.unwrap_or("none") {
            "none" => Ok(Auth::None),
            "api_key" => Ok(Auth::ApiKey),
            "iam" => Ok(Auth::Iam),
            other => match other.strip_prefix("jwt:") {
                Some(name) if !name.is_empty() => Ok(Auth::Jwt(name.to_string())),
                _ if other.starts_with("function:") || other.starts_with("lambda:") => Err(format!(
                    "{other:?}: function authorizers need process functions, which this version does not run yet; \
                     use \"api_key\", \"iam\" or \"jwt:NAME\""
                )),
                _ => Err(format!("{other:?} is not one of \"none\", \"api_key\", \"iam\", \"jwt:NAME\"")),
            },
        }
    }

    /// The word for the access log and `nimbus apply`.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "none".into(),
            Auth::ApiKey => "api_key".into(),
            Auth::Iam => "iam".into(),
            Auth::Jwt(name) => format!("jwt:{name}"),
        }
    }
}

/// Who the authorize stage found calling.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A route with `auth = "none"`.
    Anonymous,
    /// The `x-api-key` value, checked with its plan in the throttle stage.
    ApiKey(Arc<str>),
    /// A SigV4-signed caller allowed `execute-api:Invoke`.
    Iam(nimbus_iam::Principal),
    /// A verified JWT's claims and scopes.
    Jwt { claims: serde_json::Map<String, serde_json::Value>, scopes: Vec<String> },
}

impl Identity {
    /// The principal for the access log: a user ARN, `key:<id>`, `jwt:<sub>` or `-`.
    pub fn principal(&self) -> String {
        match self {
            Identity::Anonymous => "-".into(),
            Identity::ApiKey(_) => "api-key".into(),
            Identity::Iam(p) => p.arn.clone(),
            Identity::Jwt { claims, .. } => format!(
                "jwt:{}",
                claims.get("sub").or_else(|| claims.get("client_id")).and_then(|v| v.as_str()).unwrap_or("?")
            ),
        }
    }
}
