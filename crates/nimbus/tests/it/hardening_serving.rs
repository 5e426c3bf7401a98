//! Prediction bodies cannot exhaust the server's memory, a timed-out prediction ends its work
//! and reports with the gateway's request id, and the answer limit is a clear 413 — through
//! the real binary and the gateway.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// The example project plus a function that times out at once, trained and approved.
fn deployed() -> Nimbus {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let extra = r#"
[functions.slow]
kind = "model"
model_group = "titanic"
timeout_s = 0.0001

[apis.extra.routes]
"POST /slow" = { function = "slow" }
[apis.extra.stages.prod]
"#;
    // These tests are about memory, not time: a debug build on a loaded machine may need more
    // than the example's 10 s for a 9 MiB body, so give the function the gateway's 30 s.
    let toml =
        std::fs::read_to_string(dir.join("nimbus.toml")).unwrap().replace("timeout_s = 10", "timeout_s = 30") + extra;
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    n
}

fn post(n: &Nimbus, path: &str, content_type: &str, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap()
        .post(format!("{}{path}", n.endpoint))
        .header("content-type", content_type)
        .body(body)
        .send()
        .expect("the server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap_or_default())
}

/// The server's peak resident memory so far, bytes.
fn peak_memory(n: &Nimbus) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

const SAMPLE: &str = r#"{"instances":[{"Age":22,"Sex":"male","Pclass":3}]}"#;

/// A normal request still answers: the server is alive and well.
fn still_serves(n: &Nimbus) {
    let (status, _, body) = post(n, "/titanic/prod/predict", "application/json", SAMPLE.into());
    assert_eq!((status, body.as_str()), (200, r#"{"predictions":[0]}"#));
}

/// A body of `size` bytes: `head`, then `row` repeated, then `tail`.
fn bomb(head: &str, row: &str, tail: &str, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + row.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    while body.len() + row.len() + tail.len() <= size {
        body.extend_from_slice(row.as_bytes());
    }
    // JSON lists end without the separator the rows carry.
    if row.ends_with(',') && !tail.is_empty() {
        body.pop();
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

#[test]
fn csv_header_bomb_is_refused_without_allocation() {
    let n = deployed();
    still_serves(&n);
    let before = peak_memory(&n);
    let name = "x".repeat(1 << 20);
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        // One 1 MB column name, then millions of one-byte rows: each row used to copy the name.
        ("csv", "text/csv", bomb(&format!("{name}\n"), "1\n", "", 9 << 20), "unknown field"),
        (
            "columns",
            "application/json",
            bomb(&format!(r#"{{"instances":{{"{name}":["#), "1,", "]}}", 9 << 20),
            "unknown field",
        ),
        (
            "dataframe_split",
            "application/json",
            bomb(r#"{"dataframe_split":{"data":["#, "[1],", &format!(r#"],"columns":["{name}"]}}}}"#), 9 << 20),
            "unknown field",
        ),
        (
            "records",
            "application/json",
            bomb(r#"{"dataframe_records":["#, &format!(r#"{{"{}":1}},"#, &name[..64]), "]}", 9 << 20),
            "unknown field",
        ),
    ];
    for (what, content_type, body, expected) in cases {
        let size = body.len();
        let (status, _, answer) = post(&n, "/titanic/prod/predict", content_type, body);
        assert_eq!(status, 400, "{what}: {}", &answer[..answer.len().min(300)]);
        assert!(answer.contains(expected), "{what}: {}", &answer[..answer.len().min(300)]);
        assert!(answer.len() < 2 * size, "{what}: the answer does not echo the body");
        still_serves(&n);
    }
    let grown = peak_memory(&n).saturating_sub(before);
    // The body is buffered once (9 MiB) and decoded in place; copying the name into every
    // row would need terabytes.
    assert!(grown < 200 << 20, "peak memory grew by {} MB", grown >> 20);
}

#[test]
fn empty_instances_with_probabilities_cost_a_few_bytes_per_body_byte() {
    let n = deployed();
    still_serves(&n);
    let before = peak_memory(&n);
    // Three bytes a row; the answer would be ~40 bytes a row: over the 6 MiB answer limit.
    let body = bomb(r#"{"return_probabilities":true,"instances":["#, "{},", "]}", 9 << 20);
    let (status, _, answer) = post(&n, "/titanic/prod/predict", "application/json", body);
    assert_eq!(status, 413, "{}", &answer[..answer.len().min(300)]);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert!(v["error"].as_str().unwrap().contains("send fewer instances per request"), "{v}");
    // The same rows with the flag after them (the fast path collects probabilities late).
    let body = bomb(r#"{"instances":["#, "{},", r#"],"return_probabilities":true}"#, 9 << 20);
    let (status, _, _) = post(&n, "/titanic/prod/predict", "application/json", body);
    assert_eq!(status, 413);
    // Fewer rows are answered in full, chunk after chunk.
    let body = bomb(r#"{"instances":["#, "{},", r#"],"return_probabilities":true}"#, 150_000);
    let rows = (body.len() - 40) / 3;
    let (status, _, answer) = post(&n, "/titanic/prod/predict", "application/json", body);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&answer).unwrap();
    let got = v["predictions"].as_array().unwrap().len();
    assert!(got + 20 > rows && got < rows + 20, "{got} predictions for about {rows} rows");
    assert_eq!(v["probabilities"].as_array().unwrap().len(), got);
    let grown = peak_memory(&n).saturating_sub(before);
    assert!(grown < 200 << 20, "peak memory grew by {} MB", grown >> 20);
    still_serves(&n);
}

#[test]
fn inference_tensors_with_unknown_names_are_refused_before_their_data() {
    let n = deployed();
    let name = "y".repeat(1 << 20);
    let data = vec![json!(1); 1_000_000];
    let body = json!({"inputs": [{"name": name, "shape": [1_000_000], "datatype": "FP32", "data": data}]}).to_string();
    let (code, out, err) = n.cli(&["functions", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    let (status, _, answer) = post(&n, "/titanic/prod/v2/models/predict/infer", "application/json", body.into_bytes());
    assert_eq!(status, 400, "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("unknown input name"), "{}", &answer[..answer.len().min(300)]);
    still_serves(&n);
}

#[test]
fn timed_out_prediction_releases_cpu_and_reports_with_the_gateway_request_id() {
    let n = deployed();
    let rows = vec![r#"{"Age":22,"Sex":"male","Pclass":3}"#; 20_000].join(",");
    let body = format!(r#"{{"instances":[{rows}]}}"#);
    let (status, headers, answer) = post(&n, "/extra/prod/slow", "application/json", body.into_bytes());
    assert_eq!(status, 504, "{answer}");
    assert!(answer.contains("Endpoint request timed out"), "{answer}");
    let id = headers["x-amzn-requestid"].to_str().unwrap().to_string();
    // The function wrote START, END and REPORT under the gateway's id, and counted the timeout.
    let logs = n.ok(&["logs", "slow"]);
    for line in ["START RequestId: ", "END RequestId: ", "REPORT RequestId: "] {
        assert!(logs.contains(&format!("{line}{id}")), "{line}{id} in:\n{logs}");
    }
    assert!(logs.contains(&format!("{id} Task timed out after ")), "the timeout line Lambda writes: {logs}");
    let access = n.ok(&["logs", "extra", "--api"]);
    assert!(access.contains(&format!("\"requestId\":\"{id}\"")), "{access}");
    let (status, metrics) = n.http("GET", "/metrics", b"", None);
    assert_eq!(status, 200);
    assert!(metrics.contains("nimbus_function_timeouts_total{function=\"slow\"} 1"), "{metrics}");
    // The slot comes back once the work stops (within a chunk): nothing stays in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, metrics) = n.http("GET", "/metrics", b"", None);
        if metrics.contains("nimbus_function_concurrent_executions{function=\"slow\"} 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the timed-out work never ended:\n{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    still_serves(&n);
}

#[test]
fn two_apis_cannot_claim_one_host() {
    let n = deployed();
    let dir = n.data_dir().join("hosts");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = r#"
[project]
name = "hosts"

[functions.p]
kind = "model"
model_group = "titanic"

[apis.first]
hosts = ["models.example.test"]
[apis.first.routes]
"POST /predict" = { function = "p" }
[apis.first.stages.prod]

[apis.second]
hosts = ["Models.Example.Test"]
[apis.second.routes]
"POST /predict" = { function = "p" }
[apis.second.stages.prod]
"#;
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    let (code, out, err) = n.cli(&["apply", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("first") && err.contains("second") && err.contains("models.example.test"), "{err}");
    assert!(n.ok(&["apis", "list"]).lines().all(|l| !l.contains("first")), "nothing was applied");
    // Across projects, the server refuses the second claim.
    let (first, second) = toml.split_once("[apis.second]").unwrap();
    std::fs::write(dir.join("nimbus.toml"), first).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    let other = n.data_dir().join("hosts2");
    std::fs::create_dir_all(&other).unwrap();
    let head = first.split("[apis.first]").next().unwrap().replace("name = \"hosts\"", "name = \"hosts2\"");
    std::fs::write(other.join("nimbus.toml"), format!("{head}[apis.second]{second}")).unwrap();
    let (code, _, err) = n.cli(&["apply", other.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already claimed by api first") && err.contains("api second"), "{err}");
}

#[test]
fn a_slow_body_to_the_gateway_gets_408_not_413() {
    use std::io::{Read, Write};
    let n = Nimbus::start_with(&Backend::Sqlite, &["--body-timeout", "1"]);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    n.ok(&["apply", dir.to_str().unwrap()]);
    // One byte of the announced hundred, then nothing.
    let addr = n.endpoint.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /titanic/prod/predict HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = vec![0u8; 4096];
    let got = s.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..got]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("Request Timeout"), "{answer}");
}
