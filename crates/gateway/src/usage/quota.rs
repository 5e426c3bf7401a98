//! Quotas: how many requests a key may make per period, counted durably.
//!
//! Grants are reserved in the [`CounterStore`] in blocks *before* they are handed out from
//! memory, so the hot path costs a map lookup and only a block's last grant waits for the
//! store. The store's counter is therefore always at least what was handed out: a crash (even
//! `kill -9`) loses at most the unhanded rest of the blocks in memory, which under-grants and
//! never over-grants. Blocks shrink as the limit nears (an eighth of what is left, at most
//! [`MAX_BLOCK`], at least 1), so little can be lost and the exact limit stays reachable.
//!
//! The store is a trait so a shared one (Redis, for several replicas) can replace the
//! embedded [`DbCounterStore`]. Which quota applies to a request is decided in `mod.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use nimbus_meta::Db;
use nimbus_meta::sqlx::{self, Row};
use time::{Date, Duration, Month, OffsetDateTime};

use super::UsageError;
use super::plan::{Period, Quota};

/// The largest block of grants reserved at once. A reservation is a durable database write
/// (an fsync on SQLite), so with a large quota the block is large too: at 30,000 requests a
/// second, blocks of 1024 are ~30 writes a second. A crash loses at most an eighth of what was
/// left, never more than this.
pub const MAX_BLOCK: u64 = 1024;

/// The start and end (exclusive) of the period containing `now_ms`, epoch ms, in UTC.
pub fn period_bounds(period: Period, now_ms: i64) -> (i64, i64) {
    let t = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let day = t.date();
    let (start, end) = match period {
        Period::Day => (day, day + Duration::days(1)),
        Period::Week => {
            let monday = day - Duration::days(day.weekday().number_days_from_monday().into());
            (monday, monday + Duration::days(7))
        }
        Period::Month => {
            let first = |y, m| Date::from_calendar_date(y, m, 1).expect("the 1st exists");
            let next = if day.month() == Month::December {
                first(day.year() + 1, Month::January)
            } else {
                first(day.year(), day.month().next())
            };
            (first(day.year(), day.month()), next)
        }
    };
    let ms = |d: Date| (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    (ms(start), ms(end))
}

/// The limit of the period starting at `period_start_ms` for a plan created at `created_ms`:
/// AWS's offset is taken off the initial period only.
pub fn effective_limit(quota: &Quota, created_ms: i64, period_start_ms: i64) -> u64 {
    if period_bounds(quota.period, created_ms).0 == period_start_ms {
        quota.limit.saturating_sub(quota.offset)
    } else {
        quota.limit
    }
}

/// How many grants to reserve when `left` remain in the store.
fn block_size(left: u64) -> u64 {
    (left / 8).clamp(1, MAX_BLOCK)
}

/// What a reservation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Grants reserved, at most what was asked and never past the limit.
    pub granted: u64,
    /// The counter after the reservation (everyone's reservations, this one included).
    pub used: u64,
}

/// A future of a [`CounterStore`]; boxed so the trait can be used as `dyn`.
pub type CounterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, UsageError>> + Send + 'a>>;

/// Durable counters of grants per key per period.
pub trait CounterStore: Send + Sync {
    /// Atomically adds `min(want, limit - used)` (nothing when the limit is reached) to the
    /// counter of `key_id` in the period starting at `period_start_ms`.
    fn reserve<'a>(
        &'a self,
        key_id: &'a str,
        period_start_ms: i64,
        want: u64,
        limit: u64,
    ) -> CounterFuture<'a, Reservation>;
    /// The counter (0 when nothing was reserved yet).
    fn used<'a>(&'a self, key_id: &'a str, period_start_ms: i64) -> CounterFuture<'a, u64>;
    /// Drops every counter of a deleted key.
    fn forget<'a>(&'a self, key_id: &'a str) -> CounterFuture<'a, ()>;
}

/// Counters in the metadata database (`quota_usage`), for one server or replicas sharing
/// PostgreSQL.
pub struct DbCounterStore {
    db: Db,
}

impl DbCounterStore {
    /// Counters in `db`'s `quota_usage` table.
    pub fn new(db: Db) -> DbCounterStore {
        DbCounterStore { db }
    }

    /// One write transaction: the row is made if missing, then read and raised with the row
    /// locked (`FOR UPDATE` on PostgreSQL; the writer lock on SQLite), so two reservations
    /// can never both take the last grants.
    async fn reserve_in_db(
        &self,
        key_id: &str,
        period_start_ms: i64,
        want: u64,
        limit: u64,
    ) -> Result<Reservation, nimbus_meta::MetaError> {
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO quota_usage (key_id, period_start_ms, used) VALUES ($1, $2, 0) \
             ON CONFLICT (key_id, period_start_ms) DO NOTHING",
        )
        .bind(key_id)
        .bind(period_start_ms)
        .execute(&mut *tx.tx)
        .await?;
        let select =
            format!("SELECT used FROM quota_usage WHERE key_id = $1 AND period_start_ms = $2{}", self.db.for_update());
        let used: i64 =
            sqlx::query(&select).bind(key_id).bind(period_start_ms).fetch_one(&mut *tx.tx).await?.try_get("used")?;
        let used = used.max(0) as u64;
        let granted = want.min(limit.saturating_sub(used));
        if granted > 0 {
            sqlx::query("UPDATE quota_usage SET used = used + $3 WHERE key_id = $1 AND period_start_ms = $2")
                .bind(key_id)
                .bind(period_start_ms)
                .bind(i64::try_from(granted).unwrap_or(i64::MAX))
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Reservation { granted, used: used + granted })
    }
}

fn counter_error(key_id: &str) -> impl FnOnce(nimbus_meta::MetaError) -> UsageError + '_ {
    move |source| UsageError::Counter { key_id: key_id.to_string(), source: Box::new(source) }
}

impl CounterStore for DbCounterStore {
    fn reserve<'a>(
        &'a self,
        key_id: &'a str,
        period_start_ms: i64,
        want: u64,
        limit: u64,
    ) -> CounterFuture<'a, Reservation> {
        Box::pin(async move {
            self.reserve_in_db(key_id, period_start_ms, want, limit).await.map_err(counter_error(key_id))
        })
    }

    fn used<'a>(&'a self, key_id: &'a str, period_start_ms: i64) -> CounterFuture<'a, u64> {
        Box::pin(async move {
            let row = sqlx::query("SELECT used FROM quota_usage WHERE key_id = $1 AND period_start_ms = $2")
                .bind(key_id)
                .bind(period_start_ms)
                .fetch_optional(self.db.pool())
                .await
                .map_err(|e| counter_error(key_id)(e.into()))?;
            let used: i64 = match row {
                Some(r) => r.try_get("used").map_err(|e| counter_error(key_id)(e.into()))?,
                None => 0,
            };
            Ok(used.max(0) as u64)
        })
    }

    fn forget<'a>(&'a self, key_id: &'a str) -> CounterFuture<'a, ()> {
        Box::pin(async move {
            self.db
                .write_one(sqlx::query("DELETE FROM quota_usage WHERE key_id = $1").bind(key_id))
                .await
                .map_err(counter_error(key_id))?;
            Ok(())
        })
    }
}

/// This process's grants of one key.
struct Slot {
    period_start_ms: i64,
    /// Reserved in the store this period by this process.
    reserved: u64,
    /// Handed out of `reserved`.
    handed: u64,
    /// The store's counter after this process's last reservation.
    store_used: u64,
    /// The limit at which the store had nothing left: no more round trips this period
    /// unless the limit is raised.
    exhausted_at: Option<u64>,
    /// Held while a block is reserved, so one task asks the store and the others wait for
    /// its block instead of each reserving one.
    refill: Arc<tokio::sync::Mutex<()>>,
    /// The size of the last block reserved, and whether the next one is being reserved in
    /// the background already.
    last_block: u64,
    prefetching: bool,
}

/// A block to reserve in the background: `(period_start_ms, want, refill lock)`.
type Prefetch = (i64, u64, Arc<tokio::sync::Mutex<()>>);

enum Local {
    /// Granted from memory; when the block runs low, the next one to reserve meanwhile.
    Granted(Option<Prefetch>),
    Exhausted,
    /// Reserve `want` in the period starting at `period_start_ms`, holding `refill`.
    NeedBlock {
        period_start_ms: i64,
        want: u64,
        refill: Arc<tokio::sync::Mutex<()>>,
    },
}

/// Adds a reserved block to `key_id`'s slot, if it is still in that period.
fn add_block(slots: &Mutex<HashMap<String, Slot>>, key_id: &str, period_start_ms: i64, limit: u64, r: Reservation) {
    let mut slots = slots.lock().expect("quota slots lock");
    if let Some(slot) = slots.get_mut(key_id).filter(|s| s.period_start_ms == period_start_ms) {
        slot.reserved += r.granted;
        slot.last_block = r.granted;
        slot.store_used = slot.store_used.max(r.used);
        if r.granted == 0 {
            slot.exhausted_at = Some(limit);
        }
    }
}

/// Hands out grants from reserved blocks.
pub struct Quotas {
    store: Arc<dyn CounterStore>,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Quotas {
    /// Grants counted in `store`.
    pub fn new(store: Arc<dyn CounterStore>) -> Quotas {
        Quotas { store, slots: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// One grant from memory, when the key's block has one. A slot holds one period: a
    /// request of another period (the next one, a plan whose quota changed its period, or a
    /// request that read the clock just before midnight) starts the slot over, dropping the
    /// unhanded rest of its block. That only ever under-grants, like a crash; what was
    /// reserved stays counted in the store under its own period.
    fn take_local(&self, key_id: &str, period_start_ms: i64, limit: u64) -> Local {
        let mut slots = self.slots.lock().expect("quota slots lock");
        let slot = match slots.get_mut(key_id) {
            Some(s) => s,
            None => slots.entry(key_id.to_string()).or_insert_with(|| Slot {
                period_start_ms,
                reserved: 0,
                handed: 0,
                store_used: 0,
                exhausted_at: None,
                refill: Default::default(),
                last_block: 0,
                prefetching: false,
            }),
        };
        if period_start_ms != slot.period_start_ms {
            slot.period_start_ms = period_start_ms;
            (slot.reserved, slot.handed, slot.store_used, slot.exhausted_at) = (0, 0, 0, None);
            slot.last_block = 0;
        }
        if slot.handed < slot.reserved.min(limit) {
            slot.handed += 1;
            // Half the block gone: reserve the next one in the background, so the request
            // that would empty the block does not wait for a durable write (and every request
            // behind it for that one). Reserved before it is handed out, as always.
            let left = slot.reserved.min(limit) - slot.handed;
            let prefetch = (!slot.prefetching
                && slot.exhausted_at.is_none()
                && slot.store_used < limit
                && left * 2 < slot.last_block)
                .then(|| {
                    slot.prefetching = true;
                    (slot.period_start_ms, block_size(limit - slot.store_used), slot.refill.clone())
                });
            Local::Granted(prefetch)
        } else if slot.exhausted_at.is_some_and(|at| limit <= at) {
            Local::Exhausted
        } else {
            Local::NeedBlock {
                period_start_ms: slot.period_start_ms,
                want: block_size(limit.saturating_sub(slot.store_used)),
                refill: slot.refill.clone(),
            }
        }
    }

    fn add_block(&self, key_id: &str, period_start_ms: i64, limit: u64, r: Reservation) {
        add_block(&self.slots, key_id, period_start_ms, limit, r);
    }

    /// Reserves the next block of `key_id` on a background task (see [`Local::Granted`]).
    fn prefetch(&self, key_id: &str, limit: u64, (period_start_ms, want, refill): Prefetch) {
        let (store, slots, key) = (self.store.clone(), self.slots.clone(), key_id.to_string());
        tokio::spawn(async move {
            let _one_refill = refill.lock().await;
            let reserved = store.reserve(&key, period_start_ms, want, limit).await;
            if let Ok(r) = &reserved {
                add_block(&slots, &key, period_start_ms, limit, *r);
            }
            if let Some(slot) = slots.lock().expect("quota slots lock").get_mut(&key) {
                slot.prefetching = false;
            }
            if let Err(e) = reserved {
                // The request that empties the block will try again, inline, and answer it.
                tracing::warn!(key_id = %key, "reserving the next quota block failed: {e}");
            }
        });
    }

    /// Grants one request of `key_id` in the period starting at `period_start_ms` under
    /// `limit`; false = the quota is used up.
    pub async fn grant(&self, key_id: &str, period_start_ms: i64, limit: u64) -> Result<bool, UsageError> {
        let refill = match self.take_local(key_id, period_start_ms, limit) {
            Local::Granted(prefetch) => {
                if let Some(p) = prefetch {
                    self.prefetch(key_id, limit, p);
                }
                return Ok(true);
            }
            Local::Exhausted => return Ok(false),
            Local::NeedBlock { refill, .. } => refill,
        };
        let _one_refill = refill.lock().await;
        // Whoever held the lock before may have brought a block: look again first.
        let (period_start_ms, want) = match self.take_local(key_id, period_start_ms, limit) {
            Local::Granted(prefetch) => {
                if let Some(p) = prefetch {
                    self.prefetch(key_id, limit, p);
                }
                return Ok(true);
            }
            Local::Exhausted => return Ok(false),
            Local::NeedBlock { period_start_ms, want, .. } => (period_start_ms, want),
        };
        let r = self.store.reserve(key_id, period_start_ms, want, limit).await?;
        self.add_block(key_id, period_start_ms, limit, r);
        // One reservation per request at most: a new block either has a grant for it, or
        // none could be had (or a store granted past the limit, which is not handed out).
        match self.take_local(key_id, period_start_ms, limit) {
            Local::Granted(prefetch) => {
                if let Some(p) = prefetch {
                    self.prefetch(key_id, limit, p);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `(used, remaining)` of a key in a period: grants handed out count as used; grants this
    /// process reserved but has not handed out yet count as remaining (they still can be
    /// handed out; after a crash they are lost, never granted twice).
    pub async fn usage(&self, key_id: &str, period_start_ms: i64, limit: u64) -> Result<(u64, u64), UsageError> {
        let in_store = self.store.used(key_id, period_start_ms).await?;
        let unhanded = self
            .slots
            .lock()
            .expect("quota slots lock")
            .get(key_id)
            .filter(|s| s.period_start_ms == period_start_ms)
            .map_or(0, |s| s.reserved - s.handed);
        let used = in_store.saturating_sub(unhanded);
        Ok((used, limit.saturating_sub(used)))
    }

    /// Forgets a deleted key's grants, here and in the store.
    pub async fn forget(&self, key_id: &str) -> Result<(), UsageError> {
        self.slots.lock().expect("quota slots lock").remove(key_id);
        self.store.forget(key_id).await
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
pub(crate) mod tests;
