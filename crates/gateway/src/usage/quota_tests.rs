//! Tests of quota periods, the database counter store (SQLite, and PostgreSQL when
//! `NIMBUS_TEST_POSTGRES_URL` is set) and block-wise grants.

use std::sync::atomic::{AtomicU64, Ordering};

use time::format_description::well_known::Rfc3339;

use super::*;

fn ms(text: &str) -> i64 {
    (OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp_nanos() / 1_000_000) as i64
}

#[test]
fn periods_start_and_end_on_utc_calendar_boundaries() {
    use Period::*;
    // (period, now, start, end)
    let cases = [
        (Day, "2026-12-03T10:57:03.123Z", "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z"),
        (Day, "2026-12-03T00:00:00Z", "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z"),
        (Day, "2026-12-03T23:59:59.999Z", "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z"),
        (Day, "1969-12-31T23:59:59.999Z", "1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"),
        // 2026-12-03 is a Thursday; weeks run Monday to Monday.
        (Week, "2026-12-03T10:00:00Z", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"),
        (Week, "2026-11-30T00:00:00Z", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"),
        (Week, "2026-12-06T23:59:59.999Z", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"),
        (Week, "2026-12-07T00:00:00Z", "2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"),
        (Week, "2027-01-01T12:00:00Z", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z"),
        (Month, "2026-12-03T10:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        (Month, "2026-12-31T23:59:59.999Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        (Month, "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
        (Month, "2028-02-29T12:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"),
        (Month, "2027-02-28T23:59:59.999Z", "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"),
    ];
    let mut failures = Vec::new();
    for (period, now, start, end) in cases {
        let got = period_bounds(period, ms(now));
        if got != (ms(start), ms(end)) {
            failures.push(format!(
                "{period:?} at {now}: got {} .. {}, want {start} .. {end}",
                nimbus_core::clock::rfc3339(got.0),
                nimbus_core::clock::rfc3339(got.1)
            ));
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_offset_lowers_only_the_initial_period() {
    use Period::*;
    let created = ms("2026-12-03T10:00:00Z");
    // (period, offset, a time in the period asked about, limit there)
    let cases = [
        (Day, 30, "2026-12-03T23:00:00Z", 70),
        (Day, 30, "2026-12-04T00:00:00Z", 100),
        (Week, 40, "2026-11-30T00:00:00Z", 60),
        (Week, 40, "2026-12-06T23:59:59Z", 60),
        (Week, 40, "2026-12-07T00:00:00Z", 100),
        (Month, 99, "2026-12-01T00:00:00Z", 1),
        (Month, 99, "2027-01-15T00:00:00Z", 100),
        (Month, 0, "2026-12-15T00:00:00Z", 100),
    ];
    let mut failures = Vec::new();
    for (period, offset, at, want) in cases {
        let quota = Quota { limit: 100, period, offset };
        let got = effective_limit(&quota, created, period_bounds(period, ms(at)).0);
        if got != want {
            failures.push(format!("{period:?} offset {offset} at {at}: limit {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn blocks_shrink_towards_the_limit() {
    let cases =
        [(0, 1), (1, 1), (7, 1), (8, 1), (16, 2), (100, 12), (512, 64), (8192, MAX_BLOCK), (1_000_000, MAX_BLOCK)];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(left, want)| block_size(*left) != *want)
        .map(|(left, want)| format!("{left} left: block {}, want {want}", block_size(*left)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The databases to run on: SQLite always, PostgreSQL when `NIMBUS_TEST_POSTGRES_URL` is set.
pub(crate) async fn databases() -> Vec<(&'static str, Db, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
    let mut out = vec![("sqlite", sqlite, Some(dir))];
    match std::env::var("NIMBUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(("postgres", Db::open(&url).await.unwrap(), None)),
        _ => eprintln!("skipping the PostgreSQL run: NIMBUS_TEST_POSTGRES_URL is not set"),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_db_store_reserves_atomically_and_never_past_the_limit() {
    for (backend, db, _dir) in databases().await {
        let store = Arc::new(DbCounterStore::new(db));
        // Fresh ids: a PostgreSQL test database may hold earlier runs' counters.
        let key = nimbus_core::new_id();
        let r = |granted, used| Reservation { granted, used };
        assert_eq!(store.used(&key, 1_000).await.unwrap(), 0, "{backend}");
        assert_eq!(store.reserve(&key, 1_000, 10, 25).await.unwrap(), r(10, 10), "{backend}");
        assert_eq!(store.reserve(&key, 1_000, 10, 25).await.unwrap(), r(10, 20), "{backend}");
        assert_eq!(store.reserve(&key, 1_000, 10, 25).await.unwrap(), r(5, 25), "{backend}: partial grant");
        assert_eq!(store.reserve(&key, 1_000, 10, 25).await.unwrap(), r(0, 25), "{backend}: nothing left");
        assert_eq!(store.reserve(&key, 1_000, 1, 30).await.unwrap(), r(1, 26), "{backend}: a raised limit");
        assert_eq!(store.reserve(&key, 2_000, 3, 25).await.unwrap(), r(3, 3), "{backend}: another period");
        assert_eq!(store.used(&key, 1_000).await.unwrap(), 26, "{backend}");

        let racing = nimbus_core::new_id();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, racing) = (store.clone(), racing.clone());
                tokio::spawn(async move { store.reserve(&racing, 0, 3, 50).await.unwrap().granted })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            granted += t.await.unwrap();
        }
        assert_eq!(granted, 50, "{backend}: 20 racing reservations of 3 share a limit of 50 exactly");
        assert_eq!(store.used(&racing, 0).await.unwrap(), 50, "{backend}");

        store.forget(&key).await.unwrap();
        assert_eq!(store.used(&key, 1_000).await.unwrap(), 0, "{backend}: forgotten");
    }
}

/// A store in memory that counts its round trips.
#[derive(Default)]
struct CountingStore {
    used: Mutex<HashMap<(String, i64), u64>>,
    reservations: AtomicU64,
}

impl CounterStore for CountingStore {
    fn reserve<'a>(&'a self, key_id: &'a str, start: i64, want: u64, limit: u64) -> CounterFuture<'a, Reservation> {
        self.reservations.fetch_add(1, Ordering::Relaxed);
        let mut map = self.used.lock().unwrap();
        let used = map.entry((key_id.to_string(), start)).or_default();
        let granted = want.min(limit.saturating_sub(*used));
        *used += granted;
        let r = Reservation { granted, used: *used };
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(r)
        })
    }

    fn used<'a>(&'a self, key_id: &'a str, start: i64) -> CounterFuture<'a, u64> {
        let used = self.used.lock().unwrap().get(&(key_id.to_string(), start)).copied().unwrap_or(0);
        Box::pin(async move { Ok(used) })
    }

    fn forget<'a>(&'a self, key_id: &'a str) -> CounterFuture<'a, ()> {
        self.used.lock().unwrap().retain(|(k, _), _| k != key_id);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn the_exact_limit_is_reachable_and_then_costs_no_round_trip() {
    let store = Arc::new(CountingStore::default());
    let quotas = Quotas::new(store.clone());
    let got: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..7 {
            v.push(quotas.grant("k", 0, 5).await.unwrap());
        }
        v
    };
    assert_eq!(got, [true, true, true, true, true, false, false]);
    let trips = store.reservations.load(Ordering::Relaxed);
    assert_eq!(trips, 6, "blocks of 1 near a limit of 5, then one refusal");
    assert!(!quotas.grant("k", 0, 5).await.unwrap());
    assert_eq!(store.reservations.load(Ordering::Relaxed), trips, "exhaustion is remembered");
    assert!(quotas.grant("k", 0, 6).await.unwrap(), "a raised limit is asked for");
    assert!(quotas.grant("k", 86_400_000, 5).await.unwrap(), "a new period starts again");
}

#[tokio::test]
async fn grants_come_in_blocks_from_memory() {
    let store = Arc::new(CountingStore::default());
    let quotas = Quotas::new(store.clone());
    for _ in 0..1_000 {
        assert!(quotas.grant("k", 0, 1_000_000).await.unwrap());
    }
    let trips = store.reservations.load(Ordering::Relaxed);
    assert!(trips <= 1_000 / MAX_BLOCK + 1, "{trips} round trips for 1000 grants");
    assert_eq!(quotas.usage("k", 0, 1_000_000).await.unwrap(), (1_000, 999_000), "unhanded grants are not used");
}

#[tokio::test]
async fn a_crash_loses_the_unhanded_rest_of_a_block_and_never_grants_it_twice() {
    for (backend, db, _dir) in databases().await {
        let store: Arc<dyn CounterStore> = Arc::new(DbCounterStore::new(db));
        let key = nimbus_core::new_id();
        let first = Quotas::new(store.clone());
        assert!(first.grant(&key, 0, 100).await.unwrap());
        assert_eq!(first.usage(&key, 0, 100).await.unwrap(), (1, 99), "{backend}: before the crash");
        drop(first); // The process dies with 11 of its block of 12 unhanded.
        let second = Quotas::new(store);
        let (used, remaining) = second.usage(&key, 0, 100).await.unwrap();
        assert_eq!((used, remaining), (12, 88), "{backend}: the lost rest counts as used");
        // Asks twice the limit (a bounded loop, so a broken limit fails rather than hangs).
        let mut granted = 0;
        for _ in 0..200 {
            granted += second.grant(&key, 0, 100).await.unwrap() as u64;
        }
        assert_eq!(granted, 88, "{backend}: the second life grants what is left and no more");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_grants_never_exceed_the_limit() {
    for (backend, db, _dir) in databases().await {
        let quotas = Arc::new(Quotas::new(Arc::new(DbCounterStore::new(db))));
        let key = nimbus_core::new_id();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (quotas, key) = (quotas.clone(), key.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    for _ in 0..10 {
                        n += quotas.grant(&key, 0, 150).await.unwrap() as u64;
                    }
                    n
                })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            granted += t.await.unwrap();
        }
        assert_eq!(granted, 150, "{backend}: 320 requests against a limit of 150");
        assert_eq!(quotas.usage(&key, 0, 150).await.unwrap(), (150, 0), "{backend}");
    }
}

#[tokio::test]
async fn a_request_of_another_period_counts_in_that_period() {
    let store = Arc::new(CountingStore::default());
    let quotas = Quotas::new(store.clone());
    let (month, day) = (ms("2026-12-01T00:00:00Z"), ms("2026-12-03T00:00:00Z"));
    for _ in 0..5 {
        assert!(quotas.grant("k", day, 5).await.unwrap());
    }
    assert!(!quotas.grant("k", day, 5).await.unwrap());
    // The plan's quota became monthly: its period started before today's.
    assert!(quotas.grant("k", month, 5).await.unwrap(), "a separate counter");
    assert_eq!(store.used("k", day).await.unwrap(), 5);
    assert_eq!(store.used("k", month).await.unwrap(), 1);
}

/// With half a block handed out, the next block is reserved in the background, so the request
/// that empties a block finds the next one waiting instead of a durable write to wait for.
#[tokio::test]
async fn the_next_block_is_reserved_before_the_current_one_runs_out() {
    let store = Arc::new(CountingStore::default());
    let quotas = Quotas::new(store.clone());
    for _ in 0..MAX_BLOCK / 2 + 1 {
        assert!(quotas.grant("k", 0, 1_000_000).await.unwrap());
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.reservations.load(Ordering::Relaxed), 2, "the second block was reserved ahead");
    for _ in 0..MAX_BLOCK {
        assert!(quotas.grant("k", 0, 1_000_000).await.unwrap());
    }
    let (used, left) = quotas.usage("k", 0, 1_000_000).await.unwrap();
    assert_eq!((used, left), (MAX_BLOCK * 3 / 2 + 1, 1_000_000 - (MAX_BLOCK * 3 / 2 + 1)));
}
