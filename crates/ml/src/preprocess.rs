//! Preprocessing fitted on training data and saved in the bundle.
//!
//! Rules (the same in training and serving):
//! - Only the `feature_columns` are used, in that order; other fields are ignored.
//! - A numeric feature takes numbers; a missing value (empty field, absent key or `null`)
//!   stays missing (NaN), and each tree sends it the way training found best.
//! - A categorical feature is encoded as the index of its value in the sorted list of
//!   categories seen in training, and split on natively by the trees. A category not seen in
//!   training, like a missing value, is treated as missing.

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
    /// A category, encoded as its index in `categories`.
    Categorical { categories: Vec<String> },
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
                FeatureKind::Numeric { .. } => FeatureType::Numerical,
                FeatureKind::Categorical { .. } => FeatureType::Categorical,
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
                    FeatureKind::Categorical { categories } => Field {
                        name: f.name.clone(),
                        kind: FieldType::Category,
                        categories: Some(categories.clone()),
                        nullable: true,
                    },
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
            out[j] = match (map.get(&f.name), &f.kind) {
                (None | Some(Value::Null), _) => f32::NAN,
                (Some(Value::Number(n)), FeatureKind::Numeric { .. }) => n.as_f64().unwrap_or(f64::NAN) as f32,
                (Some(Value::String(s)), FeatureKind::Numeric { .. }) => s.trim().parse::<f32>().map_err(|_| {
                    MlError::Input(format!("instances[{index}].{}: expected a number, got the string {s:?}", f.name))
                })?,
                (Some(Value::String(s)), FeatureKind::Categorical { categories }) => category_code(categories, s),
                (Some(Value::Number(n)), FeatureKind::Categorical { categories }) => {
                    category_code(categories, &format_number(n.as_f64().unwrap_or(f64::NAN)))
                }
                (Some(Value::Bool(b)), FeatureKind::Categorical { categories }) => {
                    category_code(categories, &b.to_string())
                }
                (Some(other), FeatureKind::Numeric { .. }) => {
                    return Err(MlError::Input(format!(
                        "instances[{index}].{}: expected a number, got {}",
                        f.name,
                        kind_of(other)
                    )));
                }
                (Some(other), FeatureKind::Categorical { categories }) => {
                    return Err(MlError::Input(format!(
                        "instances[{index}].{}: expected one of {:?}, got {}",
                        f.name,
                        categories,
                        kind_of(other)
                    )));
                }
            };
        }
        Ok(())
    }
}

/// The code of a category, NaN (missing) when training never saw it.
fn category_code(categories: &[String], value: &str) -> f32 {
    categories.binary_search_by(|c| c.as_str().cmp(value)).map(|i| i as f32).unwrap_or(f32::NAN)
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
    fn text_features_must_be_declared_categorical() {
        let e = Preprocessor::fit(&table(), &cols(&["Sex"]), &[]).unwrap_err().to_string();
        assert!(e.contains("\"Sex\"") && e.contains("categorical_columns"), "{e}");
        let e = Preprocessor::fit(&table(), &cols(&["Fare"]), &[]).unwrap_err().to_string();
        assert!(e.contains("\"Fare\" is not in t.csv"), "{e}");
        let e = Preprocessor::fit(&table(), &cols(&["Age"]), &cols(&["Sex"])).unwrap_err().to_string();
        assert!(e.contains("categorical_columns"), "{e}");
    }
}
