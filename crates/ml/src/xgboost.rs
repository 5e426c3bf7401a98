//! XGBoost JSON models: import a model Python xgboost saved (`booster.save_model("m.json")`)
//! as a native bundle, and export a native bundle's trees as XGBoost JSON that
//! `xgb.Booster(model_file="m.json")` loads and predicts with.
//!
//! Import maps the model's features to preprocessing:
//! - names from `learner.feature_names` (saved when the model was trained on a DataFrame or
//!   with `feature_names`), else `f0`, `f1`, …; [`ImportOptions::feature_names`] overrides;
//! - `learner.feature_types` `q`, `float`, `int` and `i` are numeric, `c` categorical (as is
//!   any feature a tree splits on by category);
//! - [`ImportOptions::categories`] names the labels of a label-encoded feature in code order
//!   (`Sex → ["male", "female"]` makes `"female"` code 1): requests may send a label or the
//!   code itself, and an unknown label is missing. Without it, a categorical feature takes
//!   the categories xgboost saved for a DataFrame `category` column (`gradient_booster.model.cats`),
//!   or else bare codes.
//!
//! Export writes the stored trees with `feature_names`, `feature_types` (`int`, `float`, `c`)
//! and, for categorical features, their labels as xgboost's `cats`, so the categorical codes
//! nimbus uses (a label's position) are what xgboost reads.

use std::collections::{BTreeMap, HashSet};

use hessboost::prelude::{BoostedModel, ModelFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::MlError;
use crate::bundle::Bundle;
use crate::preprocess::{FeatureKind, FeatureSpec, Preprocessor};
use crate::table::format_number;
use crate::train::Task;

/// The objectives an imported model may have.
const OBJECTIVES: &str = "binary:logistic, multi:softprob and reg:squarederror";

/// How to read an XGBoost model into a bundle. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Feature names in the model's feature order; overrides the names saved in the model.
    pub feature_names: Option<Vec<String>>,
    /// Per feature name, its labels in code order (label `i` is code `i`).
    pub categories: BTreeMap<String, Vec<String>>,
    /// Class labels in class order (default `"0"`, `"1"`, …); classifiers only.
    pub classes: Option<Vec<String>>,
    /// The name of the predicted field (default `label`).
    pub target: Option<String>,
    /// The bundle's description (default names the xgboost version).
    pub description: Option<String>,
}

/// A problem with the model document itself.
fn model_error(reason: impl std::fmt::Display) -> MlError {
    MlError::Input(format!("XGBoost JSON model: {reason}"))
}

/// A problem with one of the [`ImportOptions`].
fn option_error(name: &str, reason: String) -> MlError {
    MlError::Param { name: name.to_string(), reason }
}

/// Reads an XGBoost JSON model (`booster.save_model("m.json")`) into a native bundle.
pub fn bundle_from_xgboost_json(bytes: &[u8], options: &ImportOptions) -> Result<Bundle, MlError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        if ModelFormat::detect(bytes) == Some(ModelFormat::XgboostUbjson) {
            model_error("this is UBJSON (m.ubj); save the model as JSON with booster.save_model(\"m.json\")")
        } else {
            model_error(format!("not JSON ({e}); save the model with booster.save_model(\"m.json\")"))
        }
    })?;
    let learner = doc.get("learner").filter(|l| l.is_object()).ok_or_else(|| {
        model_error(
            "the document has no \"learner\" object, so it is not an XGBoost model; \
             save one with booster.save_model(\"m.json\")",
        )
    })?;
    let objective = learner
        .pointer("/objective/name")
        .and_then(Value::as_str)
        .ok_or_else(|| model_error("learner.objective.name is missing; re-save the model with xgboost 1.0 or later"))?;
    let task = Task::of_objective(objective)
        .map_err(|_| model_error(format!("objective {objective:?} is not supported; nimbus imports {OBJECTIVES}")))?;
    let booster = BoostedModel::decode(bytes, ModelFormat::XgboostJson).map_err(model_error)?;
    let outputs = if let Task::Multiclass { .. } = task { booster.num_class() } else { 1 };
    if booster.n_outputs() != outputs {
        return Err(model_error(format!(
            "the model predicts {} values per row (a multi-target model); nimbus imports single-target models",
            booster.n_outputs()
        )));
    }
    let width = booster.n_features();

    let names = feature_names(learner, width, options)?;
    let pre = preprocessing(learner, &names, options)?;
    let classes = classes(&task, booster.num_class(), options)?;
    let version = doc
        .get("version")
        .and_then(Value::as_array)
        .map(|v| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("."))
        .unwrap_or_else(|| "unknown".into());
    let mut parameters = BTreeMap::from([
        ("objective".to_string(), json!(objective)),
        ("imported_from".to_string(), json!(format!("xgboost {version}"))),
    ]);
    if let Task::Multiclass { .. } = task {
        parameters.insert("num_class".into(), json!(booster.num_class()));
    }
    let target = options.target.clone().unwrap_or_else(|| "label".into());
    if target.is_empty() {
        return Err(option_error("target", "must not be empty; name the predicted field".into()));
    }
    let mut bundle = Bundle::new(&booster, &pre, objective, &target, classes, BTreeMap::new(), parameters)?;
    bundle.description = options.description.clone().unwrap_or_else(|| format!("imported from xgboost {version}"));
    Ok(bundle)
}

/// The feature names: the option, else the model's, else `f0`, `f1`, ….
fn feature_names(learner: &Value, width: usize, options: &ImportOptions) -> Result<Vec<String>, MlError> {
    let (names, from_option) = match &options.feature_names {
        Some(names) => (names.clone(), true),
        None => match strings(learner, "feature_names")? {
            Some(names) if !names.is_empty() => (names, false),
            _ => ((0..width).map(|j| format!("f{j}")).collect(), false),
        },
    };
    let bad = |reason: String| {
        if from_option {
            option_error("feature_names", reason)
        } else {
            model_error(format!("learner.feature_names {reason}"))
        }
    };
    if names.len() != width {
        return Err(bad(format!(
            "has {} names but the model reads {width} features; give one name per feature",
            names.len()
        )));
    }
    let mut seen = HashSet::new();
    for name in &names {
        if name.is_empty() {
            return Err(bad("holds an empty name; every feature needs a name".into()));
        }
        if !seen.insert(name) {
            return Err(bad(format!("names {name:?} twice; feature names must be unique")));
        }
    }
    Ok(names)
}

/// `learner[key]` as a list of strings, `None` when absent.
fn strings(learner: &Value, key: &str) -> Result<Option<Vec<String>>, MlError> {
    match learner.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| model_error(format!("learner.{key} must be a list of strings"))),
        Some(_) => Err(model_error(format!("learner.{key} must be a list of strings"))),
    }
}

/// The preprocessing of the model's features.
fn preprocessing(learner: &Value, names: &[String], options: &ImportOptions) -> Result<Preprocessor, MlError> {
    let width = names.len();
    let types = strings(learner, "feature_types")?.filter(|t| !t.is_empty());
    if let Some(types) = &types
        && types.len() != width
    {
        return Err(model_error(format!(
            "learner.feature_types has {} entries but the model reads {width} features",
            types.len()
        )));
    }
    let split_by_category = categorical_splits(learner, width);
    let saved = saved_categories(learner, width)?;
    for (name, labels) in &options.categories {
        if !names.contains(name) {
            return Err(option_error(
                "categories",
                format!("names {name:?}, which is not a feature of the model (its features: {})", names.join(", ")),
            ));
        }
        check_labels(&format!("categories.{name}"), labels)?;
    }
    let mut features = Vec::with_capacity(width);
    for (j, name) in names.iter().enumerate() {
        let kind = types.as_ref().map_or("q", |t| t[j].as_str());
        let categorical = match kind {
            "c" => true,
            "q" | "float" | "int" | "i" => split_by_category[j],
            other => {
                return Err(model_error(format!(
                    "learner.feature_types[{j}] ({name}) is {other:?}; nimbus reads q, float, int, i and c"
                )));
            }
        };
        let kind = match options.categories.get(name) {
            Some(labels) => {
                // The model's own categories decide the codes; a list that disagrees would
                // silently turn some of them into "missing".
                if let Some(Ok(Some(own))) = saved.get(j).map(column_categories)
                    && own != *labels
                {
                    return Err(option_error(
                        &format!("categories.{name}"),
                        format!(
                            "lists {} but the model saved its own categories {}; leave the option out to use the \
                             model's, or give exactly those in that order",
                            labels.join(","),
                            own.join(",")
                        ),
                    ));
                }
                FeatureKind::Labelled { labels: labels.clone(), categorical }
            }
            None if categorical => match saved.get(j).map(column_categories).transpose() {
                Ok(Some(Some(categories))) => FeatureKind::Categorical { categories },
                Ok(_) => FeatureKind::Labelled { labels: Vec::new(), categorical },
                Err(reason) => {
                    return Err(model_error(format!(
                        "gradient_booster.model.cats.enc[{j}] ({name}) {reason}; \
                         give its labels with the categories option instead"
                    )));
                }
            },
            None => FeatureKind::Numeric { integer: matches!(kind, "int" | "i") },
        };
        features.push(FeatureSpec { name: name.clone(), kind });
    }
    Ok(Preprocessor { features })
}

/// Labels must be non-empty and unique.
fn check_labels(name: &str, labels: &[String]) -> Result<(), MlError> {
    if labels.is_empty() {
        return Err(option_error(name, "is empty; list the labels in code order, or leave it out".into()));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = labels.iter().find(|l| !seen.insert(*l)) {
        return Err(option_error(name, format!("lists {twice:?} twice; each label needs its own code")));
    }
    Ok(())
}

/// Which features some tree splits on by category (`split_type` 1).
fn categorical_splits(learner: &Value, width: usize) -> Vec<bool> {
    let mut out = vec![false; width];
    let trees = learner.pointer("/gradient_booster/model/trees").and_then(Value::as_array);
    for tree in trees.into_iter().flatten() {
        let (Some(types), Some(features)) =
            (tree.get("split_type").and_then(Value::as_array), tree.get("split_indices").and_then(Value::as_array))
        else {
            continue;
        };
        for (t, f) in types.iter().zip(features) {
            if let (Some(1), Some(f)) = (t.as_u64(), f.as_u64())
                && let Some(slot) = out.get_mut(f as usize)
            {
                *slot = true;
            }
        }
    }
    out
}

/// The per-feature entries of the categories xgboost (3.1 and later) saves for DataFrame
/// `category` columns; empty when it saved none.
fn saved_categories(learner: &Value, width: usize) -> Result<&[Value], MlError> {
    let Some(cats) = learner.pointer("/gradient_booster/model/cats") else {
        return Ok(&[]);
    };
    let enc = cats
        .get("enc")
        .and_then(Value::as_array)
        .ok_or_else(|| model_error("gradient_booster.model.cats has no \"enc\" list"))?;
    if !enc.is_empty() && enc.len() != width {
        return Err(model_error(format!(
            "gradient_booster.model.cats.enc has {} entries but the model reads {width} features",
            enc.len()
        )));
    }
    Ok(enc)
}

/// One feature's saved categories, in code order: strings (`offsets` into UTF-8 `values`) or
/// numbers; `None` for a feature without.
fn column_categories(column: &Value) -> Result<Option<Vec<String>>, String> {
    let values = column.get("values").and_then(Value::as_array).ok_or("has no \"values\" list")?;
    let Some(offsets) = column.get("offsets") else {
        let labels = values.iter().map(|v| v.as_f64().map(format_number)).collect::<Option<Vec<_>>>();
        return labels.map(|l| (!l.is_empty()).then_some(l)).ok_or_else(|| "holds a value that is not a number".into());
    };
    let offsets = offsets
        .as_array()
        .and_then(|o| o.iter().map(|v| v.as_u64().map(|v| v as usize)).collect::<Option<Vec<_>>>())
        .ok_or("has offsets that are not whole numbers")?;
    if offsets.is_empty() {
        return Ok(None);
    }
    // The bytes are int8: UTF-8 bytes above 127 come as negative numbers.
    let bytes = values
        .iter()
        .map(|v| v.as_i64().filter(|b| (-128..=255).contains(b)).map(|b| b as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or("holds a value that is not a byte")?;
    let ordered = offsets.first() == Some(&0) && offsets.windows(2).all(|w| w[0] <= w[1]);
    if !ordered || offsets.last() != Some(&bytes.len()) {
        return Err("has offsets that do not run from 0 to the number of bytes".into());
    }
    offsets
        .windows(2)
        .map(|w| {
            // xgboost 3.2 cuts non-ASCII categories short.
            String::from_utf8(bytes[w[0]..w[1]].to_vec()).map_err(|_| "holds a category that is not valid UTF-8".into())
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

/// The class labels: the option, else `"0"`, `"1"`, ….
fn classes(task: &Task, num_class: usize, options: &ImportOptions) -> Result<Option<Vec<String>>, MlError> {
    let count = match task {
        Task::Regression => {
            return match &options.classes {
                Some(_) => Err(option_error(
                    "classes",
                    "reg:squarederror predicts numbers, not classes; leave classes out".into(),
                )),
                None => Ok(None),
            };
        }
        Task::Binary => 2,
        Task::Multiclass { .. } if num_class >= 2 => num_class,
        Task::Multiclass { .. } => {
            return Err(model_error(format!(
                "multi:softprob needs learner_model_param.num_class of 2 or more, found {num_class}"
            )));
        }
    };
    match &options.classes {
        None => Ok(Some((0..count).map(|i| i.to_string()).collect())),
        Some(labels) if labels.len() != count => Err(option_error(
            "classes",
            format!("has {} labels but the model predicts {count} classes; give one label per class", labels.len()),
        )),
        Some(labels) => {
            check_labels("classes", labels)?;
            Ok(Some(labels.clone()))
        }
    }
}

/// The XGBoost JSON model of a bundle's trees, with the feature names, types and category
/// labels, for `xgb.Booster(model_file=…)`. Python predicts on the encoded matrix: numeric
/// features as numbers, categorical and labelled features as codes.
pub fn bundle_to_xgboost_json(bundle: &Bundle) -> Result<Vec<u8>, MlError> {
    let pre = &bundle.model.preprocessing;
    Task::of_objective(&bundle.model.objective)?;
    let booster = bundle.booster()?;
    if booster.n_features() != pre.width() {
        return Err(MlError::Bundle(format!(
            "the trees read {} features but the preprocessing makes {}",
            booster.n_features(),
            pre.width()
        )));
    }
    let mut doc: Value =
        serde_json::from_str(bundle.model.booster.get()).map_err(|e| MlError::Bundle(format!("model.booster: {e}")))?;
    let learner = doc
        .get_mut("learner")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| MlError::Bundle("model.booster has no \"learner\" object".into()))?;
    learner.insert("feature_names".into(), json!(pre.names()));
    let types: Vec<&str> = pre
        .features
        .iter()
        .map(|f| match &f.kind {
            FeatureKind::Numeric { integer: true } | FeatureKind::Labelled { categorical: false, .. } => "int",
            FeatureKind::Numeric { integer: false } => "float",
            FeatureKind::Categorical { .. } | FeatureKind::Labelled { categorical: true, .. } => "c",
        })
        .collect();
    learner.insert("feature_types".into(), json!(types));
    let model = learner
        .get_mut("gradient_booster")
        .and_then(|b| b.get_mut("model"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| MlError::Bundle("model.booster has no \"learner.gradient_booster.model\" object".into()))?;
    match cats(pre) {
        Some(cats) => model.insert("cats".into(), cats),
        None => model.remove("cats"),
    };
    Ok(serde_json::to_vec(&doc).expect("JSON values serialise"))
}

/// xgboost's category container for the labelled categorical features, `None` when there are none.
fn cats(pre: &Preprocessor) -> Option<Value> {
    let lists: Vec<&[String]> =
        pre.features
            .iter()
            .map(|f| match &f.kind {
                FeatureKind::Categorical { categories: labels }
                | FeatureKind::Labelled { labels, categorical: true } => labels.as_slice(),
                _ => &[],
            })
            .collect();
    if lists.iter().all(|l| l.is_empty()) {
        return None;
    }
    let (mut enc, mut segments, mut sorted_idx) = (Vec::new(), vec![0usize], Vec::new());
    for labels in lists {
        let mut offsets = Vec::new();
        let mut bytes: Vec<i8> = Vec::new();
        if !labels.is_empty() {
            offsets.push(0);
            for label in labels {
                bytes.extend(label.bytes().map(|b| b as i8));
                offsets.push(bytes.len());
            }
        }
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by(|&a, &b| labels[a].cmp(&labels[b]));
        sorted_idx.extend(order);
        segments.push(segments.last().copied().unwrap_or(0) + labels.len());
        let mut column = Map::new();
        column.insert("offsets".into(), json!(offsets));
        column.insert("values".into(), json!(bytes));
        enc.push(Value::Object(column));
    }
    Some(json!({"enc": enc, "feature_segments": segments, "sorted_idx": sorted_idx}))
}
