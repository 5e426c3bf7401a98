//! Users and access keys, and the authentication of signed requests against them.
//!
//! Secrets are sealed with the master key in the database and kept opened in a small
//! in-memory cache, so the hot path of a signed request costs one map lookup and the HMACs.
//! The cache never outlives a change: every write of the identity layer bumps
//! [`Caches::generation`] after it commits and empties the caches, and a reader that loaded a
//! row before a change stores it only if the generation it started with is still current.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nimbus_core::arn::Partition;
use nimbus_core::{clock, names};
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row};
use rand::Rng;
use time::OffsetDateTime;

use crate::IamError;
use crate::crypto::MasterKey;
use crate::sigv4::{self, SigError, UriMode};

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// User name.
    pub user: String,
    /// `arn:aws:iam::{account}:user/{name}`.
    pub arn: String,
    /// Whether the user holds every permission.
    pub is_admin: bool,
    /// The access key the request was signed with.
    pub access_key_id: String,
}

/// An access key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub user: String,
    pub active: bool,
    pub created_ms: i64,
}

/// A freshly created access key. The secret is shown once and never stored in clear.
#[derive(Clone)]
pub struct NewAccessKey {
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewAccessKey({}, {}, ***)", self.user, self.access_key_id)
    }
}

#[derive(Clone)]
struct OpenKey {
    secret: String,
    principal: Principal,
    /// The last derived signing key and the scope (`date/region/service`) it is for: four
    /// HMACs saved on every request of the day. It lives and dies with this cache entry, so a
    /// deactivated or deleted key takes its derived key with it.
    derived: Arc<std::sync::Mutex<Option<DerivedKey>>>,
}

/// A derived SigV4 signing key and its scope, `date/region/service`.
type DerivedKey = (String, [u8; 32]);

impl OpenKey {
    fn signing_key(&self, date: &str, region: &str, service: &str) -> [u8; 32] {
        let scope = format!("{date}/{region}/{service}");
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = derived.as_ref().filter(|(s, _)| *s == scope) {
            return *k;
        }
        let key = sigv4::signing_key(&self.secret, date, region, service);
        *derived = Some((scope, key));
        key
    }
}

/// The in-memory views of the identity tables, and the generation that keeps them honest.
#[derive(Default)]
pub(crate) struct Caches {
    /// Bumped after every committed change to users, keys, groups, roles or policies.
    generation: AtomicU64,
    keys: RwLock<HashMap<String, Arc<OpenKey>>>,
    pub(crate) grants: RwLock<HashMap<String, Arc<crate::authorize::Grants>>>,
}

impl Caches {
    /// The current generation; read it before loading rows to cache.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets everything; called after every committed change.
    pub(crate) fn invalidate(&self) {
        // Bump first: a reader that loaded rows before this point will see a new generation
        // and not store what it read.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.keys.write().expect("cache lock").clear();
        self.grants.write().expect("cache lock").clear();
    }
}

/// The identity service.
#[derive(Clone)]
pub struct Iam {
    pub(crate) db: Db,
    key: MasterKey,
    pub(crate) partition: Partition,
    pub(crate) caches: Arc<Caches>,
}

const ADMIN_USER: &str = "admin";

impl Iam {
    /// An identity service over `db`, sealing with `key`.
    pub fn new(db: Db, key: MasterKey, partition: Partition) -> Iam {
        Iam { db, key, partition, caches: Default::default() }
    }

    /// The region and account of this deployment.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// On the first start (no user yet) creates the `admin` user with one access key, hands
    /// it to `keep` (which writes the credentials file, durably) and only then commits, so a
    /// crash can never leave a committed admin key whose secret is written nowhere. Returns
    /// the key; afterwards `None`. Safe against replicas starting together.
    pub async fn bootstrap_admin(
        &self,
        keep: impl FnOnce(&NewAccessKey) -> Result<(), IamError>,
    ) -> Result<Option<NewAccessKey>, IamError> {
        let mut tx = self.db.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (name, arn, is_admin, created_ms) VALUES ($1, $2, 1, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(ADMIN_USER)
        .bind(self.partition.user_arn(ADMIN_USER))
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        crate::directory::attach_in(&mut tx.tx, "user", ADMIN_USER, crate::directory::ADMINISTRATOR_ACCESS).await?;
        let key = self.insert_key(&mut tx.tx, ADMIN_USER).await?;
        keep(&key)?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(Some(key))
    }

    /// Recovers a lost admin secret: a new access key for `admin` (created when missing), the
    /// old admin keys made inactive, `keep` called before the commit as in
    /// [`Iam::bootstrap_admin`]. For `nimbus admin reset-key`, run with the server stopped (a
    /// running server keeps accepting the keys it has already opened until it restarts).
    pub async fn reset_admin_key(
        &self,
        keep: impl FnOnce(&NewAccessKey) -> Result<(), IamError>,
    ) -> Result<(NewAccessKey, u64), IamError> {
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO users (name, arn, is_admin, created_ms) VALUES ($1, $2, 1, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(ADMIN_USER)
        .bind(self.partition.user_arn(ADMIN_USER))
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?;
        crate::directory::attach_in(&mut tx.tx, "user", ADMIN_USER, crate::directory::ADMINISTRATOR_ACCESS).await?;
        let retired =
            sqlx::query("UPDATE access_keys SET status = 'Inactive' WHERE user_name = $1 AND status = 'Active'")
                .bind(ADMIN_USER)
                .execute(&mut *tx.tx)
                .await?
                .rows_affected();
        let key = self.insert_key(&mut tx.tx, ADMIN_USER).await?;
        keep(&key)?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok((key, retired))
    }

    /// Creates a user. An admin user is created holding `AdministratorAccess`; any other
    /// holds nothing until a policy is attached.
    pub async fn create_user(&self, name: &str, is_admin: bool) -> Result<(), IamError> {
        names::resource("user", name)?;
        let mut tx = self.db.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (name, arn, is_admin, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(self.partition.user_arn(name))
        .bind(is_admin as i64)
        .bind(clock::now_ms())
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(IamError::Exists { kind: "user", name: name.to_string() });
        }
        if is_admin {
            crate::directory::attach_in(&mut tx.tx, "user", name, crate::directory::ADMINISTRATOR_ACCESS).await?;
        }
        tx.commit().await?;
        self.caches.invalidate();
        Ok(())
    }

    /// Creates an access key for an existing user.
    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, IamError> {
        let mut tx = self.db.write().await?;
        let exists =
            sqlx::query("SELECT name FROM users WHERE name = $1").bind(user).fetch_optional(&mut *tx.tx).await?;
        if exists.is_none() {
            return Err(IamError::UserNotFound(user.to_string()));
        }
        let key = self.insert_key(&mut tx.tx, user).await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(key)
    }

    async fn insert_key(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user: &str,
    ) -> Result<NewAccessKey, IamError> {
        let (access_key_id, secret) = generate_key_pair();
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, user_name, secret_sealed, status, created_ms) VALUES ($1, $2, $3, 'Active', $4)",
        )
        .bind(&access_key_id)
        .bind(user)
        .bind(self.key.seal(&secret, &access_key_id))
        .bind(clock::now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(NewAccessKey { user: user.to_string(), access_key_id, secret_access_key: secret })
    }

    /// Disables an access key; requests signed with it are refused from the next one on.
    pub async fn disable_access_key(&self, access_key_id: &str) -> Result<bool, IamError> {
        self.set_access_key_status(access_key_id, false).await
    }

    /// Makes an access key `Active` or `Inactive`. Returns whether the key exists.
    pub async fn set_access_key_status(&self, access_key_id: &str, active: bool) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        let n = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
            .bind(if active { "Active" } else { "Inactive" })
            .bind(access_key_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }

    /// Deletes an access key. Returns whether it existed.
    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<bool, IamError> {
        let mut tx = self.db.write().await?;
        let n = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.caches.invalidate();
        Ok(n > 0)
    }

    /// Rotates an access key: a new key for the same user, and the old one made `Inactive`, in
    /// one transaction. The new secret is shown once.
    pub async fn rotate_access_key(&self, access_key_id: &str) -> Result<NewAccessKey, IamError> {
        let mut tx = self.db.write().await?;
        let row = sqlx::query("SELECT user_name FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&mut *tx.tx)
            .await?
            .ok_or_else(|| IamError::NotFound { kind: "access key", name: access_key_id.to_string() })?;
        let user: String = row.try_get("user_name")?;
        sqlx::query("UPDATE access_keys SET status = 'Inactive' WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *tx.tx)
            .await?;
        let key = self.insert_key(&mut tx.tx, &user).await?;
        tx.commit().await?;
        self.caches.invalidate();
        Ok(key)
    }

    /// The access keys of `user` (every user when `None`), without secrets.
    pub async fn list_access_keys(&self, user: Option<&str>) -> Result<Vec<AccessKeyInfo>, IamError> {
        let rows = sqlx::query(
            "SELECT access_key_id, user_name, status, created_ms FROM access_keys              WHERE ($1 = '' OR user_name = $1) ORDER BY user_name, created_ms",
        )
        .bind(user.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AccessKeyInfo {
                    access_key_id: r.try_get("access_key_id")?,
                    user: r.try_get("user_name")?,
                    active: r.try_get::<String, _>("status")? == "Active",
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }

    async fn open_key(&self, access_key_id: &str) -> Result<Option<Arc<OpenKey>>, IamError> {
        if let Some(k) = self.caches.keys.read().expect("cache lock").get(access_key_id) {
            return Ok(Some(k.clone()));
        }
        let generation = self.caches.generation();
        let row = sqlx::query(
            "SELECT k.secret_sealed, k.user_name, u.arn, u.is_admin FROM access_keys k JOIN users u ON u.name = k.user_name \
             WHERE k.access_key_id = $1 AND k.status = 'Active'",
        )
        .bind(access_key_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get("secret_sealed")?;
        let open = Arc::new(OpenKey {
            derived: Default::default(),
            secret: self.key.open(&sealed, access_key_id)?,
            principal: Principal {
                user: row.try_get("user_name")?,
                arn: row.try_get("arn")?,
                is_admin: row.try_get::<i64, _>("is_admin")? != 0,
                access_key_id: access_key_id.to_string(),
            },
        });
        let mut keys = self.caches.keys.write().expect("cache lock");
        // A change committed while the row was read: it may be stale, so serve it this once
        // and do not keep it.
        if self.caches.generation() == generation {
            keys.insert(access_key_id.to_string(), open.clone());
        }
        Ok(Some(open))
    }

    /// Everything of a request's authentication that needs neither the body nor the
    /// signature itself: the authorization is well formed, the scope is this region and
    /// `service`, the clock is within 15 minutes and the key is known and active. Run it
    /// before reading a byte of the body. `unsigned` says whether this route accepts a body the
    /// signature does not cover (`UNSIGNED-PAYLOAD`, presigned URLs): S3-style object reads
    /// and writes only.
    pub async fn prepare(&self, req: &sigv4::Request<'_>, service: &str, unsigned: bool) -> Result<Prepared, IamError> {
        let parsed = sigv4::parse(req)?;
        parsed.check_scope_and_time(&self.partition.region, service, OffsetDateTime::now_utc())?;
        let payload = parsed.payload(req)?;
        if !unsigned && (payload == sigv4::Payload::Unsigned || parsed.is_presigned()) {
            return Err(SigError::Malformed(format!(
                "{} is accepted only for object uploads and downloads; sign the body's SHA-256 in x-amz-content-sha256.",
                if parsed.is_presigned() { "A presigned URL" } else { "UNSIGNED-PAYLOAD" }
            ))
            .into());
        }
        let key = self
            .open_key(&parsed.access_key_id)
            .await?
            .ok_or_else(|| SigError::UnknownKey(parsed.access_key_id.clone()))?;
        Ok(Prepared { parsed, payload, key, region: self.partition.region.clone(), service: service.to_string() })
    }

    /// Verifies a SigV4-signed request for `service` in this deployment's region and says
    /// who sent it. `req.body_sha256` must be given unless the request states its payload hash.
    pub async fn authenticate(
        &self,
        req: &sigv4::Request<'_>,
        service: &str,
        mode: UriMode,
    ) -> Result<Principal, IamError> {
        self.prepare(req, service, false).await?.verify(req, mode)
    }
}

/// A request whose authorization, scope, clock and key check out; the signature is next.
pub struct Prepared {
    parsed: sigv4::Parsed,
    payload: sigv4::Payload,
    key: Arc<OpenKey>,
    region: String,
    service: String,
}

impl Prepared {
    /// What the request claims about its payload.
    pub fn payload(&self) -> &sigv4::Payload {
        &self.payload
    }

    /// Checks the signature; `req.body_sha256` is needed when the payload is
    /// [`sigv4::Payload::Unstated`].
    pub fn verify(self, req: &sigv4::Request<'_>, mode: UriMode) -> Result<Principal, IamError> {
        let (date, region, service) = self.parsed.scope();
        let key = self.key.signing_key(date, region, service);
        self.parsed.verify_with_key(req, &key, &self.region, &self.service, mode, OffsetDateTime::now_utc())?;
        Ok(self.key.principal.clone())
    }
}

/// An AWS-shaped key pair: `AKIA` + 16 upper-case letters and digits, and a 40-character
/// secret.
fn generate_key_pair() -> (String, String) {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rngs::OsRng;
    let id: String = (0..16).map(|_| UPPER[rng.gen_range(0..UPPER.len())] as char).collect();
    let secret: String = (0..40).map(|_| SECRET[rng.gen_range(0..SECRET.len())] as char).collect();
    (format!("AKIA{id}"), secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bootstrap_creates_one_admin_key_that_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let iam = Iam::new(db, key, Partition::default());
        let admin = iam.bootstrap_admin(|_| Ok(())).await.unwrap().expect("first start creates a key");
        assert!(iam.bootstrap_admin(|_| Ok(())).await.unwrap().is_none());
        assert!(admin.access_key_id.starts_with("AKIA") && admin.access_key_id.len() == 20);

        let signer = sigv4::Signer {
            access_key_id: admin.access_key_id.clone(),
            secret: admin.secret_access_key.clone(),
            region: "us-east-1".into(),
            service: "nimbus".into(),
        };
        let mut headers = vec![("host".to_string(), "localhost".to_string())];
        signer.sign("GET", "/x", "", &mut headers, b"", OffsetDateTime::now_utc());
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b""));
        let req = sigv4::Request { method: "GET", path: "/x", query: "", headers: &headers, body_sha256: Some(&hash) };
        let who = iam.authenticate(&req, "nimbus", UriMode::Normalized).await.unwrap();
        assert_eq!(who.user, "admin");
        assert!(who.is_admin);

        let (fresh, retired) = iam.reset_admin_key(|_| Ok(())).await.unwrap();
        assert_eq!(retired, 1);
        assert!(matches!(
            iam.authenticate(&req, "nimbus", UriMode::Normalized).await,
            Err(IamError::Signature(SigError::UnknownKey(_)))
        ));
        assert_ne!(fresh.access_key_id, admin.access_key_id);
        iam.disable_access_key(&admin.access_key_id).await.unwrap();
        assert!(matches!(
            iam.authenticate(&req, "nimbus", UriMode::Normalized).await,
            Err(IamError::Signature(SigError::UnknownKey(_)))
        ));
    }

    #[tokio::test]
    async fn a_bootstrap_whose_credentials_cannot_be_written_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let iam = Iam::new(db, key, Partition::default());
        let failed = iam.bootstrap_admin(|_| Err(IamError::MasterKey("disk full".into()))).await;
        assert!(failed.is_err());
        let again = iam.bootstrap_admin(|_| Ok(())).await.unwrap();
        assert!(again.is_some(), "the failed bootstrap left no admin behind");
    }
}
