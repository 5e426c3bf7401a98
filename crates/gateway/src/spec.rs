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
//! [apis.titanic.stages.prod]
//! variables = { model = "titanic" }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// First path segments the server keeps for itself; no API may take these names.
pub const RESERVED_NAMES: [&str; 3] = ["v2", "metrics", "2015-03-31"];

/// Methods a route may name (`ANY` matches all).
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// A route's integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The function that answers.
    pub function: String,
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
        nimbus_core::names::resource("API name", name).map_err(|e| e.to_string())?;
        if RESERVED_NAMES.contains(&name) {
            return Err(format!("API name {name:?} is reserved (the server uses /{name}/); choose another name"));
        }
        if self.routes.is_empty() {
            return Err(
                "routes: declare at least one route, e.g. \"POST /predict\" = { function = \"predict\" }".into()
            );
        }
        for key in self.routes.keys() {
            parse_route_key(key)?;
        }
        if self.stages.is_empty() {
            return Err("stages: declare at least one stage, e.g. [apis.NAME.stages.prod]".into());
        }
        for stage in self.stages.keys() {
            nimbus_core::names::resource("stage name", stage).map_err(|e| format!("stages: {e}"))?;
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
