//! XGBoost JSON models through the CLI and the gateway: a model saved by Python xgboost is
//! imported, served and answers what Python predicts; a native model exported as XGBoost JSON
//! imports back and serves the same answers.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Backend, Nimbus};

const FEATURES: [&str; 7] = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"];

fn train_csv() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic/data/train.csv")
}

/// Declares function `NAME` serving group `NAME` behind API `NAME`, stage prod, and applies it.
fn serve_group(n: &Nimbus, name: &str) {
    let dir = n.data_dir().join(format!("serve-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[functions.{name}]\nkind = \"model\"\nmodel_group = \"{name}\"\n\n[apis.{name}.routes]\n\"POST /predict\" = {{ function = \"{name}\" }}\n[apis.{name}.stages.prod]\n"
    );
    std::fs::write(dir.join("nimbus.toml"), toml).unwrap();
    n.ok(&["apply", dir.to_str().unwrap()]);
}

fn predict(n: &Nimbus, api: &str, instances: &[Value]) -> Vec<f64> {
    let body = json!({"instances": instances, "return_probabilities": true}).to_string();
    let (status, text) = crate::harness::http_to(
        &n.endpoint,
        "POST",
        &format!("/{api}/prod/predict"),
        body.as_bytes(),
        None,
        crate::harness::time_now(),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["probabilities"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).collect()
}

/// Raw Titanic rows (strings for Sex and Embarked, null when empty) at `rows`.
fn raw_records(rows: &[usize]) -> Vec<Value> {
    let mut reader = csv_rows();
    let header = reader.remove(0);
    rows.iter()
        .map(|&r| {
            let row = &reader[r];
            let mut m = serde_json::Map::new();
            for f in FEATURES {
                let i = header.iter().position(|h| h == f).unwrap();
                let text = &row[i];
                let v = if text.is_empty() {
                    Value::Null
                } else if let Ok(x) = text.parse::<f64>() {
                    json!(x)
                } else {
                    json!(text)
                };
                m.insert(f.to_string(), v);
            }
            Value::Object(m)
        })
        .collect()
}

/// The CSV as rows of fields (quoted names contain commas).
fn csv_rows() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(train_csv()).unwrap();
    let table = nimbus_ml::table::Table::from_csv(text.as_bytes(), "train.csv").unwrap();
    let mut rows = vec![table.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>()];
    for r in 0..table.rows() {
        rows.push(table.columns.iter().map(|c| c.text_at(r).unwrap_or_default()).collect());
    }
    rows
}

#[test]
fn a_python_xgboost_model_imports_and_serves_what_python_predicts() {
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the Python xgboost import test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let n = Nimbus::start(&Backend::Sqlite);
    let work = n.data_dir().join("py");
    std::fs::create_dir_all(&work).unwrap();
    // Python trains on label-encoded Sex (male=0, female=1) and Embarked (S=0, C=1, Q=2).
    let input = json!({"csv": train_csv(), "dir": work, "cases": [{
        "name": "peer", "objective": "binary:logistic", "target": "Survived", "features": FEATURES,
        "categorical": [], "feature_names": true, "params": {"max_depth": 4, "eta": 0.1, "seed": 1}, "num_round": 60
    }]});
    std::fs::write(work.join("in.json"), input.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ml/tests/python/xgboost_json.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["train", work.join("in.json").to_str().unwrap(), work.join("out.json").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: Value = serde_json::from_str(&std::fs::read_to_string(work.join("out.json")).unwrap()).unwrap();
    let case = &py["cases"]["peer"];

    let model = case["model"].as_str().unwrap();
    let (code, _, err) = n.cli(&["models", "import", "peer", model, "--format", "xgboost-json", "--category", "Sex"]);
    assert_eq!(code, 2, "a malformed --category: {err}");
    let out = n.ok(&[
        "models",
        "import",
        "peer",
        model,
        "--format",
        "xgboost-json",
        "--category",
        "Sex=male,female",
        "--category",
        "Embarked=S,C,Q",
        "--target",
        "Survived",
    ]);
    assert!(out.contains("imported") && out.contains("peer version 1"), "{out}");
    let v = n.json(&["models", "describe", "peer/1"]);
    assert_eq!(v["input_schema"]["fields"][1]["categories"], json!(["male", "female"]));
    n.ok(&["models", "approve", "peer", "1"]);
    serve_group(&n, "peer");

    let rows: Vec<usize> = case["holdout"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap() as usize).collect();
    let ours = predict(&n, "peer", &raw_records(&rows));
    let theirs: Vec<f64> = case["pred"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert_eq!(ours.len(), theirs.len());
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-6, "max |Δ| {worst} over {} rows", ours.len());

    // Not a model at all, and an objective nimbus does not serve: 400s that say so.
    std::fs::write(work.join("bad.json"), "{\"learner\": {}}").unwrap();
    let (code, _, err) =
        n.cli(&["models", "import", "peer", work.join("bad.json").to_str().unwrap(), "--format", "xgboost-json"]);
    assert_eq!(code, 2);
    assert!(err.contains("XGBoost JSON model"), "{err}");
}

#[test]
fn a_native_model_exports_as_xgboost_json_and_imports_back_with_the_same_answers() {
    let n = Nimbus::start(&Backend::Sqlite);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/titanic");
    n.ok(&["apply", example.to_str().unwrap()]);
    n.ok(&["pipelines", "run", "titanic", "--wait"]);
    n.ok(&["models", "approve", "titanic", "1"]);
    let file = n.data_dir().join("titanic.json");
    let out = n.ok(&["models", "export", "titanic/1", "--output-file", file.to_str().unwrap()]);
    assert!(out.contains("wrote titanic version 1 as xgboost-json"), "{out}");
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported["learner"]["feature_names"], json!(FEATURES));
    n.ok(&["models", "import", "roundtrip", file.to_str().unwrap(), "--format", "xgboost-json"]);
    n.ok(&["models", "approve", "roundtrip", "1"]);
    serve_group(&n, "roundtrip");
    let rows: Vec<usize> = (0..891).step_by(7).collect();
    let records = raw_records(&rows);
    assert_eq!(predict(&n, "titanic", &records), predict(&n, "roundtrip", &records));
    let (code, _, err) = n.cli(&["models", "export", "titanic"]);
    assert_eq!(code, 2);
    assert!(err.contains("titanic/VERSION"), "{err}");
}
