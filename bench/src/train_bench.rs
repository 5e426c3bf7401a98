//! Training and batch-prediction benchmark of the ml core (see BENCHMARKS.md).
//!
//! Usage: train_bench DATA_DIR OUT_MODEL_JSON
//! Reads DATA_DIR/train.csv and test.csv (from bench/make_synthetic.py), trains with
//! max_depth 6, eta 0.1, 200 rounds, 2 threads, hist; prints one JSON line with the fit time,
//! the test AUC and batch-prediction rows/s (median of 5), and writes the trees as XGBoost
//! JSON to OUT_MODEL_JSON so Python xgboost can predict with the same trees.

use std::collections::BTreeMap;
use std::time::Instant;

use nimbus_ml::preprocess::Preprocessor;
use nimbus_ml::table::Table;
use nimbus_ml::{metrics, train};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let load = |f: &str| Table::from_csv(&std::fs::read(dir.join(f)).expect("data file"), f).expect("CSV");
    let t0 = Instant::now();
    let (train_t, test_t) = (load("train.csv"), load("test.csv"));
    let load_s = t0.elapsed().as_secs_f64();
    let features: Vec<String> = train_t.columns.iter().map(|c| c.name.clone()).filter(|n| n != "y").collect();
    let pre = Preprocessor::fit(&train_t, &features, &[]).unwrap();
    let x = pre.transform_table(&train_t).unwrap();
    let y = train::labels(&train_t, "y", "binary:logistic").unwrap();
    let params: BTreeMap<String, Value> = [
        ("objective", json!("binary:logistic")),
        ("max_depth", json!(6)),
        ("eta", json!(0.1)),
        ("nthread", json!(2)),
        ("tree_method", json!("hist")),
        ("seed", json!(0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let spec = train::TrainSpec { params, num_round: 200 };
    let t1 = Instant::now();
    let model = train::fit(&x, &pre, &y, &spec).unwrap();
    let fit_s = t1.elapsed().as_secs_f64();

    let x_test = pre.transform_table(&test_t).unwrap();
    let y_test = train::labels(&test_t, "y", "binary:logistic").unwrap();
    let mut times = Vec::new();
    let mut probs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        probs = train::predict(&model, &x_test).unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let rows = test_t.rows() as f64;
    let auc = metrics::auc(&y_test.values, &probs);
    let bytes = model.encode(hessboost::prelude::ModelFormat::XgboostJson).unwrap();
    std::fs::write(&args[2], bytes).unwrap();
    println!(
        "{}",
        json!({"impl": "nimbus (hessboost)", "load_s": load_s, "fit_s": fit_s, "test_auc": auc,
               "predict_rows_per_s": rows / times[2], "train_rows": train_t.rows(), "test_rows": test_t.rows()})
    );
}
