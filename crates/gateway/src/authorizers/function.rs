//! The `function:NAME` authorizer: API Gateway HTTP API's Lambda `REQUEST` authorizer with
//! payload format 2.0 and simple responses. The function `NAME` (one that takes events, a
//! process function) gets the request's 2.0 event with `type`, `routeArn` and
//! `identitySource` ([`crate::events::authorizer_event`]) and answers
//! `{"isAuthorized": bool, "context": {…}}` ([`simple_response`]).
//!
//! In order:
//! 1. the identity sources (`$request.header.NAME`, `$request.querystring.NAME`) are read;
//!    any one absent or empty is 401 `{"message":"Unauthorized"}` and the function is not
//!    called ([`FunctionAuthorizer::identity`]);
//! 2. a result cached for the same API, authorizer and identity values within `ttl_s` is
//!    reused ([`Cache`]);
//! 3. otherwise the function is invoked; `isAuthorized: false` is 403
//!    `{"message":"Forbidden"}`, `true` lets the request go on with the `context` as
//!    `requestContext.authorizer.lambda` of the route's event. Either result is cached.
//!    Anything else — a function error, a timeout, a response that is not a simple
//!    response — is 500 `{"message":"Internal Server Error"}` (the reason is logged; nothing
//!    is cached), as API Gateway answers a failing authorizer.
//!
//! IAM-policy responses (`enable_simple_responses = false`) and payload format 1.0 for the
//! authorizer are not supported.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName};
use nimbus_functions::{Call, Functions};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Identity;
use crate::request::Refused;
use crate::spec::{FunctionAuthorizerSpec, MAX_AUTHORIZER_TTL_S};

/// Results kept by a gateway's function-authorizer cache at most.
pub const CACHE_ENTRIES: usize = 10_000;

/// Where a function authorizer reads part of the caller's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// `$request.header.NAME` (any case; repeated headers joined with `,`).
    Header(HeaderName),
    /// `$request.querystring.NAME` (decoded; repeated keys joined with `,`).
    Query(String),
}

impl IdentitySource {
    /// Parses `$request.header.NAME` or `$request.querystring.NAME`.
    pub fn parse(text: &str) -> Result<IdentitySource, String> {
        if let Some(name) = text.strip_prefix("$request.header.") {
            return HeaderName::from_bytes(name.as_bytes())
                .map(IdentitySource::Header)
                .map_err(|_| format!("{text:?}: {name:?} is not a valid HTTP header name"));
        }
        if let Some(name) = text.strip_prefix("$request.querystring.") {
            if name.is_empty() {
                return Err(format!("{text:?}: name the query parameter, e.g. \"$request.querystring.token\""));
            }
            return Ok(IdentitySource::Query(name.to_string()));
        }
        Err(format!(
            "{text:?} is not an identity source nimbus reads; use \"$request.header.NAME\" or \
             \"$request.querystring.NAME\" ($context and $stageVariables sources are not supported)"
        ))
    }

    /// The source's value in a request, `None` when it is absent or empty.
    pub fn value(&self, headers: &HeaderMap, raw_query: &str) -> Option<String> {
        let mut joined: Option<String> = None;
        let mut add = |v: &str| match &mut joined {
            Some(j) => {
                j.push(',');
                j.push_str(v);
            }
            None => joined = Some(v.to_string()),
        };
        match self {
            IdentitySource::Header(name) => {
                for v in headers.get_all(name) {
                    add(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
            IdentitySource::Query(name) => {
                for (_, v) in crate::events::query_pairs(raw_query).filter(|(k, _)| k == name) {
                    add(&v);
                }
            }
        }
        joined.filter(|v| !v.trim().is_empty())
    }

    /// The source as declared, for messages.
    pub fn describe(&self) -> String {
        match self {
            IdentitySource::Header(name) => format!("$request.header.{name}"),
            IdentitySource::Query(name) => format!("$request.querystring.{name}"),
        }
    }
}

/// A route's function authorizer, compiled from its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionAuthorizer {
    /// The function that decides.
    pub function: String,
    /// Where the identity is read, in the declared order.
    pub sources: Vec<IdentitySource>,
    /// How long a result is reused; zero: not cached.
    pub ttl: Duration,
}

impl FunctionAuthorizer {
    /// Compiles the settings of the authorizer `function` (its defaults when `spec` is `None`).
    pub fn compile(function: &str, spec: Option<&FunctionAuthorizerSpec>) -> Result<FunctionAuthorizer, String> {
        let defaults = FunctionAuthorizerSpec::default();
        let spec = spec.unwrap_or(&defaults);
        spec.validate(function)?;
        let sources = spec.identity_source.iter().map(|s| IdentitySource::parse(s)).collect::<Result<_, _>>()?;
        let ttl = Duration::from_secs(u64::from(spec.ttl_s.min(MAX_AUTHORIZER_TTL_S)));
        Ok(FunctionAuthorizer { function: function.to_string(), sources, ttl })
    }

    /// The identity values of a request in the declared order, or the first source that is
    /// absent or empty (→ 401 without calling the function).
    pub fn identity(&self, headers: &HeaderMap, raw_query: &str) -> Result<Vec<String>, &IdentitySource> {
        self.sources.iter().map(|s| s.value(headers, raw_query).ok_or(s)).collect()
    }
}

/// What a function authorizer decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// `isAuthorized: true`, with the `context` it returned (empty when it returned none).
    Allow(Arc<Map<String, Value>>),
    /// `isAuthorized: false`.
    Deny,
}

/// Reads a simple response, `{"isAuthorized": bool, "context": {…}}` (`context` optional).
/// Any other payload is an error saying why, for the log.
pub fn simple_response(payload: &[u8]) -> Result<Verdict, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("the response is not JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err(format!("the response {} is not an object with isAuthorized", short(&value)));
    };
    let allowed = match fields.get("isAuthorized") {
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("isAuthorized is {}, not true or false", short(other))),
        None => {
            return Err("the response has no isAuthorized; return {\"isAuthorized\": true|false, \"context\": {…}} \
                 (IAM-policy responses are not supported)"
                .into());
        }
    };
    let context = match fields.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(format!("context is {}, not an object", short(&other))),
    };
    Ok(if allowed { Verdict::Allow(Arc::new(context)) } else { Verdict::Deny })
}

/// A JSON value for a log line, cut to a readable length.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// The cache key of a result: a digest of the API, the authorizer and the identity values,
/// each length-prefixed so no two different lists meet. A digest keeps entries small and
/// keeps callers' tokens out of the cache.
pub fn cache_key(api: &str, function: &str, values: &[String]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [api, function].into_iter().chain(values.iter().map(String::as_str)) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Function-authorizer results by [`cache_key`], each until its authorizer's TTL is over.
/// Bounded: past the capacity, expired results go first, then the oldest. Every time it
/// is asked is a parameter (`now`), so tests move the clock instead of sleeping.
pub struct Cache {
    capacity: usize,
    state: Mutex<CacheState>,
}

struct CacheState {
    entries: HashMap<[u8; 32], Entry>,
    /// Keys in the order they were stored, with the stored entry's number; a pair whose
    /// number no longer matches its entry is stale and skipped (compacted when it piles up).
    order: VecDeque<([u8; 32], u64)>,
    next: u64,
    /// When expired entries were last swept out; a full cache sweeps at most once a second.
    swept: Option<Instant>,
}

struct Entry {
    verdict: Verdict,
    expires: Instant,
    number: u64,
}

impl Cache {
    /// An empty cache of at most `capacity` results.
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity: capacity.max(1),
            state: Mutex::new(CacheState { entries: HashMap::new(), order: VecDeque::new(), next: 0, swept: None }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The result stored for `key` if it has not expired at `now`.
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Verdict> {
        let mut state = self.state();
        match state.entries.get(key) {
            Some(e) if now < e.expires => Some(e.verdict.clone()),
            Some(_) => {
                state.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `verdict` for `key` until `now + ttl`; a zero `ttl` stores nothing.
    pub fn put(&self, key: [u8; 32], verdict: Verdict, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut guard = self.state();
        let state = &mut *guard;
        let number = state.next;
        state.next += 1;
        state.entries.insert(key, Entry { verdict, expires: now + ttl, number });
        state.order.push_back((key, number));
        if state.entries.len() > self.capacity && state.swept.is_none_or(|t| now >= t + Duration::from_secs(1)) {
            state.entries.retain(|_, e| now < e.expires);
            state.swept = Some(now);
        }
        while state.entries.len() > self.capacity {
            let Some((oldest, n)) = state.order.pop_front() else { break };
            if state.entries.get(&oldest).is_some_and(|e| e.number == n) {
                state.entries.remove(&oldest);
            }
        }
        if state.order.len() > 2 * self.capacity {
            let entries = &state.entries;
            state.order.retain(|(k, n)| entries.get(k).is_some_and(|e| e.number == *n));
        }
    }

    /// Forgets every result (an API changed: its authorizers or their settings may have).
    pub fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.order.clear();
    }

    /// How many results are stored (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// Whether no result is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Cache {
    fn default() -> Cache {
        Cache::new(CACHE_ENTRIES)
    }
}

/// Decides a request with the authorizer: identity sources, then the cache, then the
/// function with the event `event` builds from the identity values. `now` is when the
/// request is judged (for the cache). Returns the caller and why it was allowed.
#[allow(clippy::too_many_arguments)]
pub async fn authorize(
    functions: &Functions,
    cache: &Cache,
    authorizer: &FunctionAuthorizer,
    api: &str,
    headers: &HeaderMap,
    raw_query: &str,
    call: &Call,
    event: impl FnOnce(&[String]) -> Vec<u8>,
    now: Instant,
) -> Result<(Identity, String), Refused> {
    let name = authorizer.function.as_str();
    let values = match authorizer.identity(headers, raw_query) {
        Ok(v) => v,
        Err(missing) => {
            let source = missing.describe();
            tracing::info!(
                target: "authz",
                authorizer = name,
                allowed = false,
                source,
                "function authorization: identity source missing"
            );
            return Err(Refused::message(401, "Unauthorized")
                .because(format!("function:{name} identity source {source} missing or empty")));
        }
    };
    let key = cache_key(api, name, &values);
    let (verdict, cached) = match (!authorizer.ttl.is_zero()).then(|| cache.get(&key, now)).flatten() {
        Some(v) => (v, true),
        None => {
            let verdict = invoke(functions, name, call, event(&values)).await?;
            cache.put(key, verdict.clone(), authorizer.ttl, now);
            (verdict, false)
        }
    };
    let how = if cached { " (cached)" } else { "" };
    match verdict {
        Verdict::Allow(context) => {
            tracing::debug!(target: "authz", authorizer = name, allowed = true, cached, "function authorization");
            Ok((Identity::Lambda { function: name.to_string(), context }, format!("function:{name} authorized{how}")))
        }
        Verdict::Deny => {
            tracing::info!(target: "authz", authorizer = name, allowed = false, cached, "function authorization");
            Err(Refused::message(403, "Forbidden").because(format!("function:{name} isAuthorized false{how}")))
        }
    }
}

/// Calls the authorizer function and reads its simple response; every failure is the 500
/// API Gateway answers for a failing authorizer, with the reason logged.
async fn invoke(functions: &Functions, name: &str, call: &Call, event: Vec<u8>) -> Result<Verdict, Refused> {
    let failed = |why: String| {
        tracing::warn!(target: "authz", authorizer = name, "function authorizer failed: {why}");
        Refused::message(500, "Internal Server Error").because(format!("function:{name} failed: {why}"))
    };
    let Some(f) = functions.get(name) else {
        return Err(failed("the function does not exist".into()));
    };
    let backstop = crate::MAX_INTEGRATION_TIMEOUT + Duration::from_secs(1);
    match tokio::time::timeout(backstop, f.invoke_event(call, event.into())).await {
        Ok(Ok(payload)) => simple_response(&payload).map_err(failed),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed("no answer within the integration timeout".into())),
    }
}

#[cfg(test)]
mod tests;
