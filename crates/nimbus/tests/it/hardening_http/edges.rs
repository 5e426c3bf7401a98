//! The small things a fuzzer or an operator finds: multibyte `since`, log limits, `/v2` without
//! a signature, `--help`, a closed stdout, odd keys, GROUP/VERSION.

use super::*;

// ---------------------------------------------------------------------------------------------
// Small things.

/// A server with model function `f` (group `g`, version 1 pending) behind API `web`, and a
/// second function `hidden-fn`.
fn with_functions() -> (Nimbus, tempfile::TempDir) {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    let dir = work.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = "[functions.f]\nkind = \"model\"\nmodel_group = \"g\"\n\n\
                [functions.hidden-fn]\nkind = \"model\"\nmodel_group = \"g\"\n\n\
                [apis.web.routes]\n\"POST /predict\" = { function = \"f\" }\n[apis.web.stages.prod]\n";
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
    (n, work)
}

#[test]
fn since_with_a_multibyte_character_is_a_clear_400() {
    let (n, _work) = with_functions();
    let s = n.signer();
    let (status, body) = n.http("GET", "/_nimbus/v1/functions/f/logs?since=1m", b"", Some(&s));
    assert_eq!(status, 200, "{body}");
    for since in ["1%C3%A9", "%C3%A9", "1%E2%82%AC", "10%C3%A9m", "%F0%9F%98%80s"] {
        let (status, body) = n.http("GET", &format!("/_nimbus/v1/functions/f/logs?since={since}"), b"", Some(&s));
        assert_eq!(status, 400, "since={since}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "InvalidField", "{v}");
        assert!(v["message"].as_str().unwrap().contains("since"), "{v}");
    }
    let (code, _, err) = n.cli(&["logs", "f", "--since", "1é"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("since") && !err.contains("panicked"), "{err}");
    let (status, _) = n.http("GET", "/_nimbus/v1/functions/f/logs", b"", Some(&s));
    assert_eq!(status, 200, "the server is still well");
}

#[test]
fn a_bad_log_limit_is_a_json_400_with_a_code() {
    let (n, _work) = with_functions();
    for logs in ["/_nimbus/v1/functions/f/logs", "/_nimbus/v1/apis/web/logs"] {
        let (status, body) = n.http("GET", &format!("{logs}?limit=5"), b"", Some(&n.signer()));
        assert_eq!(status, 200, "{logs}: {body}");
        for bad in ["abc", "-1", "1%C3%A9", "99999999999999999999999"] {
            let (status, body) = n.http("GET", &format!("{logs}?limit={bad}"), b"", Some(&n.signer()));
            assert_eq!(status, 400, "{logs}?limit={bad}: {body}");
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{logs}?limit={bad}: not the admin API's JSON error: {body}"));
            assert_eq!(v["code"], "InvalidField", "{v}");
            assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
        }
    }
}

#[test]
fn v2_without_a_signature_lists_no_function_names() {
    let (n, _work) = with_functions();
    let dir = n.data_dir().to_str().unwrap().to_string();
    for path in [
        "/v2",
        "/v2/",
        "/v2/models",
        "/v2/models/",
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/nope/versions/1",
        "/v2/models/f",
        "/v2/models/f/ready",
        "/v2/models/f/versions/1",
        "/v2/models/f/versions/x",
        "/v2/repository/index",
    ] {
        let (status, body) = n.http("GET", path, b"", None);
        assert!(!body.contains("hidden-fn"), "{path} ({status}) names another function: {body}");
        assert!(!body.contains(&dir) && !body.contains("nimbus-models") && !body.contains("s3://"), "{path}: {body}");
        if !path.starts_with("/v2/models/f") {
            assert!(!body.contains("\"f\""), "{path} ({status}) names a function it was not asked about: {body}");
        }
    }
    let (status, body) = n.http("POST", "/v2/models/nope/infer", b"{}", None);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("hidden-fn") && !body.contains("\"f\""), "{body}");
}

#[test]
fn help_does_not_print_the_database_password() {
    for args in [&["serve", "--help"][..], &["up", "--help"], &["admin", "reset-key", "--help"], &["serve", "-h"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
            .args(args)
            .env("NIMBUS_DATABASE_URL", "postgres://u:pa55-w0rd-xyz@h/db")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(text.contains("NIMBUS_DATABASE_URL"), "{args:?}: the help names the variable: {text}");
        assert!(!text.contains("pa55-w0rd-xyz"), "{args:?} printed the password: {text}");
    }
    // Nor does the error of a database URL that cannot be opened.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NIMBUS_DATABASE_URL", "mysql://u:pa55-w0rd-xyz@h/db")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("mysql://u:***@h/db") && !text.contains("pa55-w0rd-xyz"), "{text}");
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    n.ok(&["store", "mb", "s3://data"]);
    let cases: &[&[&str]] = &[
        &["models", "list"],
        &["models", "list", "--output", "json"],
        &["models", "describe", "g/1"],
        &["models", "export", "g/1", "--format", "native"],
        &["store", "ls"],
        &["store", "fsck"],
        &["whoami"],
        &["--help"],
        &["--version"],
    ];
    for args in cases {
        // A pipe whose reading end is closed before the command writes a byte: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
            .args(*args)
            .env("NIMBUS_DATA_DIR", n.data_dir())
            .env("NIMBUS_ENDPOINT", &n.endpoint)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "nimbus {args:?} into a closed pipe: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "nimbus {args:?}: {err}");
    }
}

#[test]
fn every_key_the_store_accepts_round_trips() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://keys"]);
    let keys = [
        "../../evil",
        "...",
        ".hidden",
        "a//b",
        "./x",
        "x/./y",
        "a b",
        "ü/ß",
        "a%2Fb",
        "%2e%2e",
        "x?y#z",
        "plus+sign&amp=1",
        "semi;colon,comma",
        "/leading",
        "tab\there",
        "100%",
        "back\\slash",
        "emoji-😀",
        "trailing.",
        "-dash",
        "quote\"s'",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        let f = write_file(work.path(), &format!("in-{i}"), &format!("object {i}: {key}"));
        let up = n.json(&["store", "cp", f.to_str().unwrap(), &format!("s3://keys/{key}")]);
        assert_eq!(up["key"], *key, "upload of {key:?}");
    }
    let listed: Vec<String> = n
        .json(&["store", "ls", "s3://keys/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    let only: Vec<String> = n
        .json(&["store", "ls", "s3://keys/ü/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(only, ["ü/ß"]);
    for (i, key) in keys.iter().enumerate() {
        let back = work.path().join(format!("out-{i}"));
        n.ok(&["store", "cp", &format!("s3://keys/{key}"), back.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&back).unwrap(), format!("object {i}: {key}"), "download of {key:?}");
    }
    // Nothing escaped the store's directory.
    assert!(!n.data_dir().join("evil").exists() && !n.data_dir().parent().unwrap().join("evil").exists());
    for key in keys {
        n.ok(&["store", "rm", &format!("s3://keys/{key}")]);
    }
    assert_eq!(n.json(&["store", "ls", "s3://keys/"]), json!([]));

    // The two keys no URL can address are refused on both sides, not stored out of reach.
    let f = write_file(work.path(), "dots", "dots");
    for key in [".", ".."] {
        let err = refused(&n, &["store", "cp", f.to_str().unwrap(), &format!("s3://keys/{key}")], "");
        assert!(err.contains("cannot be addressed"), "{err}");
        let path =
            if key == "." { "/_nimbus/v1/buckets/keys/objects/%2E" } else { "/_nimbus/v1/buckets/keys/objects/%2E%2E" };
        let h = signed_headers(&n, &n.signer(), "PUT", path, "", &sha256_hex(b"dots"));
        let a = raw(&n, "PUT", path, &h, b"dots");
        assert_eq!(a.status, 400, "{key}: {a:?}");
        assert!(a.body.contains("InvalidName") && a.body.contains("'.' or '..'"), "{}", a.body);
    }
    n.ok(&["store", "rb", "s3://keys"]);
}

#[test]
fn every_version_command_takes_group_slash_version() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let one = write_file(work.path(), "one.json", &bundle(0.8));
    let two = write_file(work.path(), "two.json", &bundle(0.9));
    n.ok(&["models", "import", "g", one.to_str().unwrap()]);
    n.ok(&["models", "import", "g", two.to_str().unwrap()]);
    assert_eq!(n.json(&["models", "describe", "g/1"])["version"], 1);
    assert_eq!(n.json(&["models", "describe", "g/2"])["metrics"]["auc"], 0.9);
    n.ok(&["models", "approve", "g/1", "--description", "good enough"]);
    n.ok(&["models", "reject", "g/2"]);
    let versions = n.json(&["models", "list", "g"]);
    let status: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert!(status.contains(&"Approved") && status.contains(&"Rejected"), "{versions}");
    assert_eq!(n.json(&["models", "describe", "g/latest-approved"])["version"], 1);
    let file = work.path().join("g1.json");
    n.ok(&["models", "export", "g/1", "--format", "native", "--output-file", file.to_str().unwrap()]);
    assert_eq!(file_sha(&file), file_sha(&one));
    // The two-word form still works; naming the version twice, or not at all, is a usage error.
    assert_eq!(n.json(&["models", "describe", "g", "2"])["version"], 2);
    let (code, _, err) = n.cli(&["models", "approve", "g/2", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GROUP/VERSION or GROUP VERSION"), "{err}");
    for cmd in ["approve", "reject", "export"] {
        let (code, _, err) = n.cli(&["models", cmd, "g"]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("g/VERSION"), "{cmd}: {err}");
    }
}
