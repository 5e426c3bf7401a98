//! The ml core on the Titanic data: the example's features and parameters reach the AUC the
//! example promises, and a bundle's predictor answers exactly what training predicted.

use std::collections::BTreeMap;

use nimbus_ml::bundle::Bundle;
use nimbus_ml::predict::Predictor;
use nimbus_ml::preprocess::Preprocessor;
use nimbus_ml::table::Table;
use nimbus_ml::{metrics, train};
use serde_json::{Value, json};

const FEATURES: [&str; 7] = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"];

fn data() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/titanic/data/train.csv");
    Table::from_csv(&std::fs::read(path).unwrap(), "train.csv").unwrap()
}

fn spec() -> train::TrainSpec {
    let params: BTreeMap<String, Value> = [
        ("objective", json!("binary:logistic")),
        ("max_depth", json!(4)),
        ("eta", json!(0.1)),
        ("seed", json!(42)),
        ("nthread", json!(2)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    train::TrainSpec { params, num_round: 100 }
}

#[test]
fn titanic_reaches_the_promised_auc_and_the_bundle_predicts_exactly_as_trained() {
    let (train_t, test_t) = data().split(0.2, 42);
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let pre = Preprocessor::fit(&train_t, &features, &["Sex".into(), "Embarked".into()]).unwrap();
    let x = pre.transform_table(&train_t).unwrap();
    let labels = train::labels(&train_t, "Survived", "binary:logistic").unwrap();
    let model = train::fit(&x, &pre, &labels, &spec()).unwrap();

    let x_test = pre.transform_table(&test_t).unwrap();
    let y_test = train::labels(&test_t, "Survived", "binary:logistic").unwrap();
    let probs = train::predict(&model, &x_test).unwrap();
    let eval = metrics::binary(&y_test.values, &probs);
    println!("titanic holdout: {:?}", eval.metrics);
    assert!(eval.metrics["auc"] >= 0.84, "AUC {}", eval.metrics["auc"]);

    let bundle = Bundle::new(
        &model,
        &pre,
        "binary:logistic",
        "Survived",
        labels.classes.clone(),
        eval.metrics.clone(),
        BTreeMap::new(),
    )
    .unwrap();
    let predictor = Predictor::from_slice(&bundle.to_vec()).unwrap();
    assert_eq!(predictor.predict_matrix(&x_test).unwrap(), probs, "bit-for-bit the trainer's predictions");

    // Raw records, as a client sends them, give the same probabilities.
    let records: Vec<Value> = (0..test_t.rows())
        .map(|r| {
            let mut m = serde_json::Map::new();
            for f in FEATURES {
                let c = test_t.column(f).unwrap();
                let v = match &c.data {
                    nimbus_ml::table::ColumnData::Numeric(v) if v[r].is_finite() => json!(v[r]),
                    nimbus_ml::table::ColumnData::Numeric(_) => Value::Null,
                    nimbus_ml::table::ColumnData::Text(v) => v[r].clone().map(Value::String).unwrap_or(Value::Null),
                };
                m.insert(f.to_string(), v);
            }
            Value::Object(m)
        })
        .collect();
    let preds = predictor.predict_records(&records).unwrap();
    // Every request form answers what predict_records says, across chunk boundaries.
    for probabilities in [false, true] {
        for copies in [1, 15] {
            let records: Vec<Value> = records.iter().cycle().take(records.len() * copies).cloned().collect();
            let preds = predictor.predict_records(&records).unwrap();
            let expected = expected_answer(&preds, probabilities);
            let fast = json!({"instances": records, "return_probabilities": probabilities}).to_string();
            let late_flag = format!(r#"{{"return_probabilities":{probabilities},"instances":{}}}"#, json!(records));
            let general = json!({"dataframe_records": records, "return_probabilities": probabilities}).to_string();
            for body in [fast, late_flag, general] {
                let got = nimbus_ml::protocols::answer(&predictor, None, body.as_bytes(), None).unwrap();
                assert_eq!(String::from_utf8(got).unwrap(), expected.to_string(), "{} rows", records.len());
            }
        }
    }
    // The inference protocol says the same, typed.
    let columns: Vec<Value> = FEATURES
        .iter()
        .map(|f| {
            let data: Vec<Value> = records.iter().map(|r| r[*f].clone()).collect();
            json!({"name": f, "shape": [records.len()], "datatype": "BYTES", "data": data})
        })
        .collect();
    let body = json!({"id": "r1", "inputs": columns}).to_string();
    let got = nimbus_ml::protocols::answer_infer(&predictor, "titanic", "3", body.as_bytes(), None).unwrap();
    let got: Value = serde_json::from_slice(&got).unwrap();
    let n = records.len();
    let labels: Vec<Value> = preds.iter().map(|p| p.value.clone()).collect();
    let proba: Vec<f64> = preds.iter().flat_map(|p| p.probabilities.clone().unwrap()).map(f64::from).collect();
    assert_eq!(
        got,
        json!({"model_name": "titanic", "model_version": "3", "id": "r1", "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": labels},
            {"name": "predict_proba", "shape": [n, 2], "datatype": "FP32", "data": proba}]})
    );
    // A cancelled batch stops at its next chunk; an answer over the limit is refused with 413.
    let many: Vec<Value> = records.iter().cycle().take(5000).cloned().collect();
    let body = json!({"dataframe_records": many}).to_string();
    let stop = std::sync::atomic::AtomicBool::new(true);
    let e = nimbus_ml::protocols::answer(&predictor, None, body.as_bytes(), Some(&stop)).unwrap_err();
    assert_eq!(e.status(), 504, "{e}");
    use nimbus_ml::batch::{Batch, Form};
    let request = nimbus_ml::protocols::read_request(None, body.as_bytes()).unwrap();
    let mut batch = Batch::new(&predictor, Form::Predict, false, None).with_answer_limit(1000);
    let e = request.decode(predictor.preprocessor(), &mut batch).and_then(|()| batch.finish(false)).unwrap_err();
    assert_eq!(e.status(), 413, "{e}");
    assert!(e.message.contains("send fewer instances per request"), "{e}");
    for (p, expected) in preds.iter().zip(&probs) {
        assert_eq!(p.probabilities.as_ref().unwrap()[1], *expected);
        assert_eq!(p.value, json!((*expected > 0.5) as i64));
    }

    // The seeds' three sample passengers.
    let sample = [
        json!({"Age": 22, "Sex": "male", "Pclass": 3}),
        json!({"Age": 12, "Sex": "male", "Pclass": 1}),
        json!({"Age": 38, "Sex": "female", "Pclass": 1}),
    ];
    let out = predictor.predict_records(&sample).unwrap();
    assert_eq!(out[0].value, json!(0), "a 22-year-old man in third class");
    assert_eq!(out[2].value, json!(1), "a 38-year-old woman in first class");
}

/// `{"predictions": […]}` (and `"probabilities"`) as the predictions say.
fn expected_answer(preds: &[nimbus_ml::predict::Prediction], probabilities: bool) -> Value {
    let mut v = json!({"predictions": preds.iter().map(|p| p.value.clone()).collect::<Vec<_>>()});
    if probabilities {
        let rows: Vec<Vec<f64>> =
            preds.iter().map(|p| p.probabilities.iter().flatten().map(|&x| f64::from(x)).collect()).collect();
        v["probabilities"] = json!(rows);
    }
    v
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (train_t, _) = data().split(0.2, 1);
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let pre = Preprocessor::fit(&train_t, &features, &["Sex".into(), "Embarked".into()]).unwrap();
    let x = pre.transform_table(&train_t).unwrap();
    let labels = train::labels(&train_t, "Survived", "binary:logistic").unwrap();
    let mut s = spec();
    s.params.insert("subsample".into(), json!(0.8));
    s.params.insert("colsample_bytree".into(), json!(0.8));
    let a = train::predict(&train::fit(&x, &pre, &labels, &s).unwrap(), &x).unwrap();
    let b = train::predict(&train::fit(&x, &pre, &labels, &s).unwrap(), &x).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_parameters_are_named() {
    let (train_t, _) = data().split(0.2, 1);
    let pre = Preprocessor::fit(&train_t, &["Age".into()], &[]).unwrap();
    let x = pre.transform_table(&train_t).unwrap();
    let labels = train::labels(&train_t, "Survived", "binary:logistic").unwrap();
    let mut s = spec();
    s.params.insert("max_dept".into(), json!(3));
    let e = train::fit(&x, &pre, &labels, &s).unwrap_err().to_string();
    assert!(e.contains("max_dept"), "{e}");
    let e = train::labels(&train_t, "Name", "binary:logistic").unwrap_err().to_string();
    assert!(e.contains("exactly two classes"), "{e}");
    let e = train::labels(&train_t, "Survived", "rank:pairwise").unwrap_err().to_string();
    assert!(e.contains("objective"), "{e}");
}

#[test]
fn the_same_data_as_parquet_trains_the_same_model_and_rounds_are_reported() {
    let csv = data();
    let parquet = Table::from_bytes(&csv.to_parquet().unwrap(), "train.parquet").unwrap();
    assert_eq!(parquet.to_csv(), csv.to_csv(), "the Parquet table holds the same values");
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let fit = |table: &Table, rounds: &mut Vec<usize>| {
        let (train_t, _) = table.split(0.2, 42);
        let pre = Preprocessor::fit(&train_t, &features, &["Sex".into(), "Embarked".into()]).unwrap();
        let x = pre.transform_table(&train_t).unwrap();
        let labels = train::labels(&train_t, "Survived", "binary:logistic").unwrap();
        let model = train::fit_observed(&x, &pre, &labels, &spec(), |n| rounds.push(n)).unwrap();
        train::predict(&model, &x).unwrap()
    };
    let (mut from_csv, mut from_parquet) = (Vec::new(), Vec::new());
    assert_eq!(fit(&csv, &mut from_csv), fit(&parquet, &mut from_parquet));
    assert_eq!(from_csv, (1..=100).collect::<Vec<_>>(), "one report per boosting round, in order");
}
