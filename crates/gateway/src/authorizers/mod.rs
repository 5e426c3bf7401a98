//! The authorize stage: who is calling a route, per the route's `auth`. One file per
//! authorizer; each answers API Gateway's exact refusal when the caller may not go on.
//!
//! | `auth` | file | refusal |
//! | --- | --- | --- |
//! | `none` (default) | — | — |
//! | `api_key` | [`api_key`] | 403 `{"message":"Forbidden"}` (the key is checked with its plan in the throttle stage) |
//! | `iam` | [`iam`] | 403 `Missing Authentication Token`, a signature error, or `{"Message":"User: … is not authorized …"}` |
//! | `jwt:NAME` | [`jwt`] | 401 `{"message":"Unauthorized"}` with `www-authenticate` |
//! | `function:NAME` | [`function`] | 401 `{"message":"Unauthorized"}` (identity source missing), 403 `{"message":"Forbidden"}` (`isAuthorized: false`), 500 `{"message":"Internal Server Error"}` (the function failed) |

pub mod api_key;
pub mod function;
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
    /// A function authorizer: the function of this name decides.
    Function(String),
}

impl Auth {
    /// Parses a route's `auth` (absent = `none`).
    pub fn parse(text: Option<&str>) -> Result<Auth, String> {
        match text.unwrap_or("none") {
            "none" => Ok(Auth::None),
            "api_key" => Ok(Auth::ApiKey),
            "iam" => Ok(Auth::Iam),
            other => {
                if let Some(name) = other.strip_prefix("jwt:").filter(|n| !n.is_empty()) {
                    return Ok(Auth::Jwt(name.to_string()));
                }
                if let Some(name) = other.strip_prefix("function:").filter(|n| !n.is_empty()) {
                    return Ok(Auth::Function(name.to_string()));
                }
                if let Some(name) = other.strip_prefix("lambda:").filter(|n| !n.is_empty()) {
                    return Err(format!("{other:?}: write function authorizers as \"function:{name}\""));
                }
                Err(format!("{other:?} is not one of \"none\", \"api_key\", \"iam\", \"jwt:NAME\", \"function:NAME\""))
            }
        }
    }

    /// The word for the access log and `nimbus apply`.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "none".into(),
            Auth::ApiKey => "api_key".into(),
            Auth::Iam => "iam".into(),
            Auth::Jwt(name) => format!("jwt:{name}"),
            Auth::Function(name) => format!("function:{name}"),
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
    /// Allowed by the function authorizer `function`, with the `context` it returned (shared
    /// with the authorizer's cache, so a cached allow copies nothing).
    Lambda { function: String, context: Arc<serde_json::Map<String, serde_json::Value>> },
}

impl Identity {
    /// The principal for the access log: a user ARN, `api-key`, `jwt:<sub>`, `function:<name>`
    /// or `-`.
    pub fn principal(&self) -> String {
        match self {
            Identity::Anonymous => "-".into(),
            Identity::ApiKey(_) => "api-key".into(),
            Identity::Iam(p) => p.arn.clone(),
            Identity::Jwt { claims, .. } => format!(
                "jwt:{}",
                claims.get("sub").or_else(|| claims.get("client_id")).and_then(|v| v.as_str()).unwrap_or("?")
            ),
            Identity::Lambda { function, .. } => format!("function:{function}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_parses_every_form_and_names_the_fix() {
        let ok: [(Option<&str>, Auth); 6] = [
            (None, Auth::None),
            (Some("none"), Auth::None),
            (Some("api_key"), Auth::ApiKey),
            (Some("iam"), Auth::Iam),
            (Some("jwt:pool"), Auth::Jwt("pool".into())),
            (Some("function:authz"), Auth::Function("authz".into())),
        ];
        let mut failures = Vec::new();
        for (text, want) in ok {
            match Auth::parse(text) {
                Ok(got) if got == want => {
                    if text.is_some_and(|t| got.describe() != t) {
                        failures.push(format!("{text:?} describes as {}", got.describe()));
                    }
                }
                other => failures.push(format!("{text:?}: {other:?}, expected {want:?}")),
            }
        }
        let bad = [
            ("function:", "\"function:NAME\""),
            ("jwt:", "\"jwt:NAME\""),
            ("lambda:authz", "\"function:authz\""),
            ("cognito", "not one of"),
        ];
        for (text, says) in bad {
            match Auth::parse(Some(text)) {
                Err(e) if e.contains(says) => {}
                other => failures.push(format!("{text:?}: {other:?}, expected an error saying {says}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
