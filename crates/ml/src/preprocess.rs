//! Preprocessing fitted on training data and saved in the bundle.
//!
//! Rules (the same in training and serving):
//! - Only the `feature_columns` are used, in that order; other fields are ignored.
//! - A numeric feature takes numbers; a missing value (empty field, absent key or `null`)
//!   stays missing (NaN), and each tree sends it the way training found best.
//! - A categorical feature is encoded as the position of its value in its list of categories
//!   (training stores the categories it saw, sorted; an imported XGBoost model keeps its own
//!   code order), and split on natively by the trees. A category not in the list, like a
//!   missing value, is treated as missing.
//! - A labelled feature (imported XGBoost models trained on label-encoded columns) takes a
//!   label, encoded as its position in `labels`, or a number, which is the code itself. An
//!   unknown label is missing.

use hessboost::data::FeatureType;
use nimbus_core::schema::{Field, FieldType, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MlError;
use crate::table::{ColumnData, Table, format_number};

/// How one feature is encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureKind {
    /// A number, used as it is.
    Numeric {
        /// Whether training saw only whole numbers (shown as `integer` in the schema).
        #[serde(default)]
        integer: bool,
    },
    /// A category, encoded as its position in `categories`; numbers are looked up by their text.
    Categorical { categories: Vec<String> },
    /// A label-encoded feature: a label is encoded as its position in `labels`, a number is
    /// taken as the code itself.
    Labelled {
        labels: Vec<String>,
        /// Whether the trees split it as a category (XGBoost type `c`) rather than as a number.
        #[serde(default)]
        categorical: bool,
    },
}

/// One input feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
}

/// The fitted preprocessing of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub features: Vec<FeatureSpec>,
}

impl Preprocessor {
    /// Fits on `table`: checks the columns exist and collects the categories.
    pub fn fit(
        table: &Table,
        feature_columns: &[String],
        categorical_columns: &[String],
    ) -> Result<Preprocessor, MlError> {
        if feature_columns.is_empty() {
            return Err(MlError::Param { name: "feature_columns".into(), reason: "name at least one column".into() });
        }
        for c in categorical_columns {
            if !feature_columns.contains(c) {
                return Err(MlError::Param {
                    name: "categorical_columns".into(),
                    reason: format!("{c:?} is not among feature_columns ({})", feature_columns.join(", ")),
                });
            }
        }
        let mut features = Vec::with_capacity(feature_columns.len());
        for name in feature_columns {
            let column = table.column(name)?;
            let kind = if categorical_columns.contains(name) {
                let mut categories: Vec<String> = (0..column.len()).filter_map(|r| column.text_at(r)).collect();
                categories.sort();
                categories.dedup();
                if categories.is_empty() {
                    return Err(MlError::Column { column: name.clone(), reason: "has no values at all".into() });
                }
                FeatureKind::Categorical { categories }
            } else {
                match &column.data {
                    ColumnData::Numeric(v) => {
                        FeatureKind::Numeric { integer: v.iter().all(|x| !x.is_finite() || x.fract() == 0.0) }
                    }
                    ColumnData::Text(v) => {
                        let example = v.iter().flatten().next().cloned().unwrap_or_default();
                        return Err(MlError::Column {
                            column: name.clone(),
                            reason: format!(
                                "has text values such as {example:?}; list it in categorical_columns, or drop it from feature_columns"
                            ),
                        });
                    }
                }
            };
            features.push(FeatureSpec { name: name.clone(), kind });
        }
        Ok(Preprocessor { features })
    }

    /// Number of features.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// hessboost's feature types, in feature order.
    pub fn feature_types(&self) -> Vec<FeatureType> {
        self.features
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Numeric { .. } | FeatureKind::Labelled { categorical: false, .. } => {
                    FeatureType::Numerical
                }
                FeatureKind::Categorical { .. } | FeatureKind::Labelled { categorical: true, .. } => {
                    FeatureType::Categorical
                }
            })
            .collect()
    }

    /// Feature names, in order.
    pub fn names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }

    /// The input schema requests are checked against.
    pub fn input_schema(&self) -> Schema {
        Schema {
            fields: self
                .features
                .iter()
                .map(|f| match &f.kind {
                    FeatureKind::Numeric { integer } => Field {
                        name: f.name.clone(),
                        kind: if *integer { FieldType::Integer } else { FieldType::Float },
                        categories: None,
                        nullable: true,
                    },
                    FeatureKind::Categorical { categories: labels } | FeatureKind::Labelled { labels, .. }
                        if !labels.is_empty() =>
                    {
                        Field {
                            name: f.name.clone(),
                            kind: FieldType::Category,
                            categories: Some(labels.clone()),
                            nullable: true,
                        }
                    }
                    // Unlabelled codes.
                    FeatureKind::Categorical { .. } | FeatureKind::Labelled { .. } => {
                        Field { name: f.name.clone(), kind: FieldType::Integer, categories: None, nullable: true }
                    }
                })
                .collect(),
        }
    }

    /// Encodes a table into a row-major matrix of `rows × width` values.
    pub fn transform_table(&self, table: &Table) -> Result<Vec<f32>, MlError> {
        let rows = table.rows();
        let width = self.width();
        let mut out = vec![f32::NAN; rows * width];
        for (j, f) in self.features.iter().enumerate() {
            let column = table.column(&f.name)?;
            match (&f.kind, &column.data) {
                (FeatureKind::Numeric { .. }, ColumnData::Numeric(v)) => {
                    for (r, x) in v.iter().enumerate() {
                        out[r * width + j] = *x as f32;
                    }
                }
                (FeatureKind::Numeric { .. }, ColumnData::Text(v)) => {
                    let example = v.iter().flatten().next().cloned().unwrap_or_default();
                    return Err(MlError::Column {
                        column: f.name.clone(),
                        reason: format!("must be numeric but has text such as {example:?}"),
                    });
                }
                (FeatureKind::Categorical { categories }, _) => {
                    for r in 0..rows {
                        if let Some(text) = column.text_at(r) {
                            out[r * width + j] = category_code(categories, &text);
                        }
                    }
                }
                (FeatureKind::Labelled { .. }, ColumnData::Numeric(v)) => {
                    for (r, x) in v.iter().enumerate() {
                        out[r * width + j] = *x as f32;
                    }
                }
                (FeatureKind::Labelled { labels, .. }, ColumnData::Text(v)) => {
                    for (r, text) in v.iter().enumerate() {
                        if let Some(text) = text {
                            out[r * width + j] = label_code(labels, text);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Encodes one JSON record into `out` (`width` values). Errors name the instance index
    /// and the field.
    pub fn encode_record(&self, record: &Value, index: usize, out: &mut [f32]) -> Result<(), MlError> {
        let Value::Object(map) = record else {
            return Err(MlError::Input(format!(
                "instances[{index}]: expected an object of feature values, got {}",
                kind_of(record)
            )));
        };
        for (j, f) in self.features.iter().enumerate() {
            let scalar = match map.get(&f.name) {
                None | Some(Value::Null) => Scalar::Null,
                Some(Value::Number(n)) => Scalar::Number(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(s)) => Scalar::Text(s),
                Some(Value::Bool(b)) => Scalar::Bool(*b),
                Some(other) => Scalar::Other(kind_of(other)),
            };
            out[j] = self.encode_scalar(j, scalar, index)?;
        }
        Ok(())
    }

    /// The position of the feature called `name`.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// Encodes one raw value of feature `j` of instance `index` (for messages).
    pub fn encode_scalar(&self, j: usize, value: Scalar<'_>, index: usize) -> Result<f32, MlError> {
        let f = &self.features[j];
        let kind = |v: &Scalar<'_>| match v {
            Scalar::Null => "null",
            Scalar::Number(_) => "a number",
            Scalar::Text(_) => "a string",
            Scalar::Bool(_) => "a boolean",
            Scalar::Other(k) => k,
        };
        Ok(match (value, &f.kind) {
            (Scalar::Null, _) => f32::NAN,
            (Scalar::Number(n), FeatureKind::Numeric { .. } | FeatureKind::Labelled { .. }) => n as f32,
            (Scalar::Text(s), FeatureKind::Numeric { .. }) => s.trim().parse::<f32>().map_err(|_| {
                MlError::Input(format!("instances[{index}].{}: expected a number, got the string {s:?}", f.name))
            })?,
            (Scalar::Text(s), FeatureKind::Categorical { categories }) => category_code(categories, s),
            (Scalar::Number(n), FeatureKind::Categorical { categories }) => {
                category_code(categories, &format_number(n))
            }
            (Scalar::Bool(b), FeatureKind::Categorical { categories }) => {
                category_code(categories, if b { "true" } else { "false" })
            }
            (Scalar::Text(s), FeatureKind::Labelled { labels, .. }) => label_code(labels, s),
            (Scalar::Bool(b), FeatureKind::Labelled { labels, .. }) => {
                category_code(labels, if b { "true" } else { "false" })
            }
            (other, FeatureKind::Numeric { .. }) => {
                return Err(MlError::Input(format!(
                    "instances[{index}].{}: expected a number, got {}",
                    f.name,
                    kind(&other)
                )));
            }
            (other, FeatureKind::Categorical { categories }) => {
                return Err(MlError::Input(format!(
                    "instances[{index}].{}: expected one of {:?}, got {}",
                    f.name,
                    categories,
                    kind(&other)
                )));
            }
            (other, FeatureKind::Labelled { labels, .. }) => {
                return Err(MlError::Input(format!(
                    "instances[{index}].{}: expected one of {:?} or a number (the code), got {}",
                    f.name,
                    labels,
                    kind(&other)
                )));
            }
        })
    }
}

/// One raw request value, borrowed from wherever it was parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Number(f64),
    Text(&'a str),
    Bool(bool),
    /// A list or an object, named for messages (`a list`, `an object`).
    Other(&'static str),
}

/// The code of a category: its position in `categories`, NaN (missing) when it is not there.
/// Trained models keep their categories sorted, which a binary search finds at once; imported
/// lists in code order need not be sorted, so a miss falls back to a scan.
fn category_code(categories: &[String], value: &str) -> f32 {
    // A short list (the usual case) is scanned with an inlined comparison, cheaper than the
    // `memcmp` calls of a search; longer ones are searched.
    if categories.len() <= 8 {
        let same = |c: &String| c.len() == value.len() && c.bytes().zip(value.bytes()).all(|(x, y)| x == y);
        return categories.iter().position(same).map(|i| i as f32).unwrap_or(f32::NAN);
    }
    match categories.binary_search_by(|c| c.as_str().cmp(value)) {
        Ok(i) => i as f32,
        Err(_) => categories.iter().position(|c| c == value).map(|i| i as f32).unwrap_or(f32::NAN),
    }
}

/// The code of a labelled feature's text: the label's position, else the text as a number
/// (a code sent as text), else NaN (an unknown label is missing).
fn label_code(labels: &[String], text: &str) -> f32 {
    let code = category_code(labels, text);
    if !code.is_nan() {
        return code;
    }
    text.trim().parse::<f32>().ok().filter(|v| v.is_finite()).unwrap_or(f32::NAN)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::from_csv(b"Pclass,Sex,Age,Name\n3,male,22,A\n1,female,,B\n2,female,30,C\n", "t.csv").unwrap()
    }

    fn cols(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fits_encodes_and_treats_unseen_as_missing() {
        let p = Preprocessor::fit(&table(), &cols(&["Pclass", "Sex", "Age"]), &cols(&["Sex"])).unwrap();
        let x = p.transform_table(&table()).unwrap();
        assert_eq!(&x[..3], &[3.0, 1.0, 22.0]); // female=0, male=1
        assert!(x[5].is_nan());
        let mut row = [0.0f32; 3];
        p.encode_record(&serde_json::json!({"Sex": "female", "Age": 38, "Pclass": "1", "Extra": 1}), 0, &mut row)
            .unwrap();
        assert_eq!(row, [1.0, 0.0, 38.0]);
        p.encode_record(&serde_json::json!({"Sex": "robot"}), 0, &mut row).unwrap();
        assert!(row.iter().all(|v| v.is_nan()), "unseen category and absent fields are missing");
        let err = p.encode_record(&serde_json::json!({"Age": "old"}), 4, &mut row).unwrap_err().to_string();
        assert_eq!(err, "instances[4].Age: expected a number, got the string \"old\"");
        let schema = p.input_schema();
        assert_eq!(schema.fields[0].kind, FieldType::Integer);
        assert_eq!(schema.fields[1].categories.as_deref(), Some(&["female".to_string(), "male".to_string()][..]));
    }

    #[test]
    fn labelled_features_take_labels_or_codes_and_categories_need_not_be_sorted() {
        let labelled = |name: &str, labels: &[&str], categorical| FeatureSpec {
            name: name.into(),
            kind: FeatureKind::Labelled { labels: cols(labels), categorical },
        };
        let p = Preprocessor {
            features: vec![
                labelled("Sex", &["male", "female"], false),
                labelled("Code", &[], true),
                FeatureSpec {
                    name: "Port".into(),
                    kind: FeatureKind::Categorical { categories: cols(&["S", "C", "Q"]) },
                },
            ],
        };
        let mut row = [0.0f32; 3];
        p.encode_record(&serde_json::json!({"Sex": "female", "Code": 4, "Port": "Q"}), 0, &mut row).unwrap();
        assert_eq!(row, [1.0, 4.0, 2.0]);
        p.encode_record(&serde_json::json!({"Sex": 0, "Code": "7", "Port": "S"}), 0, &mut row).unwrap();
        assert_eq!(row, [0.0, 7.0, 0.0], "numbers and numeric text are codes");
        p.encode_record(&serde_json::json!({"Sex": "robot", "Code": true, "Port": "X"}), 0, &mut row).unwrap();
        assert!(row.iter().all(|v| v.is_nan()), "unknown labels are missing");
        let err = p.encode_record(&serde_json::json!({"Sex": [1]}), 2, &mut row).unwrap_err().to_string();
        assert_eq!(
            err,
            "instances[2].Sex: expected one of [\"male\", \"female\"] or a number (the code), got an array"
        );

        let t = Table::from_csv(b"Sex,Code,Port\nfemale,3,C\nmale,,Q\n1,0,\n", "t.csv").unwrap();
        let x: Vec<String> = p.transform_table(&t).unwrap().iter().map(f32::to_string).collect();
        assert_eq!(x, ["1", "3", "1", "0", "NaN", "2", "1", "0", "NaN"], "labels, codes as numbers or text");

        assert_eq!(p.feature_types(), [FeatureType::Numerical, FeatureType::Categorical, FeatureType::Categorical]);
        let schema = p.input_schema();
        assert_eq!(schema.fields[0].kind, FieldType::Category);
        assert_eq!(schema.fields[0].categories, Some(cols(&["male", "female"])));
        assert_eq!(schema.fields[1].kind, FieldType::Integer, "codes without labels");
        assert_eq!(
            serde_json::to_value(&p.features[0]).unwrap(),
            serde_json::json!({"name": "Sex", "kind": "labelled", "labels": ["male", "female"], "categorical": false})
        );
    }

    #[test]
    fn text_features_must_be_declared_categorical() {
        let e = Preprocessor::fit(&table(), &cols(&["Sex"]), &[]).unwrap_err().to_string();
        assert!(e.contains("\"Sex\"") && e.contains("categorical_columns"), "{e}");
        let e = Preprocessor::fit(&table(), &cols(&["Fare"]), &[]).unwrap_err().to_string();
        assert!(e.contains("\"Fare\" is not in t.csv"), "{e}");
        let e = Preprocessor::fit(&table(), &cols(&["Age"]), &cols(&["Sex"])).unwrap_err().to_string();
        assert!(e.contains("categorical_columns"), "{e}");
    }
}
