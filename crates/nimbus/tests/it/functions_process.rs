//! Process functions through the real binary with the real runtime client: Python handlers run
//! by `awslambdaric` (from the test venv), deployed from a code bundle by `nimbus apply`, invoked
//! through the Invoke API (signed, as boto3 signs) and the gateway.
//!
//! Covered: cold then warm REPORT lines, `max_concurrency` → 429, a timeout (the instance and
//! a forked child in its own session are killed; a fresh instance answers next), a handler
//! that raises, one that exits, one that fails in init, one over its memory limit, binary
//! bodies both ways, 2.0 and 1.0 events, and no process left behind after shutdown.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use nimbus_iam::sigv4::Signer;
use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus, time_now};

/// The handlers, one module; each function picks one with its handler name.
const APP: &str = r#"
import base64, json, os, sys, time

print("init of app.py", flush=True)

def echo(event, context):
    print("echo saw", context.aws_request_id, flush=True)
    keys = ["_HANDLER", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_REGION", "TZ", "LAMBDA_TASK_ROOT", "GREETING", "API_KEY", "HOME"]
    return {"event": event, "env": {k: os.environ.get(k) for k in keys}, "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(), "arn": context.invoked_function_arn,
            "cwd": os.getcwd(), "pid": os.getpid()}

def sleep(event, context):
    time.sleep(float(event.get("seconds", 30)))
    return "woke"

def boom(event, context):
    raise ValueError("boom " + str(event.get("n")))

def leave(event, context):
    os._exit(3)

def fork(event, context):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        time.sleep(600)
        os._exit(0)
    print("forked", pid, flush=True)
    time.sleep(600)

def hog(event, context):
    x = "x" * (400 << 20)
    return len(x)

def write_code(event, context):
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "planted.py"), "w").write("x = 1")
        return "wrote"
    except OSError as e:
        return "refused: " + type(e).__name__

def http(event, context):
    return {"statusCode": 201, "headers": {"x-seen": event.get("rawPath") or event.get("path")}, "cookies": ["a=1", "b=2"],
            "body": json.dumps(event)}

def binary(event, context):
    data = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    return {"statusCode": 200, "headers": {"content-type": "image/png"},
            "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}

def plain(event, context):
    return {"message": "no statusCode"}

def flaky(event, context):
    # Counts attempts in a file, so the count survives a new instance or a new server.
    count = os.path.join(event["dir"], event["id"] + ".count")
    n = int(open(count).read()) + 1 if os.path.exists(count) else 1
    open(count, "w").write(str(n))
    if n < event["succeed_on"]:
        raise RuntimeError(f"attempt {n} fails")
    open(os.path.join(event["dir"], event["id"] + ".done"), "w").write(str(n))
    return n
"#;

/// `broken.py`: fails while its module is imported (the runtime's init).
const BROKEN: &str = "import json\nraise RuntimeError('cannot start: missing configuration')\n";

fn python() -> Option<String> {
    match std::env::var("NIMBUS_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("skipping process-function tests: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A project of process functions, one per handler, and an API in front of some.
fn project(dir: &Path, python: &str, marker: &str) {
    let code = dir.join("fn");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("app.py"), APP).unwrap();
    std::fs::write(code.join("broken.py"), BROKEN).unwrap();
    let mut toml = String::new();
    let functions: [(&str, &str, &str); 13] = [
        ("flaky", "app.flaky", "async_retry_delay_s = 0.2"),
        ("later", "app.flaky", "async_retry_delay_s = 4"),
        ("echo", "app.echo", "timeout_s = 5\nmax_concurrency = 2"),
        ("sleepy", "app.sleep", "timeout_s = 1\nmax_concurrency = 2"),
        ("boom", "app.boom", ""),
        ("leave", "app.leave", ""),
        ("broken", "broken.handler", ""),
        ("fork", "app.fork", "timeout_s = 1"),
        ("hog", "app.hog", "memory_mb = 128\ntimeout_s = 20"),
        ("write", "app.write_code", ""),
        ("http", "app.http", ""),
        ("binary", "app.binary", ""),
        ("plain", "app.plain", ""),
    ];
    for (name, handler, extra) in functions {
        toml.push_str(&format!(
            "[functions.{name}]\nkind = \"process\"\ncommand = [{python:?}, \"-m\", \"awslambdaric\", {handler:?}]\n\
             handler = {handler:?}\ncode = \"fn\"\n{extra}\n\
             environment = {{ GREETING = \"hello\", NIMBUS_TEST_MARKER = {marker:?} }}\n\
             secrets = {{ API_KEY = \"s3cr3t-value\" }}\n\n"
        ));
    }
    toml.push_str(
        r#"
[apis.fx]
[apis.fx.routes]
"POST /echo/{item}" = { function = "echo" }
"ANY /http/{proxy+}" = { function = "http" }
"POST /legacy/{proxy+}" = { function = "http", payload_format = "1.0" }
"POST /legacy-plain" = { function = "plain", payload_format = "1.0" }
"POST /plain" = { function = "plain" }
"POST /binary" = { function = "binary" }
"POST /boom" = { function = "boom" }
"POST /sleepy" = { function = "sleepy" }
[apis.fx.stages.prod]
variables = { colour = "blue" }
"#,
    );
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
}

/// A signed Invoke API call; returns (status, headers, body).
fn invoke(
    n: &Nimbus,
    function: &str,
    payload: &Value,
    extra: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, String) {
    let (id, secret) = n.credentials();
    let signer = Signer { access_key_id: id, secret, region: "us-east-1".into(), service: "lambda".into() };
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let body = payload.to_string().into_bytes();
    let host = n.endpoint.trim_start_matches("http://").to_string();
    let mut headers = vec![("host".to_string(), host)];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    signer.sign("POST", &path, "", &mut headers, &body, time_now());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut req = client.post(format!("{}{path}", n.endpoint));
    for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let res = req.body(body).send().expect("the server answers");
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    (status, headers, res.text().unwrap_or_default())
}

/// The decoded `X-Amz-Log-Result` of a `Tail` invocation.
fn tail(headers: &BTreeMap<String, String>) -> String {
    let b64 = headers.get("x-amz-log-result").expect("a log tail");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// Processes whose environment carries `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let needle = format!("NIMBUS_TEST_MARKER={marker}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env.split(|b| *b == 0).any(|v| v == needle.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deployed(python: &str, marker: &str) -> Nimbus {
    let n = Nimbus::start(&Backend::Sqlite);
    let dir = n.data_dir().join("project");
    project(&dir, python, marker);
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    assert!(out.contains("function echo: create"), "{out}");
    n
}

#[test]
fn python_handlers_run_cold_then_warm_with_lambdas_report_lines() {
    let Some(python) = python() else { return };
    let marker = nimbus_core::new_id();
    let n = deployed(&python, &marker);
    let (status, headers, body) = invoke(&n, "echo", &json!({"x": 1}), &[("x-amz-log-type", "Tail")]);
    assert_eq!(status, 200, "{body}");
    assert!(!headers.contains_key("x-amz-function-error"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"], json!({"x": 1}), "the payload reaches the handler as it was sent");
    assert_eq!(v["env"]["_HANDLER"], "app.echo");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(v["env"]["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/echo");
    assert_eq!(v["env"]["AWS_REGION"], "us-east-1");
    assert_eq!(v["env"]["TZ"], ":UTC");
    assert_eq!(v["env"]["GREETING"], "hello");
    assert_eq!(v["env"]["API_KEY"], "s3cr3t-value", "the sealed secret is opened for the process");
    assert_eq!(v["arn"], "arn:aws:lambda:us-east-1:000000000000:function:echo");
    assert_eq!(v["cwd"], v["env"]["LAMBDA_TASK_ROOT"], "the handler runs in its task root");
    let remaining = v["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 5000, "the deadline is the function's timeout: {remaining}");
    let request_id = headers["x-amzn-requestid"].clone();
    assert_eq!(v["request_id"], request_id.as_str());
    let log = tail(&headers);
    assert!(log.contains(&format!("START RequestId: {request_id} Version: $LATEST")), "{log}");
    assert!(log.contains(&format!("echo saw {request_id}")), "the handler's print is in the tail: {log}");
    let report = log.lines().find(|l| l.starts_with("REPORT")).expect("a REPORT line");
    assert!(report.contains("\tMemory Size: 256 MB\tMax Memory Used: "), "{report}");
    assert!(report.contains("\tInit Duration: "), "a cold start reports its init: {report}");

    let (_, headers, body) = invoke(&n, "echo", &json!({"x": 2}), &[("x-amz-log-type", "Tail")]);
    let warm: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(warm["pid"], v["pid"], "the warm instance is reused");
    let report = tail(&headers).lines().find(|l| l.starts_with("REPORT")).unwrap().to_string();
    assert!(!report.contains("Init Duration"), "a warm invocation has no init: {report}");
    let used: u64 = report.split("Max Memory Used: ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(used > 1, "memory is measured: {report}");

    // The secret never shows in what the server returns or logs.
    let described = n.ok(&["functions", "describe", "echo", "--output", "json"]);
    assert!(!described.contains("s3cr3t-value"), "{described}");
    assert!(!n.server_log().contains("s3cr3t-value"));
    // Re-applying the same project changes nothing (the sealed secret is kept).
    let again = n.ok(&["apply", n.data_dir().join("project").to_str().unwrap()]);
    assert!(again.contains("function echo: unchanged"), "{again}");
}

#[test]
fn errors_timeouts_crashes_and_memory_surface_as_lambda_does() {
    let Some(python) = python() else { return };
    let marker = nimbus_core::new_id();
    let n = deployed(&python, &marker);

    // A handler that raises: 200, Unhandled, the runtime's error document.
    let (status, headers, body) = invoke(&n, "boom", &json!({"n": 7}), &[]);
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-amz-function-error").map(String::as_str), Some("Unhandled"));
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((e["errorType"].as_str(), e["errorMessage"].as_str()), (Some("ValueError"), Some("boom 7")), "{body}");

    // A handler that exits.
    let (_, headers, body) = invoke(&n, "leave", &json!({}), &[("x-amz-log-type", "Tail")]);
    assert_eq!(headers.get("x-amz-function-error").map(String::as_str), Some("Unhandled"));
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["errorType"], "Runtime.ExitError", "{body}");
    assert!(e["errorMessage"].as_str().unwrap().ends_with("Error: Runtime exited with error: exit status 3"), "{body}");
    assert!(tail(&headers).contains("Runtime exited with error: exit status 3"));

    // A module that fails while it is imported.
    let (_, headers, body) = invoke(&n, "broken", &json!({}), &[]);
    assert_eq!(headers.get("x-amz-function-error").map(String::as_str), Some("Unhandled"));
    let e: Value = serde_json::from_str(&body).unwrap();
    // awslambdaric posts the exception to init/error; it comes back as it was posted.
    assert_eq!(e["errorType"], "RuntimeError", "{body}");
    assert_eq!(e["errorMessage"], "cannot start: missing configuration", "{body}");

    // Past its timeout: the AWS timeout error and log line, and a fresh instance next time.
    let (_, headers, body) = invoke(&n, "sleepy", &json!({"seconds": 30}), &[("x-amz-log-type", "Tail")]);
    assert_eq!(headers.get("x-amz-function-error").map(String::as_str), Some("Unhandled"));
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["errorMessage"], "Task timed out after 1.00 seconds", "{body}");
    assert!(tail(&headers).contains("Task timed out after 1.00 seconds"));
    let (_, headers, body) = invoke(&n, "sleepy", &json!({"seconds": 0}), &[("x-amz-log-type", "Tail")]);
    assert_eq!(body, "\"woke\"");
    assert!(tail(&headers).contains("Init Duration"), "a fresh instance after the timeout");

    // A handler that forks a child into its own session and times out: nothing survives.
    let (_, _, body) = invoke(&n, "fork", &json!({}), &[]);
    assert!(body.contains("Task timed out after 1.00 seconds"), "{body}");
    wait_until("the forked child to be killed", Duration::from_secs(10), || {
        // Only instances of other functions may remain; none of `fork`'s.
        processes_with(&marker).iter().all(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !String::from_utf8_lossy(&cmdline).contains("app.fork")
        })
    });

    // Over its memory limit: killed by the kernel, reported as Lambda does.
    let (_, headers, body) = invoke(&n, "hog", &json!({}), &[("x-amz-log-type", "Tail")]);
    assert_eq!(headers.get("x-amz-function-error").map(String::as_str), Some("Unhandled"), "{body}");
    assert!(body.contains("Runtime exited with error: signal: killed"), "{body}");
    let log = tail(&headers);
    assert!(log.contains("more than its memory limit of 128 MB"), "{log}");

    // The task root is read-only.
    let (_, _, body) = invoke(&n, "write", &json!({}), &[]);
    assert!(body.starts_with("\"refused: "), "the code cannot be changed by the handler: {body}");

    // Beyond max_concurrency: 429 at once, not a queue.
    let n = std::sync::Arc::new(n);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let n = n.clone();
            std::thread::spawn(move || invoke(&n, "sleepy", &json!({"seconds": 0.8}), &[]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, headers, body) = invoke(&n, "sleepy", &json!({"seconds": 0}), &[]);
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers.get("x-amzn-errortype").map(String::as_str), Some("TooManyRequestsException"));
    for b in busy {
        assert_eq!(b.join().unwrap().2, "\"woke\"");
    }
}

#[test]
fn the_gateway_sends_api_gateway_events_and_reads_proxy_responses() {
    let Some(python) = python() else { return };
    let marker = nimbus_core::new_id();
    let n = deployed(&python, &marker);
    let client = reqwest::blocking::Client::new();
    let url = |p: &str| format!("{}/fx/prod{p}", n.endpoint);

    // 2.0: the handler echoes the event it got.
    let res = client
        .post(url("/echo/42?b=2&a=1&a=3"))
        .header("cookie", "c1=v1; c2=v2")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .body(r#"{"hello":"world"}"#)
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().unwrap();
    let e = &v["event"];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "POST /echo/{item}");
    assert_eq!(e["rawPath"], "/fx/prod/echo/42");
    assert_eq!(e["rawQueryString"], "b=2&a=1&a=3");
    assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["headers"]["x-multi"], "one,two");
    assert!(e["headers"].get("cookie").is_none(), "cookies are not repeated in headers");
    assert_eq!(e["queryStringParameters"], json!({"a": "1,3", "b": "2"}));
    assert_eq!(e["pathParameters"], json!({"item": "42"}));
    assert_eq!(e["stageVariables"], json!({"colour": "blue"}));
    assert_eq!(e["body"], r#"{"hello":"world"}"#);
    assert_eq!(e["isBase64Encoded"], false);
    let rc = &e["requestContext"];
    assert_eq!(rc["apiId"], "fx");
    assert_eq!(rc["stage"], "prod");
    assert_eq!(rc["routeKey"], "POST /echo/{item}");
    assert_eq!(rc["http"]["method"], "POST");
    assert_eq!(rc["http"]["path"], "/fx/prod/echo/42");
    assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["accountId"], "000000000000");
    assert!(rc["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(rc["timeEpoch"].as_i64().is_some());

    // The proxy response: status, headers, cookies.
    let res = client.get(url("/http/a/b")).send().unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-seen"], "/fx/prod/http/a/b");
    let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let inner: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(inner["pathParameters"], json!({"proxy": "a/b"}));

    // 1.0: the REST-style event.
    let res = client
        .post(url("/legacy/x/y?k=1&k=2"))
        .header("x-multi", "one")
        .header("x-multi", "two")
        .body("hi")
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    let e: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["resource"], "/legacy/{proxy+}");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["one", "two"]));
    assert_eq!(e["multiValueQueryStringParameters"]["k"], json!(["1", "2"]));
    assert_eq!(e["queryStringParameters"]["k"], "2");
    assert_eq!(e["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(e["body"], "hi");

    // Plain JSON without statusCode: 200 JSON for 2.0, 502 for 1.0.
    let res = client.post(url("/plain")).body("{}").send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.json::<Value>().unwrap(), json!({"message": "no statusCode"}));
    let res = client.post(url("/legacy-plain")).body("{}").send().unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().unwrap(), json!({"message": "Internal Server Error"}));

    // Binary both ways: a PNG upload arrives base64 and the reversed bytes come back as bytes.
    let png: Vec<u8> = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe].to_vec();
    let res = client.post(url("/binary")).header("content-type", "image/png").body(png.clone()).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let mut reversed = png.clone();
    reversed.reverse();
    assert_eq!(res.bytes().unwrap().to_vec(), reversed);

    // A function error is 502, a timeout 504.
    let res = client.post(url("/boom")).body("{}").send().unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().unwrap(), json!({"message": "Internal Server Error"}));
    let res = client.post(url("/sleepy")).body(r#"{"seconds": 30}"#).send().unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.json::<Value>().unwrap(), json!({"message": "Endpoint request timed out"}));
}

#[test]
fn no_instance_survives_the_server() {
    let Some(python) = python() else { return };
    let marker = nimbus_core::new_id();
    let mut n = deployed(&python, &marker);
    for f in ["echo", "http", "plain"] {
        let (status, _, body) = invoke(&n, f, &json!({}), &[]);
        assert_eq!(status, 200, "{body}");
    }
    assert!(processes_with(&marker).len() >= 3, "three warm instances run");
    assert!(n.stop(), "the server stops on SIGTERM");
    wait_until("every instance to end", Duration::from_secs(10), || processes_with(&marker).is_empty());

    // And after kill -9 of the server: the supervisors see their stdin close.
    n.start_again();
    let (status, _, _) = invoke(&n, "echo", &json!({}), &[]);
    assert_eq!(status, 200);
    assert!(!processes_with(&marker).is_empty());
    n.kill9();
    wait_until("every instance to end after kill -9", Duration::from_secs(10), || processes_with(&marker).is_empty());
}

#[test]
fn asynchronous_events_are_retried_kept_when_they_fail_and_survive_a_restart() {
    let Some(python) = python() else { return };
    let marker = nimbus_core::new_id();
    let mut n = deployed(&python, &marker);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_str().unwrap().to_string();
    let event = |id: &str, succeed_on: u32| json!({"dir": dir, "id": id, "succeed_on": succeed_on});
    let read = |name: &str| std::fs::read_to_string(scratch.path().join(name)).ok();

    // Fails twice, then succeeds on the second retry.
    let (status, _, body) = invoke(&n, "flaky", &event("a", 3), &[("x-amz-invocation-type", "Event")]);
    assert_eq!(status, 202, "{body}");
    wait_until("event a to succeed", Duration::from_secs(30), || read("a.done").is_some());
    assert_eq!(read("a.done").as_deref(), Some("3"), "the first attempt and two retries");
    // Always fails: three attempts, then kept with its error.
    let (status, _, _) = invoke(&n, "flaky", &event("b", 99), &[("x-amz-invocation-type", "Event")]);
    assert_eq!(status, 202);
    let mut failures = Value::Null;
    wait_until("event b to be kept as failed", Duration::from_secs(30), || {
        failures = n.json(&["functions", "failures", "flaky"]);
        failures["failures"].as_array().is_some_and(|f| !f.is_empty())
    });
    let failed = &failures["failures"][0];
    assert_eq!(failed["attempts"], 3, "{failures}");
    assert_eq!(failed["error"]["errorType"], "RuntimeError", "{failures}");
    assert_eq!(failed["error"]["errorMessage"], "attempt 3 fails", "{failures}");
    assert!(
        failed["payload"].as_str().unwrap().contains("\"id\": \"b\"")
            || failed["payload"].as_str().unwrap().contains("\"id\":\"b\"")
    );
    assert_eq!(read("b.count").as_deref(), Some("3"));
    let table = n.ok(&["functions", "failures", "flaky"]);
    assert!(table.contains("RuntimeError: attempt 3 fails"), "{table}");

    // The first attempt fails and the retry waits 4 s; the server is killed meanwhile. The
    // event was written before the 202, so the restarted server runs it.
    let (status, _, _) = invoke(&n, "later", &event("c", 2), &[("x-amz-invocation-type", "Event")]);
    assert_eq!(status, 202);
    wait_until("the first attempt of event c", Duration::from_secs(30), || read("c.count").is_some());
    n.kill9();
    assert!(read("c.done").is_none());
    n.start_again();
    wait_until("event c to run after the restart", Duration::from_secs(60), || read("c.done").is_some());
    assert_eq!(read("c.done").as_deref(), Some("2"));
}
