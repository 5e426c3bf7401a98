//! The native model bundle: one JSON document holding everything needed to serve a model.
//!
//! ```text
//! { "format": "nimbus-model", "format_version": 1,
//!   "input_schema": …, "output_schema": …, "metrics": {…}, "parameters": {…}, "description": …,
//!   "model": { "objective": "binary:logistic", "target": "Survived", "classes": ["0", "1"],
//!              "preprocessing": { "features": [ {"name": "Sex", "kind": "categorical", …}, … ] },
//!              "booster": <the trees, in XGBoost's JSON model format> } }
//! ```
//!
//! Keeping the trees in XGBoost's format keeps them readable by other tools and the trainer
//! swappable.

use std::collections::BTreeMap;

use hessboost::prelude::{BoostedModel, ModelFormat};
use nimbus_core::schema::{Field, FieldType, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::MlError;
use crate::preprocess::Preprocessor;
use crate::train::Task;

pub use nimbus_core::schema::{BUNDLE_FORMAT as FORMAT, BUNDLE_FORMAT_VERSION as FORMAT_VERSION};

/// A native bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub format_version: u32,
    pub input_schema: Schema,
    pub output_schema: Schema,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub description: String,
    pub model: ModelPart,
}

/// The model proper.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelPart {
    /// XGBoost objective name.
    pub objective: String,
    /// The column the model predicts.
    pub target: String,
    /// Original labels of the class indices, for classifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    pub preprocessing: Preprocessor,
    /// The trees, as an XGBoost JSON model document, kept as its text: a cold start hands it
    /// to the tree decoder as is, without building a JSON tree of every node first.
    pub booster: Box<RawValue>,
}

impl Bundle {
    /// Assembles a bundle from a trained booster.
    pub fn new(
        booster: &BoostedModel,
        pre: &Preprocessor,
        objective: &str,
        target: &str,
        classes: Option<Vec<String>>,
        metrics: BTreeMap<String, f64>,
        parameters: BTreeMap<String, Value>,
    ) -> Result<Bundle, MlError> {
        let bytes = booster.encode(ModelFormat::XgboostJson)?;
        let text = String::from_utf8(bytes).map_err(|e| MlError::Bundle(format!("booster JSON: {e}")))?;
        let booster = RawValue::from_string(text).map_err(|e| MlError::Bundle(format!("booster JSON: {e}")))?;
        let output_kind = match Task::of_objective(objective)? {
            Task::Regression => {
                Field { name: target.to_string(), kind: FieldType::Float, categories: None, nullable: false }
            }
            _ => Field {
                name: target.to_string(),
                kind: FieldType::Category,
                categories: classes.clone(),
                nullable: false,
            },
        };
        Ok(Bundle {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            input_schema: pre.input_schema(),
            output_schema: Schema { fields: vec![output_kind] },
            metrics,
            parameters,
            description: String::new(),
            model: ModelPart {
                objective: objective.to_string(),
                target: target.to_string(),
                classes,
                preprocessing: pre.clone(),
                booster,
            },
        })
    }

    /// Reads a bundle from its bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Bundle, MlError> {
        let b: Bundle = serde_json::from_slice(bytes).map_err(|e| MlError::Bundle(e.to_string()))?;
        if b.format != FORMAT || b.format_version == 0 || b.format_version > FORMAT_VERSION {
            return Err(MlError::Bundle(format!(
                "format {:?} version {} is not a native bundle this nimbus reads ({FORMAT} 1 to {FORMAT_VERSION})",
                b.format, b.format_version
            )));
        }
        Ok(b)
    }

    /// The bytes of the bundle (compact JSON).
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("bundles serialise")
    }

    /// Decodes the trees.
    pub fn booster(&self) -> Result<BoostedModel, MlError> {
        Ok(BoostedModel::decode(self.model.booster.get().as_bytes(), ModelFormat::XgboostJson)?)
    }
}
