//! XGBoost JSON import and export. With Python xgboost (`NIMBUS_TEST_PYTHON`): models Python
//! trains on label-encoded Titanic data import and predict from raw records what Python
//! predicts, and native models exported to XGBoost JSON predict in Python what they predict
//! in nimbus. Without Python: errors, a round trip, a bundle written before import existed,
//! and a checked-in model xgboost trained on pandas category columns.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use hessboost::prelude::ModelFormat;
use nimbus_ml::bundle::Bundle;
use nimbus_ml::predict::{Prediction, Predictor};
use nimbus_ml::preprocess::{FeatureKind, Preprocessor};
use nimbus_ml::table::{ColumnData, Table};
use nimbus_ml::train;
use nimbus_ml::xgboost::{ImportOptions, bundle_from_xgboost_json, bundle_to_xgboost_json};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn titanic() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/titanic/data/train.csv");
    Table::from_csv(&std::fs::read(path).unwrap(), "train.csv").unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Row `r` of `table` as a client sends it: numbers, strings, `null` for missing.
fn record(table: &Table, r: usize, features: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for f in features {
        let v = match &table.column(f).unwrap().data {
            ColumnData::Numeric(v) if v[r].is_finite() => json!(v[r]),
            ColumnData::Numeric(_) => Value::Null,
            ColumnData::Text(v) => v[r].clone().map(Value::String).unwrap_or(Value::Null),
        };
        m.insert(f.to_string(), v);
    }
    Value::Object(m)
}

/// The label encoding the Python helper applies (code = position).
fn label_options() -> ImportOptions {
    ImportOptions {
        categories: BTreeMap::from([
            ("Sex".into(), strings(&["male", "female"])),
            ("Embarked".into(), strings(&["S", "C", "Q"])),
        ]),
        ..ImportOptions::default()
    }
}

/// What the predictions answer as numbers: the positive class's probability, every class's
/// probability, or the value.
fn outputs(predictions: &[Prediction]) -> Vec<f32> {
    predictions
        .iter()
        .flat_map(|p| match &p.probabilities {
            Some(probs) if probs.len() == 2 => vec![probs[1]],
            Some(probs) => probs.clone(),
            None => vec![p.value.as_f64().unwrap() as f32],
        })
        .collect()
}

fn max_diff(theirs: &Value, mine: &[f32]) -> f64 {
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), mine.len(), "as many values from Python as from nimbus");
    theirs.iter().zip(mine).map(|(t, m)| (t.as_f64().unwrap() - *m as f64).abs()).fold(0.0, f64::max)
}

fn matrix_json(x: &[f32], width: usize) -> Vec<Vec<Value>> {
    x.chunks(width).map(|r| r.iter().map(|v| if v.is_nan() { Value::Null } else { json!(v) }).collect()).collect()
}

fn python() -> Option<String> {
    let python = std::env::var("NIMBUS_TEST_PYTHON").ok();
    if python.is_none() {
        eprintln!("skipping the Python xgboost part: NIMBUS_TEST_PYTHON is not set (scripts/test.sh sets it)");
    }
    python
}

/// Runs the Python helper's `command` on `input`, returning its output.
fn run_python(python: &str, dir: &Path, command: &str, input: &Value) -> Value {
    let (inp, outp) = (dir.join(format!("{command}-in.json")), dir.join(format!("{command}-out.json")));
    std::fs::write(&inp, input.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/xgboost_json.py");
    let status = Command::new(python).arg(script).arg(command).arg(&inp).arg(&outp).status().unwrap();
    assert!(status.success(), "the Python helper failed on {command}");
    serde_json::from_slice(&std::fs::read(&outp).unwrap()).unwrap()
}

/// A model the Python helper trains on the label-encoded Titanic data.
struct Case {
    name: &'static str,
    objective: &'static str,
    /// Predicted from the other six of Pclass, Sex, Age, SibSp, Parch, Fare, Embarked.
    target: &'static str,
    /// Features Python types `c` (split by category); the others are numbers.
    categorical: &'static [&'static str],
    /// Whether Python saves the feature names (else the import names them).
    names: bool,
}

impl Case {
    fn features(&self) -> Vec<&'static str> {
        ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
            .into_iter()
            .filter(|f| *f != self.target)
            .collect()
    }

    fn input(&self) -> Value {
        let mut params = json!({"objective": self.objective, "max_depth": 4, "eta": 0.1, "seed": 42, "nthread": 2});
        if self.objective == "multi:softprob" {
            params["num_class"] = json!(3);
        }
        json!({"name": self.name, "objective": self.objective, "target": self.target, "features": self.features(),
               "categorical": self.categorical, "feature_names": self.names, "params": params, "num_round": 60})
    }
}

/// The number of categorical splits in an XGBoost JSON model.
fn category_splits(model: &[u8]) -> usize {
    let doc: Value = serde_json::from_slice(model).unwrap();
    let trees = doc["learner"]["gradient_booster"]["model"]["trees"].as_array().unwrap().iter();
    trees.flat_map(|t| t["split_type"].as_array().unwrap()).filter(|t| *t == 1).count()
}

#[test]
fn models_python_xgboost_saved_import_and_predict_what_python_predicts() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let case = |name, objective, target, names| Case { name, objective, target, categorical: &[], names };
    let cases = [
        case("binary", "binary:logistic", "Survived", true),
        case("regression", "reg:squarederror", "Fare", false),
        case("multiclass", "multi:softprob", "Pclass", true),
        Case { categorical: &["Sex", "Embarked"], ..case("categorical", "binary:logistic", "Survived", true) },
    ];
    let input = json!({
        "csv": concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/titanic/data/train.csv"),
        "dir": dir.path(),
        "cases": cases.iter().map(Case::input).collect::<Vec<_>>(),
    });
    let out = run_python(&python, dir.path(), "train", &input);
    let table = titanic();
    for c in &cases {
        let (name, features, python) = (c.name, c.features(), &out["cases"][c.name]);
        let mut options = ImportOptions { target: Some(c.target.into()), ..label_options() };
        if !c.names {
            options.feature_names = Some(strings(&features));
        }
        if c.objective == "multi:softprob" {
            options.classes = Some(strings(&["1", "2", "3"]));
        }
        let bytes = std::fs::read(python["model"].as_str().unwrap()).unwrap();
        assert_eq!(category_splits(&bytes) > 0, !c.categorical.is_empty(), "{name}: the trees split by category");
        let bundle = bundle_from_xgboost_json(&bytes, &options).unwrap();
        let pre = &bundle.model.preprocessing;
        assert_eq!(pre.names(), strings(&features), "{name}: feature names");
        for f in &pre.features {
            let labelled = matches!(&f.kind, FeatureKind::Labelled { categorical, .. }
                if *categorical == c.categorical.contains(&f.name.as_str()));
            assert_eq!(labelled, ["Sex", "Embarked"].contains(&f.name.as_str()), "{name}: {f:?}");
        }
        let predictor = Predictor::from_slice(&bundle.to_vec()).unwrap();

        let rows = python["holdout"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize);
        let records: Vec<Value> = rows.map(|r| record(&table, r, &features)).collect();
        let x = predictor.encode_records(&records).unwrap();
        assert_eq!(json!(matrix_json(&x, features.len())), python["x"], "{name}: records encode as Python's rows");
        let predictions = predictor.predict_records(&records).unwrap();
        let dp = max_diff(&python["pred"], &outputs(&predictions));
        let dm = max_diff(&python["margin"], &predictor.predict_margin_matrix(&x).unwrap());
        let version = &out["xgboost_version"];
        println!("{name} ({}, xgboost {version}): max |Δ| prediction {dp:.2e}, margin {dm:.2e}", c.objective);
        assert!(dp <= 1e-6, "{name}: predictions differ by {dp}");
        assert!(dm <= 1e-6, "{name}: margins differ by {dm}");
        let classes: &[i64] = match c.objective {
            "multi:softprob" => &[1, 2, 3],
            "binary:logistic" => &[0, 1],
            _ => &[],
        };
        for p in predictions.iter().filter(|_| !classes.is_empty()) {
            assert!(classes.iter().any(|k| p.value == json!(k)), "{name}: class {} is one of {classes:?}", p.value);
        }
    }
}

/// A native model of `objective` trained on Titanic's first 80 %, its preprocessing, and the
/// encoded remaining 20 %.
fn native(objective: &str, target: &str) -> (Bundle, Preprocessor, Vec<f32>) {
    let (train_t, test_t) = titanic().split(0.2, 42);
    let features: Vec<String> = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
        .iter()
        .filter(|f| **f != target)
        .map(|s| s.to_string())
        .collect();
    let pre = Preprocessor::fit(&train_t, &features, &strings(&["Sex", "Embarked"])).unwrap();
    let labels = train::labels(&train_t, target, objective).unwrap();
    let params: BTreeMap<String, Value> =
        [("objective", json!(objective)), ("max_depth", json!(4)), ("eta", json!(0.1)), ("seed", json!(42))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let spec = train::TrainSpec { params: params.clone(), num_round: 40 };
    let model = train::fit(&pre.transform_table(&train_t).unwrap(), &pre, &labels, &spec).unwrap();
    let bundle = Bundle::new(&model, &pre, objective, target, labels.classes, BTreeMap::new(), params).unwrap();
    let x_test = pre.transform_table(&test_t).unwrap();
    (bundle, pre, x_test)
}

#[test]
fn native_models_exported_as_xgboost_json_predict_the_same_in_python() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (objective, target) in
        [("binary:logistic", "Survived"), ("reg:squarederror", "Fare"), ("multi:softprob", "Pclass")]
    {
        let (bundle, pre, x) = native(objective, target);
        let path = dir.path().join("m.json");
        std::fs::write(&path, bundle_to_xgboost_json(&bundle).unwrap()).unwrap();
        let out =
            run_python(&python, dir.path(), "predict", &json!({"model": path, "x": matrix_json(&x, pre.width())}));
        assert_eq!(out["feature_names"], json!(pre.names()), "{objective}: Python sees the names");
        let types: Vec<&str> =
            pre.names().iter().map(|n| if n == "Sex" || n == "Embarked" { "c" } else { "" }).collect();
        for (theirs, ours) in out["feature_types"].as_array().unwrap().iter().zip(types) {
            assert_eq!(theirs == "c", ours == "c", "{objective}: Python sees the categorical features");
        }
        let predictor = Predictor::from_bundle(&bundle).unwrap();
        let dp = max_diff(&out["pred"], &predictor.predict_matrix(&x).unwrap());
        let dm = max_diff(&out["margin"], &predictor.predict_margin_matrix(&x).unwrap());
        println!("export {objective}: max |Δ| prediction {dp:.2e}, margin {dm:.2e}");
        assert!(dp <= 1e-6, "{objective}: predictions differ by {dp}");
        assert!(dm <= 1e-6, "{objective}: margins differ by {dm}");
    }
}

#[test]
fn import_errors_name_the_problem_and_the_fix() {
    let err = |bytes: &[u8], options: &ImportOptions| bundle_from_xgboost_json(bytes, options).unwrap_err().to_string();
    let none = ImportOptions::default();
    let e = err(b"tree\nversion=v4", &none);
    assert!(e.starts_with("XGBoost JSON model: not JSON") && e.contains("save_model(\"m.json\")"), "{e}");
    let e = err(br#"{"format": "nimbus-model", "model": {}}"#, &none);
    assert!(e.contains("no \"learner\" object") && e.contains("not an XGBoost model"), "{e}");

    let (bundle, _, _) = native("binary:logistic", "Survived");
    let ubjson = bundle.booster().unwrap().encode(ModelFormat::XgboostUbjson).unwrap();
    let e = err(&ubjson, &none);
    assert!(e.contains("UBJSON") && e.contains("save_model(\"m.json\")"), "{e}");

    let exported = bundle_to_xgboost_json(&bundle).unwrap();
    let mut doc: Value = serde_json::from_slice(&exported).unwrap();
    doc["learner"]["objective"]["name"] = json!("rank:pairwise");
    let e = err(&serde_json::to_vec(&doc).unwrap(), &none);
    assert_eq!(
        e,
        "XGBoost JSON model: objective \"rank:pairwise\" is not supported; \
         nimbus imports binary:logistic, multi:softprob and reg:squarederror"
    );

    let options = ImportOptions { categories: BTreeMap::from([("Cabin".into(), strings(&["A"]))]), ..none.clone() };
    let e = err(&exported, &options);
    assert_eq!(
        e,
        "parameter categories: names \"Cabin\", which is not a feature of the model \
         (its features: Pclass, Sex, Age, SibSp, Parch, Fare, Embarked)"
    );
    let options = ImportOptions { categories: BTreeMap::from([("Sex".into(), strings(&["m", "m"]))]), ..none.clone() };
    assert!(err(&exported, &options).contains("categories.Sex: lists \"m\" twice"));
    let options = ImportOptions { feature_names: Some(strings(&["a", "b"])), ..none.clone() };
    assert!(
        err(&exported, &options).starts_with("parameter feature_names: has 2 names but the model reads 7 features")
    );
    let options = ImportOptions { classes: Some(strings(&["no", "yes", "maybe"])), ..none };
    assert!(err(&exported, &options).contains("has 3 labels but the model predicts 2 classes"));
}

#[test]
fn a_native_model_survives_a_round_trip_through_xgboost_json() {
    let (_, test_t) = titanic().split(0.2, 42);
    let (bundle, pre, x) = native("multi:softprob", "Pclass");
    let exported = bundle_to_xgboost_json(&bundle).unwrap();
    let options = ImportOptions {
        target: Some("Pclass".into()),
        classes: bundle.model.classes.clone(),
        ..ImportOptions::default()
    };
    let imported = bundle_from_xgboost_json(&exported, &options).unwrap();
    // Names, types and the categories come back from feature_names, feature_types and cats.
    assert_eq!(imported.model.preprocessing, pre);
    assert_eq!(imported.input_schema, bundle.input_schema);
    assert_eq!(imported.output_schema, bundle.output_schema);
    let (before, after) = (Predictor::from_bundle(&bundle).unwrap(), Predictor::from_bundle(&imported).unwrap());
    let d = max_diff(&json!(before.predict_matrix(&x).unwrap()), &after.predict_matrix(&x).unwrap());
    assert!(d <= 1e-7, "round trip changed predictions by {d}");
    let names = pre.names();
    let features: Vec<&str> = names.iter().map(String::as_str).collect();
    let records: Vec<Value> = (0..test_t.rows()).map(|r| record(&test_t, r, &features)).collect();
    let labels = |p: &Predictor| p.predict_records(&records).unwrap().into_iter().map(|p| p.value).collect::<Vec<_>>();
    assert_eq!(labels(&before), labels(&after), "raw records get the same classes");
}

#[test]
fn a_bundle_written_before_xgboost_import_loads_and_predicts_as_before() {
    // Written by `Bundle::new` before labelled features and unsorted categories existed.
    let bytes = std::fs::read(format!("{FIXTURES}/native_bundle_v1.json")).unwrap();
    let bundle = Bundle::from_slice(&bytes).unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(serde_json::to_value(&bundle).unwrap(), original, "reads and writes back unchanged");
    let records = json!([
        {"Pclass": 3, "Sex": "male", "Age": 22, "Fare": 7.25, "Embarked": "S"},
        {"Pclass": 1, "Sex": "female", "Age": 38, "Fare": 71.2833, "Embarked": "C"},
        {"Pclass": "2", "Sex": "female", "Embarked": "Q"},
        {"Pclass": 3, "Sex": "robot", "Age": 4, "Fare": 16.7, "Embarked": "X"},
        {},
    ]);
    let predictions = Predictor::from_bundle(&bundle).unwrap().predict_records(records.as_array().unwrap()).unwrap();
    // What the predictor answered when the fixture was written.
    assert_eq!(outputs(&predictions), [0.18878509, 0.8050676, 0.8050676, 0.5013707, 0.24708486]);
    assert_eq!(predictions.iter().map(|p| p.value.clone()).collect::<Vec<_>>(), [0, 1, 1, 1, 0].map(|v| json!(v)));
    let mut row = [0f32; 5];
    bundle.model.preprocessing.encode_record(&records[1], 1, &mut row).unwrap();
    assert_eq!(row, [1.0, 0.0, 38.0, 71.2833, 0.0], "female = 0 and C = 0, as sorted in training");
}

#[test]
fn a_model_trained_on_pandas_category_columns_imports_with_its_saved_categories() {
    // Written by `xgboost_json.py fixture` (pandas, xgboost 3.2): Pclass categories [3, 1, 2],
    // Sex [male, female], Embarked [S, C, Q], each stored by xgboost in the model's `cats`.
    let bytes = std::fs::read(format!("{FIXTURES}/xgboost_pandas_categories.json")).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/xgboost_pandas_categories.expected.json")).unwrap())
            .unwrap();
    let bundle = bundle_from_xgboost_json(&bytes, &ImportOptions::default()).unwrap();
    let kinds: Vec<&FeatureKind> = bundle.model.preprocessing.features.iter().map(|f| &f.kind).collect();
    let categorical = |c: &[&str]| FeatureKind::Categorical { categories: strings(c) };
    assert_eq!(kinds[0], &categorical(&["3", "1", "2"]));
    assert_eq!(kinds[1], &categorical(&["male", "female"]));
    assert_eq!(kinds[2], &FeatureKind::Numeric { integer: false });
    assert_eq!(kinds[4], &categorical(&["S", "C", "Q"]));
    let predictor = Predictor::from_bundle(&bundle).unwrap();
    let records = expected["records"].as_array().unwrap();
    let x = predictor.encode_records(records).unwrap();
    assert_eq!(&x[..5], &[0.0, 0.0, 22.0, 7.25, 0.0], "codes are positions in xgboost's category order");
    let dp = max_diff(&expected["prob"], &outputs(&predictor.predict_records(records).unwrap()));
    let dm = max_diff(&expected["margin"], &predictor.predict_margin_matrix(&x).unwrap());
    println!("pandas categories: max |Δ| probability {dp:.2e}, margin {dm:.2e}");
    assert!(dp <= 1e-6 && dm <= 1e-6, "probabilities differ by {dp}, margins by {dm}");

    // A --category list that disagrees with the saved categories is refused, naming both; the
    // same list as the model's is accepted.
    let mut options = ImportOptions::default();
    options.categories.insert("Sex".into(), strings(&["female", "male"]));
    let e = bundle_from_xgboost_json(&bytes, &options).unwrap_err().to_string();
    assert!(e.contains("categories.Sex") && e.contains("female,male") && e.contains("male,female"), "{e}");
    options.categories.insert("Sex".into(), strings(&["male", "female"]));
    bundle_from_xgboost_json(&bytes, &options).unwrap();
}
