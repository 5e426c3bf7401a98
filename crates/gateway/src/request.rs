//! The gateway's request path, one named stage after another:
//!
//! 1. **locate**: the API by host or first path segment, then the stage (hash lookups in a
//!    table swapped whole on change; no lock).
//!    A CORS preflight is answered here, before routing and authorization, as API Gateway
//!    HTTP APIs do.
//! 2. **route**: the method's radix tree, then `ANY`, then `$default`; no match is 404.
//! 3. **authorize**: the route's `auth` ([`crate::authorizers`]); `iam` reads the body here
//!    because the signature covers it; the others decide without the body (a `function:`
//!    authorizer's function sees the rest of the request).
//! 4. **throttle**: API key with its usage plan (throttles, then quota) or the stage/route
//!    default throttle for everyone ([`crate::usage`]).
//! 5. **integrate**: read the body (bounded, timed) and call the route's function, or answer
//!    the Open Inference Protocol for it ([`crate::oip`]).
//! 6. **account**: CORS headers on the answer, the request-id headers, the per-route counter
//!    and one JSON access-log line with the authorization decision.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use nimbus_core::clock;
use nimbus_functions::{Answer, Call, Function, InvokeError};
use serde_json::json;

use crate::authorizers::{self, Auth, Identity};
use crate::router::{CompiledApi, Route};
use crate::{Gateway, MAX_BODY_BYTES, MAX_INTEGRATION_TIMEOUT};

/// An answer of the gateway itself or of an integration, before the common headers.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Further headers; a `content-type` among them replaces `content_type`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Why the gateway refused, for the access log only (never sent).
    pub reason: Option<String>,
}

impl Refused {
    /// A JSON answer.
    pub fn json(status: u16, value: serde_json::Value) -> Refused {
        Refused {
            status,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
            headers: Vec::new(),
            reason: None,
        }
    }

    /// Records why, for the access log.
    pub fn because(mut self, reason: String) -> Refused {
        self.reason = Some(reason);
        self
    }

    /// API Gateway's `{"message": …}`.
    pub fn message(status: u16, text: &str) -> Refused {
        Refused::json(status, json!({ "message": text }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Refused {
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }
}

impl From<Answer> for Refused {
    fn from(a: Answer) -> Refused {
        Refused { status: a.status, content_type: a.content_type, body: a.body, headers: Vec::new(), reason: None }
    }
}

/// Reads a request body: at most [`MAX_BODY_BYTES`] (413 past it), 408 when it does not arrive
/// within the listener's body timeout.
pub async fn read_body(body: Body) -> Result<Bytes, Refused> {
    match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => Ok(b),
        Err(e) if nimbus_core::timeouts::is_body_timeout(&e) => Err(Refused::message(408, "Request Timeout")),
        Err(_) => Err(Refused::message(413, "Request Entity Too Large")),
    }
}

/// Everything an API Gateway event is made from.
struct EventHop<'a> {
    api: &'a CompiledApi,
    stage: usize,
    route: &'a Route,
    parts: &'a Parts,
    params: &'a [(String, String)],
    identity: &'a Identity,
    peer: Option<SocketAddr>,
}

impl EventHop<'_> {
    /// Gives `f` the request as an event describes it.
    fn with_request<R>(
        &self,
        iam: &nimbus_iam::Iam,
        request_id: &str,
        body: &[u8],
        f: impl FnOnce(&crate::events::EventRequest) -> R,
    ) -> R {
        use crate::events::{Authorizer, EventRequest};
        let authorizer = Authorizer::of(self.identity);
        let source_ip = self.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let domain = self.parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let protocol = format!("{:?}", self.parts.version);
        let request = EventRequest {
            api_id: &self.api.name,
            account_id: &iam.partition().account,
            stage: &self.api.stages[self.stage],
            route_key: &self.route.key,
            resource: &self.route.template,
            method: self.parts.method.as_str(),
            raw_path: self.parts.uri.path(),
            raw_query: self.parts.uri.query().unwrap_or(""),
            headers: &self.parts.headers,
            path_parameters: self.params,
            stage_variables: &self.api.stage_variables[self.stage],
            body,
            source_ip: &source_ip,
            protocol: &protocol,
            domain_name: domain,
            request_id,
            time_epoch_ms: clock::now_ms(),
            authorizer,
        };
        f(&request)
    }

    /// The route's event, in its payload format.
    fn event(&self, iam: &nimbus_iam::Iam, request_id: &str, body: &[u8]) -> Vec<u8> {
        self.with_request(iam, request_id, body, |r| crate::events::event(self.route.payload_format, r))
    }

    /// The event of the route's function authorizer (payload format 2.0).
    fn authorizer_event(&self, iam: &nimbus_iam::Iam, request_id: &str, route_arn: &str, values: &[String]) -> Vec<u8> {
        self.with_request(iam, request_id, &[], |r| crate::events::authorizer_event(r, route_arn, values))
    }
}

/// What the authorize and throttle stages decided, for the access log.
struct Decision {
    principal: String,
    result: &'static str,
    reason: String,
}

impl Gateway {
    /// Answers one request addressed to the gateway.
    pub async fn handle(&self, req: Request<Body>, peer: Option<SocketAddr>) -> Response<Body> {
        let started = Instant::now();
        let request_id = nimbus_core::request_id();
        let (parts, body) = req.into_parts();
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());

        // 1. Locate.
        let Some((api, stage, route_path)) = self.locate(host, parts.uri.path()) else {
            self.inner.unmatched.fetch_add(1, Ordering::Relaxed);
            return finish(&request_id, Refused::message(404, "Not Found"), None, &parts);
        };
        if let Some(preflight) = api.cors.as_ref().and_then(|c| c.preflight(&parts.method, &parts.headers)) {
            let (head, ()) = preflight.into_parts();
            let mut res = Response::from_parts(head, Body::empty());
            set_request_id(&mut res, &request_id);
            self.access(&api, stage, None, &parts, peer, &request_id, res.status().as_u16(), 0, started, None);
            return res;
        }

        // 2. Route.
        let Some(matched) = api.find(parts.method.as_str(), route_path) else {
            self.inner.unmatched.fetch_add(1, Ordering::Relaxed);
            let answer = Refused::message(404, "Not Found");
            self.access(&api, stage, None, &parts, peer, &request_id, 404, answer.body.len(), started, None);
            return finish(&request_id, answer, Some(&api), &parts);
        };
        let route = &api.routes[matched.route];
        let call = Call { request_id: request_id.clone(), deadline: Some(started + MAX_INTEGRATION_TIMEOUT) };
        let (answer, decision) =
            self.serve_route(&api, stage, route, &matched.params, &parts, route_path, body, peer, &call).await;

        // 6. Account.
        api.count(matched.route, stage, answer.status);
        let length = answer.body.len();
        self.access(
            &api,
            stage,
            Some(route),
            &parts,
            peer,
            &request_id,
            answer.status,
            length,
            started,
            Some(&decision),
        );
        finish(&request_id, answer, Some(&api), &parts)
    }

    /// Stages 3–5 for a matched route.
    #[allow(clippy::too_many_arguments)]
    async fn serve_route(
        &self,
        api: &CompiledApi,
        stage: usize,
        route: &Route,
        params: &[(String, String)],
        parts: &Parts,
        route_path: &str,
        body: Body,
        peer: Option<SocketAddr>,
        call: &Call,
    ) -> (Refused, Decision) {
        let secure = parts.extensions.get::<nimbus_core::Transport>().is_some_and(|t| t.secure);
        let stage_name = api.stages[stage].as_str();
        let denied = |refused: &Refused| Decision {
            principal: "-".into(),
            result: "deny",
            reason: refused.reason.clone().unwrap_or_default(),
        };

        // 3. Authorize.
        let (identity, body, why) = match &route.auth {
            Auth::None => (Identity::Anonymous, Err(body), "public route".to_string()),
            Auth::ApiKey => match authorizers::api_key::authorize(&parts.headers) {
                Some(id) => (id, Err(body), String::new()),
                None => {
                    let refused = Refused::message(403, "Forbidden").because("no x-api-key".into());
                    let d = denied(&refused);
                    return (refused, d);
                }
            },
            Auth::Iam => {
                let resource = authorizers::iam::resource_arn(
                    &self.inner.iam,
                    &api.name,
                    stage_name,
                    parts.method.as_str(),
                    route_path,
                );
                match authorizers::iam::authorize(&self.inner.iam, parts, body, &resource, peer.map(|p| p.ip()), secure)
                    .await
                {
                    Ok((id, bytes, why)) => (id, Ok(bytes), why),
                    Err(refused) => {
                        let d = denied(&refused);
                        return (refused, d);
                    }
                }
            }
            Auth::Jwt(name) => {
                let Some(spec) = api.jwt.get(name) else {
                    tracing::error!(api = %api.name, authorizer = %name, "route names an authorizer that is not compiled");
                    let refused =
                        Refused::message(500, "Internal Server Error").because(format!("no authorizer {name}"));
                    let d = denied(&refused);
                    return (refused, d);
                };
                match authorizers::jwt::authorize(&self.inner.verifier, spec, &route.scopes, &parts.headers).await {
                    Ok(id) => (id, Err(body), format!("jwt:{name} token valid")),
                    Err(refused) => {
                        let d = denied(&refused);
                        return (refused, d);
                    }
                }
            }
            Auth::Function(name) => {
                let Some(authorizer) = api.function_authorizers.get(name) else {
                    tracing::error!(api = %api.name, authorizer = %name, "route names an authorizer that is not compiled");
                    let refused = Refused::message(500, "Internal Server Error")
                        .because(format!("no authorizer function:{name}"));
                    let d = denied(&refused);
                    return (refused, d);
                };
                let route_arn = authorizers::iam::resource_arn(
                    &self.inner.iam,
                    &api.name,
                    stage_name,
                    parts.method.as_str(),
                    route_path,
                );
                // The authorizer's event is the request's, before any caller is known.
                let hop = EventHop { api, stage, route, parts, params, identity: &Identity::Anonymous, peer };
                let event =
                    |values: &[String]| hop.authorizer_event(&self.inner.iam, &call.request_id, &route_arn, values);
                let decided = authorizers::function::authorize(
                    &self.inner.functions,
                    &self.inner.authorizer_cache,
                    authorizer,
                    &api.name,
                    &parts.headers,
                    parts.uri.query().unwrap_or(""),
                    call,
                    event,
                    Instant::now(),
                )
                .await;
                match decided {
                    Ok((id, why)) => (id, Err(body), why),
                    Err(refused) => {
                        let d = denied(&refused);
                        return (refused, d);
                    }
                }
            }
        };
        let principal = identity.principal();

        // 4. Throttle.
        let throttle = route.throttle.or(api.stage_throttles[stage]);
        let admission = match &identity {
            Identity::ApiKey(value) => {
                self.inner
                    .usage
                    .admit(Some(value), &api.name, stage_name, &route.key, throttle, Instant::now(), clock::now_ms())
                    .await
            }
            _ => self.inner.usage.admit_anonymous(&api.name, stage_name, &route.key, throttle, Instant::now()),
        };
        if let Some(r) = admission.refusal() {
            let mut refused = Refused::message(r.status, r.message);
            if let Some(t) = r.error_type {
                refused = refused.with_header("x-amzn-errortype", t.to_string());
            }
            let (result, reason) = match admission {
                crate::usage::Admission::Forbidden => ("deny", "API key unknown, disabled or not on this stage"),
                crate::usage::Admission::Throttled => ("throttled", "token bucket empty"),
                crate::usage::Admission::QuotaExceeded => ("throttled", "quota used up"),
                _ => ("error", "quota store unavailable"),
            };
            return (refused, Decision { principal, result, reason: reason.into() });
        }
        let reason = match &identity {
            Identity::ApiKey(_) => "API key on its usage plan".to_string(),
            _ => why,
        };
        let allowed = Decision { principal, result: "allow", reason };

        // 5. Integrate.
        let body = match body {
            Ok(bytes) => bytes,
            Err(body) => match read_body(body).await {
                Ok(b) => b,
                Err(refused) => return (refused, allowed),
            },
        };
        // `NAME`, `NAME:3` or `NAME:live`: an alias picks one of its versions here, once.
        let f = match self.inner.functions.resolve_target(&route.function) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(function = %route.function, "route integration names no function that runs: {e}");
                return (Refused::message(500, "Internal Server Error"), allowed);
            }
        };
        let answer = if f.takes_events() {
            let hop = EventHop { api, stage, route, parts, params, identity: &identity, peer };
            self.integrate_event(&hop, &f, call, &body).await
        } else {
            self.integrate(route, &f, parts, route_path, call, &body).await
        };
        (answer, allowed)
    }

    /// Calls a route's function and maps its failures to API Gateway's answers. The function
    /// stops at the call's deadline itself (writing its REPORT); the outer limit is a backstop.
    /// Calls a process function with the route's API Gateway event and turns its response
    /// into the HTTP answer by the route's payload format (a malformed one is 502).
    async fn integrate_event(&self, hop: &EventHop<'_>, f: &Function, call: &Call, body: &[u8]) -> Refused {
        let function = hop.route.function.as_str();
        let event = hop.event(&self.inner.iam, &call.request_id, body);
        let backstop = MAX_INTEGRATION_TIMEOUT + Duration::from_secs(1);
        let format = hop.route.payload_format;
        match tokio::time::timeout(backstop, f.invoke_event(call, event.into())).await {
            Ok(Ok(payload)) => match crate::events::response(format, &payload) {
                Ok(answer) => {
                    let mut refused = Refused {
                        status: answer.status,
                        content_type: "application/json",
                        body: answer.body,
                        headers: Vec::with_capacity(answer.headers.len()),
                        reason: None,
                    };
                    for (name, value) in answer.headers {
                        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                            refused.headers.push((n, v));
                        }
                    }
                    refused
                }
                Err(malformed) => {
                    tracing::warn!(function, "the function's response is not a valid {format} response: {malformed}");
                    Refused::message(502, "Internal Server Error")
                }
            },
            Ok(Err(e)) => failed(function, Some(e)),
            Err(_) => failed(function, None),
        }
    }

    async fn integrate(
        &self,
        route: &Route,
        f: &Function,
        parts: &Parts,
        route_path: &str,
        call: &Call,
        body: &[u8],
    ) -> Refused {
        let function = route.function.as_str();
        let backstop = MAX_INTEGRATION_TIMEOUT + Duration::from_secs(1);
        if route.oip {
            return match tokio::time::timeout(
                backstop,
                crate::oip::answer(f, call, parts.method.as_str(), route_path, body),
            )
            .await
            {
                Ok(answer) => answer.into(),
                Err(_) => Refused::message(504, "Endpoint request timed out"),
            };
        }
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        match tokio::time::timeout(backstop, f.invoke(call, content_type, body)).await {
            Ok(Ok(invocation)) => invocation.answer.into(),
            Ok(Err(e)) => failed(function, Some(e)),
            Err(_) => failed(function, None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn access(
        &self,
        api: &CompiledApi,
        stage: usize,
        route: Option<&Route>,
        parts: &Parts,
        peer: Option<SocketAddr>,
        request_id: &str,
        status: u16,
        length: usize,
        started: Instant,
        decision: Option<&Decision>,
    ) {
        let now = clock::now_ms();
        // Written by hand rather than through a JSON tree: this runs on every request.
        let text = |v: &str| serde_json::Value::from(v).to_string();
        let mut line = String::with_capacity(384);
        let route_key = route.map_or("-", |r| r.key.as_str());
        let auth = route.map(|r| r.auth.describe());
        let _ = write!(
            line,
            "{{\"requestId\":{},\"ip\":{},\"requestTime\":{},\"httpMethod\":{},\"path\":{},\"routeKey\":{},\"api\":{},\"stage\":{},\"status\":{status},\"protocol\":{},\"responseLength\":{length},\"responseLatencyMs\":{:.3},\"auth\":{},\"principal\":{},\"authorization\":{},\"authorizationReason\":{}}}",
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
            text(auth.as_deref().unwrap_or("-")),
            text(decision.map_or("-", |d| d.principal.as_str())),
            text(decision.map_or("-", |d| d.result)),
            text(decision.map_or("-", |d| d.reason.as_str())),
        );
        tracing::debug!(target: "access", "{line}");
        api.access.push(now, [line]);
    }
}

/// API Gateway's answer to an integration that failed: `None` is the gateway's own backstop
/// timeout.
fn failed(function: &str, error: Option<InvokeError>) -> Refused {
    match error {
        Some(InvokeError::Throttled { .. } | InvokeError::Busy { .. }) => Refused::message(429, "Too Many Requests"),
        Some(InvokeError::Timeout(_)) | None => Refused::message(504, "Endpoint request timed out"),
        Some(e) => {
            tracing::warn!(function, "integration failed: {e}");
            Refused::message(502, "Internal Server Error")
        }
    }
}

fn set_request_id(res: &mut Response<Body>, request_id: &str) {
    if let Ok(id) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert("x-amzn-requestid", id.clone());
        res.headers_mut().insert("apigw-requestid", id);
    }
}

/// The HTTP response of an answer: its headers, the request-id headers and, for an allowed
/// origin, the API's CORS headers (on errors too, so a browser can read a 403 or 429).
fn finish(request_id: &str, answer: Refused, api: Option<&CompiledApi>, parts: &Parts) -> Response<Body> {
    let mut res = Response::new(Body::from(answer.body));
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    for (name, value) in answer.headers {
        if name == header::CONTENT_TYPE {
            h.insert(name, value);
        } else {
            h.append(name, value);
        }
    }
    if let Some(cors) = api.and_then(|a| a.cors.as_ref()) {
        cors.decorate(&parts.headers, h);
    }
    set_request_id(&mut res, request_id);
    res
}
