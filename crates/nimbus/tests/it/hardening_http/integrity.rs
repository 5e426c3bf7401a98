//! Approval integrity and storage: registered artifacts cannot change, system buckets are
//! read-only, fsck repairs what a crash leaves, reset-key, permissions.

use super::*;

// ---------------------------------------------------------------------------------------------
// Approval integrity.

#[test]
fn overwriting_a_registered_artifact_is_refused_naming_the_version() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let model = fixture_bundle();
    let other = write_file(work.path(), "other.json", &bundle(0.1));

    // An imported model lives in a system bucket: no write reaches it at all.
    n.ok(&["models", "import", "imported", model.to_str().unwrap()]);
    let uri = n.json(&["models", "describe", "imported/1"])["artifact"]["uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("s3://nimbus-models/"), "{uri}");
    refused(&n, &["store", "cp", other.to_str().unwrap(), &uri], "SystemBucket");
    refused(&n, &["store", "rm", &uri], "SystemBucket");

    // A version registered from the user's own bucket holds its artifact there.
    n.ok(&["store", "mb", "s3://data"]);
    n.ok(&["store", "cp", model.to_str().unwrap(), "s3://data/model.json"]);
    n.ok(&["models", "create", "held"]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    let register = json!({
        "artifact_uri": "s3://data/model.json",
        "format": "nimbus-model",
        "input_schema": manifest["input_schema"],
        "output_schema": manifest["output_schema"],
    });
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/held/versions", register.to_string().as_bytes(), Some(&n.signer()));
    assert_eq!(status, 201, "{body}");
    n.ok(&["models", "approve", "held/1"]);
    serve_group(&n, work.path(), "heldfn", "held");
    let (status, before) = predict(&n, "heldfn", &serde_json::from_str(TITANIC_ROW).unwrap());
    assert_eq!(status, 200, "{before}");

    for args in [
        vec!["store", "cp", other.to_str().unwrap(), "s3://data/model.json"],
        vec!["store", "cp", "s3://data/model.json", "s3://data/model.json"],
        vec!["store", "rm", "s3://data/model.json"],
    ] {
        let err = refused(&n, &args, "ObjectHeld");
        assert!(err.contains("model group held version 1"), "{args:?}: {err}");
    }
    // The bytes and the answers are the original's.
    let back = work.path().join("back.json");
    n.ok(&["store", "cp", "s3://data/model.json", back.to_str().unwrap()]);
    assert_eq!(file_sha(&back), file_sha(&model));
    let exported = work.path().join("exported.json");
    n.ok(&["models", "export", "held/1", "--format", "native", "--output-file", exported.to_str().unwrap()]);
    assert_eq!(file_sha(&exported), file_sha(&model));
    let (status, after) = predict(&n, "heldfn", &serde_json::from_str(TITANIC_ROW).unwrap());
    assert_eq!((status, after), (200, before));
    // Other keys of the bucket stay writable.
    n.ok(&["store", "cp", other.to_str().unwrap(), "s3://data/other.json"]);
    n.ok(&["store", "rm", "s3://data/other.json"]);
}

#[test]
fn concurrent_imports_of_the_same_file_all_register() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    // A large file widens the window between an import's look for the stored file and its
    // write, in which another import of the same file registers (and holds) it.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(fixture_bundle()).unwrap()).unwrap();
    doc["description"] = json!("x".repeat(1 << 20));
    let file = work.path().join("same.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    for round in 0..2 {
        let group = format!("same{round}");
        let imports: Vec<_> = (0..6)
            .map(|_| {
                let (dir, endpoint, file, group) =
                    (n.data_dir().to_path_buf(), n.endpoint.clone(), file.clone(), group.clone());
                std::thread::spawn(move || {
                    Command::new(env!("CARGO_BIN_EXE_nimbus"))
                        .args(["models", "import", &group])
                        .arg(file)
                        .env("NIMBUS_DATA_DIR", dir)
                        .env("NIMBUS_ENDPOINT", endpoint)
                        .output()
                        .unwrap()
                })
            })
            .collect();
        for out in imports.into_iter().map(|h| h.join().unwrap()) {
            assert!(out.status.success(), "{group}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let versions = n.json(&["models", "list", &group]);
        assert_eq!(versions.as_array().unwrap().len(), 6, "{versions}");
        let uris: std::collections::BTreeSet<&str> =
            versions.as_array().unwrap().iter().map(|v| v["artifact"]["uri"].as_str().unwrap()).collect();
        assert_eq!(uris.len(), 1, "one stored file for one imported file: {uris:?}");
    }
}

#[test]
fn system_buckets_refuse_writes() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "x", "x");
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    refused(&n, &["store", "cp", f.to_str().unwrap(), "s3://nimbus-pipelines/x"], "SystemBucket");
    refused(&n, &["store", "cp", f.to_str().unwrap(), "s3://nimbus-models/x"], "SystemBucket");
    refused(&n, &["store", "mb", "s3://nimbus-mine"], "SystemBucket");
    refused(&n, &["store", "rb", "s3://nimbus-models"], "SystemBucket");
    let listed = n.json(&["store", "ls", "s3://nimbus-models/"]);
    let keys: Vec<&str> = listed.as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 1, "a system bucket is readable: {keys:?}");
    assert!(keys[0].starts_with("g/sha256-"), "{keys:?}");
    refused(&n, &["store", "rm", &format!("s3://nimbus-models/{}", keys[0])], "SystemBucket");
    // Reading is allowed.
    let back = work.path().join("back.json");
    n.ok(&["store", "cp", &format!("s3://nimbus-models/{}", keys[0]), back.to_str().unwrap()]);
}

// ---------------------------------------------------------------------------------------------
// Storage.

/// The blob file of `s3://bucket/key`: the one under `objects/bucket` holding exactly `bytes`.
fn blob_of(n: &Nimbus, bucket: &str, bytes: &[u8]) -> PathBuf {
    let dir = n.data_dir().join("objects").join(bucket);
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == bytes))
        .collect();
    assert_eq!(found.len(), 1, "one blob in {} holds those bytes: {found:?}", dir.display());
    found[0].clone()
}

/// Makes a file look older than fsck's grace period for writes in flight.
fn age(path: &Path) {
    let status = Command::new("touch").args(["-d", "2 hours ago"]).arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn store_fsck_reports_and_repairs() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://data"]);
    let fine = write_file(work.path(), "fine.txt", "fine bytes");
    let damaged = write_file(work.path(), "damaged.txt", "will be damaged");
    let model_text = bundle(0.8);
    let model = write_file(work.path(), "model.json", &model_text);
    for f in [&fine, &damaged, &model] {
        n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/"]);
    }
    n.ok(&["models", "create", "g"]);
    let manifest: Value = serde_json::from_str(&model_text).unwrap();
    let register = json!({"artifact_uri": "s3://data/model.json", "format": "nimbus-model",
        "input_schema": manifest["input_schema"], "output_schema": manifest["output_schema"]});
    let (status, body) =
        n.http("POST", "/_nimbus/v1/model-groups/g/versions", register.to_string().as_bytes(), Some(&n.signer()));
    assert_eq!(status, 201, "{body}");

    assert_eq!(n.json(&["store", "fsck"])["damaged"], json!([]), "a fresh store is consistent");
    // A crash's leftovers, and a failing disk.
    let objects = n.data_dir().join("objects");
    let orphan = objects.join("data").join("0b7e9b2c-orphan");
    std::fs::write(&orphan, b"left by a crash").unwrap();
    age(&orphan);
    let unfinished = objects.join("data").join(".tmp-3f1d2c4b");
    std::fs::write(&unfinished, b"half a write").unwrap();
    age(&unfinished);
    let young = objects.join("data").join("young-orphan");
    std::fs::write(&young, b"a write in flight, perhaps").unwrap();
    std::fs::write(blob_of(&n, "data", b"will be damaged"), b"WILL BE DAMAGED").unwrap();
    std::fs::write(blob_of(&n, "data", model_text.as_bytes()), model_text.replace("auc", "AUC")).unwrap();

    let report = n.json(&["store", "fsck"]);
    assert_eq!(report["objects"], 3, "{report}");
    assert_eq!(report["orphans"], json!(["data/0b7e9b2c-orphan"]), "{report}");
    let problems: Vec<(String, Value)> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["uri"].as_str().unwrap().to_string(), d["held_by"].clone()))
        .collect();
    assert_eq!(
        problems,
        [
            ("s3://data/damaged.txt".to_string(), Value::Null),
            ("s3://data/model.json".to_string(), json!("model group g version 1"))
        ],
        "{report}"
    );
    assert_eq!(report["temporary"], json!(["data/.tmp-3f1d2c4b"]), "{report}");
    assert!(orphan.exists() && unfinished.exists(), "fsck without --repair changes nothing");
    // Damaged bytes are never handed out as if whole.
    let out = work.path().join("damaged-back.txt");
    let (code, _, err) = n.cli(&["store", "cp", "s3://data/damaged.txt", out.to_str().unwrap()]);
    assert_ne!(code, 0, "a damaged object downloaded: {err}");
    assert!(!out.exists(), "a damaged download left a file");
    let text = n.ok(&["store", "fsck"]);
    assert!(text.contains("orphan blob (found): data/0b7e9b2c-orphan"), "{text}");
    assert!(text.contains("damaged s3://data/model.json: the artifact of model group g version 1; kept"), "{text}");

    let repaired = n.json(&["store", "fsck", "--repair"]);
    let removed: Vec<(&str, bool)> = repaired["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["uri"].as_str().unwrap(), d["removed"].as_bool().unwrap()))
        .collect();
    assert_eq!(removed, [("s3://data/damaged.txt", true), ("s3://data/model.json", false)], "{repaired}");
    assert!(!orphan.exists() && !unfinished.exists(), "the orphan and the unfinished write were removed");
    assert!(young.exists(), "a file younger than the grace period may be a write in flight");
    let keys: Vec<String> = n
        .json(&["store", "ls", "s3://data/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["fine.txt", "model.json"], "the registered artifact is never removed");
    let again = n.json(&["store", "fsck"]);
    assert_eq!((again["objects"].clone(), again["orphans"].clone()), (json!(2), json!([])), "{again}");
    assert_eq!(again["damaged"].as_array().unwrap().len(), 1, "only the held artifact is left to restore: {again}");
    let back = work.path().join("fine-back.txt");
    n.ok(&["store", "cp", "s3://data/fine.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "fine bytes");
}

#[test]
fn admin_reset_key_recovers_a_lost_secret() {
    let mut n = Nimbus::start(&Backend::Sqlite);
    let old = n.signer();
    let (status, _) = n.http("GET", "/_nimbus/v1/whoami", b"", Some(&old));
    assert_eq!(status, 200);
    assert!(n.stop());
    // The secret is lost.
    std::fs::remove_file(n.data_dir().join("credentials")).unwrap();
    let dir = n.data_dir().to_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["admin", "reset-key", "--data-dir", &dir])
        .env_remove("NIMBUS_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("retired 1 old one(s)"), "{stdout}");
    n.start_again();
    let new = n.signer();
    assert_ne!(new.access_key_id, old.access_key_id);
    assert!(stdout.contains(&new.access_key_id) && stdout.contains(&new.secret), "{stdout}");
    let who = n.json(&["whoami"]);
    assert_eq!(who["access_key_id"], new.access_key_id.as_str(), "{who}");
    let (status, body) = n.http("GET", "/_nimbus/v1/whoami", b"", Some(&old));
    assert_eq!(status, 403, "the old key is retired: {body}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(n.data_dir().join("credentials")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Without a data directory it says what is missing rather than making one.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nimbus"))
        .args(["admin", "reset-key", "--data-dir", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no meta.db"));
}

#[cfg(unix)]
fn modes_under(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        out.push((e.path(), meta.permissions().mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            modes_under(&e.path(), out);
        }
    }
}

#[cfg(unix)]
#[test]
fn data_dir_is_0700_and_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mut n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    n.ok(&["store", "mb", "s3://data"]);
    let f = write_file(work.path(), "f.txt", "bytes");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/f.txt"]);
    let model = write_file(work.path(), "model.json", &bundle(0.8));
    n.ok(&["models", "import", "g", model.to_str().unwrap()]);
    let check = |n: &Nimbus| {
        let mode = std::fs::metadata(n.data_dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory");
        let mut all = Vec::new();
        modes_under(n.data_dir(), &mut all);
        assert!(all.iter().any(|(p, _, _)| p.ends_with("meta.db")), "{all:?}");
        assert!(all.iter().filter(|(p, _, d)| !d && p.starts_with(n.data_dir().join("objects"))).count() >= 2);
        for (path, mode, is_dir) in all {
            let want = if is_dir { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:o}", path.display());
        }
    };
    check(&n);
    // Loosened by hand, tightened again on the next start.
    assert!(n.stop());
    std::fs::set_permissions(n.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(n.data_dir().join("meta.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    n.start_again();
    check(&n);
}
