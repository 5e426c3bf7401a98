//! The RS256 signing keys of the built-in issuer: generation, sealing at rest, rotation and the
//! published JWKS.
//!
//! Keys are 2048-bit RSA, generated with the `rsa` crate (ring cannot generate RSA keys),
//! stored as PKCS#8 sealed with the master key, and opened into a `ring` key pair for signing,
//! which ring does in constant time. The kid is the key's RFC 7638 thumbprint.
//!
//! Exactly one key is current (`retired_ms IS NULL`); a rotation retires it and inserts a new
//! one in one transaction. A retired key stays in the JWKS for [`RETIRED_GRACE_MS`], long
//! enough for every token it signed to expire, and is then deleted at a later rotation.
//!
//! The first key is made on first use (a token request, or [`KeyStore::ensure_current`]),
//! not when the server opens: generation costs ~0.1 s in a release build but seconds in a
//! debug one, which every test of a server that never issues a token would pay.
//!
//! The key set lives in memory. Replicas sharing a PostgreSQL database see each other's
//! rotations because the set is reloaded when it is older than [`RELOAD_EVERY`] (before
//! signing, and in the background when the JWKS is served) and when a token names an unknown
//! kid (at most once per [`MIN_UNKNOWN_KID_RELOAD`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nimbus_core::clock;
use nimbus_iam::crypto::MasterKey;
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row};
use ring::signature::RsaKeyPair;
use serde_json::{Value, json};

use crate::OauthError;
use crate::clients::MAX_TOKEN_VALIDITY_S;
use crate::jwt::{Alg, RsaJwk};

/// RSA modulus size of new keys.
pub(crate) const KEY_BITS: usize = 2048;
/// How old the in-memory key set may get before it is read again from the database.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// A flood of tokens with made-up kids costs at most one key query per this interval.
const MIN_UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(2);
/// How long a retired key stays published: the longest token validity, plus the reload
/// interval (a replica may sign with a key until it notices the rotation), plus five minutes
/// for clock skew.
pub(crate) const RETIRED_GRACE_MS: i64 = (MAX_TOKEN_VALIDITY_S as i64 + RELOAD_EVERY.as_secs() as i64 + 300) * 1000;

/// Makes the PKCS#8 DER of a new private key; replaced in tests, where debug-build key
/// generation takes seconds.
pub(crate) type KeyGen = Arc<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

/// A new 2048-bit RSA key as PKCS#8 DER.
pub(crate) fn generate_pkcs8() -> Result<Vec<u8>, String> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).map_err(|e| e.to_string())?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(der.as_bytes().to_vec())
}

/// The current key, opened for signing.
pub(crate) struct SigningKey {
    pub kid: String,
    pub pair: RsaKeyPair,
}

/// A published key.
pub(crate) struct PublicKey {
    pub jwk: Arc<RsaJwk>,
    /// When a newer key took over (or, for a key two replicas made current at once, when the
    /// newer one was created).
    retired_ms: Option<i64>,
}

impl PublicKey {
    fn published(&self, now_ms: i64) -> bool {
        self.retired_ms.is_none_or(|r| now_ms < r + RETIRED_GRACE_MS)
    }
}

struct KeySet {
    current: Option<Arc<SigningKey>>,
    /// Newest first.
    public: Vec<PublicKey>,
    loaded: Instant,
}

/// The signing keys of this issuer.
pub(crate) struct KeyStore {
    db: Db,
    master: MasterKey,
    keygen: KeyGen,
    set: RwLock<Arc<KeySet>>,
    /// When an unknown kid last caused a reload.
    unknown_kid_reload: tokio::sync::Mutex<Option<Instant>>,
    background_reload: AtomicBool,
    /// Held while the first key is made, so concurrent first requests generate one key.
    creating: tokio::sync::Mutex<()>,
    /// Held from a reload's query to its store, so a slow reload cannot overwrite the set a
    /// later one read (a rotation's own reload racing a background one).
    loading: tokio::sync::Mutex<()>,
}

impl KeyStore {
    /// Loads the keys (there may be none yet).
    pub(crate) async fn open(db: Db, master: MasterKey, keygen: KeyGen) -> Result<Arc<KeyStore>, OauthError> {
        let empty = KeySet { current: None, public: Vec::new(), loaded: Instant::now() };
        let store = Arc::new(KeyStore {
            db,
            master,
            keygen,
            set: RwLock::new(Arc::new(empty)),
            unknown_kid_reload: Default::default(),
            background_reload: AtomicBool::new(false),
            creating: Default::default(),
            loading: Default::default(),
        });
        store.load().await?;
        Ok(store)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set.read().expect("key set lock").clone()
    }

    /// Reads every key row again; only a changed current key is unsealed and parsed anew.
    pub(crate) async fn load(&self) -> Result<(), OauthError> {
        let _one = self.loading.lock().await;
        self.load_locked().await
    }

    /// Reloads unless the set is younger than [`RELOAD_EVERY`], checked under the lock, so a
    /// burst of requests at the boundary makes one query.
    async fn load_if_stale(&self) -> Result<(), OauthError> {
        let _one = self.loading.lock().await;
        if self.snapshot().loaded.elapsed() < RELOAD_EVERY {
            return Ok(());
        }
        self.load_locked().await
    }

    async fn load_locked(&self) -> Result<(), OauthError> {
        let rows = sqlx::query(
            "SELECT kid, private_sealed, public_jwk, created_ms, retired_ms FROM signing_keys ORDER BY created_ms, kid",
        )
        .fetch_all(self.db.pool())
        .await?;
        let old = self.snapshot();
        let mut public = Vec::with_capacity(rows.len());
        let mut current_row = None;
        let mut newer_created: Option<i64> = None;
        // Newest first, so each key knows when the next one was created.
        for row in rows.iter().rev() {
            let kid: String = row.try_get("kid")?;
            let text: String = row.try_get("public_jwk")?;
            let created_ms: i64 = row.try_get("created_ms")?;
            let retired_ms: Option<i64> = row.try_get("retired_ms")?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| OauthError::Corrupt(format!("signing key {kid}: public_jwk is not JSON: {e}")))?;
            let jwk = RsaJwk::from_value(&value)
                .map_err(|e| OauthError::Corrupt(format!("signing key {kid}: {e}")))?
                .filter(|j| j.kid == kid)
                .ok_or_else(|| OauthError::Corrupt(format!("signing key {kid}: public_jwk is not its RSA key")))?;
            if retired_ms.is_none() && current_row.is_none() {
                current_row = Some(row);
            }
            // Two replicas rotating at once can leave two unretired keys; the newest wins and
            // the other counts as retired when the newest was made, so it still expires.
            let retired = match (retired_ms, current_row.is_some_and(|r| !std::ptr::eq(r, row))) {
                (Some(r), _) => Some(r),
                (None, true) => Some(newer_created.unwrap_or(created_ms)),
                (None, false) => None,
            };
            public.push(PublicKey { jwk: Arc::new(jwk), retired_ms: retired });
            newer_created = Some(created_ms);
        }
        let current = match current_row {
            None => None,
            Some(row) => {
                let kid: String = row.try_get("kid")?;
                match old.current.as_ref().filter(|c| c.kid == kid) {
                    Some(same) => Some(same.clone()),
                    None => {
                        let sealed: String = row.try_get("private_sealed")?;
                        Some(Arc::new(self.open_private(&kid, &sealed)?))
                    }
                }
            }
        };
        *self.set.write().expect("key set lock") = Arc::new(KeySet { current, public, loaded: Instant::now() });
        Ok(())
    }

    fn open_private(&self, kid: &str, sealed: &str) -> Result<SigningKey, OauthError> {
        let b64 = self.master.open(sealed, kid).map_err(|e| OauthError::MasterKey(e.to_string()))?;
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| OauthError::Corrupt(format!("signing key {kid}: the private key is not base64")))?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| OauthError::Corrupt(format!("signing key {kid}: the private key is not usable: {e}")))?;
        Ok(SigningKey { kid: kid.to_string(), pair })
    }

    /// Generates a key and stores it as the current one. With `rotate`, the current key is
    /// retired; without, the key is only inserted when there is still no current key (another
    /// replica may have made one meanwhile). Returns the new kid, or the existing one.
    async fn insert_new(&self, rotate: bool) -> Result<String, OauthError> {
        let keygen = self.keygen.clone();
        // Seconds of CPU in a debug build, ~100 ms in release: keep it off the async workers.
        let der = tokio::task::spawn_blocking(move || keygen())
            .await
            .map_err(|e| OauthError::Key(format!("key generation stopped: {e}")))?
            .map_err(|e| OauthError::Key(format!("cannot generate an RSA key: {e}")))?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| OauthError::Key(format!("the generated key does not load: {e}")))?;
        let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let kid = RsaJwk::thumbprint(&parts.n, &parts.e);
        let jwk = RsaJwk { kid: kid.clone(), alg: Some(Alg::Rs256), n: parts.n, e: parts.e };
        let now = clock::now_ms();

        let mut tx = self.db.write().await?;
        if rotate {
            sqlx::query("UPDATE signing_keys SET retired_ms = $1 WHERE retired_ms IS NULL")
                .bind(now)
                .execute(&mut *tx.tx)
                .await?;
            // Keys whose last token has expired leave the database at the next rotation.
            sqlx::query("DELETE FROM signing_keys WHERE retired_ms IS NOT NULL AND retired_ms < $1")
                .bind(now - RETIRED_GRACE_MS)
                .execute(&mut *tx.tx)
                .await?;
        } else {
            let sql = format!("SELECT kid FROM signing_keys WHERE retired_ms IS NULL{}", self.db.for_update());
            if let Some(row) = sqlx::query(&sql).fetch_optional(&mut *tx.tx).await? {
                drop(tx);
                self.load().await?;
                return Ok(row.try_get("kid")?);
            }
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_sealed, public_jwk, created_ms, retired_ms) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&kid)
        .bind(self.master.seal(&STANDARD.encode(&der), &kid))
        .bind(jwk.to_value().to_string())
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        self.load().await?;
        tracing::info!(kid = %kid, rotate, "new OAuth2 signing key");
        Ok(kid)
    }

    /// Makes a new current key; the old one stays published until its tokens have expired.
    pub(crate) async fn rotate(&self) -> Result<String, OauthError> {
        self.insert_new(true).await
    }

    /// The key to sign with, after a reload when the set is old (another replica may have
    /// rotated; signing with a retired key would outlive its publication).
    pub(crate) async fn signing_key(&self) -> Result<Arc<SigningKey>, OauthError> {
        if self.snapshot().loaded.elapsed() >= RELOAD_EVERY
            && let Err(e) = self.load_if_stale().await
        {
            // Signing with the known key is still right for a while; the error is the DB's.
            tracing::warn!(error = %e, "cannot reload the OAuth2 signing keys");
        }
        if let Some(current) = self.snapshot().current.clone() {
            return Ok(current);
        }
        self.ensure_current().await?;
        self.snapshot().current.clone().ok_or_else(|| OauthError::Key("no current signing key".into()))
    }

    /// Makes the first key when there is none; returns the current kid.
    pub(crate) async fn ensure_current(&self) -> Result<String, OauthError> {
        let _one = self.creating.lock().await;
        if let Some(current) = self.snapshot().current.as_ref() {
            return Ok(current.kid.clone());
        }
        self.insert_new(false).await
    }

    /// A published key by kid.
    pub(crate) fn public_key(&self, kid: &str) -> Option<Arc<RsaJwk>> {
        let now = clock::now_ms();
        self.snapshot().public.iter().find(|k| k.jwk.kid == kid && k.published(now)).map(|k| k.jwk.clone())
    }

    /// A published key by kid, reloading the set once when the kid is unknown (a replica may
    /// have rotated), at most once per [`MIN_UNKNOWN_KID_RELOAD`].
    pub(crate) async fn public_key_or_reload(&self, kid: &str) -> Option<Arc<RsaJwk>> {
        if let Some(k) = self.public_key(kid) {
            return Some(k);
        }
        let mut last = self.unknown_kid_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_UNKNOWN_KID_RELOAD) {
            // Someone may have reloaded while this call waited for the lock.
            return self.public_key(kid);
        }
        *last = Some(Instant::now());
        if let Err(e) = self.load().await {
            tracing::warn!(error = %e, "cannot reload the OAuth2 signing keys");
        }
        self.public_key(kid)
    }

    /// `{"keys":[…]}`: every key whose tokens may still be live, the current one first.
    pub(crate) fn jwks(self: &Arc<Self>) -> Value {
        let set = self.snapshot();
        if set.loaded.elapsed() >= RELOAD_EVERY {
            self.reload_in_background();
        }
        let now = clock::now_ms();
        let keys: Vec<Value> = set.public.iter().filter(|k| k.published(now)).map(|k| k.jwk.to_value()).collect();
        json!({ "keys": keys })
    }

    fn reload_in_background(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        if self.background_reload.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        handle.spawn(async move {
            if let Err(e) = store.load_if_stale().await {
                tracing::warn!(error = %e, "cannot reload the OAuth2 signing keys");
            }
            store.background_reload.store(false, Ordering::Release);
        });
    }

    /// The kid of the current key.
    pub(crate) fn current_kid(&self) -> Option<String> {
        self.snapshot().current.as_ref().map(|c| c.kid.clone())
    }
}

#[cfg(test)]
mod tests {
    /// `cargo test -p nimbus-oauth -- --ignored --nocapture keygen`: what a key costs in this
    /// build (the prime search makes it vary from run to run).
    #[test]
    #[ignore = "slow in debug builds; run by hand to measure"]
    fn keygen_timing() {
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let der = super::generate_pkcs8().unwrap();
            let generated = t.elapsed();
            ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
            eprintln!(
                "2048-bit RSA key: generated in {generated:?}, loaded into ring in {:?}",
                t.elapsed() - generated
            );
        }
    }
}
