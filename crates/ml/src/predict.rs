//! The predictor: a bundle's preprocessing and trees, ready to answer requests.
//!
//! Rows are encoded into one reused buffer and evaluated in a batch by hessboost's
//! allocation-free batch predictor; the predictions are bit for bit what training's own
//! `predict` gives for the same rows.

use hessboost::prelude::{BoostedModel, Iterations};
use serde_json::Value;

use crate::MlError;
use crate::bundle::Bundle;
use crate::metrics::argmax;
use crate::preprocess::Preprocessor;
use crate::train::{Task, class_label};

/// One prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The class label (classifiers) or the value (regression).
    pub value: Value,
    /// Class probabilities, in class order (classifiers).
    pub probabilities: Option<Vec<f32>>,
}

/// A loaded model.
pub struct Predictor {
    pre: Preprocessor,
    booster: BoostedModel,
    pub(crate) task: Task,
    /// The answer for each class index: the label as the target had it.
    pub(crate) labels: Vec<Value>,
    /// The same labels as answers write them.
    pub(crate) written_labels: crate::batch::WrittenLabels,
}

impl Predictor {
    /// Loads a bundle.
    pub fn from_bundle(bundle: &Bundle) -> Result<Predictor, MlError> {
        let booster = bundle.booster()?;
        let mut task = Task::of_objective(&bundle.model.objective)?;
        let classes = bundle.model.classes.clone().unwrap_or_else(|| vec!["0".into(), "1".into()]);
        if let Task::Multiclass { .. } = task {
            task = Task::Multiclass { num_class: classes.len() };
        }
        if booster.n_features() != bundle.model.preprocessing.width() {
            return Err(MlError::Bundle(format!(
                "the trees read {} features but the preprocessing makes {}",
                booster.n_features(),
                bundle.model.preprocessing.width()
            )));
        }
        let labels: Vec<Value> = (0..classes.len()).map(|i| class_label(&classes, i)).collect();
        let written_labels = crate::batch::WrittenLabels::of(&labels);
        Ok(Predictor { pre: bundle.model.preprocessing.clone(), booster, task, labels, written_labels })
    }

    /// Loads a bundle from its bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Predictor, MlError> {
        Self::from_bundle(&Bundle::from_slice(bytes)?)
    }

    /// The preprocessing.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.pre
    }

    /// Raw model outputs for an encoded matrix (probabilities for classifiers).
    pub fn predict_matrix(&self, x: &[f32]) -> Result<Vec<f32>, MlError> {
        Ok(self.booster.predict_rows(x, Iterations::Best)?.as_slice().to_vec())
    }

    /// Raw margins for an encoded matrix, before the objective's transform (XGBoost's
    /// `predict(output_margin=True)`): one per row, or one per class and row for multiclass.
    pub fn predict_margin_matrix(&self, x: &[f32]) -> Result<Vec<f32>, MlError> {
        Ok(self.booster.predict_margin_rows(x, Iterations::Best)?.as_slice().to_vec())
    }

    /// Encodes JSON records (objects of raw feature values) into a row-major matrix for
    /// [`Self::predict_matrix`].
    pub fn encode_records(&self, records: &[Value]) -> Result<Vec<f32>, MlError> {
        let width = self.pre.width();
        let mut x = vec![0f32; records.len() * width];
        for (i, r) in records.iter().enumerate() {
            self.pre.encode_record(r, i, &mut x[i * width..(i + 1) * width])?;
        }
        Ok(x)
    }

    /// Predicts JSON records (objects of raw feature values).
    pub fn predict_records(&self, records: &[Value]) -> Result<Vec<Prediction>, MlError> {
        self.predict_encoded(&self.encode_records(records)?)
    }

    /// Predictions for an encoded matrix: class labels and probabilities, or values.
    pub fn predict_encoded(&self, x: &[f32]) -> Result<Vec<Prediction>, MlError> {
        let out = self.predict_matrix(x)?;
        Ok(match self.task {
            Task::Binary => out
                .iter()
                .map(|&p| Prediction {
                    value: self.labels[(p > 0.5) as usize].clone(),
                    probabilities: Some(vec![1.0 - p, p]),
                })
                .collect(),
            Task::Multiclass { num_class } => out
                .chunks(num_class)
                .map(|row| Prediction { value: self.labels[argmax(row)].clone(), probabilities: Some(row.to_vec()) })
                .collect(),
            Task::Regression => {
                out.iter().map(|&v| Prediction { value: serde_json::json!(v), probabilities: None }).collect()
            }
        })
    }
}
