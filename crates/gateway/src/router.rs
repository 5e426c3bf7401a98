//! A compiled API: its routes in radix trees (one per method, one for `ANY`), so finding a
//! route costs time in the path's length, not in the number of routes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;

use nimbus_functions::logs::LogBook;
use nimbus_functions::metrics::label;

use crate::authorizers::Auth;
use crate::authorizers::function::FunctionAuthorizer;
use crate::cors::CompiledCors;
use crate::events::PayloadFormat;
use crate::spec::{ApiSpec, RouteKey, parse_route_key};
use crate::usage::Throttle;

/// One route of a compiled API.
#[derive(Debug)]
pub struct Route {
    /// The key as declared, e.g. `POST /predict`.
    pub key: String,
    /// The function that answers.
    pub function: String,
    /// Who may call it.
    pub auth: Auth,
    /// For `jwt:` routes: the scopes of which the token needs one.
    pub scopes: Vec<String>,
    /// The route's default throttle, for every caller.
    pub throttle: Option<Throttle>,
    /// Whether the route speaks the Open Inference Protocol v2.
    pub oip: bool,
    /// The path template as declared (`/items/{id}`, `/{proxy+}`), or `$default`: the
    /// `resource` of a 1.0 event.
    pub template: String,
    /// The API Gateway event format of a function integration (default 2.0).
    pub payload_format: PayloadFormat,
}

/// A matched route with its path parameters.
#[derive(Debug, PartialEq)]
pub struct Matched {
    /// The route's index in [`CompiledApi::routes`].
    pub route: usize,
    /// Path parameters by API Gateway's names (`id` for `{id}`, `proxy` for `{proxy+}`),
    /// values as they appear in the request path (not percent-decoded).
    pub params: Vec<(String, String)>,
}

/// An API ready to route.
#[derive(Debug)]
pub struct CompiledApi {
    pub name: String,
    pub spec: ApiSpec,
    pub routes: Vec<Route>,
    by_method: HashMap<String, matchit::Router<usize>>,
    any: matchit::Router<usize>,
    default: Option<usize>,
    /// Access log lines (JSON), newest last.
    pub access: LogBook,
    /// Stage names, in declaration order; a stage is referred to by its index.
    pub stages: Vec<String>,
    /// Each stage's default throttle, by stage index.
    pub stage_throttles: Vec<Option<Throttle>>,
    /// Each stage's variables (`stageVariables` of the events), by stage index.
    pub stage_variables: Vec<BTreeMap<String, String>>,
    /// JWT authorizers by name, with the issuer filled in.
    pub jwt: HashMap<String, nimbus_oauth::JwtAuthorizerSpec>,
    /// Function authorizers by function name, one for every `function:NAME` a route names
    /// (its `function_authorizers` settings, or the defaults).
    pub function_authorizers: HashMap<String, FunctionAuthorizer>,
    /// CORS, compiled.
    pub cors: Option<CompiledCors>,
    /// Responses by (route, stage index, status).
    counts: Mutex<HashMap<(usize, usize, u16), u64>>,
}

impl CompiledApi {
    /// Compiles a validated declaration; conflicting routes are an error naming both. JWT
    /// authorizers without an issuer get `builtin_issuer`, this server's own.
    pub fn compile(name: &str, spec: ApiSpec, builtin_issuer: &str) -> Result<CompiledApi, String> {
        spec.validate(name)?;
        let mut routes = Vec::new();
        let mut by_method: HashMap<String, matchit::Router<usize>> = HashMap::new();
        let mut any = matchit::Router::new();
        let mut default = None;
        let mut function_authorizers = HashMap::new();
        for (key, route) in &spec.routes {
            let idx = routes.len();
            let auth = Auth::parse(route.auth.as_deref())?;
            if let Auth::Function(name) = &auth
                && !function_authorizers.contains_key(name)
            {
                let compiled = FunctionAuthorizer::compile(name, spec.function_authorizers.get(name))?;
                function_authorizers.insert(name.clone(), compiled);
            }
            routes.push(Route {
                key: key.clone(),
                function: route.function.clone(),
                auth,
                scopes: route.scopes.clone(),
                throttle: route.throttle,
                oip: route.protocol.as_deref() == Some("oip"),
                template: key.split_once(' ').map_or(key.as_str(), |(_, path)| path).to_string(),
                payload_format: PayloadFormat::parse(route.payload_format.as_deref())?,
            });
            match parse_route_key(key)? {
                RouteKey::Default => default = Some(idx),
                RouteKey::Route { method, pattern } => {
                    let tree = if method == "ANY" { &mut any } else { by_method.entry(method).or_default() };
                    tree.insert(pattern, idx)
                        .map_err(|e| format!("route {key:?} conflicts with another route: {e}"))?;
                }
            }
        }
        let jwt = spec
            .authorizers
            .iter()
            .map(|(n, a)| {
                let issuer = a.issuer.clone().unwrap_or_else(|| builtin_issuer.to_string());
                (
                    n.clone(),
                    nimbus_oauth::JwtAuthorizerSpec {
                        issuer,
                        audience: a.audience.clone(),
                        jwks_url: a.jwks_url.clone(),
                    },
                )
            })
            .collect();
        Ok(CompiledApi {
            name: name.to_string(),
            stages: spec.stages.keys().cloned().collect(),
            stage_throttles: spec.stages.values().map(|s| s.throttle).collect(),
            stage_variables: spec.stages.values().map(|s| s.variables.clone()).collect(),
            jwt,
            function_authorizers,
            cors: spec.cors.as_ref().map(|c| c.compile()),
            spec,
            routes,
            by_method,
            any,
            default,
            access: LogBook::default(),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// The route for `method` and `path` (the part after the stage): an exact-method route,
    /// then an `ANY` route, then `$default`.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched> {
        // matchit 0.8.4 (the version axum pins) lets `{id}` match an empty segment when more
        // path follows (`/{id}/x` matches `//x`); a path parameter is never empty.
        let hit = self
            .by_method
            .get(method)
            .and_then(|t| t.at(path).ok())
            .filter(|m| m.params.iter().all(|(_, v)| !v.is_empty()))
            .or_else(|| self.any.at(path).ok().filter(|m| m.params.iter().all(|(_, v)| !v.is_empty())));
        match hit {
            Some(m) => Some(Matched {
                route: *m.value,
                params: m.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }),
            None => self.default.map(|route| Matched { route, params: Vec::new() }),
        }
    }

    /// The index of the stage called `name`.
    pub fn stage(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s == name)
    }

    /// Counts one response.
    pub fn count(&self, route: usize, stage: usize, status: u16) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((route, stage, status)).or_insert(0) += 1;
    }

    /// Writes `nimbus_gateway_responses_total` lines of this API.
    pub fn render_counts(&self, out: &mut String) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = counts.iter().collect();
        rows.sort();
        for ((route, stage, status), n) in rows {
            let _ = writeln!(
                out,
                "nimbus_gateway_responses_total{{api=\"{}\",stage=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                label(&self.name),
                label(&self.stages[*stage]),
                label(&self.routes[*route].key)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{RouteSpec, StageSpec};

    fn api(keys: &[&str]) -> Result<CompiledApi, String> {
        let spec = ApiSpec {
            description: String::new(),
            hosts: vec![],
            routes: keys.iter().map(|k| (k.to_string(), RouteSpec::to(&format!("f{}", k.len())))).collect(),
            stages: [("prod".to_string(), StageSpec::default())].into(),
            authorizers: Default::default(),
            function_authorizers: Default::default(),
            cors: None,
        };
        CompiledApi::compile("t", spec, "")
    }

    #[test]
    fn methods_parameters_greedy_and_default() {
        let a = api(&["POST /predict", "GET /items/{id}", "ANY /{proxy+}", "$default"]).unwrap();
        let key = |m: Option<Matched>| m.map(|m| (a.routes[m.route].key.clone(), m.params));
        assert_eq!(key(a.find("POST", "/predict")), Some(("POST /predict".into(), vec![])));
        assert_eq!(key(a.find("GET", "/items/42")), Some(("GET /items/{id}".into(), vec![("id".into(), "42".into())])));
        assert_eq!(
            key(a.find("GET", "/predict/x/y")),
            Some(("ANY /{proxy+}".into(), vec![("proxy".into(), "predict/x/y".into())]))
        );
        assert_eq!(key(a.find("GET", "/")), Some(("$default".into(), vec![])));
        let b = api(&["POST /predict"]).unwrap();
        assert!(b.find("GET", "/predict").is_none());
        assert!(b.find("POST", "/predict/").is_none());
    }

    #[test]
    fn an_empty_segment_is_no_parameter() {
        // Found by `proptests`: matchit 0.8.4 matched `//x` to `/{id}/x` with `id` empty.
        let a = api(&["GET /{id}/x", "GET /a/{b}/{c}"]).unwrap();
        assert!(a.find("GET", "//x").is_none() && a.find("GET", "/a//c").is_none());
        assert_eq!(a.find("GET", "/7/x").map(|m| m.params), Some(vec![("id".into(), "7".into())]));
    }

    #[test]
    fn routes_keep_template_and_payload_format_stages_their_variables() {
        let mut spec = ApiSpec {
            description: String::new(),
            hosts: vec![],
            routes: ["GET /items/{id}", "ANY /{proxy+}", "$default"]
                .iter()
                .map(|k| (k.to_string(), RouteSpec::to("f")))
                .collect(),
            stages: [
                ("dev".to_string(), StageSpec::default()),
                (
                    "prod".to_string(),
                    StageSpec { variables: [("model".into(), "titanic".into())].into(), ..StageSpec::default() },
                ),
            ]
            .into(),
            authorizers: Default::default(),
            function_authorizers: Default::default(),
            cors: None,
        };
        spec.routes.get_mut("ANY /{proxy+}").unwrap().payload_format = Some("1.0".into());
        let a = CompiledApi::compile("t", spec, "").unwrap();
        let route = |key: &str| a.routes.iter().find(|r| r.key == key).unwrap();
        assert_eq!(route("GET /items/{id}").template, "/items/{id}");
        assert_eq!(route("ANY /{proxy+}").template, "/{proxy+}");
        assert_eq!(route("$default").template, "$default");
        assert_eq!(route("GET /items/{id}").payload_format, PayloadFormat::V2);
        assert_eq!(route("ANY /{proxy+}").payload_format, PayloadFormat::V1);
        let prod = a.stage("prod").unwrap();
        assert_eq!(a.stage_variables[prod].get("model").map(String::as_str), Some("titanic"));
        assert!(a.stage_variables[a.stage("dev").unwrap()].is_empty());
    }

    #[test]
    fn payload_format_errors_name_the_field() {
        let spec = |format: &str, protocol: Option<&str>| ApiSpec {
            description: String::new(),
            hosts: vec![],
            routes: [(
                "POST /p".to_string(),
                RouteSpec {
                    payload_format: Some(format.into()),
                    protocol: protocol.map(str::to_string),
                    ..RouteSpec::to("f")
                },
            )]
            .into(),
            stages: [("prod".to_string(), StageSpec::default())].into(),
            authorizers: Default::default(),
            function_authorizers: Default::default(),
            cors: None,
        };
        let e = CompiledApi::compile("t", spec("3.0", None), "").unwrap_err();
        assert!(
            e.contains("routes.\"POST /p\".payload_format") && e.contains("\"2.0\"") && e.contains("\"1.0\""),
            "{e}"
        );
        let e = CompiledApi::compile("t", spec("1.0", Some("oip")), "").unwrap_err();
        assert!(e.contains("payload_format") && e.contains("oip"), "{e}");
        assert!(CompiledApi::compile("t", spec("2.0", None), "").is_ok());
    }

    #[test]
    fn conflicts_are_named() {
        let e = api(&["GET /items/{id}", "GET /items/{name}"]).unwrap_err();
        assert!(e.contains("conflicts"), "{e}");
    }

    #[test]
    fn many_routes_route_by_tree() {
        let keys: Vec<String> = (0..2000).map(|i| format!("GET /r{i}/items/{{id}}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let a = api(&refs).unwrap();
        let m = a.find("GET", "/r1999/items/7").unwrap();
        assert_eq!(a.routes[m.route].key, "GET /r1999/items/{id}");
        assert!(a.find("GET", "/r2000/items/7").is_none());
    }
}
