//! The JWT verifier of the API gateway's JWT authorizers.
//!
//! A token (from the `Authorization` header, with or without `Bearer `) passes when its
//! header names an RSA key (RS256, RS384 or RS512) of the configured issuer's JWKS and the
//! signature checks out; `iss` equals the configured issuer; `exp` has not passed and `nbf`
//! has (both with [`DEFAULT_LEEWAY_S`] seconds of leeway); `aud` holds a configured audience,
//! or, when the token has no `aud` (access tokens of Cognito and of the built-in issuer),
//! `client_id` is one; and, when the route requires scopes, one of them is in `scope`
//! (space separated) or `scp` (a string or an array).
//!
//! Keys of the built-in issuer are read from this process's key store, with no HTTP; other
//! issuers' come from [`crate::jwks_cache`]. Tokens whose signature verified are cached by
//! the SHA-256 of the token and its key source, so a repeated token costs one hash and one
//! map lookup. Only the signature is cached: issuer, time, audience and scopes are checked on
//! every call against that call's authorizer and route, so the cache cannot let an expired
//! token, or one meant for another route, through. Entries are also re-verified after the
//! JWKS TTL, so a key an issuer withdraws stops being trusted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwks_cache::JwksCache;
use crate::jwt::{self, RsaJwk, short};
use crate::keys::KeyStore;
use crate::{OauthError, jwks_path};

/// Clock leeway on `exp` and `nbf`: half of the 60 s allowed, ample for NTP-synchronised
/// hosts while keeping an expired token's afterlife short.
pub const DEFAULT_LEEWAY_S: i64 = 30;

/// A JWT authorizer: which issuer's tokens it accepts, for which audiences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JwtAuthorizerSpec {
    /// The exact `iss` of accepted tokens, e.g. `https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x`.
    pub issuer: String,
    /// Accepted `aud` values (or `client_id` values for tokens without `aud`); none accepts
    /// no token.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Where the issuer's keys are; by default `issuer + "/.well-known/jwks.json"`.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

impl JwtAuthorizerSpec {
    /// The JWKS URL in effect.
    pub fn jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(url) => url.clone(),
            None => jwks_path(&self.issuer),
        }
    }

    /// Checks the configuration, for a clear error when it is declared rather than a refused
    /// request later.
    pub fn validate(&self) -> Result<(), OauthError> {
        let http = |s: &str| s.starts_with("https://") || s.starts_with("http://");
        let invalid = |field: &str, reason: String| OauthError::Invalid { field: field.into(), reason };
        if !http(&self.issuer) {
            return Err(invalid(
                "issuer",
                format!("{:?} is not an http(s) URL; give the exact iss of the tokens", self.issuer),
            ));
        }
        if self.audience.is_empty() || self.audience.iter().any(String::is_empty) {
            return Err(invalid(
                "audience",
                "list at least one non-empty audience: the aud of the tokens, or the app client ids for access tokens without aud".into(),
            ));
        }
        if let Some(url) = self.jwks_url.as_deref().filter(|u| !http(u)) {
            return Err(invalid(
                "jwks_url",
                format!("{url:?} is not an http(s) URL; leave it out for issuer + /.well-known/jwks.json"),
            ));
        }
        Ok(())
    }
}

/// Why a token was refused (for the access log; the HTTP answer is the caller's).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("no bearer token in the Authorization header")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("the token's key id {0:?} is not in the issuer's JWKS")]
    UnknownKid(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is from another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token has none of the route's scopes")]
    InsufficientScope,
    #[error("the issuer's JWKS cannot be had: {0}")]
    JwksUnavailable(String),
}

impl JwtError {
    /// A short stable word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Missing => "missing",
            JwtError::Malformed(_) => "malformed",
            JwtError::UnknownKid(_) => "unknown_kid",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::InsufficientScope => "insufficient_scope",
            JwtError::JwksUnavailable(_) => "jwks_unavailable",
        }
    }
}

/// An accepted token: its claims and its scopes (from `scope` and `scp`).
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub scopes: Vec<String>,
}

/// Tunables of a [`Verifier`]; the defaults suit production.
#[derive(Clone, Debug)]
pub struct VerifierOptions {
    /// Leeway on `exp` and `nbf`, seconds (at most 60 are honoured).
    pub leeway_s: i64,
    /// How long an outside JWKS is used before it is fetched again.
    pub jwks_ttl: Duration,
    /// The shortest interval between two fetches of one JWKS URL.
    pub min_refetch: Duration,
    /// How long past its TTL a JWKS is still used while its URL fails.
    pub max_stale: Duration,
    /// Timeout of a JWKS fetch.
    pub http_timeout: Duration,
    /// Verified tokens kept in the cache.
    pub cache_capacity: usize,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            leeway_s: DEFAULT_LEEWAY_S,
            jwks_ttl: Duration::from_secs(600),
            min_refetch: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
            cache_capacity: 10_000,
        }
    }
}

/// What a verified token is checked against on every call.
struct Checked {
    claims: Map<String, Value>,
    scopes: Vec<String>,
    iss: Option<String>,
    exp: i64,
    nbf: Option<i64>,
    aud: Vec<String>,
    client_id: Option<String>,
    /// After this the signature is verified again (the key may have been withdrawn).
    recheck_after: Instant,
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| JwtError::Malformed(format!("{name} is not a number"))),
    }
}

fn strings(claims: &Map<String, Value>, name: &str, split: bool) -> Result<Vec<String>, JwtError> {
    let bad = || JwtError::Malformed(format!("{name} is neither a string nor an array of strings"));
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if split => Ok(s.split_ascii_whitespace().map(String::from).collect()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items.iter().map(|i| i.as_str().map(String::from).ok_or_else(bad)).collect(),
        Some(_) => Err(bad()),
    }
}

impl Checked {
    fn new(claims: Map<String, Value>, recheck_after: Instant) -> Result<Checked, JwtError> {
        let text = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError::Malformed(format!("{name} is not a string"))),
        };
        let iss = text("iss")?;
        let client_id = text("client_id")?;
        let exp = number(&claims, "exp")?.ok_or_else(|| JwtError::Malformed("the token has no exp".into()))?;
        let nbf = number(&claims, "nbf")?;
        let aud = strings(&claims, "aud", false)?;
        // `scope` is OAuth2's space-separated string; `scp` is a string or an array.
        let mut scopes = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_ascii_whitespace().map(String::from).collect(),
            Some(_) => return Err(JwtError::Malformed("scope is not a string".into())),
        };
        for s in strings(&claims, "scp", true)? {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        Ok(Checked { claims, scopes, iss, exp, nbf, aud, client_id, recheck_after })
    }

    fn check(&self, spec: &JwtAuthorizerSpec, required: &[String], now: i64, leeway: i64) -> Result<(), JwtError> {
        if self.iss.as_deref() != Some(spec.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        if now >= self.exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(JwtError::NotYetValid);
        }
        let audience_ok = if self.aud.is_empty() {
            self.client_id.as_ref().is_some_and(|c| spec.audience.contains(c))
        } else {
            self.aud.iter().any(|a| spec.audience.contains(a))
        };
        if !audience_ok {
            return Err(JwtError::WrongAudience);
        }
        if !required.is_empty() && !required.iter().any(|r| self.scopes.contains(r)) {
            return Err(JwtError::InsufficientScope);
        }
        Ok(())
    }
}

/// Verified tokens by hash; bounded.
struct TokenCache {
    map: RwLock<HashMap<[u8; 32], Arc<Checked>>>,
    capacity: usize,
}

impl TokenCache {
    fn get(&self, key: &[u8; 32]) -> Option<Arc<Checked>> {
        let hit = self.map.read().expect("token cache lock").get(key).cloned()?;
        (Instant::now() < hit.recheck_after).then_some(hit)
    }

    fn insert(&self, key: [u8; 32], value: Arc<Checked>, now: i64, leeway: i64) {
        let mut map = self.map.write().expect("token cache lock");
        if map.len() >= self.capacity {
            let instant = Instant::now();
            map.retain(|_, c| now < c.exp.saturating_add(leeway) && instant < c.recheck_after);
            if map.len() >= self.capacity {
                // Still full of live tokens: drop an arbitrary eighth (they re-verify on use).
                let victims: Vec<[u8; 32]> = map.keys().take(self.capacity / 8 + 1).copied().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(key, value);
    }
}

struct Local {
    issuer: String,
    jwks_url: String,
    keys: Arc<KeyStore>,
}

struct Inner {
    local: Option<Local>,
    remote: JwksCache,
    cache: TokenCache,
    opts: VerifierOptions,
}

/// Verifies bearer tokens for JWT authorizers; clones share the caches.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("built_in_issuer", &self.inner.local.as_ref().map(|l| &l.issuer)).finish()
    }
}

/// The token of an Authorization header value, with or without `Bearer `.
fn bearer(authorization: Option<&str>) -> Result<&str, JwtError> {
    let value = authorization.map(str::trim).unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        // "Bearer " trimmed of its space: a scheme without a token.
        None if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    if token.is_empty() { Err(JwtError::Missing) } else { Ok(token) }
}

impl Verifier {
    /// A verifier for outside issuers only (every key is fetched over HTTP).
    pub fn new(opts: VerifierOptions) -> Verifier {
        Self::build(None, opts)
    }

    pub(crate) fn with_local(issuer: String, keys: Arc<KeyStore>, opts: VerifierOptions) -> Verifier {
        let jwks_url = jwks_path(&issuer);
        Self::build(Some(Local { issuer, jwks_url, keys }), opts)
    }

    fn build(local: Option<Local>, mut opts: VerifierOptions) -> Verifier {
        opts.leeway_s = opts.leeway_s.clamp(0, 60);
        let remote = JwksCache::new(opts.jwks_ttl, opts.min_refetch, opts.max_stale, opts.http_timeout);
        let cache = TokenCache { map: Default::default(), capacity: opts.cache_capacity.max(1) };
        Verifier { inner: Arc::new(Inner { local, remote, cache, opts }) }
    }

    /// Verifies the bearer token of `authorization` for an authorizer and a route's
    /// `required_scopes` (empty: none required).
    pub async fn verify(
        &self,
        spec: &JwtAuthorizerSpec,
        authorization: Option<&str>,
        required_scopes: &[String],
    ) -> Result<Verified, JwtError> {
        let token = bearer(authorization)?;
        let leeway = self.inner.opts.leeway_s;
        let now = nimbus_core::clock::now_ms().div_euclid(1000);
        // The key source is part of the cache key: a signature checked against one JWKS says
        // nothing about another.
        let mut h = Sha256::new();
        match &spec.jwks_url {
            Some(url) => h.update(url.as_bytes()),
            None => {
                h.update(b"iss:");
                h.update(spec.issuer.as_bytes());
            }
        }
        h.update([0u8]);
        h.update(token.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if let Some(hit) = self.inner.cache.get(&key) {
            hit.check(spec, required_scopes, now, leeway)?;
            return Ok(Verified { claims: hit.claims.clone(), scopes: hit.scopes.clone() });
        }

        let parsed = jwt::parse(token)?;
        let recheck_after = Instant::now() + self.inner.opts.jwks_ttl;
        let checked = Checked::new(parsed.claims.clone(), recheck_after)?;
        // Before any key lookup, so tokens of other issuers never cause a JWKS fetch.
        if checked.iss.as_deref() != Some(spec.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        let jwk = self.key_for(spec, &parsed.kid).await?;
        parsed.verify_with(&jwk)?;
        let checked = Arc::new(checked);
        if now < checked.exp.saturating_add(leeway) {
            self.inner.cache.insert(key, checked.clone(), now, leeway);
        }
        checked.check(spec, required_scopes, now, leeway)?;
        Ok(Verified { claims: parsed.claims, scopes: checked.scopes.clone() })
    }

    async fn key_for(&self, spec: &JwtAuthorizerSpec, kid: &str) -> Result<Arc<RsaJwk>, JwtError> {
        if let Some(local) = &self.inner.local
            && spec.issuer == local.issuer
            && spec.jwks_url.as_deref().is_none_or(|u| u == local.jwks_url)
        {
            return local.keys.public_key_or_reload(kid).await.ok_or_else(|| JwtError::UnknownKid(short(kid)));
        }
        self.inner.remote.key(&spec.jwks_url(), kid).await
    }
}
