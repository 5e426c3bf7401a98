//! What an API is, as declared in `nimbus.toml` (`[apis.NAME]`) and stored by the server.
//!
//! ```toml
//! [apis.titanic]
//! description = "Titanic survival predictions"
//! hosts = ["titanic.example.com"]         # optional: host-based routing, AWS URL form
//! [apis.titanic.routes]
//! "POST /predict" = { function = "predict" }
//! "GET /items/{id}" = { function = "items" }
//! "ANY /{proxy+}" = { function = "fallback" }
//! "$default" = { function = "fallback" }
//! "POST /private" = { function = "predict", auth = "iam" }
//! "POST /scoped" = { function = "predict", auth = "jwt:pool", scopes = ["titanic/predict"] }
//! "ANY /v2/{proxy+}" = { function = "predict", protocol = "oip", auth = "api_key" }
//! "ANY /legacy/{proxy+}" = { function = "app", payload_format = "1.0" }  # REST-style events
//! [apis.titanic.stages.prod]
//! variables = { model = "titanic" }
//! throttle = { rate = 100, burst = 50 }     # the stage's default throttle, for every caller
//! "POST /custom" = { function = "predict", auth = "function:authz" }  # a function authorizer
//! [apis.titanic.authorizers.pool]           # a JWT authorizer; no issuer = the built-in one
//! audience = ["titanic-client"]
//! [apis.titanic.function_authorizers.authz] # optional settings of `function:authz`
//! identity_source = ["$request.header.Authorization"]
//! ttl_s = 300
//! [apis.titanic.cors]
//! allow_origins = ["https://app.example.com"]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::PayloadFormat;

/// First path segments the server keeps for itself; no API may take these names.
pub const RESERVED_NAMES: [&str; 5] = ["metrics", "2015-03-31", "oauth2", ".well-known", "_nimbus"];

/// Methods a route may name (`ANY` matches all).
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// A route's integration and authorization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The function that answers.
    pub function: String,
    /// Who may call: `none` (the default, as in API Gateway), `api_key`, `iam`, `jwt:NAME`
    /// (an authorizer of this API) or `function:NAME` (a function authorizer: the function
    /// `NAME`, which takes events, decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// For `jwt:` routes: the token needs at least one of these scopes (none: any token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// This route's default throttle, for every caller (instead of the stage's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<crate::usage::Throttle>,
    /// `oip`: the route speaks the Open Inference Protocol v2 (`…/v2/models/{m}/infer`, metadata,
    /// health) for its function; absent: the function's own request forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The API Gateway event a function integration receives and the response shape it
    /// returns: `"2.0"` (the default, as in HTTP APIs) or `"1.0"` (REST-compatible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<String>,
}

impl RouteSpec {
    /// A public route to `function`.
    pub fn to(function: &str) -> RouteSpec {
        RouteSpec {
            function: function.to_string(),
            auth: None,
            scopes: Vec::new(),
            throttle: None,
            protocol: None,
            payload_format: None,
        }
    }
}

/// A JWT authorizer of an API (API Gateway HTTP API's JWT authorizer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthorizerSpec {
    /// The `iss` tokens must carry; absent: this server's own authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` values, or `client_id` values for tokens without `aud`.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Where the issuer's keys are; default `{issuer}/.well-known/jwks.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

/// The settings of a function (Lambda) authorizer, `[apis.API.function_authorizers.FUNCTION]`:
/// API Gateway HTTP API's `REQUEST` authorizer with payload format 2.0 and simple responses.
/// A route with `auth = "function:FUNCTION"` and no settings gets the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionAuthorizerSpec {
    /// Where the caller's identity is: `$request.header.NAME` or `$request.querystring.NAME`.
    /// A request missing any of them (or with one empty) is 401 without calling the function;
    /// their values are the cache key. Default `["$request.header.Authorization"]`.
    #[serde(default = "default_identity_source")]
    pub identity_source: Vec<String>,
    /// How long a result (allow with its context, or deny) is reused for the same identity
    /// values, in seconds: 0 (no caching) to 3600. Default 300, as in API Gateway.
    #[serde(default = "default_ttl_s")]
    pub ttl_s: u32,
    /// Only simple responses (`{"isAuthorized": bool, "context": {…}}`) are supported, so this
    /// is always `true`; `false` is refused.
    #[serde(default = "default_simple_responses")]
    pub enable_simple_responses: bool,
}

/// The identity source of a function authorizer without settings.
pub const DEFAULT_IDENTITY_SOURCE: &str = "$request.header.Authorization";

/// The longest a function authorizer's result may be cached (API Gateway's limit).
pub const MAX_AUTHORIZER_TTL_S: u32 = 3600;

fn default_identity_source() -> Vec<String> {
    vec![DEFAULT_IDENTITY_SOURCE.to_string()]
}

fn default_ttl_s() -> u32 {
    300
}

fn default_simple_responses() -> bool {
    true
}

impl Default for FunctionAuthorizerSpec {
    fn default() -> FunctionAuthorizerSpec {
        FunctionAuthorizerSpec {
            identity_source: default_identity_source(),
            ttl_s: default_ttl_s(),
            enable_simple_responses: true,
        }
    }
}

impl FunctionAuthorizerSpec {
    /// Checks the settings of the authorizer of function `name`; the error names the field.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let field = |f: &str| format!("function_authorizers.{name}.{f}");
        if !self.enable_simple_responses {
            return Err(format!(
                "{}: only simple responses ({{\"isAuthorized\": bool, \"context\": {{…}}}}) are supported; \
                 remove the field or set it to true",
                field("enable_simple_responses")
            ));
        }
        if self.ttl_s > MAX_AUTHORIZER_TTL_S {
            return Err(format!(
                "{}: {} is more than the {MAX_AUTHORIZER_TTL_S} seconds allowed; use 0 (no caching) to \
                 {MAX_AUTHORIZER_TTL_S}",
                field("ttl_s"),
                self.ttl_s
            ));
        }
        if self.identity_source.is_empty() && self.ttl_s > 0 {
            return Err(format!(
                "{}: a cached result needs an identity source to be keyed by; list one \
                 (e.g. \"{DEFAULT_IDENTITY_SOURCE}\") or set ttl_s = 0",
                field("identity_source")
            ));
        }
        for (i, source) in self.identity_source.iter().enumerate() {
            crate::authorizers::function::IdentitySource::parse(source)
                .map_err(|e| format!("{}[{i}]: {e}", field("identity_source")))?;
        }
        Ok(())
    }
}

/// A stage: a deployment of the API under `/{api}/{stage}/…`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Stage variables, passed to integrations.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    /// The stage's default throttle, for every caller of every route without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<crate::usage::Throttle>,
}

/// An API's declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    #[serde(default)]
    pub description: String,
    /// Host names that address this API without the `/{api}` path prefix.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Route key (`POST /predict`, `GET /items/{id}`, `ANY /{proxy+}`, `$default`) → integration.
    pub routes: BTreeMap<String, RouteSpec>,
    /// Stage name → stage.
    pub stages: BTreeMap<String, StageSpec>,
    /// JWT authorizers by name, for routes with `auth = "jwt:NAME"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorizers: BTreeMap<String, JwtAuthorizerSpec>,
    /// Settings of function authorizers by function name, for routes with
    /// `auth = "function:NAME"` (optional: a route's authorizer without settings gets the defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub function_authorizers: BTreeMap<String, FunctionAuthorizerSpec>,
    /// CORS for browser clients; absent: no CORS headers, preflights go to routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<crate::cors::CorsSpec>,
}

/// A parsed route key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKey {
    /// `$default`: whatever no other route matches.
    Default,
    /// `METHOD /path` with the path in matchit's syntax (`{id}`, `{*proxy}`).
    Route { method: String, pattern: String },
}

/// Parses `METHOD /path` (path parameters `{name}`, a greedy last one `{name+}`) or `$default`.
pub fn parse_route_key(key: &str) -> Result<RouteKey, String> {
    if key == "$default" {
        return Ok(RouteKey::Default);
    }
    let fix = "write routes as \"METHOD /path\" (e.g. \"POST /predict\", \"GET /items/{id}\", \"ANY /{proxy+}\") or \"$default\"";
    let (method, path) = key.split_once(' ').ok_or_else(|| format!("route {key:?}: {fix}"))?;
    if !METHODS.contains(&method) {
        return Err(format!("route {key:?}: method {method:?} is not one of {}", METHODS.join(", ")));
    }
    if !path.starts_with('/') {
        return Err(format!("route {key:?}: the path must start with '/'; {fix}"));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut pattern = String::new();
    for (i, seg) in segments.iter().enumerate() {
        pattern.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let (name, greedy) = match name.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (name, false),
                };
                if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    return Err(format!(
                        "route {key:?}: path parameter {seg:?} needs a name of letters, digits and '_'"
                    ));
                }
                if greedy && i + 1 != segments.len() {
                    return Err(format!("route {key:?}: a greedy parameter {seg:?} must be the last segment"));
                }
                pattern.push_str(&if greedy { format!("{{*{name}}}") } else { format!("{{{name}}}") });
            }
            None if seg.contains(['{', '}']) => {
                return Err(format!(
                    "route {key:?}: segment {seg:?} mixes text and braces; use a whole {{name}} segment"
                ));
            }
            None => pattern.push_str(seg),
        }
    }
    Ok(RouteKey::Route { method: method.to_string(), pattern })
}

impl ApiSpec {
    /// Checks the declaration; the error names the field and the fix.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let name_of_api = name;
        nimbus_core::names::resource("API name", name).map_err(|e| e.to_string())?;
        if RESERVED_NAMES.contains(&name) {
            return Err(format!("API name {name:?} is reserved (the server uses /{name}/); choose another name"));
        }
        if self.routes.is_empty() {
            return Err(
                "routes: declare at least one route, e.g. \"POST /predict\" = { function = \"predict\" }".into()
            );
        }
        for (key, route) in &self.routes {
            parse_route_key(key)?;
            let auth = crate::authorizers::Auth::parse(route.auth.as_deref())
                .map_err(|e| format!("routes.{key:?}.auth: {e}"))?;
            if let crate::authorizers::Auth::Jwt(name) = &auth {
                if !self.authorizers.contains_key(name) {
                    return Err(format!(
                        "routes.{key:?}.auth: authorizer {name:?} is not declared; add [apis.{api}.authorizers.{name}]",
                        api = name_of_api
                    ));
                }
            } else if !route.scopes.is_empty() {
                return Err(format!("routes.{key:?}.scopes: scopes apply only to auth = \"jwt:NAME\" routes"));
            }
            if let Some(t) = &route.throttle {
                crate::usage::plan::validate_throttle(&format!("routes.{key:?}.throttle"), t)?;
            }
            match route.protocol.as_deref() {
                None | Some("oip") => {}
                Some(other) => {
                    return Err(format!(
                        "routes.{key:?}.protocol: {other:?} is not known; use \"oip\" (Open Inference Protocol v2) or leave it out"
                    ));
                }
            }
            PayloadFormat::parse(route.payload_format.as_deref())
                .map_err(|e| format!("routes.{key:?}.payload_format: {e}"))?;
            if route.payload_format.is_some() && route.protocol.is_some() {
                return Err(format!(
                    "routes.{key:?}.payload_format: a protocol = \"oip\" route is answered by the gateway, not sent \
                     as an API Gateway event; remove payload_format or protocol"
                ));
            }
        }
        for (name, a) in &self.authorizers {
            nimbus_core::names::resource("authorizer name", name).map_err(|e| format!("authorizers: {e}"))?;
            if let Some(issuer) = &a.issuer
                && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            {
                return Err(format!(
                    "authorizers.{name}.issuer: {issuer:?} is not a URL; write the issuer's https:// URL, or leave it out for this server's own"
                ));
            }
            if a.audience.is_empty() {
                return Err(format!(
                    "authorizers.{name}.audience: list at least one audience (an app client id for client-credentials tokens)"
                ));
            }
        }
        for (name, a) in &self.function_authorizers {
            let used = self
                .routes
                .values()
                .any(|r| r.auth.as_deref().and_then(|a| a.strip_prefix("function:")) == Some(name.as_str()));
            if !used {
                return Err(format!(
                    "function_authorizers.{name}: no route has auth = \"function:{name}\"; use it on a route or \
                     remove these settings"
                ));
            }
            a.validate(name)?;
        }
        if let Some(cors) = &self.cors {
            cors.validate()?;
        }
        if self.stages.is_empty() {
            return Err("stages: declare at least one stage, e.g. [apis.NAME.stages.prod]".into());
        }
        for (stage, spec) in &self.stages {
            nimbus_core::names::resource("stage name", stage).map_err(|e| format!("stages: {e}"))?;
            if let Some(t) = &spec.throttle {
                crate::usage::plan::validate_throttle(&format!("stages.{stage}.throttle"), t)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys() {
        assert_eq!(parse_route_key("$default").unwrap(), RouteKey::Default);
        assert_eq!(
            parse_route_key("GET /items/{id}").unwrap(),
            RouteKey::Route { method: "GET".into(), pattern: "/items/{id}".into() }
        );
        assert_eq!(
            parse_route_key("ANY /{proxy+}").unwrap(),
            RouteKey::Route { method: "ANY".into(), pattern: "/{*proxy}".into() }
        );
        assert!(parse_route_key("FETCH /x").unwrap_err().contains("not one of GET"));
        assert!(parse_route_key("/predict").unwrap_err().contains("METHOD /path"));
        assert!(parse_route_key("GET /{a+}/b").unwrap_err().contains("must be the last"));
        assert!(parse_route_key("GET /a{b}").unwrap_err().contains("mixes text"));
    }
}
