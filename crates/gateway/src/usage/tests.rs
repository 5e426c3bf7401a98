//! Tests of the whole API-key stage: keys, plans and [`Usage::admit`] over a real SQLite
//! database, with the clock driven by the tests.

use std::time::Duration;

use nimbus_meta::sqlx::{self, Row};

use super::*;

const HASH_KEY: [u8; 32] = [7; 32];
const DAY_MS: i64 = 86_400_000;

struct Fixture {
    dir: tempfile::TempDir,
    db: Db,
    usage: Usage,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("m.db")).await.unwrap();
    let usage = Usage::with_db_counters(db.clone(), HASH_KEY).await.unwrap();
    Fixture { dir, db, usage }
}

fn throttle(rate: f64, burst: u32) -> Throttle {
    Throttle { rate, burst }
}

fn stage(api: &str, stage: &str) -> StageRef {
    StageRef { api: api.into(), stage: stage.into(), throttle: Default::default() }
}

/// A plan on titanic/prod with the given throttle and quota.
fn plan(throttle: Option<Throttle>, quota: Option<Quota>) -> UsagePlanSpec {
    UsagePlanSpec { throttle, quota, stages: vec![stage("titanic", "prod")], ..Default::default() }
}

fn daily(limit: u64) -> Option<Quota> {
    Some(Quota { limit, period: Period::Day, offset: 0 })
}

impl Fixture {
    /// One request of `value` to titanic/prod `POST /predict` at `at` past `t0`.
    async fn call(&self, value: &str, t0: Instant, at: Duration) -> Admission {
        let now_ms = clock::now_ms();
        self.usage.admit(Some(value), "titanic", "prod", "POST /predict", None, t0 + at, now_ms).await
    }
}

fn admitted(a: &Admission) -> bool {
    matches!(a, Admission::Admitted { .. })
}

#[tokio::test]
async fn keys_are_created_found_disabled_moved_and_deleted() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, None), "admin").await.unwrap();
    let new = f.usage.keys().create("alice", Some("basic")).await.unwrap();
    assert_eq!(new.value.len(), keys::VALUE_LEN);
    assert!(new.value.bytes().all(|c| c.is_ascii_alphanumeric()), "{}", new.value);
    assert!(!format!("{new:?}").contains(&new.value), "Debug hides the value");
    let found = f.usage.keys().find(&new.value).expect("found by value");
    assert_eq!((found.name.as_str(), found.usage_plan.as_deref(), found.enabled), ("alice", Some("basic"), true));
    assert!(f.usage.keys().find("not-a-key").is_none());
    assert!(f.usage.keys().find(&new.value[..39]).is_none(), "a prefix is not the key");

    // The database holds the keyed hash only.
    let row = sqlx::query("SELECT value_hash FROM api_keys WHERE name = 'alice'").fetch_one(f.db.pool()).await.unwrap();
    let stored: String = row.try_get("value_hash").unwrap();
    assert_eq!(stored.len(), 64);
    assert!(!stored.contains(&new.value));

    let t0 = Instant::now();
    assert!(admitted(&f.call(&new.value, t0, Duration::ZERO).await));
    f.usage.keys().set_enabled("alice", false).await.unwrap();
    assert!(f.usage.keys().find(&new.value).is_none(), "a disabled key is not found");
    assert_eq!(f.call(&new.value, t0, Duration::ZERO).await, Admission::Forbidden, "refused at once");
    assert!(!f.usage.keys().get("alice").unwrap().enabled);
    f.usage.keys().set_enabled("alice", true).await.unwrap();
    assert!(admitted(&f.call(&new.value, t0, Duration::ZERO).await));

    f.usage.keys().set_plan("alice", None).await.unwrap();
    assert_eq!(f.call(&new.value, t0, Duration::ZERO).await, Admission::Forbidden, "a key outside any plan");
    let err = f.usage.keys().set_plan("alice", Some("gold")).await.unwrap_err();
    assert!(matches!(err, UsageError::PlanNotFound(ref p) if p == "gold"), "{err}");
    f.usage.keys().set_plan("alice", Some("basic")).await.unwrap();

    let err = f.usage.keys().create("alice", None).await.unwrap_err();
    assert!(matches!(err, UsageError::KeyExists(_)), "{err}");
    let err = f.usage.keys().create("bob", Some("gold")).await.unwrap_err();
    assert!(err.to_string().contains("[usage_plans.gold]"), "{err}");
    let err = f.usage.keys().create("no spaces", None).await.unwrap_err();
    assert!(matches!(err, UsageError::InvalidName(_)), "{err}");
    let bob = f.usage.keys().create("bob", None).await.unwrap();
    assert_ne!(bob.value, new.value);
    assert_ne!(bob.info.id, new.info.id);
    let listed: Vec<_> = f.usage.keys().list().into_iter().map(|k| (k.name, k.usage_plan)).collect();
    assert_eq!(listed, [("alice".to_string(), Some("basic".to_string())), ("bob".to_string(), None)]);

    f.usage.keys().delete("alice").await.unwrap();
    assert!(f.usage.keys().find(&new.value).is_none());
    assert_eq!(f.call(&new.value, t0, Duration::ZERO).await, Admission::Forbidden, "a deleted key is refused at once");
    assert!(matches!(f.usage.keys().delete("alice").await.unwrap_err(), UsageError::KeyNotFound(_)));
    assert!(matches!(f.usage.keys().set_enabled("carol", true).await.unwrap_err(), UsageError::KeyNotFound(_)));
}

#[tokio::test]
async fn keys_and_plans_survive_a_restart_under_the_same_hash_key_only() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, None), "admin").await.unwrap();
    let alice = f.usage.keys().create("alice", Some("basic")).await.unwrap();
    let bob = f.usage.keys().create("bob", Some("basic")).await.unwrap();
    f.usage.keys().set_enabled("bob", false).await.unwrap();
    drop(f.usage);
    let again = Usage::with_db_counters(f.db.clone(), HASH_KEY).await.unwrap();
    assert_eq!(again.keys().find(&alice.value).map(|k| k.id.clone()), Some(alice.info.id.clone()));
    assert!(again.keys().find(&bob.value).is_none(), "still disabled");
    assert_eq!(again.plan("basic").as_deref(), Some(&plan(None, None)));
    let other = Usage::with_db_counters(f.db.clone(), [8; 32]).await.unwrap();
    assert!(other.keys().find(&alice.value).is_none(), "another hash key recognises no value");
    drop(f.dir);
}

#[tokio::test]
async fn plans_are_put_listed_kept_and_deleted() {
    let f = fixture().await;
    let basic = plan(Some(throttle(10.0, 5)), daily(100));
    assert!(f.usage.put_plan("basic", basic.clone(), "admin").await.unwrap());
    assert!(!f.usage.put_plan("basic", basic.clone(), "admin").await.unwrap(), "unchanged");
    let created = stored_created_ms(&f.db, "basic").await;
    let gold = plan(Some(throttle(100.0, 50)), None);
    assert!(f.usage.put_plan("basic", gold.clone(), "admin").await.unwrap(), "changed");
    assert_eq!(stored_created_ms(&f.db, "basic").await, created, "a replaced plan keeps its creation time");
    assert_eq!(f.usage.plan("basic").as_deref(), Some(&gold));
    f.usage.put_plan("another", basic.clone(), "admin").await.unwrap();
    let names: Vec<String> = f.usage.plans().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["another", "basic"]);

    let bad = UsagePlanSpec { throttle: Some(throttle(10.0, 0)), ..Default::default() };
    let err = f.usage.put_plan("broken", bad, "admin").await.unwrap_err();
    assert!(err.to_string().starts_with("usage plan broken: throttle.burst"), "{err}");
    assert!(f.usage.plan("broken").is_none());

    f.usage.keys().create("alice", Some("basic")).await.unwrap();
    let err = f.usage.delete_plan("basic").await.unwrap_err();
    assert!(matches!(&err, UsageError::PlanInUse { keys, .. } if keys == "alice"), "{err}");
    f.usage.keys().set_plan("alice", None).await.unwrap();
    assert!(f.usage.delete_plan("basic").await.unwrap());
    assert!(!f.usage.delete_plan("basic").await.unwrap());
    assert!(f.usage.plan("basic").is_none());
    assert!(f.db.specs(KIND).await.unwrap().iter().all(|s| s.name != "basic"));
}

async fn stored_created_ms(db: &Db, name: &str) -> i64 {
    let stored = db.specs(KIND).await.unwrap().into_iter().find(|s| s.name == name).unwrap();
    serde_json::from_str::<StoredPlan>(&stored.spec).unwrap().created_ms
}

#[tokio::test]
async fn forbidden_unless_an_enabled_key_of_a_plan_covering_the_stage() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, None), "admin").await.unwrap();
    f.usage
        .put_plan("elsewhere", UsagePlanSpec { stages: vec![stage("other", "prod")], ..Default::default() }, "a")
        .await
        .unwrap();
    let good = f.usage.keys().create("good", Some("basic")).await.unwrap().value;
    let off = f.usage.keys().create("off", Some("basic")).await.unwrap().value;
    f.usage.keys().set_enabled("off", false).await.unwrap();
    let planless = f.usage.keys().create("planless", None).await.unwrap().value;
    let other = f.usage.keys().create("other", Some("elsewhere")).await.unwrap().value;
    let unknown = "x".repeat(keys::VALUE_LEN);
    // (case, x-api-key, api, stage, admitted)
    let cases: [(&str, Option<&str>, &str, &str, bool); 8] = [
        ("a key of the plan", Some(good.as_str()), "titanic", "prod", true),
        ("no header", None, "titanic", "prod", false),
        ("an empty header", Some(""), "titanic", "prod", false),
        ("an unknown key", Some(unknown.as_str()), "titanic", "prod", false),
        ("a disabled key", Some(off.as_str()), "titanic", "prod", false),
        ("a key outside any plan", Some(planless.as_str()), "titanic", "prod", false),
        ("a plan of another API", Some(other.as_str()), "titanic", "prod", false),
        ("a stage the plan does not list", Some(good.as_str()), "titanic", "beta", false),
    ];
    let mut failures = Vec::new();
    for (case, key, api, stg, want) in cases {
        let got = f.usage.admit(key, api, stg, "POST /predict", None, Instant::now(), clock::now_ms()).await;
        let ok = if want { admitted(&got) } else { got == Admission::Forbidden };
        if !ok {
            failures.push(format!("{case}: got {got:?}, want {}", if want { "Admitted" } else { "Forbidden" }));
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn the_plan_throttle_allows_the_burst_then_refills_at_the_rate() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(Some(throttle(10.0, 5)), None), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    for i in 0..5 {
        assert!(admitted(&f.call(&key, t0, Duration::ZERO).await), "burst request {i}");
    }
    assert_eq!(f.call(&key, t0, Duration::ZERO).await, Admission::Throttled);
    assert_eq!(f.call(&key, t0, Duration::from_millis(99)).await, Admission::Throttled);
    assert!(admitted(&f.call(&key, t0, Duration::from_millis(100)).await), "one token per 100 ms");
    assert_eq!(f.call(&key, t0, Duration::from_millis(100)).await, Admission::Throttled);
    // The per-key throttle holds on every stage of the plan, not per stage.
    let mut wide = plan(Some(throttle(10.0, 5)), None);
    wide.stages.push(stage("titanic", "beta"));
    f.usage.put_plan("basic", wide, "admin").await.unwrap();
    let beta = f.usage.admit(Some(&key), "titanic", "beta", "POST /predict", None, t0 + Duration::from_millis(100), 0);
    assert_eq!(beta.await, Admission::Throttled);
}

#[tokio::test]
async fn the_stage_throttle_is_shared_by_every_caller() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, None), "admin").await.unwrap();
    let a = f.usage.keys().create("a", Some("basic")).await.unwrap().value;
    let b = f.usage.keys().create("b", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    let stage_throttle = Some(throttle(0.5, 2));
    let call = |key: String, at: u64| {
        let usage = f.usage.clone();
        async move {
            let when = t0 + Duration::from_millis(at);
            usage.admit(Some(&key), "titanic", "prod", "POST /predict", stage_throttle, when, 0).await
        }
    };
    assert!(admitted(&call(a.clone(), 0).await));
    assert!(admitted(&call(b.clone(), 0).await));
    assert_eq!(call(a.clone(), 0).await, Admission::Throttled, "b took the stage's second token");
    let anonymous = f.usage.admit_anonymous("titanic", "prod", "POST /predict", stage_throttle, t0);
    assert_eq!(anonymous, Admission::Throttled, "anonymous callers share it too");
    assert!(admitted(&f.usage.admit_anonymous("titanic", "prod", "GET /health", stage_throttle, t0)), "per route");
    assert_eq!(call(b.clone(), 1_999).await, Admission::Throttled);
    assert!(admitted(&call(b, 2_000).await), "0.5/s: a token every 2 s");
    assert_eq!(f.usage.admit_anonymous("titanic", "prod", "GET /x", None, t0), Admission::Admitted { key_id: None });
}

#[tokio::test]
async fn a_route_throttle_comes_before_the_plan_throttle() {
    let f = fixture().await;
    let mut spec = plan(Some(throttle(100.0, 3)), None);
    spec.stages[0].throttle.insert("POST /predict".into(), throttle(1.0, 1));
    f.usage.put_plan("basic", spec, "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    let call = |route: &'static str| f.usage.admit(Some(&key), "titanic", "prod", route, None, t0, 0);
    assert!(admitted(&call("POST /predict").await));
    assert_eq!(call("POST /predict").await, Admission::Throttled, "the route's bucket of 1");
    assert!(admitted(&call("GET /health").await), "other routes have only the plan's throttle");
    assert!(admitted(&call("GET /health").await));
    assert_eq!(call("GET /health").await, Admission::Throttled, "the route refusal gave its key token back: 3 in all");
}

#[tokio::test]
async fn the_exact_limit_is_admitted_then_the_quota_is_exceeded() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, daily(5)), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(f.call(&key, t0, Duration::ZERO).await);
    }
    let admitted_count = got.iter().filter(|a| admitted(a)).count();
    assert_eq!(admitted_count, 5, "{got:?}");
    assert_eq!(got[5..], [Admission::QuotaExceeded, Admission::QuotaExceeded]);
    let u = f.usage.usage("alice", clock::now_ms()).await.unwrap().unwrap();
    assert_eq!((u.limit, u.used, u.remaining), (5, 5, 0));
    assert_eq!(u.period_end_ms - u.period_start_ms, DAY_MS);
    let tomorrow = f.usage.admit(Some(&key), "titanic", "prod", "POST /predict", None, t0, u.period_end_ms);
    assert!(admitted(&tomorrow.await), "the next day starts again");
    assert!(matches!(f.usage.usage("nobody", 0).await.unwrap_err(), UsageError::KeyNotFound(_)));
    f.usage.keys().create("planless", None).await.unwrap();
    assert_eq!(f.usage.usage("planless", 0).await.unwrap(), None);
}

#[tokio::test]
async fn a_throttled_request_costs_no_quota() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(Some(throttle(1.0, 1)), daily(3)), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    assert!(admitted(&f.call(&key, t0, Duration::ZERO).await));
    for _ in 0..10 {
        assert_eq!(f.call(&key, t0, Duration::ZERO).await, Admission::Throttled);
    }
    assert_eq!(f.usage.usage("alice", clock::now_ms()).await.unwrap().unwrap().used, 1);
    assert!(admitted(&f.call(&key, t0, Duration::from_secs(1)).await));
    assert!(admitted(&f.call(&key, t0, Duration::from_secs(2)).await));
    assert_eq!(f.call(&key, t0, Duration::from_secs(3)).await, Admission::QuotaExceeded);
}

#[tokio::test]
async fn the_offset_lowers_the_first_period_only() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, Some(Quota { limit: 5, period: Period::Day, offset: 3 })), "a").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let (t0, today) = (Instant::now(), clock::now_ms());
    let mut n = 0;
    for _ in 0..10 {
        n += admitted(&f.usage.admit(Some(&key), "titanic", "prod", "POST /predict", None, t0, today).await) as u64;
    }
    assert_eq!(n, 2, "5 less the offset of 3 in the period the plan was created in");
    assert_eq!(f.usage.usage("alice", today).await.unwrap().unwrap().limit, 2);
    assert_eq!(f.usage.usage("alice", today + DAY_MS).await.unwrap().unwrap().limit, 5);
}

#[tokio::test]
async fn a_crash_can_only_under_grant() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, daily(100)), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let t0 = Instant::now();
    assert!(admitted(&f.call(&key, t0, Duration::ZERO).await));
    let before = f.usage.usage("alice", clock::now_ms()).await.unwrap().unwrap();
    assert_eq!((before.used, before.remaining), (1, 99));
    drop(f.usage); // As kill -9 would: the reserved block's unhanded rest is never written back.
    let reopened = Usage::with_db_counters(f.db.clone(), HASH_KEY).await.unwrap();
    let after = reopened.usage("alice", clock::now_ms()).await.unwrap().unwrap();
    assert!(after.remaining < before.remaining, "remaining {} after, {} before", after.remaining, before.remaining);
    assert_eq!(after.used + after.remaining, 100);
    let mut n = 0;
    for _ in 0..200 {
        n += admitted(&reopened.admit(Some(&key), "titanic", "prod", "POST /predict", None, t0, clock::now_ms()).await)
            as u64;
    }
    assert_eq!(n, after.remaining, "the second life grants exactly what it showed as remaining");
    let first_life = 1;
    assert!(first_life + n <= 100, "never over the limit across the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admits_never_exceed_the_quota() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, daily(100)), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (usage, key) = (f.usage.clone(), key.clone());
            tokio::spawn(async move {
                let mut n = 0;
                for _ in 0..5 {
                    let a = usage.admit(Some(&key), "titanic", "prod", "POST /predict", None, Instant::now(), 0).await;
                    n += admitted(&a) as u64;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100, "200 requests against a limit of 100");
    let row = sqlx::query("SELECT used FROM quota_usage").fetch_one(f.db.pool()).await.unwrap();
    assert_eq!(row.try_get::<i64, _>("used").unwrap(), 100);
}

#[tokio::test]
async fn deleting_a_key_drops_its_counters() {
    let f = fixture().await;
    f.usage.put_plan("basic", plan(None, daily(100)), "admin").await.unwrap();
    let key = f.usage.keys().create("alice", Some("basic")).await.unwrap().value;
    assert!(admitted(&f.call(&key, Instant::now(), Duration::ZERO).await));
    f.usage.keys().delete("alice").await.unwrap();
    let rows = sqlx::query("SELECT used FROM quota_usage").fetch_all(f.db.pool()).await.unwrap();
    assert!(rows.is_empty());
}

#[test]
fn refusals_map_to_api_gateway_answers() {
    let cases = [
        (Admission::Admitted { key_id: None }, None),
        (Admission::Forbidden, Some((403, "Forbidden", None))),
        (Admission::Throttled, Some((429, "Too Many Requests", None))),
        (Admission::QuotaExceeded, Some((429, "Limit Exceeded", Some("LimitExceededException")))),
        (Admission::Unavailable, Some((500, "Internal Server Error", None))),
    ];
    for (admission, want) in cases {
        let got = admission.refusal().map(|r| (r.status, r.message, r.error_type));
        assert_eq!(got, want, "{admission:?}");
    }
}

#[tokio::test]
async fn keys_plans_and_quotas_work_on_every_database() {
    for (backend, db, _dir) in super::quota::tests::databases().await {
        let usage = Usage::with_db_counters(db.clone(), HASH_KEY).await.unwrap();
        // Fresh names: a PostgreSQL test database may hold earlier runs' keys and plans.
        let suffix = &nimbus_core::new_id()[..8];
        let (plan_name, key_name) = (format!("plan-{suffix}"), format!("key-{suffix}"));
        usage.put_plan(&plan_name, plan(None, daily(2)), "admin").await.unwrap();
        let key = usage.keys().create(&key_name, Some(&plan_name)).await.unwrap().value;
        usage.keys().set_plan(&key_name, None).await.unwrap();
        usage.keys().set_plan(&key_name, Some(&plan_name)).await.unwrap();
        usage.keys().set_enabled(&key_name, false).await.unwrap();
        usage.keys().set_enabled(&key_name, true).await.unwrap();
        let call =
            || usage.admit(Some(&key), "titanic", "prod", "POST /predict", None, Instant::now(), clock::now_ms());
        assert!(admitted(&call().await), "{backend}");
        assert!(admitted(&call().await), "{backend}");
        assert_eq!(call().await, Admission::QuotaExceeded, "{backend}");
        let reopened = Usage::with_db_counters(db.clone(), HASH_KEY).await.unwrap();
        let info = reopened.keys().get(&key_name).unwrap();
        assert_eq!((info.enabled, info.usage_plan.as_deref()), (true, Some(plan_name.as_str())), "{backend}");
        assert_eq!(reopened.usage(&key_name, clock::now_ms()).await.unwrap().unwrap().remaining, 0, "{backend}");
        reopened.keys().delete(&key_name).await.unwrap();
        assert!(reopened.delete_plan(&plan_name).await.unwrap(), "{backend}");
    }
}
