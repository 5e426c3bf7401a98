//! Function (Lambda) authorizers through the real binary: a Python authorizer run by
//! `awslambdaric` decides gateway routes with simple responses, its context reaches the
//! route's function as `requestContext.authorizer.lambda`, and its results are cached by the
//! `Authorization` value for `ttl_s` (or not at all with `ttl_s = 0`).
//!
//! The authorizer appends one line per invocation to a file in a fresh directory outside the
//! server's data directory (which the sandbox denies), so the test counts its calls.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Nimbus;

/// The authorizer: allows `Authorization: allow-…`, denies anything else, records each call.
const AUTH: &str = r#"
import json, os

def handler(event, context):
    with open(os.path.join(os.environ["CALLS_DIR"], "calls"), "a") as f:
        f.write(json.dumps({"type": event.get("type"), "routeArn": event.get("routeArn"),
                            "identitySource": event.get("identitySource"), "version": event.get("version"),
                            "hasBody": "body" in event}) + "\n")
    token = event["headers"].get("authorization", "")
    return {"isAuthorized": token.startswith("allow-"), "context": {"user": "alice", "n": 1}}

def boom(event, context):
    raise RuntimeError("the authorizer broke")
"#;

/// The route's function: answers what the gateway told it about the caller.
const ECHO: &str = r#"
def handler(event, context):
    return {"authorizer": event["requestContext"].get("authorizer"), "path": event["rawPath"]}
"#;

fn python() -> Option<String> {
    match std::env::var("NIMBUS_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("skipping function-authorizer tests: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// Opens `dir` to everyone: with `--process-sandbox uid` the functions run as another user.
fn open_to_all(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes the code and the project into `root`; returns the project directory.
fn project(root: &Path, python: &str) -> std::path::PathBuf {
    let code = root.join("code");
    let calls = root.join("calls");
    let project = root.join("project");
    for d in [&code, &calls, &project] {
        std::fs::create_dir_all(d).unwrap();
    }
    open_to_all(root, 0o755);
    open_to_all(&code, 0o755);
    open_to_all(&calls, 0o777);
    std::fs::write(code.join("auth.py"), AUTH).unwrap();
    std::fs::write(code.join("echo.py"), ECHO).unwrap();
    let env = format!(
        "environment = {{ PYTHONPATH = {:?}, CALLS_DIR = {:?} }}",
        code.display().to_string(),
        calls.display().to_string()
    );
    let mut toml = String::new();
    for (name, handler) in [("authz", "auth.handler"), ("authboom", "auth.boom"), ("echo", "echo.handler")] {
        toml.push_str(&format!(
            "[functions.{name}]\nkind = \"process\"\ncommand = [{python:?}, \"-m\", \"awslambdaric\", {handler:?}]\n\
             handler = {handler:?}\n{env}\n\n"
        ));
    }
    toml.push_str(
        r#"
[apis.shop.routes]
"GET /items" = { function = "echo", auth = "function:authz" }
"GET /broken" = { function = "echo", auth = "function:authboom" }
[apis.shop.stages.prod]
[apis.shop.function_authorizers.authz]
identity_source = ["$request.header.Authorization"]
ttl_s = 300

[apis.nocache.routes]
"GET /items" = { function = "echo", auth = "function:authz" }
[apis.nocache.stages.prod]
[apis.nocache.function_authorizers.authz]
ttl_s = 0
"#,
    );
    std::fs::write(project.join("nimbus.toml"), toml).unwrap();
    project
}

/// The authorizer's invocations so far, one JSON object each.
fn calls(root: &Path) -> Vec<Value> {
    std::fs::read_to_string(root.join("calls").join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `GET {endpoint}{path}` with `Authorization: token` when given; returns (status, JSON body).
fn get(n: &Nimbus, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut req = client.get(format!("{}{path}", n.endpoint));
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.send().expect("the server answers");
    let status = res.status().as_u16();
    let text = res.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

#[test]
fn function_authorizers_allow_deny_and_cache_by_identity_source() {
    let Some(python) = python() else { return };
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), &python);
    let n = Nimbus::start(&crate::harness::Backend::Sqlite);
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    assert!(out.contains("api      shop: create"), "{out}");
    assert!(!out.contains("public"), "no route is open: {out}");

    // Allowed: the authorizer's context reaches the route's function.
    let (status, body) = get(&n, "/shop/prod/items", Some("allow-alice"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorizer"], json!({ "lambda": { "user": "alice", "n": 1 } }), "{body}");
    let seen = calls(root.path());
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0],
        json!({
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:000000000000:shop/prod/GET/items",
            "identitySource": ["allow-alice"],
            "version": "2.0",
            "hasBody": false
        })
    );

    // The same token again: the cached result, no second call.
    let (status, body) = get(&n, "/shop/prod/items", Some("allow-alice"));
    assert_eq!((status, &body["authorizer"]["lambda"]["user"]), (200, &json!("alice")), "{body}");
    assert_eq!(calls(root.path()).len(), 1, "the result for allow-alice is cached");

    // Another token: another call.
    let (status, _) = get(&n, "/shop/prod/items", Some("allow-bob"));
    assert_eq!(status, 200);
    assert_eq!(calls(root.path()).len(), 2, "allow-bob is another identity");

    // Denied: 403 Forbidden; the denial is cached too.
    for _ in 0..2 {
        let (status, body) = get(&n, "/shop/prod/items", Some("deny-mallory"));
        assert_eq!((status, body), (403, json!({ "message": "Forbidden" })));
    }
    assert_eq!(calls(root.path()).len(), 3, "one call for deny-mallory");

    // No identity source: 401 Unauthorized without calling the authorizer.
    let (status, body) = get(&n, "/shop/prod/items", None);
    assert_eq!((status, body), (401, json!({ "message": "Unauthorized" })));
    let (status, _) = get(&n, "/shop/prod/items", Some(""));
    assert_eq!(status, 401, "an empty header is a missing one");
    assert_eq!(calls(root.path()).len(), 3, "no call without an Authorization header");

    // ttl_s = 0: every request calls the authorizer.
    for i in 1..=2 {
        let (status, body) = get(&n, "/nocache/prod/items", Some("allow-alice"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(calls(root.path()).len(), 3 + i, "request {i} on the uncached API calls the authorizer");
    }

    // An authorizer that fails: 500, as API Gateway answers.
    let (status, body) = get(&n, "/shop/prod/broken", Some("allow-alice"));
    assert_eq!((status, body), (500, json!({ "message": "Internal Server Error" })));

    // The access log carries each decision.
    let log = n.json(&["logs", "shop", "--api"]);
    let lines: Vec<Value> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l["text"].as_str().unwrap()).unwrap())
        .collect();
    let has = |status: u16, authorization: &str, reason: &str| {
        lines.iter().any(|l| {
            l["status"] == status
                && l["auth"] == "function:authz"
                && l["authorization"] == authorization
                && l["authorizationReason"].as_str().unwrap_or_default().contains(reason)
        })
    };
    assert!(has(200, "allow", "authorized (cached)"), "{lines:#?}");
    assert!(has(200, "allow", "authorized"), "{lines:#?}");
    assert!(has(403, "deny", "isAuthorized false"), "{lines:#?}");
    assert!(has(401, "deny", "$request.header.authorization"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["status"] == 200 && l["principal"] == "function:authz"),
        "the principal names the authorizer: {lines:#?}"
    );
    assert!(!n.server_log().contains("allow-alice"), "tokens stay out of the server log");
}

#[test]
fn an_api_naming_an_undeclared_authorizer_function_is_refused() {
    let n = Nimbus::start(&crate::harness::Backend::Sqlite);
    // The project check (CLI) and the server's own check (admin API) both refuse it.
    let root = tempfile::tempdir().unwrap();
    let project = root.path();
    std::fs::write(
        project.join("nimbus.toml"),
        "[functions.echo]\nkind = \"process\"\ncommand = [\"python3\", \"-m\", \"awslambdaric\", \"echo.handler\"]\n\
         handler = \"echo.handler\"\n\
         [apis.shop.routes]\n\"GET /items\" = { function = \"echo\", auth = \"function:nobody\" }\n[apis.shop.stages.prod]\n",
    )
    .unwrap();
    let (code, _, err) = n.cli(&["apply", project.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("routes.\"GET /items\".auth") && err.contains("[functions.nobody]"), "{err}");

    let spec = json!({
        "routes": { "GET /items": { "function": "echo", "auth": "function:nobody" } },
        "stages": { "prod": {} }
    });
    let signer = n.signer();
    let function = json!({ "kind": "process", "command": ["python3", "-m", "awslambdaric", "echo.handler"],
                           "handler": "echo.handler" });
    let (status, body) = n.http("PUT", "/_nimbus/v1/functions/echo", function.to_string().as_bytes(), Some(&signer));
    assert_eq!(status, 200, "{body}");
    let (status, body) = n.http("PUT", "/_nimbus/v1/apis/shop", spec.to_string().as_bytes(), Some(&signer));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("authorizer function \\\"nobody\\\" does not exist"), "{body}");
}
