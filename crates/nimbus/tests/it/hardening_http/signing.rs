//! The signature check and bodies: unsigned requests are refused before their body is read,
//! body limits and hashes, a path is signed as it is routed, the scope date.

use super::*;

// ---------------------------------------------------------------------------------------------
// The signature check and bodies.

#[test]
fn unsigned_request_is_refused_before_its_body_is_read() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://bkt"]);
    let path = "/_nimbus/v1/buckets/bkt/objects/k";
    let huge = ("content-length".to_string(), "100000000".to_string());
    // Each request declares 100 MB and sends none of it: the answer comes from the head alone.
    let check = |headers: Vec<(String, String)>, status: u16, text: &str| {
        let mut c = connect(&n);
        c.write_all(&head("PUT", path, &headers)).unwrap();
        let a = read_answer(&mut c, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no answer without the body ({text}): the server waits for the body"));
        assert_eq!(a.status, status, "{a:?}");
        assert!(a.body.contains(text), "{}", a.body);
    };
    check(vec![("host".into(), host(&n)), huge.clone()], 403, "Missing Authentication Token");
    let unknown = Signer { access_key_id: "AKIAUNKNOWNKEY000000".into(), ..n.signer() };
    let mut h = signed_headers(&n, &unknown, "PUT", path, "", UNSIGNED_PAYLOAD);
    h.push(huge.clone());
    check(h, 403, "AKIAUNKNOWNKEY000000");
    let wrong = Signer { secret: "not-the-secret".into(), ..n.signer() };
    let mut h = signed_headers(&n, &wrong, "PUT", path, "", UNSIGNED_PAYLOAD);
    h.push(huge.clone());
    check(h, 403, "signature we calculated does not match");
    let mut h = signed_headers(&n, &wrong, "PUT", path, "", &sha256_hex(b"whatever"));
    h.push(huge);
    check(h, 403, "signature we calculated does not match");
    let (code, _, err) = n.cli(&["store", "cp", "s3://bkt/k", n.data_dir().join("k").to_str().unwrap()]);
    assert_eq!(code, 2, "nothing was stored: {err}");
    assert!(err.contains("NoSuchKey"), "{err}");
}

#[test]
fn a_json_body_over_one_mebibyte_is_413_request_too_large() {
    let n = Nimbus::start(&Backend::Sqlite);
    let path = "/_nimbus/v1/model-groups";
    let big = format!(r#"{{"name":"g","description":"{}"}}"#, "x".repeat(1_100_000));
    // Declared: refused from the head, before the body.
    let mut h = signed_headers(&n, &n.signer(), "POST", path, "", &sha256_hex(big.as_bytes()));
    h.push(("content-type".into(), "application/json".into()));
    let mut declared = h.clone();
    declared.push(("content-length".into(), big.len().to_string()));
    let mut c = connect(&n);
    c.write_all(&head("POST", path, &declared)).unwrap();
    let a = read_answer(&mut c, Duration::from_secs(5)).expect("a 413 from the head alone");
    assert_eq!(a.status, 413, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["code"], "RequestTooLarge", "{v}");
    assert!(v["message"].as_str().unwrap().contains("1048576"), "{v}");
    assert_eq!(a.header("x-amzn-errortype"), Some("RequestTooLarge"));
    // Undeclared (chunked): cut off once it grows past the limit.
    let mut chunked = h;
    chunked.push(("transfer-encoding".into(), "chunked".into()));
    let mut c = connect(&n);
    c.write_all(&head("POST", path, &chunked)).unwrap();
    let mut writer = c.try_clone().unwrap();
    let body = big.clone().into_bytes();
    let sender = std::thread::spawn(move || {
        for piece in body.chunks(64 * 1024) {
            if writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).is_err()
                || writer.write_all(piece).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let a = read_answer(&mut c, Duration::from_secs(10)).expect("a 413 for a chunked body past the limit");
    sender.join().unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.body.contains("RequestTooLarge"), "{}", a.body);
    assert_eq!(n.json(&["models", "list"]), json!([]), "nothing was created");
    // Through the CLI: a project whose pipeline declaration is too large names the code.
    let work = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/nimbus.toml");
    let toml = std::fs::read_to_string(example).unwrap().replacen(
        "description = \"Load from the store",
        &format!("description = \"{} Load from the store", "x".repeat(1_100_000)),
        1,
    );
    assert!(toml.len() > 1_100_000);
    std::fs::write(work.path().join("nimbus.toml"), toml).unwrap();
    std::fs::create_dir_all(work.path().join("data")).unwrap();
    for f in ["train.csv", "test.csv"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/data").join(f);
        std::fs::copy(from, work.path().join("data").join(f)).unwrap();
    }
    let err = refused(&n, &["apply", work.path().to_str().unwrap()], "RequestTooLarge");
    assert!(err.contains("over this route's limit of 1048576 bytes"), "{err}");
    assert!(err.contains("already changed: ") && !err.contains("pipeline titanic"), "{err}");
    // Just under the limit is accepted.
    let fits = format!(r#"{{"name":"g","description":"{}"}}"#, "x".repeat(1_000_000));
    let (status, body) = n.http("POST", path, fits.as_bytes(), Some(&n.signer()));
    assert!(status == 201 || status == 400, "a body under the limit is read and parsed: {status} {body}");
    assert_ne!(status, 413);
}

/// Sends a request with exactly `headers` (reqwest adds content-length for the body).
fn send(
    n: &Nimbus,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, Option<String>) {
    let client = reqwest::blocking::Client::new();
    let mut req =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", n.endpoint));
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().expect("server answers");
    let status = resp.status().as_u16();
    let kind = resp.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_string());
    (status, resp.text().unwrap_or_default(), kind)
}

#[test]
fn unsigned_payload_is_refused_on_json_admin_routes() {
    let n = Nimbus::start(&Backend::Sqlite);
    let signer = n.signer();
    let path = "/_nimbus/v1/model-groups";
    let mut h = signed_headers(&n, &signer, "POST", path, "", UNSIGNED_PAYLOAD);
    h.push(("content-type".into(), "application/json".into()));
    let (status, body, kind) = send(&n, "POST", path, &h, br#"{"name":"g"}"#.to_vec());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("UNSIGNED-PAYLOAD is accepted only for object uploads and downloads"), "{body}");
    assert_eq!(kind.as_deref(), Some("AuthFailure"));
    assert_eq!(n.json(&["models", "list"]), json!([]), "the unsigned body created nothing");
    // The same for a JSON route that takes no body at all.
    let h = signed_headers(&n, &signer, "GET", path, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "GET", path, &h, Vec::new());
    assert_eq!(status, 403, "{body}");

    // An object upload and download may leave their payload unsigned, as S3 allows.
    n.ok(&["store", "mb", "s3://data"]);
    let obj = "/_nimbus/v1/buckets/data/objects/u.txt";
    let h = signed_headers(&n, &signer, "PUT", obj, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "PUT", obj, &h, b"unsigned bytes".to_vec());
    assert_eq!(status, 200, "{body}");
    let h = signed_headers(&n, &signer, "GET", obj, "", UNSIGNED_PAYLOAD);
    let (status, body, _) = send(&n, "GET", obj, &h, Vec::new());
    assert_eq!((status, body.as_str()), (200, "unsigned bytes"));

    // A presigned URL leaves the payload unsigned too: good for a download, not for JSON.
    let a = raw(&n, "GET", &presign(&n, "GET", obj), &[("host".into(), host(&n))], b"");
    assert_eq!((a.status, a.body.as_str()), (200, "unsigned bytes"), "{a:?}");
    let a = raw(&n, "GET", &presign(&n, "GET", path), &[("host".into(), host(&n))], b"");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("A presigned URL is accepted only for object uploads and downloads"), "{}", a.body);
}

#[test]
fn an_upload_whose_bytes_differ_from_the_signed_hash_is_not_stored() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://data"]);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "v1", "version one");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://data/obj"]);
    // The upload streams to disk as it is hashed, so the mismatch shows only at its end.
    let path = "/_nimbus/v1/buckets/data/objects/obj";
    let signed = vec![b'a'; 300_000];
    let mut sent = signed.clone();
    *sent.last_mut().unwrap() = b'b';
    let h = signed_headers(&n, &n.signer(), "PUT", path, "", &sha256_hex(&signed));
    let a = raw(&n, "PUT", path, &h, &sent);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.body.contains("XAmzContentSHA256Mismatch"), "{}", a.body);
    let back = work.path().join("back");
    n.ok(&["store", "cp", "s3://data/obj", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "version one", "the old object stays");
    let blobs = std::fs::read_dir(n.data_dir().join("objects/data")).unwrap().count();
    assert_eq!(blobs, 1, "the refused upload left no blob behind");
}

/// The peak resident set of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_50_mb_upload_is_streamed_to_the_store() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    const SIZE: usize = 50 << 20;
    noise_file(&src, SIZE);
    n.ok(&["store", "mb", "s3://big"]);
    let before = peak_rss(n.pid());
    let up = n.json(&["store", "cp", src.to_str().unwrap(), "s3://big/big.bin"]);
    assert_eq!(up["size"], SIZE as u64);
    assert_eq!(up["sha256"], file_sha(&src));
    let back = work.path().join("back.bin");
    n.ok(&["store", "cp", "s3://big/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&back).unwrap().len(), SIZE as u64);
    assert_eq!(file_sha(&back), file_sha(&src), "the download is byte-identical");
    match (before, peak_rss(n.pid())) {
        (Some(before), Some(after)) => {
            // Buffered whole, the upload alone would add 50 MB (and a copy or two more); streamed,
            // what grows is the allocator's and the blocking pool's threads (about 15-20 MB).
            let grew = after.saturating_sub(before);
            eprintln!("the server's peak memory grew by {} MB", grew >> 20);
            assert!(grew < 35 << 20, "the server's peak memory grew by {} MB for a 50 MB upload", grew >> 20);
        }
        _ => eprintln!("skipping the memory check: no /proc/PID/status VmHWM here"),
    }
}

/// An XGBoost JSON model (binary:logistic, three float features) of `trees` full trees of
/// depth 5, as `booster.save_model("m.json")` writes one.
fn xgboost_model(trees: usize) -> Value {
    const INTERNAL: usize = 31;
    const NODES: usize = 63;
    let tree = |t: usize| {
        let internal = |i: usize| i < INTERNAL;
        let leaf_value = |i: usize| ((i + t) % 7) as f64 * 0.001 - 0.003;
        json!({
            "base_weights": (0..NODES).map(|i| if internal(i) { 0.0 } else { leaf_value(i) }).collect::<Vec<_>>(),
            "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
            "default_left": (0..NODES).map(|i| u8::from(internal(i))).collect::<Vec<_>>(),
            "id": t,
            "left_children": (0..NODES).map(|i| if internal(i) { 2 * i as i64 + 1 } else { -1 }).collect::<Vec<_>>(),
            "loss_changes": vec![0.0; NODES],
            "parents": (0..NODES).map(|i| if i == 0 { 2147483647 } else { (i as i64 - 1) / 2 }).collect::<Vec<_>>(),
            "right_children": (0..NODES).map(|i| if internal(i) { 2 * i as i64 + 2 } else { -1 }).collect::<Vec<_>>(),
            "split_conditions": (0..NODES)
                .map(|i| if internal(i) { ((i * 7 + t) % 50) as f64 + 0.5 } else { leaf_value(i) })
                .collect::<Vec<_>>(),
            "split_indices": (0..NODES).map(|i| if internal(i) { (i + t) % 3 } else { 0 }).collect::<Vec<_>>(),
            "split_type": vec![0; NODES],
            "sum_hessian": vec![1.0; NODES],
            "tree_param": {"num_deleted": "0", "num_feature": "3", "num_nodes": NODES.to_string(), "size_leaf_vector": "1"}
        })
    };
    json!({
        "learner": {
            "attributes": {},
            "feature_names": ["a", "b", "c"],
            "feature_types": ["float", "float", "float"],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": trees.to_string()},
                    "iteration_indptr": (0..=trees).collect::<Vec<_>>(),
                    "tree_info": vec![0; trees],
                    "trees": (0..trees).map(tree).collect::<Vec<_>>()
                },
                "name": "gbtree"
            },
            "learner_model_param": {
                "base_score": "[5E-1]", "boost_from_average": "1", "num_class": "0", "num_feature": "3", "num_target": "1"
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
        },
        "version": [2, 1, 0]
    })
}

#[test]
fn models_import_of_a_5_mb_model_works() {
    let n = Nimbus::start(&Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big-model.json");
    std::fs::write(&file, xgboost_model(2000).to_string()).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 4_500_000, "the model file is {size} bytes; the test needs one over 4 MB");
    let out = n.ok(&["models", "import", "big", file.to_str().unwrap(), "--format", "xgboost-json"]);
    assert!(out.contains("big version 1"), "{out}");
    let v = n.json(&["models", "describe", "big/1"]);
    let names: Vec<&str> =
        v["input_schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    n.ok(&["models", "approve", "big/1"]);
    serve_group(&n, work.path(), "big", "big");
    let (status, body) = predict(&n, "big", &json!({"instances": [{"a": 1.0, "b": 20.0, "c": 40.0}]}));
    assert_eq!(status, 200, "{body}");
    // And it exports back whole.
    let exported = work.path().join("exported.json");
    n.ok(&["models", "export", "big/1", "--output-file", exported.to_str().unwrap()]);
    let doc: Value = serde_json::from_slice(&std::fs::read(&exported).unwrap()).unwrap();
    assert_eq!(doc["learner"]["gradient_booster"]["model"]["trees"].as_array().unwrap().len(), 2000);
}

// ---------------------------------------------------------------------------------------------
// SigV4: the path and the scope.

#[test]
fn a_path_that_normalisation_would_change_is_refused() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://bkt"]);
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "k", "the object k");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://bkt/k"]);
    let signer = n.signer();
    for path in [
        "/_nimbus/v1/buckets/bkt/objects/a//b",
        "/_nimbus/v1/buckets/bkt/objects/x/../k",
        "/_nimbus/v1/buckets/bkt/objects/./k",
        "/_nimbus/v1/buckets/bkt/objects/k/..",
        "/_nimbus/v1/buckets/x/../bkt/objects/k",
        "/_nimbus/v1//buckets",
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let body: &[u8] = if method == "PUT" { b"replaced" } else { b"" };
            let h = signed_headers(&n, &signer, method, path, "", &sha256_hex(body));
            let a = raw(&n, method, path, &h, body);
            assert_eq!(a.status, 400, "{method} {path}: {a:?}");
            let v: Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["code"], "InvalidPath", "{method} {path}: {v}");
        }
    }
    // Nothing was written or removed under any of those names.
    let keys: Vec<String> =
        n.json(&["store", "ls", "s3://bkt/"]).as_array().unwrap().iter().map(|o| o["key"].to_string()).collect();
    assert_eq!(keys, ["\"k\""]);
    let back = work.path().join("back");
    n.ok(&["store", "cp", "s3://bkt/k", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "the object k");
    // The same segments percent-encoded name keys of their own, and are accepted.
    let path = "/_nimbus/v1/buckets/bkt/objects/x%2F..%2Fk";
    let h = signed_headers(&n, &signer, "PUT", path, "", &sha256_hex(b"dots"));
    assert_eq!(raw(&n, "PUT", path, &h, b"dots").status, 200);
    let h = signed_headers(&n, &signer, "GET", path, "", &sha256_hex(b""));
    let a = raw(&n, "GET", path, &h, b"");
    assert_eq!((a.status, a.body.as_str()), (200, "dots"));
}

#[test]
fn credential_scope_date_must_equal_x_amz_date() {
    let n = Nimbus::start(&Backend::Sqlite);
    let s = n.signer();
    let path = "/_nimbus/v1/model-groups";
    // A signature that is right for its scope (yesterday's key) but whose X-Amz-Date is now:
    // only the date check refuses it.
    let now = time_now();
    let amz_date = sigv4::amz_date(now);
    let scope_date = &sigv4::amz_date(now - time::Duration::days(1))[..8];
    let payload = sha256_hex(b"");
    let headers = vec![
        ("host".to_string(), host(&n)),
        ("x-amz-content-sha256".to_string(), payload.clone()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    let mut tampered = headers.clone();
    tampered.push(("authorization".into(), authorization(&s, "GET", path, &headers, &payload, scope_date, &amz_date)));
    let a = raw(&n, "GET", path, &tampered, b"");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("does not match X-Amz-Date"), "{}", a.body);

    // The same construction with the scope date of X-Amz-Date is accepted: the helper signs right.
    let mut good = headers.clone();
    good.push(("authorization".into(), authorization(&s, "GET", path, &headers, &payload, &amz_date[..8], &amz_date)));
    let a = raw(&n, "GET", path, &good, b"");
    assert_eq!(a.status, 200, "{a:?}");
}

#[test]
fn botocore_signed_empty_query_keys_and_dot_escapes_are_accepted() {
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the botocore path test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let n = Nimbus::start(&Backend::Sqlite);
    let (id, secret) = n.credentials();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/botocore_paths.py");
    let out = Command::new(python).arg(script).args([&n.endpoint, &id, &secret]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "botocore checks failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // What botocore stored under the dotted key is the key it named.
    let keys: Vec<String> = n
        .json(&["store", "ls", "s3://botocore/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.contains(&"a/../b".to_string()), "{keys:?}");
}
