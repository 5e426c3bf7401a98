//! The signing keys of outside issuers, fetched from their JWKS URLs (plain HTTP or HTTPS)
//! and cached per URL.
//!
//! A URL's keys are fetched on first use and again when they are older than the TTL or a
//! token names a kid they lack, but never more than once per `min_refetch` per URL: a flood
//! of made-up kids costs one fetch per interval, not one per request. Concurrent misses wait
//! for one fetch. When a fetch fails the previous keys stay in use (the failure is logged)
//! for up to `max_stale` past their TTL, so a short outage of the issuer does not fail every
//! request, while a key the issuer has withdrawn does not stay trusted for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jwt::{RsaJwk, short};
use crate::verifier::JwtError;

/// A JWKS larger than this is refused (a usual one is 1–2 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// JWKS URLs tracked at once (they come from configuration, so this is a guard only).
const MAX_URLS: usize = 256;

type KeyMap = HashMap<String, Arc<RsaJwk>>;

#[derive(Default)]
struct SlotState {
    keys: Option<Arc<KeyMap>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    error: Option<String>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held during a fetch, so concurrent misses make one request.
    fetching: tokio::sync::Mutex<()>,
}

/// Cached JWKS of outside issuers.
pub(crate) struct JwksCache {
    http: Result<reqwest::Client, String>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    ttl: Duration,
    min_refetch: Duration,
    max_stale: Duration,
}

impl JwksCache {
    pub(crate) fn new(ttl: Duration, min_refetch: Duration, max_stale: Duration, timeout: Duration) -> JwksCache {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"));
        JwksCache { http, slots: Default::default(), ttl, min_refetch, max_stale }
    }

    fn slot(&self, url: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("jwks slots lock");
        if let Some(s) = slots.get(url) {
            return s.clone();
        }
        if slots.len() >= MAX_URLS
            && let Some(victim) = slots.keys().next().cloned()
        {
            slots.remove(&victim);
        }
        slots.entry(url.to_string()).or_default().clone()
    }

    /// The key `kid` of the JWKS at `url`.
    pub(crate) async fn key(&self, url: &str, kid: &str) -> Result<Arc<RsaJwk>, JwtError> {
        let slot = self.slot(url);
        let seen_attempt = {
            let st = slot.state.lock().expect("jwks slot lock");
            let fresh = st.fetched.is_some_and(|t| t.elapsed() < self.ttl);
            if fresh && let Some(k) = st.keys.as_ref().and_then(|m| m.get(kid)) {
                return Ok(k.clone());
            }
            if st.attempted.is_some_and(|t| t.elapsed() < self.min_refetch) {
                return self.answer(&st, kid);
            }
            st.attempted
        };
        let _fetching = slot.fetching.lock().await;
        {
            let mut st = slot.state.lock().expect("jwks slot lock");
            if st.attempted != seen_attempt {
                // Another call fetched while this one waited.
                return self.answer(&st, kid);
            }
            st.attempted = Some(Instant::now());
        }
        let result = self.fetch(url).await;
        let mut st = slot.state.lock().expect("jwks slot lock");
        match result {
            Ok(keys) => {
                tracing::debug!(url = %nimbus_meta::redact_url(url), keys = keys.len(), "fetched a JWKS");
                st.keys = Some(Arc::new(keys));
                st.fetched = Some(Instant::now());
                st.error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the JWKS of a JWT issuer");
                st.error = Some(e);
            }
        }
        self.answer(&st, kid)
    }

    fn answer(&self, st: &SlotState, kid: &str) -> Result<Arc<RsaJwk>, JwtError> {
        let usable = st.keys.as_ref().filter(|_| st.fetched.is_some_and(|t| t.elapsed() < self.ttl + self.max_stale));
        match usable {
            Some(keys) => keys.get(kid).cloned().ok_or_else(|| JwtError::UnknownKid(short(kid))),
            None => Err(JwtError::JwksUnavailable(st.error.clone().unwrap_or_else(|| "not fetched yet".into()))),
        }
    }

    /// Errors name the URL without any password it holds (they reach the logs).
    async fn fetch(&self, url: &str) -> Result<KeyMap, String> {
        let shown = nimbus_meta::redact_url(url);
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let failed = |e: reqwest::Error| format!("GET {shown}: {}", e.without_url());
        let mut resp = http.get(url).header("accept", "application/json").send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(format!("GET {shown}: HTTP {}", resp.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {shown}: the JWKS is larger than {} KiB", MAX_JWKS_BYTES / 1024));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body).map_err(|e| format!("{shown}: {e}"))
    }
}

/// The usable RSA signing keys of a JWKS document, by kid.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<KeyMap, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "the JWKS is not JSON".to_string())?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("the JWKS has no \"keys\" array")?;
    let mut out = HashMap::new();
    for k in keys {
        match RsaJwk::from_value(k) {
            Ok(Some(jwk)) => {
                out.insert(jwk.kid.clone(), Arc::new(jwk));
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "skipping a JWKS entry"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_entries_are_skipped_not_fatal() {
        let body = br#"{"keys":[
            {"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"broken","n":"*","e":"AQAB"},
            {"kty":"RSA","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"good","alg":"RS384","n":"AAEAAQ","e":"AQAB"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["good"]);
        assert_eq!(keys["good"].n, vec![1, 0, 1], "leading zeros are dropped");
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"nope").is_err());
    }
}
