//! Gradient-boosted trees, trained by hessboost with XGBoost's parameter names and meanings.
//!
//! Parameters pass through unchanged (`max_depth`, `eta`, `objective`, `subsample`,
//! `colsample_bytree`, `min_child_weight`, `lambda`, `alpha`, `gamma`, `seed`, `nthread`,
//! `num_class`, …); hessboost refuses an unknown name and suggests the closest known one.
//! The number of rounds is `num_round`, as in `xgb.train`.

use std::collections::BTreeMap;

use hessboost::prelude::*;
use serde_json::Value;

use crate::MlError;
use crate::preprocess::Preprocessor;
use crate::table::{ColumnData, Table, format_number};

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// `binary:logistic`: the probability of the second class.
    Binary,
    /// `multi:softprob`: a probability per class.
    Multiclass { num_class: usize },
    /// `reg:squarederror`: a number.
    Regression,
}

impl Task {
    /// The task of an XGBoost objective name.
    pub fn of_objective(objective: &str) -> Result<Task, MlError> {
        match objective {
            "binary:logistic" => Ok(Task::Binary),
            "multi:softprob" => Ok(Task::Multiclass { num_class: 0 }),
            "reg:squarederror" => Ok(Task::Regression),
            other => Err(MlError::Param {
                name: "objective".into(),
                reason: format!("{other:?} is not supported; use binary:logistic, multi:softprob or reg:squarederror"),
            }),
        }
    }
}

/// Training labels, with the class names of a classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    pub values: Vec<f32>,
    /// For classifiers, the original label of each class index.
    pub classes: Option<Vec<String>>,
    pub task: Task,
}

/// Reads the target column for an objective. Classes are the sorted distinct labels; a
/// binary target must have exactly two (numbers 0/1 keep their meaning).
pub fn labels(table: &Table, target: &str, objective: &str) -> Result<Labels, MlError> {
    let column = table.column(target)?;
    let task = Task::of_objective(objective)?;
    let bad = |reason: String| MlError::Column { column: target.to_string(), reason };
    let missing = (0..column.len()).filter(|&r| column.text_at(r).is_none()).count();
    if missing > 0 {
        return Err(bad(format!("the target has {missing} missing values; drop those rows or choose another target")));
    }
    match task {
        Task::Regression => match &column.data {
            ColumnData::Numeric(v) => Ok(Labels { values: v.iter().map(|x| *x as f32).collect(), classes: None, task }),
            ColumnData::Text(v) => Err(bad(format!(
                "reg:squarederror needs a numeric target, found text such as {:?}",
                v.iter().flatten().next().cloned().unwrap_or_default()
            ))),
        },
        Task::Binary | Task::Multiclass { .. } => {
            let texts: Vec<String> = (0..column.len()).map(|r| column.text_at(r).unwrap_or_default()).collect();
            let mut classes = texts.clone();
            // Numeric labels sort by value, so 0 comes before 1 and 2 before 10.
            match &column.data {
                ColumnData::Numeric(_) => {
                    classes.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)))
                }
                ColumnData::Text(_) => classes.sort(),
            }
            classes.dedup();
            if task == Task::Binary && classes.len() != 2 {
                return Err(bad(format!(
                    "binary:logistic needs exactly two classes, found {}: {}",
                    classes.len(),
                    classes.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if classes.len() < 2 {
                return Err(bad("a classifier needs at least two classes".into()));
            }
            let values = texts.iter().map(|t| classes.iter().position(|c| c == t).unwrap_or(0) as f32).collect();
            let task = match task {
                Task::Multiclass { .. } => Task::Multiclass { num_class: classes.len() },
                t => t,
            };
            Ok(Labels { values, classes: Some(classes), task })
        }
    }
}

/// Labels of `table`'s target for a trained model: class labels are mapped to the model's
/// own class indices, so a holdout missing a class still lines up.
pub fn labels_for_model(
    table: &Table,
    target: &str,
    objective: &str,
    classes: Option<&[String]>,
) -> Result<Labels, MlError> {
    let mut labels = labels(table, target, objective).or_else(|e| match (&e, classes) {
        // A holdout may hold a single class; map it through the model's classes below.
        (MlError::Column { .. }, Some(_)) => {
            let column = table.column(target)?;
            Ok(Labels { values: vec![0.0; column.len()], classes: Some(vec![]), task: Task::of_objective(objective)? })
        }
        _ => Err(e),
    })?;
    if let Some(model_classes) = classes {
        let column = table.column(target)?;
        let mut values = Vec::with_capacity(column.len());
        for r in 0..column.len() {
            let text = column.text_at(r).unwrap_or_default();
            let idx = model_classes.iter().position(|c| *c == text).ok_or_else(|| MlError::Column {
                column: target.to_string(),
                reason: format!(
                    "has the label {text:?}, which the model never saw (its classes: {})",
                    model_classes.join(", ")
                ),
            })?;
            values.push(idx as f32);
        }
        labels.values = values;
        labels.classes = Some(model_classes.to_vec());
    }
    Ok(labels)
}

/// The parameters of one training: XGBoost names, values as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSpec {
    pub params: BTreeMap<String, Value>,
    pub num_round: usize,
}

impl TrainSpec {
    /// The objective name (`binary:logistic` when not set).
    pub fn objective(&self) -> String {
        self.params.get("objective").and_then(Value::as_str).unwrap_or("binary:logistic").to_string()
    }
}

/// Trains a booster on an encoded matrix.
pub fn fit(x: &[f32], pre: &Preprocessor, labels: &Labels, spec: &TrainSpec) -> Result<BoostedModel, MlError> {
    fit_observed(x, pre, labels, spec, |_| {})
}

/// [`fit`], calling `on_round` with the number of rounds done after each boosting round.
pub fn fit_observed(
    x: &[f32],
    pre: &Preprocessor,
    labels: &Labels,
    spec: &TrainSpec,
    mut on_round: impl FnMut(usize) + Send,
) -> Result<BoostedModel, MlError> {
    if spec.num_round == 0 {
        return Err(MlError::Param { name: "num_round".into(), reason: "must be at least 1".into() });
    }
    let rows = labels.values.len();
    let mut params = spec.params.clone();
    params.entry("objective".into()).or_insert_with(|| Value::from("binary:logistic"));
    if let Task::Multiclass { num_class } = labels.task {
        match params.get("num_class").and_then(Value::as_u64) {
            Some(n) if n as usize != num_class => {
                return Err(MlError::Param {
                    name: "num_class".into(),
                    reason: format!("is {n} but the target has {num_class} classes"),
                });
            }
            _ => {
                params.insert("num_class".into(), Value::from(num_class));
            }
        }
    }
    let params = TrainingParams::from_xgboost(params)
        .map_err(|e| MlError::Param { name: "training".into(), reason: e.to_string() })?;
    let dtrain = DMatrix::from_dense(x, rows, pre.width())?
        .with_labels(&labels.values)?
        .with_feature_types(&pre.feature_types())?;
    let result = Trainer::new(&params, &dtrain, spec.num_round)
        .on_round(|round| {
            on_round(round.iteration() + 1);
            std::ops::ControlFlow::Continue(())
        })
        .train()?;
    Ok(result.model)
}

/// Predictions of a booster on an encoded matrix: one value per row (binary, regression) or
/// `num_class` per row (multiclass), after the objective's transform.
pub fn predict(model: &BoostedModel, x: &[f32]) -> Result<Vec<f32>, MlError> {
    Ok(model.predict_rows(x, Iterations::Best)?.as_slice().to_vec())
}

/// Total gain per feature name, largest first.
pub fn importance(model: &BoostedModel, pre: &Preprocessor) -> Vec<(String, f64)> {
    let names = pre.names();
    let mut out: Vec<(String, f64)> = model
        .feature_importance(ImportanceType::TotalGain)
        .into_iter()
        .map(|(i, g)| (names.get(i).cloned().unwrap_or_else(|| format!("f{i}")), g))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The label of class `index`, as the target had it (numbers as JSON numbers).
pub fn class_label(classes: &[String], index: usize) -> Value {
    let text = classes.get(index).cloned().unwrap_or_default();
    match text.parse::<f64>() {
        // Whole numbers answer as JSON integers (0/1 as the seeds expect), other numbers as numbers.
        Ok(v) if format_number(v) == text && v.fract() == 0.0 => serde_json::json!(v as i64),
        Ok(v) if format_number(v) == text => serde_json::json!(v),
        _ => Value::String(text),
    }
}
