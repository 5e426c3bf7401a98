//! API keys and usage plans through the real binary: the Titanic example's keyed route refuses
//! callers without a valid key (403 `Forbidden`), a key's plan throttles it as a token bucket
//! (429 `Too Many Requests`) and counts it against a quota (429 `Limit Exceeded` with
//! `x-amzn-ErrorType: LimitExceededException`), the quota survives `kill -9` without ever
//! granting past its limit, keys can be disabled, enabled and deleted from the CLI, a stage's
//! default throttle limits anonymous callers, and applying again changes nothing and shows no
//! key value a second time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Backend, Nimbus, backends};

const SAMPLE: &str = r#"{"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}"#;

const OPEN: &str = "/titanic/prod/predict";
const KEYED: &str = "/titanic/prod/keyed/predict";

/// Plans and keys added to the example project (which already has plan `basic` and key
/// `titanic-demo`).
const EXTRA: &str = r#"
# A small quota behind a throttle too high to matter.
[usage_plans.small]
throttle = { rate = 1000, burst = 1000 }
quota = { limit = 8, period = "DAY" }
stages = [{ api = "titanic", stage = "prod" }]

[api_keys.quota-key]
usage_plan = "small"

[api_keys.crash-key]
usage_plan = "small"

# A tight throttle in front of a quota: throttled requests must cost no quota.
[usage_plans.tight]
throttle = { rate = 0.2, burst = 2 }
quota = { limit = 8, period = "DAY" }
stages = [{ api = "titanic", stage = "prod" }]

[api_keys.tight-key]
usage_plan = "tight"
"#;

/// The stage `dev` of the example gets a default throttle for every caller.
const DEV_THROTTLE: &str = "[apis.titanic.stages.dev]\nthrottle = { rate = 1, burst = 2 }\n";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// A running server with the example deployed, and the values of the keys apply created.
struct Deployed {
    n: Nimbus,
    project: PathBuf,
    keys: HashMap<String, String>,
}

/// The value of each `api key  NAME: create (value VALUE: shown once, …)` line.
fn created_keys(apply_output: &str) -> HashMap<String, String> {
    apply_output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("api key  ")?;
            let (name, rest) = rest.split_once(": create (value ")?;
            let (value, _) = rest.split_once(": shown once")?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Copies the Titanic example (plus [`EXTRA`] and [`DEV_THROTTLE`]), applies it, trains and
/// approves version 1.
fn deployed(backend: &Backend) -> Deployed {
    let n = Nimbus::start(backend);
    let project = n.data_dir().join("project");
    std::fs::create_dir_all(project.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), project.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(project.join("nimbus.toml")).unwrap();
    assert!(toml.contains("[apis.titanic.stages.dev]\n"), "the example has a dev stage");
    let toml = toml.replacen("[apis.titanic.stages.dev]\n", DEV_THROTTLE, 1) + EXTRA;
    std::fs::write(project.join("nimbus.toml"), toml).unwrap();
    let out = n.ok(&["apply", project.to_str().unwrap()]);
    assert!(out.contains("plan     basic: create (10 req/s, burst 5; 100 per"), "{out}");
    let keys = created_keys(&out);
    for name in ["titanic-demo", "quota-key", "crash-key", "tight-key"] {
        let value = keys.get(name).unwrap_or_else(|| panic!("apply shows the value of {name}: {out}"));
        assert!(value.len() >= 20 && value.chars().all(|c| c.is_ascii_alphanumeric()), "{name}: {value:?}");
    }
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    Deployed { n, project, keys }
}

/// One gateway answer.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    fn is(&self, status: u16, message: &str) -> bool {
        self.status == status && self.body == format!(r#"{{"message":"{message}"}}"#)
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// A client of the gateway that reuses its connections.
struct Gateway {
    client: reqwest::blocking::Client,
    endpoint: String,
}

impl Gateway {
    fn of(n: &Nimbus) -> Gateway {
        Gateway { client: reqwest::blocking::Client::new(), endpoint: n.endpoint.clone() }
    }

    /// POSTs the seeds' three passengers to `path`, with `x-api-key: key` when given.
    fn predict(&self, path: &str, key: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json")
            .body(SAMPLE);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().expect("server answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Reply { status, headers, body: resp.text().unwrap_or_default() }
    }

    /// `count` requests back to back; the replies and how long they took in all.
    fn burst(&self, path: &str, key: Option<&str>, count: usize) -> (Vec<Reply>, Duration) {
        let started = Instant::now();
        let replies = (0..count).map(|_| self.predict(path, key)).collect();
        (replies, started.elapsed())
    }
}

fn admitted(replies: &[Reply]) -> usize {
    replies.iter().filter(|r| r.status == 200).count()
}

/// The most a token bucket of `burst` refilled at `rate`/s can admit within `elapsed`
/// (one more for the fraction of a token it may start with).
fn most_admitted(burst: u32, rate: f64, elapsed: Duration) -> usize {
    burst as usize + (rate * elapsed.as_secs_f64()).floor() as usize + 1
}

/// `nimbus keys usage NAME` as (limit, used, left), read from the table a user sees and
/// checked against the JSON form.
fn quota_usage(n: &Nimbus, key: &str) -> (u64, u64, u64) {
    let out = n.ok(&["keys", "usage", key]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..4], ["KEY", "LIMIT", "USED", "LEFT"], "{out}");
    let row: Vec<&str> = lines.next().unwrap_or_else(|| panic!("a row: {out}")).split_whitespace().collect();
    assert_eq!(row[0], key, "{out}");
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{s:?} is not a number: {out}"));
    let table = (num(row[1]), num(row[2]), num(row[3]));
    let v = n.json(&["keys", "usage", key]);
    let q = &v["quota"];
    let json = (q["limit"].as_u64().unwrap(), q["used"].as_u64().unwrap(), q["remaining"].as_u64().unwrap());
    assert_eq!(table, json, "table and JSON agree: {out} {v}");
    table
}

#[test]
fn the_keyed_route_needs_a_valid_enabled_key_and_its_plan_throttles_it() {
    let Deployed { n, project, keys } = deployed(&Backend::Sqlite);
    let gw = Gateway::of(&n);
    let demo = keys["titanic-demo"].as_str();

    // The open route needs no key (and warms the function for what follows).
    let open = gw.predict(OPEN, None);
    assert_eq!(open.status, 200, "{open:?}");
    assert_eq!(open.json()["predictions"].as_array().unwrap().len(), 3);

    // No key, an empty key, an unknown key: the same 403 for each.
    let none = gw.predict(KEYED, None);
    assert!(none.is(403, "Forbidden"), "no x-api-key: {none:?}");
    assert!(none.headers.contains_key("x-amzn-requestid"), "a refusal carries the request id");
    let empty = gw.predict(KEYED, Some(""));
    assert!(empty.is(403, "Forbidden"), "empty x-api-key: {empty:?}");
    let unknown = gw.predict(KEYED, Some("NotAKeyNotAKeyNotAKeyNotAKeyNotAKey12345"));
    assert!(unknown.is(403, "Forbidden"), "unknown key: {unknown:?}");
    // A valid key on a stage its plan does not cover.
    let other_stage = gw.predict("/titanic/dev/keyed/predict", Some(demo));
    assert!(other_stage.is(403, "Forbidden"), "plan basic covers only prod: {other_stage:?}");

    // The plan's throttle: rate 10/s, burst 5. The burst passes at once, then 429s, with at
    // most the refill of the time the loop took on top.
    let (replies, elapsed) = gw.burst(KEYED, Some(demo), 20);
    assert!(replies[..5].iter().all(|r| r.status == 200), "the burst of 5 passes: {replies:?}");
    let first = replies[0].json();
    assert_eq!(first["predictions"], open.json()["predictions"], "the keyed route answers as the open one");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert!(r.is(429, "Too Many Requests"), "{r:?}");
    }
    let passed = admitted(&replies);
    assert!(
        passed <= most_admitted(5, 10.0, elapsed),
        "{passed} of 20 admitted in {elapsed:?} at 10/s burst 5: {replies:?}"
    );
    assert!(replies.iter().any(|r| r.status == 429) || elapsed > Duration::from_millis(1500), "{replies:?}");

    // Idle for 1 s: the bucket refills, but only up to its size (5).
    std::thread::sleep(Duration::from_secs(1));
    let (replies, elapsed) = gw.burst(KEYED, Some(demo), 20);
    assert!(replies[..5].iter().all(|r| r.status == 200), "a full bucket again after 1 s: {replies:?}");
    let passed = admitted(&replies);
    assert!(passed <= most_admitted(5, 10.0, elapsed), "{passed} admitted in {elapsed:?}, bucket size 5: {replies:?}");

    // Steady requests for about 1 s on an empty bucket: the refill admits about 10.
    let started = Instant::now();
    let mut steady = Vec::new();
    while started.elapsed() < Duration::from_secs(1) {
        steady.push(gw.predict(KEYED, Some(demo)));
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let passed = admitted(&steady);
    let expected = 10.0 * elapsed.as_secs_f64();
    assert!(
        (passed as f64) >= expected - 4.0 && passed <= most_admitted(0, 10.0, elapsed) + 1,
        "{passed} of {} admitted over {elapsed:?} at 10/s (about {expected:.0} expected)",
        steady.len()
    );
    for r in steady.iter().filter(|r| r.status != 200) {
        assert!(r.is(429, "Too Many Requests"), "{r:?}");
    }

    // Disable, enable, delete a key made from the CLI.
    let v = n.json(&["keys", "create", "extra", "--usage-plan", "basic"]);
    let extra = v["value"].as_str().unwrap_or_else(|| panic!("keys create shows the value: {v}")).to_string();
    assert_eq!(gw.predict(KEYED, Some(&extra)).status, 200);
    let listed = n.json(&["keys", "list"]);
    let row = listed.as_array().unwrap().iter().find(|k| k["name"] == "extra").cloned().expect("listed");
    assert_eq!((&row["usage_plan"], &row["enabled"]), (&Value::from("basic"), &Value::from(true)), "{row}");
    assert!(!listed.to_string().contains(&extra), "a listing never shows a key's value: {listed}");

    n.ok(&["keys", "disable", "extra"]);
    let r = gw.predict(KEYED, Some(&extra));
    assert!(r.is(403, "Forbidden"), "a disabled key is refused at once: {r:?}");
    assert_eq!(
        n.json(&["keys", "list"]).as_array().unwrap().iter().find(|k| k["name"] == "extra").unwrap()["enabled"],
        false
    );
    assert_eq!(gw.predict(KEYED, Some(demo)).status, 200, "other keys are not affected");
    n.ok(&["keys", "enable", "extra"]);
    let r = gw.predict(KEYED, Some(&extra));
    assert_eq!(r.status, 200, "enabled again: {r:?}");
    n.ok(&["keys", "delete", "extra"]);
    let r = gw.predict(KEYED, Some(&extra));
    assert!(r.is(403, "Forbidden"), "a deleted key is refused: {r:?}");
    assert!(n.json(&["keys", "list"]).as_array().unwrap().iter().all(|k| k["name"] != "extra"));

    // Applying again changes no plan or key and shows no value again.
    let again = n.ok(&["apply", project.to_str().unwrap()]);
    for plan in ["basic", "small", "tight"] {
        assert!(again.contains(&format!("plan     {plan}: unchanged")), "{again}");
    }
    for key in ["titanic-demo", "quota-key", "crash-key", "tight-key"] {
        assert!(again.contains(&format!("api key  {key}: unchanged")), "{again}");
    }
    assert!(!again.contains("shown once"), "no new key value: {again}");
    for value in keys.values() {
        assert!(!again.contains(value.as_str()), "an existing key's value is never shown again: {again}");
    }
    assert_eq!(gw.predict(KEYED, Some(demo)).status, 200, "the key still works after the second apply");
}

#[test]
fn a_quota_refuses_past_its_limit_and_throttled_requests_cost_none() {
    let Deployed { n, keys, .. } = deployed(&Backend::Sqlite);
    let gw = Gateway::of(&n);
    assert_eq!(gw.predict(OPEN, None).status, 200);

    // Plan small: 8 a day. Eight pass, the ninth and later are "Limit Exceeded".
    let key = keys["quota-key"].as_str();
    assert_eq!(quota_usage(&n, "quota-key"), (8, 0, 8), "nothing used yet");
    for i in 1..=8 {
        let r = gw.predict(KEYED, Some(key));
        assert_eq!(r.status, 200, "request {i} of 8: {r:?}");
    }
    for _ in 0..3 {
        let r = gw.predict(KEYED, Some(key));
        assert!(r.is(429, "Limit Exceeded"), "past the quota: {r:?}");
        let error_type = r.headers.get("x-amzn-ErrorType").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(error_type.as_deref(), Some("LimitExceededException"), "{:?}", r.headers);
    }
    assert_eq!(quota_usage(&n, "quota-key"), (8, 8, 0), "used 8, left 0");
    // Another key of the same plan has its own quota.
    assert_eq!(quota_usage(&n, "crash-key"), (8, 0, 8));
    assert_eq!(gw.predict(KEYED, Some(&keys["crash-key"])).status, 200);

    // Plan tight: burst 2 at 0.2/s in front of 8 a day. Of 10 back-to-back requests only the
    // admitted ones count against the quota.
    let tight = keys["tight-key"].as_str();
    let (replies, elapsed) = gw.burst(KEYED, Some(tight), 10);
    let passed = admitted(&replies);
    assert!((2..=most_admitted(2, 0.2, elapsed)).contains(&passed), "{passed} admitted in {elapsed:?}: {replies:?}");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert!(r.is(429, "Too Many Requests"), "throttled, not over quota: {r:?}");
        assert!(!r.headers.contains_key("x-amzn-errortype"), "a throttle is not a quota: {:?}", r.headers);
    }
    let (limit, used, left) = quota_usage(&n, "tight-key");
    assert_eq!((limit, used, left), (8, passed as u64, 8 - passed as u64), "throttled requests cost no quota");
}

#[test]
fn a_stage_default_throttle_limits_anonymous_callers_of_an_open_route() {
    let Deployed { n, .. } = deployed(&Backend::Sqlite);
    let gw = Gateway::of(&n);
    // Warm the function on prod (no stage throttle there), so dev's requests are quick.
    assert_eq!(gw.predict(OPEN, None).status, 200);

    // Stage dev: rate 1/s, burst 2, shared by every caller.
    let (replies, elapsed) = gw.burst("/titanic/dev/predict", None, 3);
    assert_eq!((replies[0].status, replies[1].status), (200, 200), "the burst of 2 passes: {replies:?}");
    if elapsed < Duration::from_secs(1) {
        assert!(replies[2].is(429, "Too Many Requests"), "the third within 1 s is throttled: {replies:?}");
    }
    let (more, elapsed) = gw.burst("/titanic/dev/predict", None, 5);
    let total = admitted(&replies) + admitted(&more);
    assert!(total <= most_admitted(2, 1.0, elapsed) + 1, "{total} admitted: {replies:?} {more:?}");
    for r in more.iter().filter(|r| r.status != 200) {
        assert!(r.is(429, "Too Many Requests"), "{r:?}");
    }
    // The stage without a throttle is not affected.
    let (prod, _) = gw.burst(OPEN, None, 10);
    assert!(prod.iter().all(|r| r.status == 200), "prod has no default throttle: {prod:?}");
}

#[test]
fn a_quota_never_grants_past_its_limit_across_kill_9() {
    for backend in backends() {
        let Deployed { mut n, keys, .. } = deployed(&backend);
        let key = keys["crash-key"].clone();
        let gw = Gateway::of(&n);
        for i in 1..=5 {
            let r = gw.predict(KEYED, Some(&key));
            assert_eq!(r.status, 200, "{backend:?}: request {i} of 5: {r:?}");
        }
        assert_eq!(quota_usage(&n, "crash-key"), (8, 5, 3), "{backend:?}");

        n.kill9();
        n.start_again();
        let gw = Gateway::of(&n);
        let (limit, used, left) = quota_usage(&n, "crash-key");
        assert_eq!(limit, 8, "{backend:?}");
        assert!(used >= 5 && used + left == 8, "{backend:?}: the crash forgot no grant: used {used}, left {left}");

        let after: Vec<Reply> = (0..6).map(|_| gw.predict(KEYED, Some(&key))).collect();
        let passed = admitted(&after);
        assert!(passed <= 3, "{backend:?}: {passed} more admitted after the crash, at most 3 left: {after:?}");
        assert!(after[..passed].iter().all(|r| r.status == 200), "{backend:?}: grants come first: {after:?}");
        for r in &after[passed..] {
            assert!(r.is(429, "Limit Exceeded"), "{backend:?}: {r:?}");
        }
        assert_eq!(quota_usage(&n, "crash-key"), (8, 8, 0), "{backend:?}");
    }
}
