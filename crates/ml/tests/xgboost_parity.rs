//! Parity with Python xgboost (from the test virtual environment, `NIMBUS_TEST_PYTHON`):
//! the trees nimbus stores load in xgboost and predict what nimbus predicts, and xgboost
//! trained on the same data, features and parameters reaches the same holdout AUC.

use std::collections::BTreeMap;
use std::process::Command;

use hessboost::data::FeatureType;
use nimbus_ml::bundle::Bundle;
use nimbus_ml::preprocess::Preprocessor;
use nimbus_ml::table::Table;
use nimbus_ml::{metrics, train};
use serde_json::{Value, json};

fn rows(x: &[f32], width: usize) -> Vec<Vec<Value>> {
    x.chunks(width).map(|r| r.iter().map(|v| if v.is_nan() { Value::Null } else { json!(v) }).collect()).collect()
}

#[test]
fn python_xgboost_reads_our_trees_and_matches_our_auc() {
    let Ok(python) = std::env::var("NIMBUS_TEST_PYTHON") else {
        eprintln!("skipping the Python xgboost parity test: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/titanic/data/train.csv");
    let table = Table::from_csv(&std::fs::read(path).unwrap(), "train.csv").unwrap();
    let (train_t, test_t) = table.split(0.2, 42);
    let features: Vec<String> =
        ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"].iter().map(|s| s.to_string()).collect();
    let pre = Preprocessor::fit(&train_t, &features, &["Sex".into(), "Embarked".into()]).unwrap();
    let x = pre.transform_table(&train_t).unwrap();
    let y = train::labels(&train_t, "Survived", "binary:logistic").unwrap();
    let params: BTreeMap<String, Value> =
        [("objective", json!("binary:logistic")), ("max_depth", json!(4)), ("eta", json!(0.1)), ("seed", json!(42))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let spec = train::TrainSpec { params: params.clone(), num_round: 100 };
    let model = train::fit(&x, &pre, &y, &spec).unwrap();
    let x_test = pre.transform_table(&test_t).unwrap();
    let y_test = train::labels(&test_t, "Survived", "binary:logistic").unwrap();
    let ours = train::predict(&model, &x_test).unwrap();
    let margins = model.predict_margin_rows(&x_test, hessboost::prelude::Iterations::Best).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let bundle =
        Bundle::new(&model, &pre, "binary:logistic", "Survived", y.classes.clone(), BTreeMap::new(), BTreeMap::new())
            .unwrap();
    let model_path = dir.path().join("model.json");
    std::fs::write(&model_path, bundle.model.booster.get()).unwrap();
    let types: Vec<&str> =
        pre.feature_types().iter().map(|t| if *t == FeatureType::Categorical { "c" } else { "q" }).collect();
    let input = json!({
        "model": model_path, "feature_types": types, "test_x": rows(&x_test, pre.width()),
        "train_x": rows(&x, pre.width()), "train_y": y.values, "params": params, "num_round": 100,
    });
    let (inp, outp) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&inp, input.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/xgboost_parity.py");
    let status = Command::new(python).arg(script).arg(&inp).arg(&outp).status().unwrap();
    assert!(status.success(), "the parity script failed");
    let out: Value = serde_json::from_slice(&std::fs::read(&outp).unwrap()).unwrap();

    let max_diff = |theirs: &Value, mine: &[f32]| {
        theirs
            .as_array()
            .unwrap()
            .iter()
            .zip(mine)
            .map(|(t, m)| (t.as_f64().unwrap() - *m as f64).abs())
            .fold(0.0, f64::max)
    };
    let dp = max_diff(&out["prob"], &ours);
    let dm = max_diff(&out["margin"], margins.as_slice());
    println!("xgboost {}: max |Δprob| {dp:.2e}, max |Δmargin| {dm:.2e}", out["xgboost_version"]);
    assert!(dp <= 1e-6, "probabilities differ by {dp}");
    assert!(dm <= 1e-5, "margins differ by {dm}");

    let theirs: Vec<f32> = out["own_prob"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let (auc_ours, auc_xgb) = (metrics::auc(&y_test.values, &ours), metrics::auc(&y_test.values, &theirs));
    println!("holdout AUC: nimbus {auc_ours:.4}, xgboost {auc_xgb:.4}");
    assert!((auc_ours - auc_xgb).abs() <= 0.01, "AUC nimbus {auc_ours} vs xgboost {auc_xgb}");
}
