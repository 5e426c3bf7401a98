//! Pipeline definitions: typed parameters, steps, and the references that wire steps into a
//! DAG. A definition is checked whole before it is stored, and parameter values are checked
//! against their types before anything runs.
//!
//! References are written `${name}` (a parameter) or `${steps.STEP.OUTPUT}` (an output of an
//! earlier step). A value that is exactly one reference takes the referenced value with its
//! type; a reference inside a longer string is replaced by its text.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PipelineError;

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Integer,
    Float,
    String,
    Boolean,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::Integer => "an integer",
            ParamType::Float => "a number",
            ParamType::String => "a string",
            ParamType::Boolean => "true or false",
        }
    }

    /// Parses a command-line value (`--param k=v`) into this type.
    pub fn parse(self, text: &str) -> Option<Value> {
        match self {
            ParamType::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            ParamType::Float => text.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from),
            ParamType::String => Some(Value::from(text)),
            ParamType::Boolean => match text.trim() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }

    /// Whether a JSON value has this type (an integer is also a float).
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Float => v.is_number(),
            ParamType::String => v.is_string(),
            ParamType::Boolean => v.is_boolean(),
        }
    }
}

/// A declared parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    #[serde(rename = "type")]
    pub kind: ParamType,
    pub default: Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Load a CSV, split off a holdout, fit preprocessing and trees; outputs `model`, `holdout`.
    Train,
    /// Score a model on a dataset; outputs the metrics (`auc`, `accuracy`, …) and `report`.
    Evaluate,
    /// Compare a value with a threshold (`when = "${steps.evaluate.auc} >= 0.8"`); when false
    /// the run ends without registering.
    Condition,
    /// Register a model in the registry; outputs `version`.
    Register,
    /// Batch prediction of a model over a CSV; outputs `predictions` (a CSV in the store).
    Transform,
    /// Run any command with inputs copied from the store into a work directory, parameters in
    /// its environment, and declared outputs copied back; outputs one URI per declared output.
    Process,
}

impl StepKind {
    /// Whether results are reused by default when inputs are unchanged: built-in steps yes;
    /// `register` never (a registration is an event), `process` only when asked (a command
    /// may read things nimbus cannot see).
    pub fn caches_by_default(self) -> bool {
        !matches!(self, StepKind::Register | StepKind::Process)
    }
}

/// A step as declared. Settings other than `kind` and `after` are the step's inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    /// Steps that must finish first, besides those referenced in the inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Whether a step whose inputs are unchanged may reuse an earlier result (default: see
    /// [`StepKind::caches_by_default`]; `register` never does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    #[serde(flatten)]
    pub inputs: BTreeMap<String, Value>,
}

/// A pipeline as declared in `nimbus.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default)]
    pub description: String,
    /// The model group `register` steps register into.
    pub model_group: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    pub steps: BTreeMap<String, Step>,
}

/// The inputs each step kind takes: (name, required).
fn inputs_of(kind: StepKind) -> &'static [(&'static str, bool)] {
    match kind {
        StepKind::Train => &[
            ("data", true),
            ("target", true),
            ("feature_columns", true),
            ("categorical_columns", false),
            ("test_fraction", false),
            ("seed", false),
            ("params", false),
            ("num_round", true),
        ],
        StepKind::Evaluate => &[("model", true), ("data", true)],
        StepKind::Condition => &[("when", true)],
        StepKind::Register => &[("model", true), ("evaluation", false), ("status", false), ("description", false)],
        StepKind::Transform => &[("model", true), ("data", true)],
        StepKind::Process => &[
            ("command", true),
            ("inputs", false),
            ("outputs", false),
            ("environment", false),
            ("timeout_seconds", false),
        ],
    }
}

/// Outputs each step kind makes, for reference checking (`*`: any name, e.g. metrics).
fn outputs_of(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Train => &["model", "holdout", "rows", "holdout_rows"],
        StepKind::Evaluate => &["report", "*"],
        StepKind::Condition => &["result"],
        StepKind::Register => &["version"],
        StepKind::Transform => &["predictions", "rows"],
        StepKind::Process => &["*"],
    }
}

/// One `${…}` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Param(String),
    Output { step: String, output: String },
}

/// Every `${…}` in a string.
pub fn references(text: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        let inner = rest[start + 2..start + end].trim();
        out.push(match inner.strip_prefix("steps.").and_then(|s| s.split_once('.')) {
            Some((step, output)) => Reference::Output { step: step.to_string(), output: output.to_string() },
            None => Reference::Param(inner.to_string()),
        });
        rest = &rest[start + end + 1..];
    }
    out
}

fn value_references(v: &Value, out: &mut Vec<Reference>) {
    match v {
        Value::String(s) => out.extend(references(s)),
        Value::Array(a) => a.iter().for_each(|x| value_references(x, out)),
        Value::Object(m) => m.values().for_each(|x| value_references(x, out)),
        _ => {}
    }
}

impl PipelineSpec {
    /// Checks names, parameter defaults, step inputs and references, and that the steps form
    /// a DAG. Returns the steps in an order that runs each after what it needs.
    pub fn validate(&self, name: &str) -> Result<Vec<String>, PipelineError> {
        let bad = |field: String, reason: String| PipelineError::Invalid { field, reason };
        nimbus_core::names::resource("pipeline", name).map_err(|e| bad("name".into(), e.to_string()))?;
        nimbus_core::names::resource("model group", &self.model_group)
            .map_err(|e| bad("model_group".into(), e.to_string()))?;
        for (p, def) in &self.parameters {
            // Parameters reach `process` steps as environment variables: no reserved names.
            nimbus_sandbox::names::env_var("parameter", p).map_err(|e| bad(format!("parameters.{p}"), e))?;
            if !def.kind.accepts(&def.default) {
                return Err(bad(
                    format!("parameters.{p}.default"),
                    format!("{} is not {}", def.default, def.kind.name()),
                ));
            }
        }
        if self.steps.is_empty() {
            return Err(bad("steps".into(), "declare at least one step".into()));
        }
        let mut deps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (s, step) in &self.steps {
            nimbus_core::names::resource("step", s).map_err(|e| bad(format!("steps.{s}"), e.to_string()))?;
            let known = inputs_of(step.kind);
            for key in step.inputs.keys() {
                if !known.iter().any(|(k, _)| k == key) {
                    let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
                    return Err(bad(
                        format!("steps.{s}.{key}"),
                        format!("a {:?} step takes {}", step.kind, names.join(", ")),
                    ));
                }
            }
            for (key, required) in known {
                if *required && !step.inputs.contains_key(*key) {
                    return Err(bad(format!("steps.{s}.{key}"), "is required".into()));
                }
            }
            if step.kind == StepKind::Process {
                crate::process::validate(&format!("steps.{s}"), &step.inputs).map_err(|(f, r)| bad(f, r))?;
            }
            let mut refs = Vec::new();
            step.inputs.values().for_each(|v| value_references(v, &mut refs));
            let entry = deps.entry(s.as_str()).or_default();
            for r in refs {
                match r {
                    Reference::Param(p) if !self.parameters.contains_key(&p) => {
                        return Err(bad(
                            format!("steps.{s}"),
                            format!("refers to ${{{p}}}, which is not a declared parameter"),
                        ));
                    }
                    Reference::Param(_) => {}
                    Reference::Output { step: other, output } => {
                        let Some(target) = self.steps.get(&other) else {
                            return Err(bad(
                                format!("steps.{s}"),
                                format!("refers to step {other:?}, which is not declared"),
                            ));
                        };
                        let outs = outputs_of(target.kind);
                        if !outs.contains(&output.as_str()) && !outs.contains(&"*") {
                            return Err(bad(
                                format!("steps.{s}"),
                                format!("step {other:?} has no output {output:?}; it has {}", outs.join(", ")),
                            ));
                        }
                        entry.insert(other);
                    }
                }
            }
            for a in &step.after {
                if !self.steps.contains_key(a) {
                    return Err(bad(format!("steps.{s}.after"), format!("{a:?} is not a declared step")));
                }
                entry.insert(a.clone());
            }
        }
        // Kahn's algorithm, taking ready steps in name order so the order is stable.
        let mut order = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        while order.len() < self.steps.len() {
            let ready: Vec<String> = deps
                .iter()
                .filter(|(s, d)| !done.contains(**s) && d.iter().all(|x| done.contains(x)))
                .map(|(s, _)| s.to_string())
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = deps.keys().filter(|s| !done.contains(**s)).copied().collect();
                return Err(bad(
                    "steps".into(),
                    format!("the steps {} depend on each other in a cycle", stuck.join(", ")),
                ));
            }
            for s in ready {
                done.insert(s.clone());
                order.push(s);
            }
        }
        Ok(order)
    }

    /// The effective parameter values of a run: defaults overridden by `overrides`, each
    /// checked against its type. Overrides may be JSON values or command-line text.
    pub fn resolve_parameters(
        &self,
        overrides: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, Value>, PipelineError> {
        let mut out: BTreeMap<String, Value> =
            self.parameters.iter().map(|(k, p)| (k.clone(), p.default.clone())).collect();
        for (k, v) in overrides {
            let Some(def) = self.parameters.get(k) else {
                let names: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
                return Err(PipelineError::Invalid {
                    field: format!("parameter {k}"),
                    reason: format!("is not declared by this pipeline; it declares {}", names.join(", ")),
                });
            };
            let value = match v {
                Value::String(text) if def.kind != ParamType::String => def.kind.parse(text),
                other if def.kind.accepts(other) => Some(other.clone()),
                _ => None,
            };
            let value = value.ok_or_else(|| PipelineError::Invalid {
                field: format!("parameter {k}"),
                reason: format!("expected {}, got {v}", def.kind.name()),
            })?;
            let value = if def.kind == ParamType::Float { Value::from(value.as_f64().unwrap_or(0.0)) } else { value };
            out.insert(k.clone(), value);
        }
        Ok(out)
    }
}

/// Replaces references in `v` using `lookup`. A string that is exactly one reference becomes
/// the looked-up value itself.
pub fn interpolate(v: &Value, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Result<Value, String> {
    match v {
        Value::String(s) => {
            let refs = references(s);
            if refs.len() == 1
                && s.trim().starts_with("${")
                && s.trim().ends_with('}')
                && s.trim().matches("${").count() == 1
            {
                return lookup(&refs[0]).ok_or_else(|| format!("{s} has no value"));
            }
            let mut out = s.clone();
            for r in refs {
                let value = lookup(&r).ok_or_else(|| format!("{s} has no value"))?;
                let text = match &value {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let pattern = match &r {
                    Reference::Param(p) => format!("${{{p}}}"),
                    Reference::Output { step, output } => format!("${{steps.{step}.{output}}}"),
                };
                out = out.replace(&pattern, &text);
            }
            Ok(Value::String(out))
        }
        Value::Array(a) => Ok(Value::Array(a.iter().map(|x| interpolate(x, lookup)).collect::<Result<_, _>>()?)),
        Value::Object(m) => Ok(Value::Object(
            m.iter().map(|(k, x)| Ok((k.clone(), interpolate(x, lookup)?))).collect::<Result<_, String>>()?,
        )),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> PipelineSpec {
        serde_json::from_value(json!({
            "model_group": "titanic",
            "parameters": {"max_depth": {"type": "integer", "default": 4}, "eta": {"type": "float", "default": 0.1},
                           "train_file": {"type": "string", "default": "s3://d/train.csv"}},
            "steps": {
                "train": {"kind": "train", "data": "${train_file}", "target": "Survived", "feature_columns": "Age",
                          "num_round": 10, "params": {"max_depth": "${max_depth}", "eta": "${eta}"}},
                "evaluate": {"kind": "evaluate", "model": "${steps.train.model}", "data": "${steps.train.holdout}"},
                "check": {"kind": "condition", "when": "${steps.evaluate.auc} >= 0.8"},
                "register": {"kind": "register", "model": "${steps.train.model}", "after": ["check"]}
            }
        }))
        .unwrap()
    }

    #[test]
    fn orders_steps_by_their_references() {
        assert_eq!(spec().validate("titanic").unwrap(), ["train", "evaluate", "check", "register"]);
    }

    #[test]
    fn refuses_bad_definitions_naming_the_field() {
        let mut s = spec();
        s.steps.get_mut("evaluate").unwrap().inputs.insert("model".into(), json!("${steps.nope.model}"));
        assert!(s.validate("t").unwrap_err().to_string().contains("step \"nope\""));
        let mut s = spec();
        s.steps.get_mut("train").unwrap().inputs.insert("dat".into(), json!("x"));
        assert!(s.validate("t").unwrap_err().to_string().contains("steps.train.dat"));
        let mut s = spec();
        s.steps.get_mut("train").unwrap().after = vec!["register".into()];
        assert!(s.validate("t").unwrap_err().to_string().contains("cycle"));
        let mut s = spec();
        s.parameters.get_mut("eta").unwrap().default = json!("fast");
        assert!(s.validate("t").unwrap_err().to_string().contains("parameters.eta.default"));
    }

    #[test]
    fn parameters_are_type_checked() {
        let s = spec();
        let ok = s
            .resolve_parameters(&[("max_depth".to_string(), json!("6")), ("eta".to_string(), json!("0.2"))].into())
            .unwrap();
        assert_eq!((ok["max_depth"].clone(), ok["eta"].clone()), (json!(6), json!(0.2)));
        let e = s.resolve_parameters(&[("max_depth".to_string(), json!("deep"))].into()).unwrap_err().to_string();
        assert_eq!(e, "invalid parameter max_depth: expected an integer, got \"deep\"");
        let e = s.resolve_parameters(&[("depth".to_string(), json!(1))].into()).unwrap_err().to_string();
        assert!(e.contains("is not declared"), "{e}");
    }

    #[test]
    fn interpolates_whole_and_embedded_references() {
        let lookup = |r: &Reference| match r {
            Reference::Param(p) if p == "n" => Some(json!(5)),
            Reference::Output { step, output } if step == "a" && output == "auc" => Some(json!(0.9)),
            _ => None,
        };
        assert_eq!(interpolate(&json!("${n}"), &lookup).unwrap(), json!(5));
        assert_eq!(interpolate(&json!("${steps.a.auc} >= 0.8"), &lookup).unwrap(), json!("0.9 >= 0.8"));
        assert!(interpolate(&json!("${m}"), &lookup).is_err());
    }
}
