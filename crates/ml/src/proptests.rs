//! Property tests of the two parsers of uploaded files: the CSV table loader and the XGBoost
//! JSON model importer. Any bytes give `Ok` or a clean `Err`, never a panic; generated tables
//! come back with their rows, columns and values, through `from_csv` and through `to_csv`; a
//! model that imports (however it was mangled) loads and predicts without panicking.
//!
//! (The request-body parsers, `instances` and `protocols`, have their own property tests.)
//!
//! `NIMBUS_PROPTEST_CASES` sets the cases per property (`bench/fuzz.sh` runs many),
//! `PROPTEST_RNG_SEED` the seed; without it the seed is fixed, so `cargo test` is repeatable.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value, json};

use crate::bundle::Bundle;
use crate::predict::Predictor;
use crate::preprocess::Preprocessor;
use crate::table::{Column, ColumnData, Table};
use crate::train;
use crate::xgboost::{ImportOptions, bundle_from_xgboost_json, bundle_to_xgboost_json};

/// The seed of a plain `cargo test` run.
const SEED: u64 = 0x6d6c_6373;

/// `default_cases` cases, unless `NIMBUS_PROPTEST_CASES` says otherwise; a counterexample is
/// printed (and belongs in a named unit test), not written into the source tree.
pub(crate) fn config(default_cases: u32) -> ProptestConfig {
    let cases = match std::env::var("NIMBUS_PROPTEST_CASES") {
        Ok(v) => v.parse().expect("NIMBUS_PROPTEST_CASES must be a whole number"),
        Err(_) => default_cases,
    };
    let mut config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config
}

// ---- CSV ------------------------------------------------------------------------------------

/// The spellings of a missing value.
const MISSING: [&str; 6] = ["", "NA", "NaN", "nan", "null", "NULL"];

/// A generated column: what the CSV holds, as the loader should read it.
#[derive(Clone, Debug)]
enum Cells {
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

#[derive(Clone, Debug)]
struct GenTable {
    names: Vec<String>,
    columns: Vec<Cells>,
    rows: usize,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[A-Za-z_][A-Za-z0-9_ .]{0,8}", 1 => " ?[!-~é漢, \"\n]{1,6} ?"]
        .prop_filter("a name is not blank", |n| !n.trim().is_empty())
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i as f64),
        (-1e6f64..1e6),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        prop::sample::select(vec![0.0, -0.0, 1e15, -1e15, 1e300, 5e-324, 0.1]),
    ]
}

/// A text value that is present (not one of the spellings of missing).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z][a-zA-Z0-9 .-]{0,8}",
        1 => "[ -~\n\r\té]{1,8}",
        1 => "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
    ]
    .prop_filter("present", |t| !MISSING.contains(&t.trim()))
}

fn cells(rows: usize) -> impl Strategy<Value = Cells> {
    prop_oneof![
        prop::collection::vec(prop::option::weighted(0.8, number()), rows).prop_map(Cells::Numbers),
        (prop::collection::vec(prop::option::weighted(0.8, text()), rows), any::<prop::sample::Index>()).prop_map(
            |(mut v, at)| {
                // One value that is not a number makes the column text.
                let i = at.index(v.len());
                if !v.iter().flatten().any(|t| t.trim().parse::<f64>().is_err()) {
                    v[i] = Some("x".to_string());
                }
                Cells::Text(v)
            },
        ),
    ]
}

fn gen_table() -> impl Strategy<Value = GenTable> {
    (1..5usize, 1..8usize).prop_flat_map(|(width, rows)| {
        (prop::collection::vec(name(), width), prop::collection::vec(cells(rows), width))
            .prop_map(move |(names, columns)| GenTable { names, columns, rows })
    })
}

/// How a table is written out: the quoting, spelling and padding choices, drawn per field.
#[derive(Clone, Debug)]
struct Style {
    crlf: bool,
    final_newline: bool,
    /// Consumed one per field, cycling.
    choices: Vec<u8>,
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>(), prop::collection::vec(any::<u8>(), 1..32))
        .prop_map(|(crlf, final_newline, choices)| Style { crlf, final_newline, choices })
}

fn quote(field: &str, force: bool) -> String {
    if force || field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The CSV text of a generated table.
fn write_csv(t: &GenTable, style: &Style) -> String {
    let mut choice = style.choices.iter().copied().cycle();
    let mut next = move || choice.next().expect("cycles");
    let eol = if style.crlf { "\r\n" } else { "\n" };
    let single = t.names.len() == 1;
    let mut lines = vec![t.names.iter().map(|n| quote(n, next() % 4 == 0)).collect::<Vec<_>>().join(",")];
    for r in 0..t.rows {
        let fields: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let c0 = next();
                let field = match c {
                    Cells::Numbers(v) => match v[r] {
                        Some(x) => {
                            let x = match c0 % 3 {
                                0 => format!("{x}"),
                                1 => format!("{x:e}"),
                                _ => format!(" {x} "),
                            };
                            return quote(&x, c0 % 5 == 0);
                        }
                        None => MISSING[c0 as usize % MISSING.len()].to_string(),
                    },
                    Cells::Text(v) => match &v[r] {
                        Some(s) => return quote(s, c0 % 5 == 0),
                        None => MISSING[c0 as usize % MISSING.len()].to_string(),
                    },
                };
                // A missing value, maybe padded; alone on its line an empty field is quoted, as
                // an empty line is no record at all.
                let field = if c0 % 7 == 0 { format!(" {field}") } else { field };
                quote(&field, single && field.is_empty() || c0 % 5 == 0)
            })
            .collect();
        lines.push(fields.join(","));
    }
    let mut out = lines.join(eol);
    if style.final_newline {
        out.push_str(eol);
    }
    out
}

/// Whether the loader read the generated table, value for value.
fn same_as_generated(t: &Table, g: &GenTable) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.rows(), g.rows);
    prop_assert_eq!(t.columns.len(), g.columns.len());
    for ((col, name), cells) in t.columns.iter().zip(&g.names).zip(&g.columns) {
        prop_assert_eq!(&col.name, name.trim());
        match (&col.data, cells) {
            (ColumnData::Numeric(got), Cells::Numbers(want)) => {
                for (got, want) in got.iter().zip(want) {
                    match want {
                        Some(w) => prop_assert_eq!(got, w, "column {}", name),
                        None => prop_assert!(got.is_nan(), "column {}: {} for a missing value", name, got),
                    }
                }
            }
            (ColumnData::Text(got), Cells::Text(want)) => prop_assert_eq!(got, want, "column {}", name),
            (got, _) => prop_assert!(false, "column {}: read as {:?}", name, got),
        }
    }
    Ok(())
}

/// Equality with NaN equal to NaN.
fn same_tables(a: &Table, b: &Table) -> bool {
    let same_column = |x: &Column, y: &Column| {
        x.name == y.name
            && match (&x.data, &y.data) {
                (ColumnData::Numeric(p), ColumnData::Numeric(q)) => {
                    p.len() == q.len() && p.iter().zip(q).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
                }
                (p, q) => p == q,
            }
    };
    a.columns.len() == b.columns.len() && a.columns.iter().zip(&b.columns).all(|(x, y)| same_column(x, y))
}

/// Bytes that look like CSV more often than random bytes do.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b','),
            Just(b'"'),
            Just(b'\n'),
            Just(b'\r'),
            Just(b' '),
            Just(b'a'),
            Just(b'1'),
            Just(b'.'),
            Just(b'e'),
            Just(0xff),
            Just(0xc3),
            any::<u8>()
        ],
        0..80,
    )
}

// ---- XGBoost JSON ---------------------------------------------------------------------------

/// Valid models to mangle: one xgboost itself wrote (pandas categories), and nimbus-trained
/// models of each objective, exported as XGBoost JSON.
fn models() -> &'static [Vec<u8>] {
    static MODELS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let mut out = vec![include_bytes!("../tests/fixtures/xgboost_pandas_categories.json").to_vec()];
        let mut csv = String::from("a,b,c,y,k\n");
        for i in 0..60 {
            let c = ["red", "green", "blue"][i % 3];
            csv.push_str(&format!("{},{},{c},{},{}\n", i % 7, (i * 13) % 11, (i % 7 > 3) as u8, i % 3));
        }
        let table = Table::from_csv(csv.as_bytes(), "generated").expect("valid CSV");
        let features: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let pre = Preprocessor::fit(&table, &features, &["c".to_string()]).expect("fits");
        let x = pre.transform_table(&table).expect("encodes");
        for (objective, target) in [("binary:logistic", "y"), ("multi:softprob", "k"), ("reg:squarederror", "b")] {
            let labels = train::labels(&table, target, objective).expect("labels");
            let params: BTreeMap<String, Value> =
                [("objective", json!(objective)), ("max_depth", json!(2)), ("eta", json!(0.3)), ("seed", json!(1))]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
            let spec = train::TrainSpec { params: params.clone(), num_round: 3 };
            let model = train::fit(&x, &pre, &labels, &spec).expect("trains");
            let bundle =
                Bundle::new(&model, &pre, objective, target, labels.classes, BTreeMap::new(), params).expect("bundle");
            out.push(bundle_to_xgboost_json(&bundle).expect("exports"));
        }
        out
    })
}

/// Imports, and when that succeeds, loads the bundle and predicts: none of it may panic.
fn import_and_predict(bytes: &[u8], options: &ImportOptions) {
    let Ok(bundle) = bundle_from_xgboost_json(bytes, options) else { return };
    let Ok(predictor) = Predictor::from_slice(&bundle.to_vec()) else { return };
    let width = predictor.preprocessor().width();
    let mut x = vec![0.0f32; width];
    x.extend(std::iter::repeat_n(f32::NAN, width));
    x.extend((0..width).map(|j| j as f32 * 1e6 - 3.0));
    let _ = predictor.predict_matrix(&x);
    let _ = predictor.predict_margin_matrix(&x);
    let _ = predictor.predict_records(&[json!({}), json!({"Sex": "female", "c": "red", "a": 1})]);
}

/// A JSON value to put where another was.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![-1i64, 0, 1, 2, 3, 7, 255, 256, 2_147_483_647, -2_147_483_648, i64::MAX, i64::MIN])
            .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0.5, -0.5, 1e-45, 1e38, 3.5e38, -1e308, 1e308]).prop_map(|f| json!(f)),
        prop::sample::select(vec!["", "c", "q", "int", "float", "i", "binary:logistic", "multi:softprob", "x"])
            .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A change to make somewhere in a document: where (a walk of child choices) and what.
#[derive(Clone, Debug)]
struct Edit {
    walk: Vec<usize>,
    op: u8,
    value: Value,
}

fn edit() -> impl Strategy<Value = Edit> {
    (prop::collection::vec(any::<usize>(), 1..9), 0..6u8, json_value()).prop_map(|(walk, op, value)| Edit {
        walk,
        op,
        value,
    })
}

/// Applies `edit` at the node its walk reaches (the walk stops early at a leaf).
fn apply(doc: &mut Value, edit: &Edit) {
    let mut node = doc;
    for (depth, &step) in edit.walk.iter().enumerate() {
        let last = depth + 1 == edit.walk.len();
        let len = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 {
            break;
        }
        let i = step % len;
        if last {
            match node {
                Value::Array(a) => match edit.op {
                    0 => a[i] = edit.value.clone(),
                    1 => {
                        a.remove(i);
                    }
                    2 => a.push(a[i].clone()),
                    3 => a.truncate(i),
                    4 => a.insert(i, edit.value.clone()),
                    _ => a[i] = negate(&a[i]),
                },
                Value::Object(o) => {
                    let key = o.keys().nth(i).expect("in range").clone();
                    match edit.op {
                        0 | 4 => {
                            o.insert(key, edit.value.clone());
                        }
                        1 => {
                            o.remove(&key);
                        }
                        5 => {
                            let v = negate(&o[&key]);
                            o.insert(key, v);
                        }
                        _ => {
                            o.insert(key, Value::Array(vec![]));
                        }
                    }
                }
                _ => unreachable!("a leaf has no children"),
            }
            return;
        }
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).expect("in range"),
            _ => unreachable!("a leaf has no children"),
        };
    }
}

/// A nearby wrong value: numbers negated, shifted or made huge, strings emptied.
fn negate(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!(i.wrapping_neg().wrapping_sub(1)),
            None => json!(-n.as_f64().unwrap_or(0.0) * 1e30),
        },
        Value::String(_) => json!(""),
        Value::Array(a) => json!(a.len()),
        other => other.clone(),
    }
}

fn options() -> impl Strategy<Value = ImportOptions> {
    prop_oneof![
        3 => Just(ImportOptions::default()),
        1 => (
            prop::option::of(prop::collection::vec("[a-z]{0,3}", 0..6)),
            prop::option::of(prop::collection::vec("[a-z0-9]{0,2}", 0..4)),
            prop::option::of("[a-z]{0,3}"),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "c", "Sex", "Pclass", "f0"]).prop_map(String::from),
                prop::collection::vec("[a-z]{0,2}", 0..4),
                0..2,
            ),
        )
            .prop_map(|(feature_names, classes, target, categories)| ImportOptions {
                feature_names,
                classes,
                target,
                categories,
                description: None,
            }),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn csv_from_any_bytes_is_a_table_or_an_error(bytes in prop_oneof![csvish(), prop::collection::vec(any::<u8>(), 0..120)]) {
        if let Ok(t) = Table::from_csv(&bytes, "fuzz.csv") {
            prop_assert!(t.rows() >= 1 && !t.columns.is_empty());
            prop_assert!(t.columns.iter().all(|c| c.len() == t.rows()), "columns of one length");
            prop_assert!(same_tables(&Table::from_csv(&t.to_csv(), "again").expect("reads its own CSV"), &t));
        }
    }

    #[test]
    fn generated_tables_read_back_value_for_value(g in gen_table(), style in style()) {
        let csv = write_csv(&g, &style);
        let t = Table::from_csv(csv.as_bytes(), "gen.csv").map_err(|e| TestCaseError::fail(format!("{e}\n{csv}")))?;
        same_as_generated(&t, &g).map_err(|e| TestCaseError::fail(format!("{e}\n{csv:?}")))?;
        let again = Table::from_csv(&t.to_csv(), "gen.csv").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same_tables(&again, &t), "to_csv and back:\n{:?}\n{:?}", t, again);
    }
}

proptest! {
    // A model import decodes trees; fewer cases keep the run short.
    #![proptest_config(config(1500))]

    #[test]
    fn a_model_import_of_any_bytes_is_a_bundle_or_an_error(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            ".{0,40}".prop_map(|s| format!("{{\"learner\": {s}}}").into_bytes()),
            json_value().prop_map(|v| serde_json::to_vec(&json!({"learner": v, "version": [2, 1, 0]})).expect("JSON")),
        ],
        options in options(),
    ) {
        import_and_predict(&bytes, &options);
    }

    #[test]
    fn a_mangled_model_imports_or_is_refused_cleanly(
        model in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
        options in options(),
    ) {
        let models = models();
        let mut doc: Value = serde_json::from_slice(&models[model.index(models.len())]).expect("valid JSON");
        for e in &edits {
            apply(&mut doc, e);
        }
        import_and_predict(&serde_json::to_vec(&doc).expect("JSON"), &options);
    }

    #[test]
    fn a_model_with_changed_bytes_imports_or_is_refused_cleanly(
        model in any::<prop::sample::Index>(),
        changes in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![
            4 => (b'0'..=b'9').prop_map(Some),
            1 => prop::sample::select(b"-.eE,:[]{}\" ".to_vec()).prop_map(Some),
            1 => Just(None),
        ]), 1..4),
    ) {
        let models = models();
        let mut bytes = models[model.index(models.len())].clone();
        for (at, to) in changes {
            let i = at.index(bytes.len());
            match to {
                Some(b) => bytes[i] = b,
                None => {
                    bytes.remove(i);
                }
            }
        }
        import_and_predict(&bytes, &ImportOptions::default());
    }
}
