//! API keys, usage plans, throttling and quotas: the API-key stage of the gateway's request
//! path, as API Gateway's REST APIs have it. No HTTP here; the request path calls
//! [`Usage::admit`] (routes with `api_key` authorization) or [`Usage::admit_anonymous`]
//! (the others) and answers from the [`Admission`]:
//!
//! | admission | answer |
//! | --- | --- |
//! | [`Admission::Forbidden`] (no key, unknown or disabled key, plan not on this stage) | 403 `{"message":"Forbidden"}` |
//! | [`Admission::Throttled`] | 429 `{"message":"Too Many Requests"}` |
//! | [`Admission::QuotaExceeded`] | 429 `{"message":"Limit Exceeded"}`, `x-amzn-ErrorType: LimitExceededException` |
//! | [`Admission::Unavailable`] (the quota store failed) | 500 `{"message":"Internal Server Error"}` |
//!
//! ([`Admission::refusal`] gives these.) A request is checked in DESIGN's order: the key,
//! its plan covering the API stage, the throttles (per key and route, per key, the stage or
//! route default; see [`bucket`]), then the quota ([`quota`]), so a throttled request
//! costs no quota. The warm path is a keyed hash, a map lookup, up to three bucket checks
//! and a grant from memory; the database is asked only when a quota block runs out.
//!
//! - [`plan`]: the usage-plan declaration and its checks.
//! - [`keys`]: API keys (created, listed, disabled, deleted; looked up per request).
//! - [`bucket`]: token buckets.
//! - [`quota`]: quota periods, the counter store, block-wise grants.

pub mod bucket;
pub mod keys;
pub mod plan;
pub mod quota;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use nimbus_core::{clock, names};
use nimbus_meta::{Db, MetaError};

pub use bucket::{Buckets, DEFAULT_MAX_BUCKETS, Scope};
pub use keys::{ApiKeyInfo, ApiKeys, NewApiKey};
pub use plan::{Period, Quota, StageRef, StoredPlan, Throttle, UsagePlanSpec};
pub use quota::{CounterFuture, CounterStore, DbCounterStore, Reservation};

use plan::STORED_VERSION;
use quota::{Quotas, effective_limit, period_bounds};

/// The metadata kind of stored usage plans.
pub const KIND: &str = "usage_plan";

/// Errors of API keys, usage plans and quota counters.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A plan declaration is invalid; the reason names the field and the fix.
    #[error("usage plan {name}: {reason}")]
    InvalidPlan { name: String, reason: String },
    #[error(transparent)]
    InvalidName(#[from] names::InvalidName),
    #[error("usage plan {0:?} does not exist; declare it under [usage_plans.{0}] first")]
    PlanNotFound(String),
    /// Deleting a plan that keys still belong to.
    #[error("usage plan {name:?} still has API keys ({keys}); move them to another plan or none first")]
    PlanInUse { name: String, keys: String },
    #[error("API key {0:?} does not exist")]
    KeyNotFound(String),
    #[error("API key {0:?} already exists; choose another name, or delete that key first")]
    KeyExists(String),
    /// Loading keys or plans at open failed.
    #[error("cannot load the {what}: {source}")]
    Load {
        what: &'static str,
        #[source]
        source: MetaError,
    },
    /// A change to a key or plan could not be stored; nothing changed.
    #[error("cannot {what}: {source}")]
    Store {
        what: String,
        #[source]
        source: MetaError,
    },
    /// The quota counter store failed (any store: the database, later a shared one).
    #[error("quota counter of API key {key_id}: {source}")]
    Counter {
        key_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A stored plan in memory.
#[derive(Debug)]
struct PlanEntry {
    spec: Arc<UsagePlanSpec>,
    created_ms: i64,
}

/// What the key store and the plans share.
pub(crate) struct Shared {
    /// Held by every change of a key or plan: the database and memory change as one step,
    /// and a key cannot join a plan being deleted.
    changes: tokio::sync::Mutex<()>,
    plans: ArcSwap<HashMap<String, Arc<PlanEntry>>>,
    quotas: Quotas,
}

/// The outcome of the API-key stage for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go on; `key_id` is the caller's key (none for anonymous routes).
    Admitted { key_id: Option<Arc<str>> },
    /// Missing, unknown or disabled key, or the key's plan does not cover this API stage.
    Forbidden,
    /// A throttle's bucket is empty.
    Throttled,
    /// The key's quota for this period is used up.
    QuotaExceeded,
    /// The quota store could not be reached; refused rather than risk granting past a limit.
    Unavailable,
}

/// How the gateway answers a refused request (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The `message` of the JSON body.
    pub message: &'static str,
    /// The `x-amzn-ErrorType` header, when API Gateway sends one.
    pub error_type: Option<&'static str>,
}

impl Admission {
    /// The answer for a refusal; `None` when admitted.
    pub fn refusal(&self) -> Option<Refusal> {
        let r = |status, message, error_type| Some(Refusal { status, message, error_type });
        match self {
            Admission::Admitted { .. } => None,
            Admission::Forbidden => r(403, "Forbidden", None),
            Admission::Throttled => r(429, "Too Many Requests", None),
            Admission::QuotaExceeded => r(429, "Limit Exceeded", Some("LimitExceededException")),
            Admission::Unavailable => r(500, "Internal Server Error", None),
        }
    }
}

/// A key's quota in the current period, for `nimbus keys usage KEY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUsage {
    pub period_start_ms: i64,
    /// The next period's start.
    pub period_end_ms: i64,
    /// This period's limit (the plan's, less its offset in the initial period).
    pub limit: u64,
    /// Requests granted (a crash's lost grants count here too: they can never be granted).
    pub used: u64,
    pub remaining: u64,
}

struct Inner {
    db: Db,
    shared: Arc<Shared>,
    keys: ApiKeys,
    buckets: Buckets,
}

/// API keys, usage plans, throttles and quotas; cheap to clone.
#[derive(Clone)]
pub struct Usage {
    inner: Arc<Inner>,
}

impl Usage {
    /// Loads the plans and keys; quotas count in `counters`. `hash_key` keys the hashes of
    /// API key values (derive it from the master key, e.g. `derive("api-key-hash")`); the
    /// same key must be given at every start, or every key is refused.
    pub async fn open(db: Db, hash_key: [u8; 32], counters: Arc<dyn CounterStore>) -> Result<Usage, UsageError> {
        let mut plans = HashMap::new();
        for stored in db.specs(KIND).await.map_err(|source| UsageError::Load { what: "usage plans", source })? {
            let parsed = serde_json::from_str::<StoredPlan>(&stored.spec).map_err(|e| e.to_string()).and_then(|p| {
                if p.version > STORED_VERSION {
                    return Err(format!("stored by a newer nimbus (format {}); upgrade this server", p.version));
                }
                p.spec.validate().map(|()| p)
            });
            match parsed {
                Ok(p) => {
                    plans.insert(stored.name, Arc::new(PlanEntry { spec: Arc::new(p.spec), created_ms: p.created_ms }));
                }
                // Its keys are refused (Forbidden) until the plan is stored again.
                Err(e) => tracing::error!(plan = %stored.name, "stored usage plan is invalid, not in force: {e}"),
            }
        }
        let shared = Arc::new(Shared {
            changes: tokio::sync::Mutex::new(()),
            plans: ArcSwap::from_pointee(plans),
            quotas: Quotas::new(counters),
        });
        let keys = ApiKeys::open(db.clone(), hash_key, shared.clone()).await?;
        let inner = Inner { db, shared, keys, buckets: Buckets::new(DEFAULT_MAX_BUCKETS) };
        Ok(Usage { inner: Arc::new(inner) })
    }

    /// [`Usage::open`] with quotas counted in the same database.
    pub async fn with_db_counters(db: Db, hash_key: [u8; 32]) -> Result<Usage, UsageError> {
        let counters = Arc::new(DbCounterStore::new(db.clone()));
        Usage::open(db, hash_key, counters).await
    }

    /// The API keys.
    pub fn keys(&self) -> &ApiKeys {
        &self.inner.keys
    }

    /// Creates or replaces a usage plan. Returns whether the stored declaration changed. A
    /// replaced plan keeps its creation time (its quota's initial period) and applies from
    /// the next request; counters and buckets carry on.
    pub async fn put_plan(&self, name: &str, spec: UsagePlanSpec, actor: &str) -> Result<bool, UsageError> {
        names::resource("usage plan", name)?;
        spec.validate().map_err(|reason| UsageError::InvalidPlan { name: name.to_string(), reason })?;
        let shared = &self.inner.shared;
        let _one_change = shared.changes.lock().await;
        let now = clock::now_ms();
        let current = shared.plans.load().get(name).cloned();
        let created_ms = current.as_ref().map_or(now, |p| p.created_ms);
        let stored = StoredPlan { version: STORED_VERSION, created_ms, spec };
        let changed = self
            .inner
            .db
            .put_spec(KIND, name, &stored, now, actor)
            .await
            .map_err(|source| UsageError::Store { what: format!("store usage plan {name:?}"), source })?;
        if changed || current.is_none() {
            let entry = Arc::new(PlanEntry { spec: Arc::new(stored.spec), created_ms });
            let mut plans = HashMap::clone(&shared.plans.load());
            plans.insert(name.to_string(), entry);
            shared.plans.store(Arc::new(plans));
        }
        Ok(changed)
    }

    /// The plan called `name`.
    pub fn plan(&self, name: &str) -> Option<Arc<UsagePlanSpec>> {
        self.inner.shared.plans.load().get(name).map(|p| p.spec.clone())
    }

    /// Every plan, by name.
    pub fn plans(&self) -> Vec<(String, Arc<UsagePlanSpec>)> {
        let mut all: Vec<_> = self.inner.shared.plans.load().iter().map(|(n, p)| (n.clone(), p.spec.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Deletes a plan no key belongs to; returns whether it existed.
    pub async fn delete_plan(&self, name: &str) -> Result<bool, UsageError> {
        let shared = &self.inner.shared;
        let _one_change = shared.changes.lock().await;
        let keys = self.inner.keys.names_in_plan(name);
        if !keys.is_empty() {
            return Err(UsageError::PlanInUse { name: name.to_string(), keys: keys.join(", ") });
        }
        let existed = self
            .inner
            .db
            .delete_spec(KIND, name)
            .await
            .map_err(|source| UsageError::Store { what: format!("delete usage plan {name:?}"), source })?;
        let mut plans = HashMap::clone(&shared.plans.load());
        plans.remove(name);
        shared.plans.store(Arc::new(plans));
        Ok(existed)
    }

    /// The API-key stage: the `x-api-key` header's value → the key, its plan covering this
    /// API stage, the throttles in order, then the quota. `route_key` is the matched route's
    /// key (`POST /predict`), `stage_throttle` the stage's or route's default throttle
    /// (shared by every caller), `now`/`now_ms` the request's time (monotonic for buckets,
    /// wall clock for quota periods).
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        api_key: Option<&str>,
        api: &str,
        stage: &str,
        route_key: &str,
        stage_throttle: Option<Throttle>,
        now: Instant,
        now_ms: i64,
    ) -> Admission {
        let Some(key) = api_key.and_then(|v| self.inner.keys.find(v)) else {
            return Admission::Forbidden;
        };
        let quota = {
            let plans = self.inner.shared.plans.load();
            let Some(plan) = key.usage_plan.as_deref().and_then(|p| plans.get(p)) else {
                return Admission::Forbidden;
            };
            let Some(covered) = plan.spec.stage(api, stage) else {
                return Admission::Forbidden;
            };
            let key_id = &*key.id;
            let checks = [
                covered.throttle.get(route_key).map(|t| (Scope::KeyRoute { key_id, api, stage, route: route_key }, *t)),
                plan.spec.throttle.map(|t| (Scope::Key { key_id }, t)),
                stage_throttle.map(|t| (Scope::Route { api, stage, route: route_key }, t)),
            ];
            if !self.inner.buckets.take_in_order(&checks, now) {
                return Admission::Throttled;
            }
            plan.spec.quota.map(|q| (q, plan.created_ms))
        };
        if let Some((q, created_ms)) = quota {
            let start = period_bounds(q.period, now_ms).0;
            let limit = effective_limit(&q, created_ms, start);
            match self.inner.shared.quotas.grant(&key.id, start, limit).await {
                Ok(true) => {}
                Ok(false) => return Admission::QuotaExceeded,
                Err(e) => {
                    tracing::error!(key = %key.name, "quota check failed, request refused: {e}");
                    return Admission::Unavailable;
                }
            }
        }
        Admission::Admitted { key_id: Some(key.id.clone()) }
    }

    /// For routes without `api_key` authorization: only the stage's or route's default
    /// throttle, shared by every caller.
    pub fn admit_anonymous(
        &self,
        api: &str,
        stage: &str,
        route_key: &str,
        stage_throttle: Option<Throttle>,
        now: Instant,
    ) -> Admission {
        let checks = [stage_throttle.map(|t| (Scope::Route { api, stage, route: route_key }, t))];
        if self.inner.buckets.take_in_order(&checks, now) {
            Admission::Admitted { key_id: None }
        } else {
            Admission::Throttled
        }
    }

    /// The quota of the key `key_name` in the period containing `now_ms`; `None` when its
    /// plan (or lack of one) sets no quota.
    pub async fn usage(&self, key_name: &str, now_ms: i64) -> Result<Option<QuotaUsage>, UsageError> {
        let key = self.inner.keys.get(key_name).ok_or_else(|| UsageError::KeyNotFound(key_name.to_string()))?;
        let quota = {
            let plans = self.inner.shared.plans.load();
            key.usage_plan.as_deref().and_then(|p| plans.get(p)).and_then(|p| p.spec.quota.map(|q| (q, p.created_ms)))
        };
        let Some((q, created_ms)) = quota else {
            return Ok(None);
        };
        let (start, end) = period_bounds(q.period, now_ms);
        let limit = effective_limit(&q, created_ms, start);
        let (used, remaining) = self.inner.shared.quotas.usage(&key.id, start, limit).await?;
        Ok(Some(QuotaUsage { period_start_ms: start, period_end_ms: end, limit, used, remaining }))
    }
}
