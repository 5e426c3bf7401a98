//! Process functions' code bundles through the real binary: `nimbus apply` zips and uploads a
//! code directory and stores its `s3://` address and digest, `nimbus functions deploy --code`
//! replaces it, unchanged code is never uploaded again, and the system bucket takes nothing
//! but content-addressed bundles.

use std::path::Path;

use serde_json::Value;

use crate::harness::{Backend, Nimbus, backends};

const PROJECT: &str = r#"[project]
name = "code"

[functions.hello]
kind = "process"
command = ["python3", "-m", "awslambdaric"]
handler = "app.handler"
code = "fn"
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The stored `code` and `code_sha256` of function `hello`.
fn stored_code(n: &Nimbus) -> (String, String) {
    let v: Value = n.json(&["functions", "describe", "hello"]);
    (v["spec"]["code"].as_str().unwrap().to_string(), v["spec"]["code_sha256"].as_str().unwrap().to_string())
}

fn bundles(n: &Nimbus) -> usize {
    n.json(&["store", "ls", "s3://nimbus-functions/hello/"]).as_array().unwrap().len()
}

#[test]
fn process_function_code_is_uploaded_once_per_change() {
    for backend in backends() {
        uploads_once_per_change(&backend);
    }
}

fn uploads_once_per_change(backend: &Backend) {
    let n = Nimbus::start(backend);
    let project = n.data_dir().join("project");
    let code = project.join("fn");
    write(&project.join("nimbus.toml"), PROJECT);
    write(&code.join("app.py"), "def handler(event, context):\n    return {\"hello\": 1}\n");
    write(&code.join("__pycache__/app.cpython-311.pyc"), "cache");
    let dir = project.to_str().unwrap();

    let out = n.ok(&["apply", dir]);
    assert!(
        out.contains("code     hello (fn) -> s3://nimbus-functions/hello/sha256-") && out.contains(": upload ("),
        "{out}"
    );
    assert!(out.contains("function hello: create (runs python3 -m awslambdaric, handler app.handler)"), "{out}");
    let (uri, sha) = stored_code(&n);
    assert_eq!(uri, format!("s3://nimbus-functions/hello/sha256-{sha}.zip"));
    let table = n.ok(&["functions", "describe", "hello"]);
    assert!(table.contains(&uri) && table.contains("app.handler") && table.contains("process"), "{table}");

    // Unchanged code, and a changed cache file, upload nothing.
    write(&code.join("__pycache__/app.cpython-311.pyc"), "another cache");
    let again = n.ok(&["apply", dir]);
    assert!(again.contains(&format!("code     hello (fn) -> {uri}: unchanged")), "{again}");
    assert!(again.contains("function hello: unchanged") && !again.contains("upload ("), "{again}");
    assert_eq!(bundles(&n), 1);

    // deploy --code with changed code: a new bundle, and the function points at it.
    write(&code.join("app.py"), "def handler(event, context):\n    return {\"hello\": 2}\n");
    let out = n.ok(&["functions", "deploy", "hello", "--code", code.to_str().unwrap()]);
    let (new_uri, new_sha) = stored_code(&n);
    assert_ne!(new_sha, sha, "changed code has a new digest");
    assert!(out.contains(&format!("code     {new_uri}: uploaded")) && out.contains(&new_sha), "{out}");
    assert!(out.contains("function hello: updated") && out.contains(" bytes"), "{out}");
    assert_eq!(bundles(&n), 2);

    // The same code as a .zip (the stored bundle itself) is the same bundle.
    let zip = n.data_dir().join("hello.zip");
    n.ok(&["store", "cp", &new_uri, zip.to_str().unwrap()]);
    let out = n.ok(&["functions", "deploy", "hello", "--code", zip.to_str().unwrap()]);
    assert!(out.contains(&format!("code     {new_uri}: already stored")), "{out}");
    assert!(out.contains("function hello: unchanged"), "{out}");
    let again = n.ok(&["apply", dir]);
    assert!(again.contains(&format!("{new_uri}: unchanged")) && again.contains("function hello: unchanged"), "{again}");
    assert_eq!(bundles(&n), 2);
}

#[test]
fn code_errors_name_the_path_and_the_fix() {
    let n = Nimbus::start(&Backend::Sqlite);
    let project = n.data_dir().join("project");
    write(&project.join("nimbus.toml"), &PROJECT.replace("code = \"fn\"", "code = \"missing\""));
    let (code, _, err) = n.cli(&["apply", project.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nimbus.toml line 8: functions.hello.code") && err.contains("does not exist"), "{err}");

    let (code, _, err) = n.cli(&["functions", "deploy", "nobody", "--code", project.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("function nobody does not exist") && err.contains("nimbus apply"), "{err}");

    write(&project.join("fn/app.py"), "");
    write(&project.join("nimbus.toml"), PROJECT);
    n.ok(&["apply", project.to_str().unwrap()]);
    let toml = project.join("nimbus.toml");
    let (code, _, err) = n.cli(&["functions", "deploy", "hello", "--code", toml.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("neither a directory nor a .zip"), "{err}");
    let not_zip = project.join("broken.zip");
    write(&not_zip, "not a zip");
    let (code, _, err) = n.cli(&["functions", "deploy", "hello", "--code", not_zip.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.zip") && err.contains("not a readable zip"), "{err}");

    // The bucket takes content-addressed bundles only, and gives none up.
    let file = toml.to_str().unwrap();
    let (code, _, err) = n.cli(&["store", "cp", file, "s3://nimbus-functions/hello/evil.zip"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("FUNCTION/sha256-HEX.zip") && err.contains("SystemBucket"), "{err}");
    let forged = format!("s3://nimbus-functions/hello/sha256-{}.zip", "0".repeat(64));
    let (code, _, err) = n.cli(&["store", "cp", file, &forged]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("must sign that digest"), "{err}");
    let (uri, _) = stored_code(&n);
    let (code, _, err) = n.cli(&["store", "rm", &uri]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SystemBucket"), "{err}");
}
