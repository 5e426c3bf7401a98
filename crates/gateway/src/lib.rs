//! The API gateway: APIs declared in `nimbus.toml`, served at `/{api}/{stage}/{route path}`
//! (or `/{stage}/{route path}` on a host name the API claims, including
//! `{api}.execute-api.localhost`).
//!
//! - [`spec`]: the declaration and route keys.
//! - [`router`]: compiled APIs (radix trees per method), response counters, access logs.
//! - [`request`]: the request path, stage by stage (locate → route → authorize → throttle →
//!   integrate → account).
//! - [`authorizers`]: one file per route authorization (`api_key`, `iam`, `jwt`, `function`).
//! - [`usage`]: API keys, usage plans, token buckets and quotas.
//! - [`cors`]: per-API CORS, preflights answered by the gateway.
//! - [`oip`]: the Open Inference Protocol v2 on `protocol = "oip"` routes.
//! - [`events`]: API Gateway's Lambda proxy events (payload format 2.0 and 1.0) and the
//!   interpretation of a function's response.
//!
//! Every response carries `x-amzn-RequestId` and `apigw-requestid`; errors have API Gateway's
//! bodies and statuses (403 `Forbidden` / `Missing Authentication Token`, 401 `Unauthorized`,
//! 404 `Not Found`, 413, 429 `Too Many Requests` / `Limit Exceeded`, 502 `Internal Server
//! Error`, 504 `Endpoint request timed out`). Each request writes one JSON access-log line
//! with its authorization decision.
#![forbid(unsafe_code)]

pub mod authorizers;
pub mod cors;
pub mod events;
pub mod oip;
#[cfg(test)]
mod proptests;
pub mod request;
pub mod router;
pub mod spec;
pub mod usage;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use nimbus_core::clock;
use nimbus_functions::Functions;
use nimbus_iam::Iam;
use nimbus_meta::Db;
use nimbus_oauth::Verifier;
use usage::Usage;

pub use router::CompiledApi;
pub use spec::{ApiSpec, RouteSpec, StageSpec};

/// The metadata kind of stored API declarations.
const KIND: &str = "api";

/// Largest request body the gateway accepts (API Gateway's limit).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Longest the gateway waits for an integration (API Gateway's limit).
pub const MAX_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of managing APIs.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A declaration is invalid; the message names the field.
    #[error("api {name}: {reason}")]
    Invalid { name: String, reason: String },
    /// No such API.
    #[error("api {0:?} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

#[derive(Default)]
struct Table {
    apis: HashMap<String, Arc<CompiledApi>>,
    hosts: HashMap<String, Arc<CompiledApi>>,
}

struct Inner {
    db: Db,
    functions: Functions,
    /// SigV4 and policies of `iam` routes.
    iam: Iam,
    /// API keys, usage plans and throttles.
    usage: Usage,
    /// Tokens of `jwt:` routes.
    verifier: Verifier,
    /// Results of `function:` authorizers, emptied whenever an API changes.
    authorizer_cache: authorizers::function::Cache,
    /// This server's own token issuer, for JWT authorizers that name none.
    issuer: String,
    table: ArcSwap<Table>,
    /// Held by every create, replace and delete: the host check, the stored declaration and
    /// the table change as one step.
    put_lock: tokio::sync::Mutex<()>,
    /// Requests that matched no API or stage.
    unmatched: AtomicU64,
}

/// What the gateway is built from.
pub struct GatewayParts {
    pub db: Db,
    pub functions: Functions,
    pub iam: Iam,
    pub usage: Usage,
    pub verifier: Verifier,
    /// This server's own token issuer URL.
    pub issuer: String,
}

/// The deployed APIs; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

fn compile_table(apis: HashMap<String, Arc<CompiledApi>>) -> Table {
    let mut hosts = HashMap::new();
    for api in apis.values() {
        for h in &api.spec.hosts {
            hosts.insert(h.to_ascii_lowercase(), api.clone());
        }
    }
    Table { apis, hosts }
}

impl Gateway {
    /// Loads the stored APIs.
    pub async fn open(parts: GatewayParts) -> Result<Gateway, GatewayError> {
        let GatewayParts { db, functions, iam, usage, verifier, issuer } = parts;
        let mut apis = HashMap::new();
        for stored in db.specs(KIND).await? {
            let compiled = serde_json::from_str::<ApiSpec>(&stored.spec)
                .map_err(|e| e.to_string())
                .and_then(|spec| CompiledApi::compile(&stored.name, spec, &issuer));
            match compiled {
                Ok(api) => {
                    apis.insert(stored.name.clone(), Arc::new(api));
                }
                Err(e) => tracing::error!(api = %stored.name, "stored API is invalid, not deployed: {e}"),
            }
        }
        let inner = Inner {
            db,
            functions,
            iam,
            usage,
            verifier,
            authorizer_cache: authorizers::function::Cache::default(),
            issuer,
            table: ArcSwap::from_pointee(compile_table(apis)),
            put_lock: tokio::sync::Mutex::new(()),
            unmatched: AtomicU64::new(0),
        };
        Ok(Gateway { inner: Arc::new(inner) })
    }

    /// Creates or replaces an API. Returns whether the stored declaration changed.
    pub async fn put(&self, name: &str, spec: ApiSpec, actor: &str) -> Result<bool, GatewayError> {
        let invalid = |reason: String| GatewayError::Invalid { name: name.to_string(), reason };
        for (key, route) in &spec.routes {
            // `NAME` or `NAME:QUALIFIER`: the function must exist; its version or alias is
            // resolved at each request, so one may be published or aliased later.
            let (function, qualifier) = nimbus_functions::versions::split_target(&route.function);
            if self.inner.functions.get(function).is_none() {
                return Err(invalid(format!(
                    "routes.{key:?}: function {function:?} does not exist; declare it under [functions.{function}]"
                )));
            }
            if let Some(q) = qualifier {
                nimbus_functions::Qualifier::parse(q).map_err(|e| invalid(format!("routes.{key:?}.function: {e}")))?;
            }
            if let Ok(authorizers::Auth::Function(authorizer)) = authorizers::Auth::parse(route.auth.as_deref()) {
                match self.inner.functions.get(&authorizer) {
                    None => {
                        return Err(invalid(format!(
                            "routes.{key:?}.auth: authorizer function {authorizer:?} does not exist; declare it under \
                             [functions.{authorizer}] with kind = \"process\""
                        )));
                    }
                    Some(f) if !f.takes_events() => {
                        return Err(invalid(format!(
                            "routes.{key:?}.auth: function {authorizer:?} takes prediction bodies, not events, so it \
                             cannot be an authorizer; use a function of kind = \"process\""
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        let compiled = Arc::new(CompiledApi::compile(name, spec.clone(), &self.inner.issuer).map_err(invalid)?);
        let _one_at_a_time = self.inner.put_lock.lock().await;
        for host in &spec.hosts {
            if let Some(other) =
                self.inner.table.load().hosts.get(&host.to_ascii_lowercase()).filter(|a| a.name != name)
            {
                return Err(invalid(format!(
                    "hosts: {host:?} is already claimed by api {}; a host name belongs to one API, so remove it from \
                     one of api {} and api {name}",
                    other.name, other.name
                )));
            }
        }
        let changed = self.inner.db.put_spec(KIND, name, &spec, clock::now_ms(), actor).await?;
        if changed || self.get(name).is_none() {
            self.inner.table.rcu(|table| {
                let mut apis = table.apis.clone();
                apis.insert(name.to_string(), compiled.clone());
                compile_table(apis)
            });
            // No cached decision outlives a change of the API's authorizers or their settings.
            self.inner.authorizer_cache.clear();
        }
        Ok(changed)
    }

    /// Removes an API.
    pub async fn delete(&self, name: &str) -> Result<(), GatewayError> {
        let _one_at_a_time = self.inner.put_lock.lock().await;
        if !self.inner.db.delete_spec(KIND, name).await? {
            return Err(GatewayError::NotFound(name.to_string()));
        }
        self.inner.table.rcu(|table| {
            let mut apis = table.apis.clone();
            apis.remove(name);
            compile_table(apis)
        });
        self.inner.authorizer_cache.clear();
        Ok(())
    }

    /// API keys, usage plans and throttles.
    pub fn usage(&self) -> &Usage {
        &self.inner.usage
    }

    /// The API called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<CompiledApi>> {
        self.inner.table.load().apis.get(name).cloned()
    }

    /// Every API, by name.
    pub fn list(&self) -> Vec<Arc<CompiledApi>> {
        let mut all: Vec<_> = self.inner.table.load().apis.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The Prometheus text of the gateway's counters.
    pub fn render_metrics(&self, out: &mut String) {
        nimbus_functions::metrics::family(
            out,
            "nimbus_gateway_responses_total",
            "counter",
            "Gateway responses by API, stage, route and status.",
        );
        for api in self.list() {
            api.render_counts(out);
        }
        nimbus_functions::metrics::family(
            out,
            "nimbus_gateway_unmatched_total",
            "counter",
            "Requests that matched no API, stage or route (404).",
        );
        let _ = writeln!(out, "nimbus_gateway_unmatched_total {}", self.inner.unmatched.load(Ordering::Relaxed));
    }

    /// Finds the API, stage and the path after the stage for a request.
    fn locate<'p>(&self, host: Option<&str>, path: &'p str) -> Option<(Arc<CompiledApi>, usize, &'p str)> {
        let table = self.inner.table.load();
        let host = host.map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_ascii_lowercase());
        let by_host = host.as_deref().and_then(|h| {
            table
                .hosts
                .get(h)
                .cloned()
                .or_else(|| h.strip_suffix(".execute-api.localhost").and_then(|api| table.apis.get(api).cloned()))
        });
        let (api, rest) = match by_host {
            Some(api) => (api, path),
            None => {
                let after = path.strip_prefix('/')?;
                let slash = after.find('/')?;
                (table.apis.get(&after[..slash])?.clone(), &after[slash..])
            }
        };
        let rest = rest.strip_prefix('/')?;
        let (stage, route_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let stage = api.stage(stage)?;
        Some((api, stage, route_path))
    }
}
