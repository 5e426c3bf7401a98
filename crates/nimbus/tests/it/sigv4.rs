//! Authentication of the admin API: unsigned, tampered, wrongly keyed and stale requests are
//! refused with AWS's messages; requests signed by the real Python clients (botocore and
//! requests-aws4auth) are accepted.

use std::path::Path;
use std::process::Command;

use nimbus_iam::sigv4::Signer;

use crate::harness::{Backend, Nimbus, http_to, time_now};

#[test]
fn unsigned_tampered_wrong_key_and_stale_requests_are_refused() {
    let n = Nimbus::start(&Backend::Sqlite);
    let (status, body) = n.http("GET", "/_nimbus/v1/model-groups", b"", None);
    assert_eq!((status, body.as_str()), (403, r#"{"message":"Missing Authentication Token"}"#));
    // Unknown paths too: nothing is revealed before authentication.
    let (status, body) = n.http("GET", "/_nimbus/v1/secret-things", b"", None);
    assert_eq!((status, body.as_str()), (403, r#"{"message":"Missing Authentication Token"}"#));

    let good = n.signer();
    let (status, _) = n.http("GET", "/_nimbus/v1/model-groups", b"", Some(&good));
    assert_eq!(status, 200);

    let wrong = Signer { secret: "not-the-secret".into(), ..good.clone() };
    let (status, body) = n.http("GET", "/_nimbus/v1/model-groups", b"", Some(&wrong));
    assert_eq!(status, 403);
    assert!(body.contains("signature we calculated does not match"), "{body}");

    let unknown = Signer { access_key_id: "AKIAUNKNOWNKEY000000".into(), ..good.clone() };
    let (status, body) = n.http("GET", "/_nimbus/v1/model-groups", b"", Some(&unknown));
    assert_eq!(status, 403);
    assert!(body.contains("AKIAUNKNOWNKEY000000"), "{body}");

    let stale = time_now() - time::Duration::minutes(20);
    let (status, body) = http_to(&n.endpoint, "GET", "/_nimbus/v1/model-groups", b"", Some(&good), stale);
    assert_eq!(status, 403);
    assert!(body.contains("Signature expired") && body.contains("15 minutes"), "{body}");
    let (status, _) = http_to(
        &n.endpoint,
        "GET",
        "/_nimbus/v1/model-groups",
        b"",
        Some(&good),
        time_now() - time::Duration::minutes(10),
    );
    assert_eq!(status, 200, "ten minutes of skew is tolerated");

    let wrong_region = Signer { region: "eu-west-3".into(), ..good.clone() };
    let (status, body) = n.http("GET", "/_nimbus/v1/model-groups", b"", Some(&wrong_region));
    assert_eq!(status, 403);
    assert!(body.contains("region 'us-east-1'"), "{body}");

    // A body changed after signing: sign one, send another.
    let mut headers = vec![("host".to_string(), n.endpoint.trim_start_matches("http://").to_string())];
    good.sign("POST", "/_nimbus/v1/model-groups", "", &mut headers, br#"{"name":"a"}"#, time_now());
    let client = reqwest::blocking::Client::new();
    let mut req = client.post(format!("{}/_nimbus/v1/model-groups", n.endpoint));
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let resp = req.body(r#"{"name":"evil"}"#).send().unwrap();
    // As S3 answers it: 400 XAmzContentSHA256Mismatch, and nothing created.
    assert_eq!(resp.status().as_u16(), 400);
    let text = resp.text().unwrap();
    assert!(text.contains("XAmzContentSHA256Mismatch") && text.contains("x-amz-content-sha256"), "{text}");
    // The same request with a dropped signed header fails too.
    let mut req = client.post(format!("{}/_nimbus/v1/model-groups", n.endpoint));
    for (k, v) in headers.iter().filter(|(k, _)| k != "host" && k != "x-amz-date") {
        req = req.header(k, v);
    }
    let resp = req.body(r#"{"name":"a"}"#).send().unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().unwrap().contains("X-Amz-Date"));
    let groups = n.json(&["models", "list"]);
    assert_eq!(groups.as_array().unwrap().len(), 0, "nothing was created by refused requests");
}

#[test]
fn botocore_and_requests_aws4auth_signatures_are_accepted() {
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the Python client test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let n = Nimbus::start(&Backend::Sqlite);
    let (id, secret) = n.credentials();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sigv4_clients.py");
    let out = Command::new(python).arg(script).args([&n.endpoint, &id, &secret]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "client checks failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn secrets_are_private_files_and_never_reach_the_log() {
    use std::os::unix::fs::PermissionsExt;
    let mut n = Nimbus::start(&Backend::Sqlite);
    let (id, secret) = n.credentials();
    for file in ["credentials", "master.key"] {
        let mode = std::fs::metadata(n.data_dir().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is private");
    }
    let master = std::fs::read_to_string(n.data_dir().join("master.key")).unwrap();
    n.ok(&["models", "list"]);
    let wrong = Signer { secret: "nope".into(), ..n.signer() };
    n.http("GET", "/_nimbus/v1/model-groups", b"", Some(&wrong));
    n.restart();
    let (_, out, _) = n.cli(&["whoami"]);
    assert!(out.contains(&id));
    let first = n.first_stdout.join("\n");
    assert!(first.contains(&secret), "the first start shows the secret once");
    let log = n.server_log();
    assert!(log.contains("request refused"), "the log is being written: {log}");
    assert!(!log.contains(&secret), "the secret reached the log");
    assert!(!log.contains(master.trim()), "the master key reached the log");
    // The stored secret is sealed: the database file does not contain it.
    let db = std::fs::read(n.data_dir().join("meta.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is stored in clear");
}
