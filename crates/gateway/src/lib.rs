//! The API gateway: APIs declared in `nimbus.toml`, served at `/{api}/{stage}/{route path}`
//! (or `/{stage}/{route path}` on a host name the API claims, including
//! `{api}.execute-api.localhost`).
//!
//! - [`spec`]: the declaration and route keys.
//! - [`router`]: compiled APIs (radix trees per method), response counters, access logs.
//!
//! Every response carries `x-amzn-RequestId` and `apigw-requestid`; errors have API Gateway's
//! bodies and statuses (404 `Not Found`, 413, 429 `Too Many Requests`, 502 `Internal Server
//! Error`, 504 `Endpoint request timed out`). Each request writes one JSON access-log line.
#![forbid(unsafe_code)]

#[cfg(test)]
mod proptests;
pub mod router;
pub mod spec;
pub mod usage;

use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use nimbus_core::clock;
use nimbus_functions::{Answer, Call, Functions, InvokeError};
use nimbus_meta::Db;
use serde_json::json;

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
    table: ArcSwap<Table>,
    /// Held by every create, replace and delete: the host check, the stored declaration and
    /// the table change as one step.
    put_lock: tokio::sync::Mutex<()>,
    /// Requests that matched no API or stage.
    unmatched: AtomicU64,
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
    pub async fn open(db: Db, functions: Functions) -> Result<Gateway, GatewayError> {
        let mut apis = HashMap::new();
        for stored in db.specs(KIND).await? {
            let compiled = serde_json::from_str::<ApiSpec>(&stored.spec)
                .map_err(|e| e.to_string())
                .and_then(|spec| CompiledApi::compile(&stored.name, spec));
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
            if self.inner.functions.get(&route.function).is_none() {
                return Err(invalid(format!(
                    "routes.{key:?}: function {:?} does not exist; declare it under [functions.{}]",
                    route.function, route.function
                )));
            }
        }
        let compiled = Arc::new(CompiledApi::compile(name, spec.clone()).map_err(invalid)?);
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
        Ok(())
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

    /// Answers one request addressed to the gateway.
    pub async fn handle(&self, req: Request<Body>, peer: Option<SocketAddr>) -> Response<Body> {
        let started = Instant::now();
        let request_id = nimbus_core::request_id();
        let (parts, body) = req.into_parts();
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let path = parts.uri.path();
        let method = parts.method.as_str();
        let Some((api, stage, route_path)) = self.locate(host, path) else {
            self.inner.unmatched.fetch_add(1, Ordering::Relaxed);
            return finish(&request_id, message(404, "Not Found"));
        };
        let Some(matched) = api.find(method, route_path) else {
            self.inner.unmatched.fetch_add(1, Ordering::Relaxed);
            let answer = message(404, "Not Found");
            self.access(&api, stage, "-", &parts, peer, &request_id, answer.status, answer.body.len(), started);
            return finish(&request_id, answer);
        };
        let route = &api.routes[matched.route];
        let answer = match to_bytes(body, MAX_BODY_BYTES).await {
            Err(e) if nimbus_core::timeouts::is_body_timeout(&e) => message(408, "Request Timeout"),
            Err(_) => message(413, "Request Entity Too Large"),
            Ok(body) => {
                let call = Call { request_id: request_id.clone(), deadline: Some(started + MAX_INTEGRATION_TIMEOUT) };
                self.integrate(&route.function, &call, &parts.headers, &body).await
            }
        };
        api.count(matched.route, stage, answer.status);
        self.access(&api, stage, &route.key, &parts, peer, &request_id, answer.status, answer.body.len(), started);
        finish(&request_id, answer)
    }

    /// Calls a route's function and maps its failures to API Gateway's answers. The function
    /// stops at the call's deadline itself (writing its REPORT); the outer limit is a backstop.
    async fn integrate(&self, function: &str, call: &Call, headers: &HeaderMap, body: &[u8]) -> Answer {
        let Some(f) = self.inner.functions.get(function) else {
            tracing::error!(function, "route integration names a function that does not exist");
            return message(500, "Internal Server Error");
        };
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let backstop = MAX_INTEGRATION_TIMEOUT + Duration::from_secs(1);
        match tokio::time::timeout(backstop, f.invoke(call, content_type, body)).await {
            Ok(Ok(invocation)) => invocation.answer,
            Ok(Err(InvokeError::Throttled { .. } | InvokeError::Busy { .. })) => message(429, "Too Many Requests"),
            Ok(Err(InvokeError::Timeout(_))) | Err(_) => message(504, "Endpoint request timed out"),
            Ok(Err(InvokeError::Unavailable(reason))) => {
                tracing::warn!(function, "integration failed: {reason}");
                message(502, "Internal Server Error")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn access(
        &self,
        api: &CompiledApi,
        stage: usize,
        route_key: &str,
        parts: &axum::http::request::Parts,
        peer: Option<SocketAddr>,
        request_id: &str,
        status: u16,
        length: usize,
        started: Instant,
    ) {
        let now = clock::now_ms();
        // Written by hand rather than through a JSON tree: this runs on every request.
        let text = |v: &str| serde_json::Value::from(v).to_string();
        let mut line = String::with_capacity(320);
        let _ = write!(
            line,
            "{{\"requestId\":{},\"ip\":{},\"requestTime\":{},\"httpMethod\":{},\"path\":{},\"routeKey\":{},\"api\":{},\"stage\":{},\"status\":{status},\"protocol\":{},\"responseLength\":{length},\"responseLatencyMs\":{:.3}}}",
            text(request_id),
            text(&peer.map(|p| p.ip().to_string()).unwrap_or_default()),
            text(&clock::rfc3339(now)),
            text(parts.method.as_str()),
            text(parts.uri.path()),
            text(route_key),
            text(&api.name),
            text(&api.stages[stage]),
            text(&format!("{:?}", parts.version)),
            started.elapsed().as_secs_f64() * 1e3,
        );
        tracing::debug!(target: "access", "{line}");
        api.access.push(now, [line]);
    }
}

/// An API Gateway error answer: `{"message": …}`.
fn message(status: u16, text: &str) -> Answer {
    Answer::json(status, &json!({ "message": text }))
}

/// The HTTP response of an answer, with the request-id headers.
fn finish(request_id: &str, answer: Answer) -> Response<Body> {
    let mut res = Response::new(Body::from(answer.body));
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", id.clone());
        h.insert("apigw-requestid", id);
    }
    res
}
