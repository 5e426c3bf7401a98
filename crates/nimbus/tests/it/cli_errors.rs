//! Bad input gets one clear line and exit code 2 from the CLI, and a JSON error with a
//! stable code naming the field from the HTTP API.

use crate::harness::{Backend, Nimbus, bundle, write_file};

#[test]
fn bad_input_is_named_with_a_stable_code_and_exit_code_2() {
    let n = Nimbus::start(&Backend::Sqlite);
    let b = write_file(n.data_dir(), "b.json", &bundle(0.8));
    n.ok(&["models", "import", "g", b.to_str().unwrap()]);

    let cases: &[(&[&str], &str)] = &[
        (&["models", "describe", "nope"], "model group \"nope\" does not exist (ModelGroupNotFound)"),
        (&["models", "describe", "g/7"], "model group \"g\" has no version 7 (ModelVersionNotFound)"),
        (&["models", "approve", "g", "abc"], "VERSION \"abc\" is not a version number"),
        (&["models", "alias", "g", "Prod", "1"], "invalid alias name \"Prod\""),
        (&["models", "alias", "g", "prod", "9"], "has no version 9"),
        (&["models", "resolve", "g", "@nothing"], "there is no alias \"nothing\""),
        (&["models", "resolve", "g", "latest"], "invalid selector"),
        (&["models", "create", "bad/name"], "invalid model group name \"bad/name\""),
        (&["store", "cp", "/no/such/file", "s3://b/k"], "cannot read /no/such/file"),
        (&["store", "ls", "s3://no-such-bucket/"], "bucket \"no-such-bucket\" does not exist (NoSuchBucket)"),
        (&["store", "rm", "not-an-address"], "is not an s3://bucket/key address"),
    ];
    for (args, want) in cases {
        let (code, out, err) = n.cli(args);
        assert_eq!(code, 2, "nimbus {args:?}: stdout {out} stderr {err}");
        assert!(err.contains(want), "nimbus {args:?}: expected {want:?} in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }

    // Approving twice, and approving a rejected version.
    n.ok(&["models", "approve", "g", "1"]);
    let (code, _, err) = n.cli(&["models", "approve", "g", "1"]);
    assert_eq!((code, err.contains("it is already Approved (InvalidStatusTransition)")), (2, true), "{err}");
    n.ok(&["models", "import", "g", b.to_str().unwrap()]);
    n.ok(&["models", "reject", "g", "2"]);
    let (code, _, err) = n.cli(&["models", "approve", "g", "2"]);
    assert_eq!((code, err.contains("a rejected version stays rejected")), (2, true), "{err}");

    // Malformed bodies over raw HTTP name the field.
    let s = n.signer();
    let (status, body) = n.http("POST", "/_nimbus/v1/model-groups", b"{\"nam\":\"x\"}", Some(&s));
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "MalformedBody");
    assert!(v["message"].as_str().unwrap().contains("unknown field `nam`"), "{body}");
    let (status, body) = n.http("PATCH", "/_nimbus/v1/model-groups/g/versions/1", b"{\"status\":\"Maybe\"}", Some(&s));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid status") && body.contains("Approved or Rejected"), "{body}");
    let (status, body) = n.http("PUT", "/_nimbus/v1/model-groups/g/aliases/prod", b"{\"version\":\"one\"}", Some(&s));
    assert_eq!(status, 400);
    assert!(body.contains("version"), "{body}");
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/g/imports", b"{\"format\":\"nimbus-model\"}", Some(&s));
    assert_eq!(status, 400);
    assert!(body.contains("missing field `format_version`"), "{body}");
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/g/imports?format=onnx", bundle(0.5).as_bytes(), Some(&s));
    assert_eq!(status, 400);
    assert!(body.contains("invalid format"), "{body}");
    let (status, body) = n.http("POST", "/_nimbus/v1/model-groups", b"", Some(&s));
    assert_eq!(status, 400);
    assert!(body.contains("request body"), "{body}");
    let (status, body) = n.http("GET", "/_nimbus/v1/model-groups/g/versions/0", b"", Some(&s));
    assert_eq!(status, 400);
    assert!(body.contains("is not a version number"), "{body}");
}

#[test]
fn missing_credentials_are_explained() {
    let n = Nimbus::start(&Backend::Sqlite);
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["models", "list"])
        .env("NIMBUS_DATA_DIR", empty.path())
        .env("NIMBUS_ENDPOINT", &n.endpoint)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
    // A server that is not there is a failure (1), not bad input.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["models", "list"])
        .env("NIMBUS_DATA_DIR", n.data_dir())
        .env("NIMBUS_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach nimbus"));
}
