//! The nimbus OAuth2 authorization server, Cognito-compatible, and the JWT verifier of the API
//! gateway's JWT authorizers.
//!
//! The server implements what machine-to-machine clients of Cognito use: the client
//! credentials grant at `POST /oauth2/token` ([`TokenRequest`], [`Oauth::token`]), RS256
//! access tokens shaped like Cognito's (`sub`, `client_id`, `scope`, `token_use: access`,
//! `iss`, `exp`, `iat`, `auth_time`, `jti`, `version: 2`, no `aud`), the JWKS at
//! `/.well-known/jwks.json` ([`Oauth::jwks`]) and the discovery document at
//! `/.well-known/openid-configuration` ([`Oauth::openid_configuration`]). Resource servers
//! and app clients are managed here too ([`ResourceServerSpec`], [`ClientSpec`]).
//!
//! There is no HTTP framework in this crate: the server crate mounts the routes and hands
//! the raw request parts to these functions.
//!
//! Module map: `keys` signing keys and rotation, `token` the token endpoint, `clients`
//! resource servers and clients, `jwt` token encoding and signature checks, `verifier` JWT
//! authorizers, `jwks_cache` outside issuers' keys, [`throttle`] the failed-authentication
//! limiter (public for its documented rule and constants).
#![forbid(unsafe_code)]

mod clients;
mod jwks_cache;
mod jwt;
mod keys;
pub mod throttle;
mod token;
mod verifier;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nimbus_iam::crypto::MasterKey;
use nimbus_meta::{Db, MetaError};
use serde_json::{Value, json};

pub use clients::{
    ClientInfo, ClientSpec, DEFAULT_TOKEN_VALIDITY_S, MAX_TOKEN_VALIDITY_S, MIN_TOKEN_VALIDITY_S, NewClient,
    ResourceServerSpec, ScopeSpec,
};
pub use token::{CLIENT_CREDENTIALS, TokenError, TokenRequest, TokenResponse};
pub use verifier::{DEFAULT_LEEWAY_S, JwtAuthorizerSpec, JwtError, Verified, Verifier, VerifierOptions};

/// Errors of managing the authorization server.
#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    /// A field of a spec breaks its rules; the reason says how to fix it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The name or id is taken.
    #[error("{0}")]
    Exists(String),
    /// A sealed secret or key does not open with this master key.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A signing key cannot be made or used.
    #[error("signing key: {0}")]
    Key(String),
    /// A stored value is not what this version wrote.
    #[error("damaged OAuth2 metadata: {0}")]
    Corrupt(String),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A query failed.
    #[error("metadata database error: {0}")]
    Sql(#[from] nimbus_meta::sqlx::Error),
}

/// `issuer + "/.well-known/jwks.json"`.
pub(crate) fn jwks_path(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
}

/// How often the scope list of the discovery document is read again (other replicas may
/// have changed resource servers).
const SCOPES_REFRESH: Duration = Duration::from_secs(60);

/// Knobs tests turn; production uses [`Options::default`].
pub(crate) struct Options {
    pub keygen: keys::KeyGen,
    pub throttle: throttle::Throttle,
    pub verifier: VerifierOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keygen: Arc::new(keys::generate_pkcs8),
            throttle: throttle::Throttle::new(throttle::LIMIT, throttle::WINDOW, throttle::MAX_TRACKED),
            verifier: VerifierOptions::default(),
        }
    }
}

struct Inner {
    db: Db,
    key: MasterKey,
    issuer: String,
    keys: Arc<keys::KeyStore>,
    throttle: throttle::Throttle,
    verifier: Verifier,
    /// Every `identifier/scope`, for the discovery document, and when it was read.
    scopes: RwLock<(Vec<String>, Instant)>,
    scopes_refreshing: AtomicBool,
}

/// The authorization server; cheap to clone.
#[derive(Clone)]
pub struct Oauth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Oauth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth").field("issuer", &self.inner.issuer).finish()
    }
}

impl Oauth {
    /// Opens the server over `db` for `issuer` (the external base URL, e.g.
    /// `http://127.0.0.1:8080`; a trailing `/` is dropped). The first signing key is made on
    /// first use; see [`Oauth::prepare`].
    pub async fn open(db: Db, key: MasterKey, issuer: String) -> Result<Oauth, OauthError> {
        Self::open_with(db, key, issuer, Options::default()).await
    }

    pub(crate) async fn open_with(db: Db, key: MasterKey, issuer: String, opts: Options) -> Result<Oauth, OauthError> {
        let issuer = issuer.trim_end_matches('/').to_string();
        let host = issuer.strip_prefix("https://").or_else(|| issuer.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.contains(['?', '#', ' '])) {
            return Err(OauthError::Invalid {
                field: "issuer".into(),
                reason: format!(
                    "{issuer:?} is not an http(s) base URL; give the address clients use, e.g. https://auth.example.com"
                ),
            });
        }
        let keys = keys::KeyStore::open(db.clone(), key.clone(), opts.keygen).await?;
        let verifier = Verifier::with_local(issuer.clone(), keys.clone(), opts.verifier);
        let oauth = Oauth {
            inner: Arc::new(Inner {
                db,
                key,
                issuer,
                keys,
                throttle: opts.throttle,
                verifier,
                scopes: RwLock::new((Vec::new(), Instant::now())),
                scopes_refreshing: AtomicBool::new(false),
            }),
        };
        *oauth.inner.scopes.write().expect("scopes lock") = (oauth.all_scopes().await?, Instant::now());
        Ok(oauth)
    }

    /// The issuer URL (`iss` of the tokens).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The JWKS document: every key whose tokens may still be live (none before the first
    /// token).
    pub fn jwks(&self) -> Value {
        self.inner.keys.jwks()
    }

    /// The discovery document (`/.well-known/openid-configuration`).
    pub fn openid_configuration(&self) -> Value {
        let scopes = {
            let guard = self.inner.scopes.read().expect("scopes lock");
            if guard.1.elapsed() >= SCOPES_REFRESH {
                self.refresh_scopes_in_background();
            }
            guard.0.clone()
        };
        let issuer = &self.inner.issuer;
        json!({
            "issuer": issuer,
            "jwks_uri": jwks_path(issuer),
            "token_endpoint": format!("{issuer}/oauth2/token"),
            "grant_types_supported": [CLIENT_CREDENTIALS],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": scopes,
        })
    }

    /// Reads the scope list again now.
    pub(crate) async fn refresh_scopes(&self) {
        match self.all_scopes().await {
            Ok(list) => *self.inner.scopes.write().expect("scopes lock") = (list, Instant::now()),
            Err(e) => tracing::warn!(error = %e, "cannot read the OAuth2 scopes"),
        }
    }

    fn refresh_scopes_in_background(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.scopes_refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        handle.spawn(async move {
            this.refresh_scopes().await;
            this.inner.scopes_refreshing.store(false, Ordering::Release);
        });
    }

    /// Makes a new current signing key; returns its kid. Tokens signed by the old key stay
    /// valid, as it stays in the JWKS until they have expired.
    pub async fn rotate_signing_key(&self) -> Result<String, OauthError> {
        self.inner.keys.rotate().await
    }

    /// Makes the first signing key when there is none yet (about 0.1 s of CPU in a release
    /// build, seconds in a debug one) and returns the current kid. Optional: the first token
    /// request does it otherwise; a server may spawn this at start-up so that request does
    /// not wait.
    pub async fn prepare(&self) -> Result<String, OauthError> {
        self.inner.keys.ensure_current().await
    }

    /// The kid new tokens are signed with (`None` before the first key is made).
    pub fn current_kid(&self) -> Option<String> {
        self.inner.keys.current_kid()
    }

    /// Declares a resource server for `nimbus apply`: [`Oauth::put_resource_server`], which
    /// is already idempotent; returns whether anything changed.
    pub async fn ensure_resource_server(&self, spec: &ResourceServerSpec) -> Result<bool, OauthError> {
        self.put_resource_server(spec).await
    }

    /// The verifier that knows this issuer's keys (and fetches other issuers'); clones share
    /// its caches.
    pub fn verifier(&self) -> Verifier {
        self.inner.verifier.clone()
    }
}
