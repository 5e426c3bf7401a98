//! API keys: created with a random value shown once, stored only as a keyed hash
//! (HMAC-SHA256 with a key derived from the master key), looked up per request in memory.
//!
//! The table in memory is loaded at open and changed by every change made through
//! [`ApiKeys`], after the database commits, so a disabled or deleted key is refused from the
//! very next request and the hot path never touches the database. This process must be the
//! only writer: another replica's change reaches this one only at its next start (carrying
//! changes across replicas is a later issue, with the rest of the change feed). What does
//! not live here: plans and the per-request decision (`mod.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use nimbus_core::{clock, names};
use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row};
use rand::Rng;
use rand::distributions::{Alphanumeric, Uniform};
use sha2::Sha256;

use super::{Shared, UsageError};

/// Length of a key's value (`[A-Za-z0-9]`), about 238 bits of randomness.
pub const VALUE_LEN: usize = 40;

/// Length of a key's id (`[a-z0-9]`, like AWS's `apiKeyId`).
const ID_LEN: usize = 10;

/// What is known of a key; never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key's id, e.g. for access logs (`$context.identity.apiKeyId`). Shared, so the hot
    /// path hands it out without copying.
    pub id: Arc<str>,
    pub name: String,
    /// The usage plan the key belongs to; a key without one is refused everywhere.
    pub usage_plan: Option<String>,
    /// A disabled key is refused.
    pub enabled: bool,
    pub created_ms: i64,
}

/// A freshly created key. The value is shown once and never stored.
#[derive(Clone)]
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    /// The secret the client sends as `x-api-key`.
    pub value: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewApiKey({}, {}, ***)", self.info.name, self.info.id)
    }
}

type ValueHash = [u8; 32];

#[derive(Clone, Default)]
struct Table {
    by_hash: HashMap<ValueHash, Arc<ApiKeyInfo>>,
    by_name: HashMap<String, ValueHash>,
}

impl Table {
    fn insert(&mut self, hash: ValueHash, info: ApiKeyInfo) {
        self.by_name.insert(info.name.clone(), hash);
        self.by_hash.insert(hash, Arc::new(info));
    }
}

/// The API keys of one process; see the module doc for the caching rule.
pub struct ApiKeys {
    db: Db,
    /// HMAC-SHA256 keyed with the hash key, ready to clone: saves the key setup per request.
    mac: Hmac<Sha256>,
    /// Replaced whole by every change (under `shared.changes`); readers never wait.
    table: ArcSwap<Table>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.table.load().by_hash.len())
    }
}

impl ApiKeys {
    /// Loads every key.
    pub(super) async fn open(db: Db, hash_key: [u8; 32], shared: Arc<Shared>) -> Result<ApiKeys, UsageError> {
        let rows = sqlx::query("SELECT id, name, value_hash, usage_plan, enabled, created_ms FROM api_keys")
            .fetch_all(db.pool())
            .await
            .map_err(|e| UsageError::Load { what: "API keys", source: e.into() })?;
        let mut table = Table::default();
        for r in &rows {
            let read = || -> Result<(ValueHash, ApiKeyInfo), String> {
                let text: String = r.try_get("value_hash").map_err(|e| e.to_string())?;
                let hash =
                    hex::decode(&text).ok().and_then(|b| b.try_into().ok()).ok_or("value_hash is not 64 hex digits")?;
                let id: String = r.try_get("id").map_err(|e| e.to_string())?;
                let info = ApiKeyInfo {
                    id: id.into(),
                    name: r.try_get("name").map_err(|e| e.to_string())?,
                    usage_plan: r.try_get("usage_plan").map_err(|e| e.to_string())?,
                    enabled: r.try_get::<i64, _>("enabled").map_err(|e| e.to_string())? != 0,
                    created_ms: r.try_get("created_ms").map_err(|e| e.to_string())?,
                };
                Ok((hash, info))
            };
            match read() {
                Ok((hash, info)) => table.insert(hash, info),
                Err(e) => tracing::error!("an API key row cannot be read, the key is refused: {e}"),
            }
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&hash_key).expect("HMAC takes any key length");
        Ok(ApiKeys { db, mac, table: ArcSwap::from_pointee(table), shared })
    }

    fn hash(&self, value: &str) -> ValueHash {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The enabled key whose value is `value`: one HMAC and one map lookup, no allocation.
    ///
    /// A hash-map lookup compares secrets in variable time, which is safe here: the map holds
    /// keyed hashes, and without the hash key nobody can choose values whose hashes share a
    /// prefix with a stored one, so timing tells an attacker nothing about any key.
    pub fn find(&self, value: &str) -> Option<Arc<ApiKeyInfo>> {
        let hash = self.hash(value);
        self.table.load().by_hash.get(&hash).filter(|k| k.enabled).cloned()
    }

    /// The key called `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<Arc<ApiKeyInfo>> {
        let table = self.table.load();
        table.by_name.get(name).and_then(|h| table.by_hash.get(h)).cloned()
    }

    /// Every key, by name.
    pub fn list(&self) -> Vec<ApiKeyInfo> {
        let mut all: Vec<ApiKeyInfo> = self.table.load().by_hash.values().map(|k| (**k).clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn plan_must_exist(&self, plan: Option<&str>) -> Result<(), UsageError> {
        match plan {
            Some(p) if !self.shared.plans.load().contains_key(p) => Err(UsageError::PlanNotFound(p.to_string())),
            _ => Ok(()),
        }
    }

    /// Creates an enabled key, in `usage_plan` when given (which must exist). The returned
    /// value is the only copy of the secret.
    pub async fn create(&self, name: &str, usage_plan: Option<&str>) -> Result<NewApiKey, UsageError> {
        names::resource("API key", name)?;
        let _one_change = self.shared.changes.lock().await;
        self.plan_must_exist(usage_plan)?;
        if self.get(name).is_some() {
            return Err(UsageError::KeyExists(name.to_string()));
        }
        let mut rng = rand::rngs::OsRng;
        let value: String = (&mut rng).sample_iter(&Alphanumeric).take(VALUE_LEN).map(char::from).collect();
        let id_chars = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id: String =
            (&mut rng).sample_iter(Uniform::new(0, id_chars.len())).take(ID_LEN).map(|i| id_chars[i] as char).collect();
        let hash = self.hash(&value);
        let info = ApiKeyInfo {
            id: id.into(),
            name: name.to_string(),
            usage_plan: usage_plan.map(str::to_string),
            enabled: true,
            created_ms: clock::now_ms(),
        };
        self.db
            .write_one(
                sqlx::query(
                    "INSERT INTO api_keys (id, name, value_hash, usage_plan, enabled, created_ms) \
                     VALUES ($1, $2, $3, $4, 1, $5)",
                )
                .bind(info.id.to_string())
                .bind(name)
                .bind(hex::encode(hash))
                .bind(usage_plan)
                .bind(info.created_ms),
            )
            .await
            .map_err(|source| UsageError::Store { what: format!("create API key {name:?}"), source })?;
        let mut table = Table::clone(&self.table.load());
        table.insert(hash, info.clone());
        self.table.store(Arc::new(table));
        Ok(NewApiKey { info, value })
    }

    /// Runs one change of the key `name` in the database, then applies `change` to its copy
    /// in memory. Holds the change lock throughout, so memory always follows the database.
    async fn change<'q>(
        &self,
        name: &str,
        what: &str,
        statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        change: impl FnOnce(&mut Table, ValueHash),
    ) -> Result<Arc<ApiKeyInfo>, UsageError> {
        let Some(current) = self.get(name) else {
            return Err(UsageError::KeyNotFound(name.to_string()));
        };
        let n = self
            .db
            .write_one(statement)
            .await
            .map_err(|source| UsageError::Store { what: format!("{what} API key {name:?}"), source })?;
        if n == 0 {
            return Err(UsageError::KeyNotFound(name.to_string()));
        }
        let mut table = Table::clone(&self.table.load());
        let hash = table.by_name[name];
        change(&mut table, hash);
        self.table.store(Arc::new(table));
        Ok(current)
    }

    /// Enables or disables a key; a disabled key is refused from the next request on.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), UsageError> {
        let _one_change = self.shared.changes.lock().await;
        let statement = sqlx::query("UPDATE api_keys SET enabled = $1 WHERE name = $2").bind(enabled as i64).bind(name);
        self.change(name, if enabled { "enable" } else { "disable" }, statement, |t, h| {
            let info = ApiKeyInfo { enabled, ..(*t.by_hash[&h]).clone() };
            t.by_hash.insert(h, Arc::new(info));
        })
        .await?;
        Ok(())
    }

    /// Moves a key to another usage plan (which must exist), or out of any (`None`: the key
    /// is then refused everywhere, as in AWS a key outside every plan is).
    pub async fn set_plan(&self, name: &str, usage_plan: Option<&str>) -> Result<(), UsageError> {
        let _one_change = self.shared.changes.lock().await;
        self.plan_must_exist(usage_plan)?;
        let statement = sqlx::query("UPDATE api_keys SET usage_plan = $1 WHERE name = $2").bind(usage_plan).bind(name);
        self.change(name, "change the plan of", statement, |t, h| {
            let info = ApiKeyInfo { usage_plan: usage_plan.map(str::to_string), ..(*t.by_hash[&h]).clone() };
            t.by_hash.insert(h, Arc::new(info));
        })
        .await?;
        Ok(())
    }

    /// Deletes a key and its quota counters; it is refused from the next request on.
    pub async fn delete(&self, name: &str) -> Result<(), UsageError> {
        let _one_change = self.shared.changes.lock().await;
        let statement = sqlx::query("DELETE FROM api_keys WHERE name = $1").bind(name);
        let gone = self
            .change(name, "delete", statement, |t, h| {
                t.by_hash.remove(&h);
                t.by_name.remove(name);
            })
            .await?;
        // The key is gone whatever happens next; counters left behind belong to an id that is
        // never used again, so failing to drop them is only worth a warning.
        if let Err(e) = self.shared.quotas.forget(&gone.id).await {
            tracing::warn!(key = name, "the quota counters of a deleted API key remain: {e}");
        }
        Ok(())
    }

    /// The names of the keys in `plan`.
    pub(super) fn names_in_plan(&self, plan: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .table
            .load()
            .by_hash
            .values()
            .filter(|k| k.usage_plan.as_deref() == Some(plan))
            .map(|k| k.name.clone())
            .collect();
        names.sort();
        names
    }
}
