//! The process-function examples, deployed as a user deploys them (`nimbus apply examples/…`)
//! and called through the gateway:
//!
//! - `examples/hello-python`: the seed 001 handler. Its `requirements.txt` (awslambdaric,
//!   requests) is installed from PyPI into the bundle; it answers 405 on GET, 400 on a bad
//!   body, and calls an outside model API (here a small server of the test) with the key from
//!   its sealed secret.
//! - `examples/rust-hello`: a handler built with the `lambda_runtime` crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A stand-in for the outside model API: answers `{"analysis": …}` to a request with the right
/// `x-api-key`, 403 otherwise; records the keys it saw.
fn model_api(expected_key: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/analyze", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut key, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("x-api-key:") {
                    key = line[line.len() - v.len()..].trim().to_string();
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(key.clone());
            let (status, answer) = if key == expected_key {
                ("200 OK", json!({"analysis": "a scarab amulet", "bytes": body.len()}).to_string())
            } else {
                ("403 Forbidden", "{}".to_string())
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn the_seed_001_handler_deploys_with_its_requirements_and_answers_as_written() {
    if std::env::var("NIMBUS_TEST_PYTHON").map_or(true, |p| p.is_empty()) {
        eprintln!("skipping the Python example: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    }
    let (url, seen) = model_api("key-of-the-model-api");
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("hello-python");
    copy_dir(&example("hello-python"), &dir);
    let toml = std::fs::read_to_string(dir.join("nimbus.toml"))
        .unwrap()
        .replace("http://127.0.0.1:9/analyze", &url)
        .replace("\"replace-me\"", "\"key-of-the-model-api\"");
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    let key = out
        .lines()
        .find_map(|l| l.split("(value ").nth(1).and_then(|v| v.split(':').next()))
        .unwrap_or_else(|| panic!("apply prints the API key: {out}"))
        .to_string();
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build().unwrap();
    let url = format!("{}/art/prod/analyze", n.endpoint);
    let post = |body: &str| {
        let res = client.post(&url).header("x-api-key", &key).body(body.to_string()).send().unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().unwrap_or(Value::Null))
    };
    // The first call waits for the bundle's requirements (pip, once per code version).
    let (status, v) = post(r#"{"image": "aGVsbG8="}"#);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["analysis"], "a scarab amulet");
    assert_eq!(seen.lock().unwrap().as_slice(), ["key-of-the-model-api"], "the sealed secret reached the handler");
    let (status, v) = post("not json");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().starts_with("the body is not JSON"), "{v}");
    let (status, v) = post(r#"{"speed": "fast"}"#);
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("the field \"image\" is missing: send a base64-encoded image"))
    );
    let res = client.get(&url).header("x-api-key", &key).send().unwrap();
    assert_eq!(res.status(), 405);
    let res = client.post(&url).body("{}").send().unwrap();
    assert_eq!(res.status(), 403, "the route takes an API key");
    let logs = n.ok(&["logs", "art"]);
    assert!(logs.contains("Received image: 8 characters (base64)"), "{logs}");
}

#[test]
fn the_rust_lambda_runtime_example_answers_through_the_gateway() {
    // The example's binary, built by cargo beside this test's executable.
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(Path::parent).map(|d| d.join("rust-hello")).unwrap();
    if !binary.is_file() {
        eprintln!("skipping: {} is not built (cargo test --workspace builds it)", binary.display());
        return;
    }
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("rust-hello");
    copy_dir(&example("rust-hello"), &dir);
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(&binary, bundle.join("bootstrap")).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/hello/prod/hello", n.endpoint);
    let res = client.post(&url).body(r#"{"name": "Ada"}"#).send().unwrap();
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
    let v: Value = res.json().unwrap();
    assert_eq!(v, json!({"message": "Hello Ada!", "requestId": id}), "the handler sees the gateway's request id");
    let res = client.post(&url).body("nope").send().unwrap();
    assert_eq!(res.status(), 400);
    let logs = n.ok(&["logs", "rust-hello"]);
    assert!(logs.contains(&format!("REPORT RequestId: {id}")), "{logs}");
    assert!(logs.contains("Init Duration"), "{logs}");
}
