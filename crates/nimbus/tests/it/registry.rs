//! The registry end to end: groups, imports, approval, aliases, selectors, restart.

use crate::harness::{Nimbus, backends, bundle, write_file};

#[test]
fn registry_flow_survives_restart_on_every_backend() {
    for backend in backends() {
        let mut n = Nimbus::start(&backend);
        let first = n.first_stdout.join("\n");
        assert!(first.contains("aws_access_key_id"), "first start prints the key once: {first}");

        n.ok(&["models", "create", "titanic", "--description", "Titanic survival"]);
        let b1 = write_file(n.data_dir(), "b1.json", &bundle(0.86));
        let b2 = write_file(n.data_dir(), "b2.json", &bundle(0.88));
        let v1 = n.json(&["models", "import", "titanic", b1.to_str().unwrap()]);
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["status"], "PendingManualApproval");
        assert_eq!(v1["input_schema"]["fields"][1]["categories"][0], "male");
        let v2 = n.json(&["models", "import", "titanic", b2.to_str().unwrap(), "--description", "second try"]);
        assert_eq!(v2["version"], 2);
        assert_eq!(v2["metrics"]["auc"], 0.88);

        let listed = n.json(&["models", "list", "titanic"]);
        let versions: Vec<i64> = listed.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, [2, 1]);
        let table = n.ok(&["models", "list", "titanic"]);
        assert!(table.contains("PendingManualApproval") && table.contains("auc=0.8800"), "{table}");

        // Nothing approved yet: latest-approved resolves to nothing, with the way out.
        let (code, _, err) = n.cli(&["models", "resolve", "titanic", "latest-approved"]);
        assert_eq!(code, 2);
        assert!(err.contains("no version is Approved yet") && err.contains("nimbus models approve"), "{err}");

        let approved = n.json(&["models", "approve", "titanic", "1", "--description", "AUC above 0.85 on holdout"]);
        assert_eq!(approved["status"], "Approved");
        assert_eq!(approved["approval"]["by"], "admin");
        assert_eq!(approved["approval"]["description"], "AUC above 0.85 on holdout");
        assert!(approved["approval"]["at"].as_str().unwrap().ends_with('Z'));

        n.ok(&["models", "alias", "titanic", "production", "1"]);
        n.ok(&["models", "alias", "titanic", "staging", "2"]);
        n.ok(&["models", "approve", "titanic", "2"]);
        n.ok(&["models", "alias", "titanic", "production", "2"]);

        // Selectors through raw, signed HTTP.
        let signer = n.signer();
        for (selector, want) in [("latest-approved", 2), ("%40production", 2), ("%40staging", 2), ("1", 1)] {
            let (status, body) = n.http(
                "GET",
                &format!("/_nimbus/v1/model-groups/titanic/resolve?selector={selector}"),
                b"",
                Some(&signer),
            );
            assert_eq!(status, 200, "{selector}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["version"], want, "{selector}");
        }
        n.ok(&["models", "reject", "titanic", "2", "--description", "regressed in shadow traffic"]);
        assert_eq!(n.json(&["models", "resolve", "titanic", "latest-approved"])["version"], 1);

        n.restart();

        let group = n.json(&["models", "describe", "titanic"]);
        assert_eq!(group["version_count"], 2);
        assert_eq!(group["latest_approved_version"], 1);
        assert_eq!(group["aliases"]["production"], 2);
        assert_eq!(group["description"], "Titanic survival");
        let v2 = n.json(&["models", "describe", "titanic/2"]);
        assert_eq!(v2["status"], "Rejected");
        assert_eq!(v2["approval"]["description"], "regressed in shadow traffic");
        assert_eq!(v2["description"], "second try");
        let v1 = n.json(&["models", "describe", "titanic/latest-approved"]);
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["parameters"]["max_depth"], 4);
        let events = n.json(&["models", "events", "titanic"]);
        let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Registered", "Registered", "Approved", "AliasSet", "AliasSet", "Approved", "AliasSet", "Rejected"]
        );
        // The artifact is in the store, whole.
        let uri = v1["artifact"]["uri"].as_str().unwrap();
        let out = n.dir.path().join("downloaded.json");
        n.ok(&["store", "cp", uri, out.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(out).unwrap(), bundle(0.86));
        // The secret is not printed again after the first start.
        assert!(n.stop());
    }
}

#[test]
fn concurrent_imports_get_distinct_numbers_on_every_backend() {
    for backend in backends() {
        let n = Nimbus::start(&backend);
        let path = write_file(n.data_dir(), "b.json", &bundle(0.8));
        let p = path.to_str().unwrap().to_string();
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (dir, endpoint, p) = (n.data_dir().to_path_buf(), n.endpoint.clone(), p.clone());
                std::thread::spawn(move || {
                    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nimbus"))
                        .args(["models", "import", "g", &p, "--output", "json"])
                        .env("NIMBUS_DATA_DIR", dir)
                        .env("NIMBUS_ENDPOINT", endpoint)
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    v["version"].as_i64().unwrap()
                })
            })
            .collect();
        let mut got: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, [1, 2, 3, 4, 5, 6], "{backend:?}");
    }
}
