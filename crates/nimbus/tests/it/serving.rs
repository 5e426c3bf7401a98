//! Serving through the real binary and real HTTP: the gateway with each prediction format and
//! each error status, the Invoke API (signed, and the seeds' unsigned local-emulator call),
//! logs and metrics, and a hot swap under a continuous stream of requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus, backends};

const SEEDS_SAMPLE: &str = r#"{"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}"#;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// Extra functions and an API exercising the error paths, appended to the example project.
const EXTRA: &str = r#"
[functions.slow]
kind = "model"
model_group = "titanic"
timeout_s = 0.0001

[functions.pinned]
kind = "model"
model_group = "titanic"
selector = "@production"

[apis.extra]
hosts = ["models.example.test"]
[apis.extra.routes]
"POST /slow" = { function = "slow" }
"POST /pinned" = { function = "pinned" }
"ANY /any/{proxy+}" = { function = "predict" }
[apis.extra.stages.prod]
"#;

/// The example project plus [`EXTRA`], applied, trained and version 1 approved.
fn deployed(backend: &Backend) -> Nimbus {
    deployed_with(backend, &[])
}

fn deployed_with(backend: &Backend, flags: &[&str]) -> Nimbus {
    let n = Nimbus::start_with(backend, flags);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap() + EXTRA;
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    assert!(out.contains("function predict: create (serves model group titanic, latest-approved)"), "{out}");
    assert!(out.contains("api      titanic: create"), "{out}");
    let again = n.ok(&["apply", dir.to_str().unwrap()]);
    assert!(again.contains("function predict: unchanged") && again.contains("api      titanic: unchanged"), "{again}");
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    n
}

/// A POST with a content type; returns status, headers and body.
fn post(
    n: &Nimbus,
    path: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}{path}", n.endpoint))
        .header("content-type", content_type)
        .body(body.into())
        .send()
        .expect("server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap_or_default())
}

fn post_json(n: &Nimbus, path: &str, body: &str) -> (u16, Value) {
    let (status, _, text) = post(n, path, "application/json", body.to_string());
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
}

#[test]
fn the_gateway_answers_every_prediction_format_and_error() {
    for backend in backends() {
        let n = deployed(&backend);
        // The seeds' form through API Gateway's URL shape, with the request-id headers.
        let (status, headers, body) = post(&n, "/titanic/prod/predict", "application/json", SEEDS_SAMPLE);
        assert_eq!(status, 200, "{body}");
        let preds: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(preds["predictions"].as_array().unwrap().len(), 3);
        assert_eq!(preds["predictions"][0], 0, "a 22-year-old man in third class");
        assert_eq!(preds["predictions"][2], 1, "a 38-year-old woman in first class");
        let id = headers["x-amzn-requestid"].to_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(headers["apigw-requestid"], headers["x-amzn-requestid"]);

        // Probabilities on request; every MLflow form and CSV give the same answer.
        let with_probs = SEEDS_SAMPLE.replacen('{', r#"{"return_probabilities":true,"#, 1);
        let (_, v) = post_json(&n, "/titanic/prod/predict", &with_probs);
        assert_eq!(v["predictions"], preds["predictions"]);
        let p = v["probabilities"][2].as_array().unwrap();
        assert!(p[1].as_f64().unwrap() > 0.5 && (p[0].as_f64().unwrap() + p[1].as_f64().unwrap() - 1.0).abs() < 1e-6);
        for body in [
            r#"{"dataframe_split":{"columns":["Age","Sex","Pclass"],"data":[[22,"male",3],[12,"male",1],[38,"female",1]]}}"#,
            r#"{"dataframe_records":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}"#,
            r#"{"inputs":{"Age":[22,12,38],"Sex":["male","male","female"],"Pclass":[3,1,1]}}"#,
            r#"{"instances":[[3,"male",22,null,null,null,null],[1,"male",12,null,null,null,null],[1,"female",38,null,null,null,null]]}"#,
        ] {
            let (status, v) = post_json(&n, "/titanic/prod/invocations", body);
            assert_eq!((status, &v["predictions"]), (200, &preds["predictions"]), "{body}");
        }
        let (status, _, csv) = post(
            &n,
            "/titanic/dev/invocations",
            "text/csv",
            "Age,Sex,Pclass\r\n22,male,3\r\n12,male,1\r\n38,female,1\r\n",
        );
        assert_eq!(
            (status, serde_json::from_str::<Value>(&csv).unwrap()["predictions"].clone()),
            (200, preds["predictions"].clone())
        );

        // Bad input: 400 naming the instance and field, never a 500.
        let cases = [
            (r#"{"instances":[{"Age":22},{"age":30}]}"#, "instances[1].age: unknown field"),
            (r#"{"instances":[{"Age":"old"}]}"#, "instances[0].Age: expected a number"),
            (r#"{"instances":[]}"#, "empty"),
            (r#"{"instances":[{"Age":22}]"#, "JSON"),
            (r#"{"instances":[{"Age":22}],"inputs":[{"Age":1}]}"#, "inputs"),
        ];
        for (body, want) in cases {
            let (status, v) = post_json(&n, "/titanic/prod/predict", body);
            assert_eq!(status, 400, "{body}: {v}");
            assert!(v["error"].as_str().unwrap().contains(want), "{body}: expected {want:?} in {v}");
        }
        // An unseen category is missing by the documented rule, not an error.
        let (status, v) = post_json(&n, "/titanic/prod/predict", r#"{"instances":[{"Sex":"unknown","Pclass":3}]}"#);
        assert_eq!((status, v["predictions"].as_array().map(Vec::len)), (200, Some(1)));

        // Gateway errors, as API Gateway answers them.
        let not_found = json!({"message": "Not Found"});
        for path in ["/titanic/prod/nope", "/titanic/staging/predict", "/nope/prod/predict", "/titanic"] {
            let (status, v) = post_json(&n, path, SEEDS_SAMPLE);
            assert_eq!((status, &v), (404, &not_found), "{path}");
        }
        let (status, v) = post_json(&n, "/extra/prod/slow", SEEDS_SAMPLE);
        assert_eq!((status, v), (504, json!({"message": "Endpoint request timed out"})));
        let (status, v) = post_json(&n, "/extra/prod/pinned", SEEDS_SAMPLE);
        assert_eq!((status, v), (502, json!({"message": "Internal Server Error"})), "alias production is not set");
        let big = format!(r#"{{"instances":[{}]}}"#, "{\"Age\":22},".repeat(1_000_000));
        assert!(big.len() > 10 * 1024 * 1024);
        let (status, _, body) = post(&n, "/titanic/prod/predict", "application/json", big);
        assert_eq!((status, body.as_str()), (413, r#"{"message":"Request Entity Too Large"}"#));
        // A greedy path parameter, and the AWS host-name form without the API prefix.
        let (status, _) = post_json(&n, "/extra/prod/any/deep/path", SEEDS_SAMPLE);
        assert_eq!(status, 200);
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/prod/predict", n.endpoint))
            .header("host", "titanic.execute-api.localhost")
            .body(SEEDS_SAMPLE)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/prod/slow", n.endpoint))
            .header("host", "models.example.test:8080")
            .body(SEEDS_SAMPLE)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 504, "the host claimed by API extra");

        // Access log lines are JSON; metrics count routes and statuses.
        let log = n.json(&["logs", "titanic", "--api"]);
        let line: Value = serde_json::from_str(log["lines"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            (line["routeKey"].as_str(), line["stage"].as_str(), line["status"].as_u64()),
            (Some("POST /predict"), Some("prod"), Some(200))
        );
        assert_eq!(line["requestId"].as_str(), Some(id));
        let metrics = n.http("GET", "/metrics", b"", None).1;
        assert!(
            metrics.contains(
                r#"nimbus_gateway_responses_total{api="titanic",stage="prod",route="POST /predict",status="400"} 5"#
            ),
            "{metrics}"
        );
        assert!(metrics.contains(r#"nimbus_function_cold_starts_total{function="predict"} 1"#), "{metrics}");
        assert!(metrics.contains(r#"nimbus_function_errors_total{function="slow"} 2"#), "{metrics}");
        assert!(
            metrics.contains(r#"nimbus_function_duration_seconds_bucket{function="predict",le="+Inf"}"#),
            "{metrics}"
        );
    }
}

#[test]
fn unsigned_local_invoke_is_refused_unless_allowed() {
    let n = deployed(&Backend::Sqlite);
    let (status, _, body) = post(
        &n,
        "/2015-03-31/functions/function/invocations",
        "application/json",
        r#"{"instances":[{"Age":80,"Sex":"male","Pclass":3}]}"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Missing Authentication Token"), "{body}");
}

#[test]
fn the_invoke_api_and_the_seeds_emulator_call() {
    let n = deployed_with(&Backend::Sqlite, &["--allow-unsigned-local-invoke"]);
    // The seeds' local-emulator curl (section 7.2): no signature, default function.
    let (status, _, body) = post(
        &n,
        "/2015-03-31/functions/function/invocations",
        "application/json",
        r#"{"instances":[{"Age":80,"Sex":"male","Pclass":3}]}"#,
    );
    assert_eq!((status, body.as_str()), (200, r#"{"statusCode":200,"body":"{\"predictions\":[0]}"}"#));
    // A named function needs a signature (service lambda).
    let (status, body) = n.http("POST", "/2015-03-31/functions/predict/invocations", SEEDS_SAMPLE.as_bytes(), None);
    assert_eq!(status, 403, "{body}");
    // An API Gateway event as payload answers with the proxy response.
    let event = json!({"version": "2.0", "routeKey": "POST /predict", "requestContext": {"stage": "prod"}, "body": SEEDS_SAMPLE});
    let out = n.ok(&["functions", "invoke", "predict", "--payload", &event.to_string()]);
    let proxy: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(proxy["statusCode"], 200);
    let inner: Value = serde_json::from_str(proxy["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["predictions"].as_array().unwrap().len(), 3);
    let (code, _, err) = n.cli(&["functions", "invoke", "nope", "--payload", "{}"]);
    assert_eq!(code, 2);
    assert!(err.contains("Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"), "{err}");
    let (code, _, err) = n.cli(&["functions", "invoke", "slow", "--payload", SEEDS_SAMPLE]);
    assert_eq!(code, 1, "a function error: {err}");

    // START/END/REPORT, Init Duration on the cold start only.
    let lines: Vec<String> = n.json(&["logs", "predict"])["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    let reports: Vec<&String> = lines.iter().filter(|l| l.starts_with("REPORT RequestId: ")).collect();
    assert!(reports.len() >= 2, "{lines:?}");
    assert!(reports[0].contains("\tInit Duration: "), "{}", reports[0]);
    assert!(reports[1..].iter().all(|r| !r.contains("Init Duration")), "{reports:?}");
    let fields: Vec<&str> = reports[1].split('\t').collect();
    assert!(fields[1].starts_with("Duration: ") && fields[1].ends_with(" ms"), "{fields:?}");
    assert_eq!(&fields[2..4], ["Billed Duration: 1 ms", "Memory Size: 256 MB"]);
    assert!(lines.iter().any(|l| l.starts_with("START RequestId: ") && l.ends_with(" Version: $LATEST")));
    assert!(lines.iter().any(|l| l.starts_with("END RequestId: ")));
    let m = n.json(&["metrics", "--function", "predict"]);
    assert_eq!(m["function/predict"]["invocations"], 2, "the emulator call and the CLI invoke: {m}");
    assert_eq!(m["function/predict"]["cold_starts"], 1, "{m}");
    assert_eq!(m["function/slow"], Value::Null, "only the function asked for: {m}");
    let table = n.ok(&["metrics"]);
    assert!(table.contains("FUNCTION") && table.contains("slow") && table.contains("COLD STARTS"), "{table}");
    let described = n.json(&["functions", "describe", "predict"]);
    assert_eq!((described["state"].as_str(), described["loaded_version"].as_i64()), (Some("warm"), Some(1)));

    // boto3's lambda client against nimbus.
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the boto3 Invoke test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let (id, secret) = n.credentials();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lambda_invoke.py");
    let out = std::process::Command::new(python).arg(script).args([&n.endpoint, &id, &secret]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("boto3 lambda: all checks passed"), "{stdout}");
}

/// Approving a new version while requests stream in: every answer is 200 and is either the
/// old model's or the new one's, switching once; rejecting the new version rolls back.
#[test]
fn hot_swap_under_load_never_fails_a_request_and_reject_rolls_back() {
    for backend in backends() {
        hot_swap(&backend);
    }
}

fn hot_swap(backend: &Backend) {
    let n = deployed(backend);
    // Version 2: different trees, so its probabilities differ from version 1's.
    n.ok(&["pipelines", "run", "titanic", "--param", "max_depth=2", "--param", "num_round=7", "--wait"]);
    let body = format!(r#"{{"return_probabilities":true,{}"#, &SEEDS_SAMPLE[1..]);
    let (_, v1) = post_json(&n, "/titanic/prod/predict", &body);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (endpoint, body, stop) = (n.endpoint.clone(), body.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let resp = http.post(format!("{endpoint}/titanic/prod/predict")).body(body.clone()).send().unwrap();
                    answers.push((resp.status().as_u16(), resp.text().unwrap()));
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    n.ok(&["models", "approve", "titanic", "2"]);
    wait_for_version(&n, 2);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (_, v2) = post_json(&n, "/titanic/prod/predict", &body);
    assert_ne!(v1, v2, "the two versions answer differently");
    for client in clients {
        let answers = client.join().unwrap();
        assert!(answers.len() > 10, "{} requests", answers.len());
        let mut switched = false;
        for (status, text) in &answers {
            assert_eq!(*status, 200, "{text}");
            let v: Value = serde_json::from_str(text).unwrap();
            if v == v2 {
                switched = true;
            } else {
                assert_eq!(v, v1, "an answer of neither model");
                assert!(!switched, "an old answer after the new model answered");
            }
        }
        assert!(matches!(answers.first(), Some((_, t)) if serde_json::from_str::<Value>(t).unwrap() == v1));
        assert!(switched, "the stream never saw version 2");
    }
    let swaps = n.ok(&["logs", "predict", "--filter", "swapped"]);
    assert!(swaps.contains("swapped model titanic version 1 -> 2"), "{swaps}");

    // Rejecting the serving version rolls back to the previous approved one.
    n.ok(&["models", "reject", "titanic", "2"]);
    wait_for_version(&n, 1);
    let (status, v) = post_json(&n, "/titanic/prod/predict", &body);
    assert_eq!((status, v), (200, v1));
}

fn wait_for_version(n: &Nimbus, version: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = n.json(&["functions", "describe", "predict"]);
        if f["loaded_version"].as_i64() == Some(version) {
            return;
        }
        assert!(Instant::now() < deadline, "function never loaded version {version}: {f}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_function_scales_to_zero_and_cold_starts_again() {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap().replace("idle_s = 900", "idle_s = 1");
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    // No approved version yet: 502 from the gateway, a function error from the Invoke API.
    let (status, _) = post_json(&n, "/titanic/prod/predict", SEEDS_SAMPLE);
    assert_eq!(status, 502);
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    assert_eq!(post_json(&n, "/titanic/prod/predict", SEEDS_SAMPLE).0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n.json(&["functions", "describe", "predict"])["state"] != "cold" {
        assert!(Instant::now() < deadline, "never scaled to zero");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(post_json(&n, "/titanic/prod/predict", SEEDS_SAMPLE).0, 200);
    let logs = n.ok(&["logs", "predict"]);
    assert!(logs.contains("unloaded after 1 s idle (scaled to zero)"), "{logs}");
    assert_eq!(logs.matches("\tInit Duration: ").count(), 2, "two cold starts: {logs}");
    assert!(logs.contains("ModelUnavailable"), "the failed first call is logged: {logs}");
}

#[test]
fn the_open_inference_protocol_v2_serves_model_functions() {
    let n = deployed(&Backend::Sqlite);
    let get = |path: &str| {
        let (status, body) = n.http("GET", path, b"", None);
        (status, serde_json::from_str::<Value>(&body).unwrap_or(Value::Null))
    };
    assert_eq!(get("/titanic/prod/v2/health/live"), (200, json!({"live": true})));
    assert_eq!(get("/titanic/prod/v2/health/ready"), (200, json!({"ready": true})));
    let (status, meta) = get("/titanic/prod/v2/models/predict");
    assert_eq!(status, 200);
    assert_eq!((meta["name"].as_str(), meta["versions"].clone()), (Some("predict"), json!(["1"])));
    let inputs: Vec<&str> = meta["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]);
    assert_eq!(get("/titanic/prod/v2/models/predict/versions/1").0, 200);
    assert_eq!(get("/titanic/prod/v2/models/predict/versions/2").0, 404);
    assert_eq!(get("/titanic/prod/v2/models/nope").0, 404);
    assert_eq!(get("/titanic/prod/v2/models/predict/ready").1["ready"], true);

    // One input per field, and one [n, 7] tensor in the model's field order: the same answer.
    let per_field = json!({"id": "r1", "inputs": [
        {"name": "Age", "shape": [3], "datatype": "FP64", "data": [22, 12, 38]},
        {"name": "Sex", "shape": [3], "datatype": "BYTES", "data": ["male", "male", "female"]},
        {"name": "Pclass", "shape": [3, 1], "datatype": "INT64", "data": [3, 1, 1]}
    ]});
    let (status, _, text) =
        post(&n, "/titanic/prod/v2/models/predict/infer", "application/json", per_field.to_string());
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["model_name"].as_str(), v["model_version"].as_str(), v["id"].as_str()),
        (Some("predict"), Some("1"), Some("r1"))
    );
    assert_eq!(v["outputs"][0]["name"], "predict");
    assert_eq!(v["outputs"][0]["data"], json!([0, 0, 1]));
    assert_eq!(v["outputs"][1]["shape"], json!([3, 2]));
    let (_, seeds) = post_json(&n, "/titanic/prod/predict", SEEDS_SAMPLE);
    assert_eq!(v["outputs"][0]["data"], seeds["predictions"], "the same model as the gateway route");
    let tensor = json!({"inputs": [{"name": "x", "shape": [1, 7], "datatype": "BYTES",
        "data": [3, "male", 22, null, null, null, null]}]});
    let (status, _, text) =
        post(&n, "/titanic/prod/v2/models/predict/versions/1/infer", "application/json", tensor.to_string());
    assert_eq!(status, 200, "{text}");
    let (status, _, text) =
        post(&n, "/titanic/prod/v2/models/predict/versions/9/infer", "application/json", tensor.to_string());
    assert_eq!(status, 404, "{text}");
    let bad = json!({"inputs": [{"name": "Age", "shape": [2], "datatype": "FP64", "data": [22]}]});
    let (status, _, text) = post(&n, "/titanic/prod/v2/models/predict/infer", "application/json", bad.to_string());
    assert_eq!(status, 400, "{text}");
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].as_str().unwrap().contains("shape"), "{text}");
}

#[test]
fn an_alias_move_swaps_a_function_that_serves_the_alias() {
    let n = deployed(&Backend::Sqlite);
    // `pinned` serves @production, which does not exist yet.
    assert_eq!(post_json(&n, "/extra/prod/pinned", SEEDS_SAMPLE).0, 502);
    n.ok(&["models", "alias", "titanic", "production", "1"]);
    let body = format!(r#"{{"return_probabilities":true,{}"#, &SEEDS_SAMPLE[1..]);
    let (status, v1) = post_json(&n, "/extra/prod/pinned", &body);
    assert_eq!(status, 200);
    assert_eq!(post_json(&n, "/titanic/prod/predict", SEEDS_SAMPLE).0, 200, "predict is warm on version 1");
    n.ok(&["pipelines", "run", "titanic", "--param", "max_depth=2", "--param", "num_round=7", "--wait"]);
    // Moving the alias (to a version still pending approval) swaps the warm function.
    n.ok(&["models", "alias", "titanic", "production", "2"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n.json(&["functions", "describe", "pinned"])["loaded_version"] != 2 {
        assert!(Instant::now() < deadline, "pinned never loaded version 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, v2) = post_json(&n, "/extra/prod/pinned", &body);
    assert_eq!(status, 200);
    assert_ne!(v1, v2);
    // The latest-approved function did not move: version 2 is not approved.
    assert_eq!(n.json(&["functions", "describe", "predict"])["loaded_version"], 1);
}
