//! IAM through the real binary and the real clients.
//!
//! - An `auth = "iam"` gateway route called the seeds' way (requests-aws4auth, and botocore's
//!   `SigV4Auth`, service `execute-api`, region `eu-west-3`): unsigned and unauthorised calls are
//!   refused with API Gateway's answers; the seed's policy, attached while the server runs,
//!   lets the caller in; explicit and conditional (`aws:SourceIp`) denials, a wrong secret, a
//!   deactivated key and a deleted user are refused from the very next request on.
//! - The admin API authorised by the caller's policies: a read-only user lists and describes
//!   but may not approve (`AccessDenied` naming the action and the version's ARN) until the
//!   admin attaches a policy that allows it, with no restart; a broken policy document is
//!   refused naming the statement's key.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus, backends, bundle, write_file};

const SEEDS_SAMPLE: &str = r#"{"instances":[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},{"Age":38,"Sex":"female","Pclass":1}]}"#;

/// The region the gateway test runs the server in (the seeds' region).
const REGION: &str = "eu-west-3";
/// The server's account (the default).
const ACCOUNT: &str = "000000000000";

/// The route appended to the example's `[apis.titanic.routes]`.
const PRIVATE_ROUTE: &str = r#""POST /private/predict" = { function = "predict", auth = "iam" }"#;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic")
}

/// The Titanic example plus an `iam` route, applied on a server in [`REGION`], trained and
/// version 1 approved.
fn deployed_with_private_route(backend: &Backend) -> Nimbus {
    let n = Nimbus::start_with(backend, &["--region", REGION]);
    let dir = n.data_dir().join("project");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["nimbus.toml", "data/train.csv", "data/test.csv", "data/sample_request.json"] {
        std::fs::copy(example().join(f), dir.join(f)).unwrap();
    }
    let anchor = "[apis.titanic.routes]\n";
    let toml = std::fs::read_to_string(dir.join("nimbus.toml")).unwrap();
    assert!(toml.contains(anchor), "the example declares its routes under {anchor:?}");
    std::fs::write(dir.join("nimbus.toml"), toml.replacen(anchor, &format!("{anchor}{PRIVATE_ROUTE}\n"), 1)).unwrap();
    let out = n.ok(&["apply", dir.to_str().unwrap()]);
    assert!(out.contains("POST /private/predict"), "{out}");
    assert!(out.contains("public   POST /titanic/prod/predict"), "the open route is listed as public: {out}");
    assert!(!out.contains("/private/predict: no authorization"), "the iam route is not public: {out}");
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    n
}

/// Runs `tests/python/execute_api.py` with a configuration; returns its results, one a request.
struct PythonClient {
    python: String,
    endpoint: String,
}

impl PythonClient {
    /// The interpreter, or `None` (with the reason printed) when none is configured.
    fn python() -> Option<String> {
        match std::env::var("NIMBUS_TEST_PYTHON") {
            Ok(python) if !python.is_empty() => Some(python),
            _ => {
                eprintln!("skipping the Python client test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
                None
            }
        }
    }

    /// Sends each of `requests` (see the script's doc) to the private route.
    fn run(&self, key: &Key, requests: Value) -> Vec<Value> {
        let config = json!({
            "endpoint": self.endpoint,
            "region": REGION,
            "path": "/titanic/prod/private/predict",
            "body": serde_json::from_str::<Value>(SEEDS_SAMPLE).unwrap(),
            "key": key.id,
            "secret": key.secret,
            "requests": requests,
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/execute_api.py");
        let out = Command::new(&self.python).arg(script).arg(config.to_string()).output().expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "execute_api.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        v["results"].as_array().unwrap().clone()
    }

    /// One request in `mode` (`unsigned`, `aws4auth`, `botocore`); returns (status, answer).
    fn one(&self, key: &Key, mode: &str) -> (u16, Value) {
        let r = self.run(key, json!([{ "mode": mode }])).remove(0);
        (r["status"].as_u64().unwrap() as u16, r["json"].clone())
    }

    /// Both signing clients; returns (status, answer) of each, aws4auth first.
    fn both(&self, key: &Key) -> [(u16, Value); 2] {
        let r = self.run(key, json!([{ "mode": "aws4auth" }, { "mode": "botocore" }]));
        let get = |i: usize| (r[i]["status"].as_u64().unwrap() as u16, r[i]["json"].clone());
        [get(0), get(1)]
    }
}

/// An access key pair.
#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

/// Creates `user` with one access key.
fn user_with_key(n: &Nimbus, user: &str) -> Key {
    let out = n.ok(&["iam", "users", "create", user]);
    assert!(out.contains(&format!("arn:aws:iam::{ACCOUNT}:user/{user}")), "{out}");
    let k = n.json(&["iam", "access-keys", "create", user]);
    assert_eq!(k["user"], user);
    Key { id: k["access_key_id"].as_str().unwrap().into(), secret: k["secret_access_key"].as_str().unwrap().into() }
}

/// API Gateway's denial message for `user` on the private route of stage prod.
fn denial_of(user: &str) -> String {
    format!(
        "User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: execute-api:Invoke on resource: \
         arn:aws:execute-api:{REGION}:{ACCOUNT}:titanic/prod/POST/private/predict"
    )
}

fn assert_denied(answer: &(u16, Value), user: &str, why: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 403, "{what}: {body}");
    let message = body["Message"].as_str().unwrap_or_else(|| panic!("{what}: no Message in {body}"));
    assert!(message.starts_with(&denial_of(user)), "{what}: {message}");
    assert!(message.contains(why), "{what}: expected {why:?} in {message}");
}

#[test]
fn iam_routes_take_aws4auth_and_botocore_signatures_and_follow_policy_changes_at_once() {
    let Some(python) = PythonClient::python() else { return };
    for backend in backends() {
        let n = deployed_with_private_route(&backend);
        let py = PythonClient { python: python.clone(), endpoint: n.endpoint.clone() };
        let caller = user_with_key(&n, "caller");

        // What the open route answers: the private route must answer the same when allowed.
        let (status, open) = n.http("POST", "/titanic/prod/predict", SEEDS_SAMPLE.as_bytes(), None);
        assert_eq!(status, 200, "{open}");
        let expected = serde_json::from_str::<Value>(&open).unwrap()["predictions"].clone();
        assert_eq!((&expected[0], &expected[2]), (&json!(0), &json!(1)), "{open}");
        let allowed = |answer: &(u16, Value), what: &str| {
            assert_eq!(answer.0, 200, "{what}: {}", answer.1);
            assert_eq!(answer.1["predictions"], expected, "{what}: {}", answer.1);
        };

        // No signature: API Gateway's answer, word for word.
        let (status, body) = py.one(&caller, "unsigned");
        assert_eq!((status, body), (403, json!({"message": "Missing Authentication Token"})));

        // Signed by a user that holds no policy: both clients are refused, naming the route's ARN.
        for (i, answer) in py.both(&caller).iter().enumerate() {
            assert_denied(answer, "caller", "no identity-based policy allows", &format!("no policy, client {i}"));
        }

        // The seed's policy, verbatim with this region, attached while the server runs.
        let seed_policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:titanic/*/POST/private/predict"),
            }]
        });
        let file = write_file(n.data_dir(), "invoke-private.json", &seed_policy.to_string());
        n.ok(&["iam", "policies", "put", "invoke-private", file.to_str().unwrap()]);
        let out = n.ok(&["iam", "policies", "attach", "invoke-private", "--user", "caller"]);
        assert!(out.contains("from the next request on"), "{out}");
        let [a4a, boto] = py.both(&caller);
        allowed(&a4a, "requests-aws4auth after attach");
        allowed(&boto, "botocore after attach");
        // The policy's `*` stage covers dev too.
        let dev = py.run(&caller, json!([{ "mode": "aws4auth", "path": "/titanic/dev/private/predict" }]));
        assert_eq!(dev[0]["status"], 200, "{}", dev[0]["text"]);

        // An explicit Deny wins over the Allow; removing it restores access.
        let deny = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "NoPrivatePredictions",
                "Effect": "Deny",
                "Action": "execute-api:Invoke",
                "Resource": format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:titanic/*"),
            }]
        });
        let file = write_file(n.data_dir(), "deny.json", &deny.to_string());
        n.ok(&["iam", "policies", "put-inline", "deny-invoke", file.to_str().unwrap(), "--user", "caller"]);
        for (i, answer) in py.both(&caller).iter().enumerate() {
            assert_denied(answer, "caller", "explicit deny", &format!("explicit deny, client {i}"));
        }
        n.ok(&["iam", "policies", "delete-inline", "deny-invoke", "--user", "caller"]);
        allowed(&py.one(&caller, "aws4auth"), "after the deny was removed");

        // A Deny conditioned on the source address: this test calls from 127.0.0.1.
        let conditional = |operator: &str| {
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Deny",
                    "Action": "execute-api:Invoke",
                    "Resource": "*",
                    "Condition": { operator: { "aws:SourceIp": "127.0.0.0/8" } },
                }]
            })
        };
        let file = write_file(n.data_dir(), "deny-loopback.json", &conditional("IpAddress").to_string());
        n.ok(&["iam", "policies", "put-inline", "deny-source", file.to_str().unwrap(), "--user", "caller"]);
        assert_denied(&py.one(&caller, "botocore"), "caller", "explicit deny", "deny from 127.0.0.0/8");
        // The same Deny for every address *but* loopback does not apply to this caller.
        let file = write_file(n.data_dir(), "deny-elsewhere.json", &conditional("NotIpAddress").to_string());
        n.ok(&["iam", "policies", "put-inline", "deny-source", file.to_str().unwrap(), "--user", "caller"]);
        allowed(&py.one(&caller, "botocore"), "deny from everywhere but 127.0.0.0/8");
        n.ok(&["iam", "policies", "delete-inline", "deny-source", "--user", "caller"]);

        // A wrong secret: the signature is refused, by both clients, before any policy.
        let wrong = Key { secret: format!("{}x", caller.secret), ..caller.clone() };
        for (i, (status, body)) in py.both(&wrong).iter().enumerate() {
            assert_eq!(*status, 403, "wrong secret, client {i}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("signature we calculated does not match"), "wrong secret, client {i}: {body}");
        }

        // A deactivated key is refused from the very next request; activated, it works again.
        n.ok(&["iam", "access-keys", "deactivate", "caller", &caller.id]);
        for (i, (status, body)) in py.both(&caller).iter().enumerate() {
            assert_eq!(*status, 403, "inactive key, client {i}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("security token included in the request is invalid"), "client {i}: {body}");
            assert!(message.contains(&caller.id), "the refusal names the key: {body}");
        }
        n.ok(&["iam", "access-keys", "activate", "caller", &caller.id]);
        allowed(&py.one(&caller, "aws4auth"), "after activate");

        // A deleted user's key is refused at once.
        n.ok(&["iam", "users", "delete", "caller"]);
        for (i, (status, body)) in py.both(&caller).iter().enumerate() {
            assert_eq!(*status, 403, "deleted user, client {i}: {body}");
            assert!(body["message"].as_str().unwrap_or_default().contains("invalid"), "client {i}: {body}");
        }
        // The open route never needed any of this.
        let (status, _) = n.http("POST", "/titanic/prod/predict", SEEDS_SAMPLE.as_bytes(), None);
        assert_eq!(status, 200);
    }
}

/// Runs the CLI signed with `key` from the environment (`AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY`), with a data directory that holds no credentials of its own, so
/// nothing can fall back to the admin key.
fn cli_as(n: &Nimbus, key: &Key, args: &[&str]) -> (i32, String, String) {
    let home = n.data_dir().join("elsewhere");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(args)
        .env("NIMBUS_DATA_DIR", &home)
        .env("NIMBUS_ENDPOINT", &n.endpoint)
        .env("NIMBUS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok_as(n: &Nimbus, key: &Key, args: &[&str]) -> String {
    let (code, out, err) = cli_as(n, key, args);
    assert_eq!(code, 0, "nimbus {args:?} as a non-admin failed: {err}");
    out
}

#[test]
fn admin_api_allows_what_the_callers_policies_allow_and_follows_changes_without_restart() {
    for backend in backends() {
        let n = Nimbus::start(&backend);
        let b = write_file(n.data_dir(), "b.json", &bundle(0.86));
        n.ok(&["models", "import", "titanic", b.to_str().unwrap()]);
        let reader = user_with_key(&n, "reader");

        // Before any policy: nothing, not even a list.
        let (code, _, err) = cli_as(&n, &reader, &["models", "list"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("AccessDenied") && err.contains("nimbus:ListModelGroups"), "{err}");

        let read_only = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": ["nimbus:Describe*", "nimbus:List*"], "Resource": "*" }]
        });
        let file = write_file(n.data_dir(), "read-only.json", &read_only.to_string());
        n.ok(&["iam", "policies", "put", "read-only", file.to_str().unwrap(), "--description", "look, don't touch"]);
        n.ok(&["iam", "policies", "attach", "read-only", "--user", "reader"]);

        // Reads succeed.
        let groups: Value = serde_json::from_str(&ok_as(&n, &reader, &["models", "list", "--output", "json"])).unwrap();
        assert!(groups.as_array().unwrap().iter().any(|g| g["name"] == "titanic"), "{groups}");
        let versions: Value =
            serde_json::from_str(&ok_as(&n, &reader, &["models", "list", "titanic", "--output", "json"])).unwrap();
        assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
        let v1: Value =
            serde_json::from_str(&ok_as(&n, &reader, &["models", "describe", "titanic", "1", "--output", "json"]))
                .unwrap();
        assert_eq!(v1["status"], "PendingManualApproval", "{v1}");
        ok_as(&n, &reader, &["pipelines", "list"]);

        // Writes are refused with AWS's wording: the action and the version's ARN.
        let (code, _, err) = cli_as(&n, &reader, &["models", "approve", "titanic", "1"]);
        assert_eq!(code, 2, "{err}");
        for want in [
            "AccessDenied",
            "User: arn:aws:iam::000000000000:user/reader is not authorized to perform: nimbus:ApproveModelVersion",
            "arn:aws:sagemaker:us-east-1:000000000000:model-package/titanic/1",
        ] {
            assert!(err.contains(want), "expected {want:?} in {err}");
        }
        // `nimbus:List*` is not `iam:List*`, nor anyone else's.
        let (code, _, err) = cli_as(&n, &reader, &["iam", "users", "list"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("AccessDenied") && err.contains("iam:ListUsers"), "{err}");
        let (code, _, err) = cli_as(&n, &reader, &["models", "create", "other"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("nimbus:CreateModelGroup"), "{err}");
        let v = n.json(&["models", "describe", "titanic", "1"]);
        assert_eq!(v["status"], "PendingManualApproval", "a refused approve changed nothing");

        // The admin allows approving this group's versions: the same command now succeeds,
        // on the same server.
        let approver = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "nimbus:ApproveModelVersion",
                "Resource": "arn:aws:sagemaker:*:*:model-package/titanic/*",
            }]
        });
        let file = write_file(n.data_dir(), "approver.json", &approver.to_string());
        n.ok(&["iam", "policies", "put", "approver", file.to_str().unwrap()]);
        n.ok(&["iam", "policies", "attach", "approver", "--user", "reader"]);
        ok_as(&n, &reader, &["models", "approve", "titanic", "1"]);
        let v = n.json(&["models", "describe", "titanic", "1"]);
        assert_eq!(v["status"], "Approved", "{v}");

        // Detached again: refused again, from the next request on.
        n.ok(&["iam", "policies", "detach", "approver", "--user", "reader"]);
        let (code, _, err) = cli_as(&n, &reader, &["models", "reject", "titanic", "1"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("AccessDenied") && err.contains("nimbus:ApproveModelVersion"), "{err}");
        assert_eq!(n.json(&["models", "describe", "titanic", "1"])["status"], "Approved");

        // A broken document is refused before it is stored, naming the statement's key.
        let broken = r#"{"Version":"2012-10-17","Statement":[{"Effect":"allow","Action":"nimbus:*","Resource":"*"}]}"#;
        let file = write_file(n.data_dir(), "broken.json", broken);
        let (code, _, err) = n.cli(&["iam", "policies", "put", "broken", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("Statement[0].Effect"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        let policies = n.json(&["iam", "policies", "list"]);
        assert!(!policies.as_array().unwrap().iter().any(|p| p["name"] == "broken"), "{policies}");
    }
}
