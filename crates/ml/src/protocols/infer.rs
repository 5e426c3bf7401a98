//! The Open Inference Protocol v2 (KServe's v2 REST API): inference requests with one input
//! per model field or one `[n, k]` tensor in field order, their responses, and model metadata.

use std::collections::HashSet;

use nimbus_core::schema::{FieldType, Schema};
use serde_json::{Map, Value, json};

use super::{ProtocolError, Result, check_keys, from_columns, kind_of, parse_json, record, suggestion};
use crate::predict::Prediction;
use crate::train::class_label;

/// An Open Inference Protocol v2 request, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct InferRequest {
    /// The request's `id`, to echo in the response.
    pub id: Option<String>,
    /// One JSON object of field values per instance.
    pub records: Vec<Value>,
}

const DATATYPES: [&str; 13] =
    ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES"];
const INFER_EXAMPLE: &str = r#"{"inputs": [{"name": "<field>", "shape": [1], "datatype": "FP64", "data": [22]}]}"#;

struct Tensor {
    /// `inputs[i] (name)`, for messages.
    label: String,
    name: String,
    shape: Vec<usize>,
    /// The data, flattened row-major.
    data: Vec<Value>,
}

/// Reads an Open Inference Protocol v2 inference request: either one input per model field
/// (shape `[n]` or `[n, 1]`), or a single input of shape `[n, fields.len()]` in field order.
pub fn parse_infer(body: &[u8], fields: &[String]) -> Result<InferRequest> {
    let value = parse_json(body, INFER_EXAMPLE)?;
    let Value::Object(mut obj) = value else {
        bail!("the inference request must be a JSON object such as {INFER_EXAMPLE}, got {}", kind_of(&value));
    };
    check_keys(&obj, &["id", "parameters", "inputs", "outputs"], "the inference request")?;
    let id = take_string(&mut obj, "id", "")?;
    let inputs = match obj.remove("inputs") {
        Some(Value::Array(inputs)) if !inputs.is_empty() => inputs,
        Some(other) if !other.is_array() => bail!("inputs: expected a list of input tensors, got {}", kind_of(&other)),
        _ => bail!("inputs is missing or empty; send input tensors such as {INFER_EXAMPLE}"),
    };
    let tensors: Vec<Tensor> =
        inputs.into_iter().enumerate().map(|(i, t)| parse_tensor(i, t)).collect::<Result<_>>()?;
    let k = fields.len();
    // A single input of shape [n, k] holds all fields (unless it is a per-field input of a one-field model).
    let is_matrix = |t: &Tensor| matches!(t.shape[..], [_, cols] if cols == k && (k > 1 || !fields.contains(&t.name)));
    let records = if tensors.len() == 1 && k > 0 && is_matrix(&tensors[0]) {
        let (t, mut values) = (&tensors[0], tensors[0].data.iter().cloned());
        (0..t.shape[0]).map(|i| record(fields, values.by_ref().take(k).collect(), i)).collect::<Result<_>>()?
    } else {
        per_field_records(tensors, fields)?
    };
    if records.is_empty() {
        bail!("the inputs hold no instances (n is 0); send at least one");
    }
    Ok(InferRequest { id, records })
}

fn take_string(obj: &mut Map<String, Value>, key: &str, prefix: &str) -> Result<Option<String>> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => bail!("{prefix}{key}: expected a string, got {}", kind_of(&other)),
    }
}

fn parse_tensor(i: usize, input: Value) -> Result<Tensor> {
    let Value::Object(mut t) = input else {
        bail!("inputs[{i}]: expected an object with name, shape, datatype and data, got {}", kind_of(&input));
    };
    check_keys(&t, &["name", "shape", "datatype", "data", "parameters"], &format!("inputs[{i}]"))?;
    let Some(name) = take_string(&mut t, "name", &format!("inputs[{i}]."))? else {
        bail!("inputs[{i}].name is missing; name the input after a model field");
    };
    let label = format!("inputs[{i}] ({name})");
    let shape: Option<Vec<usize>> = match t.remove("shape") {
        Some(Value::Array(dims)) => dims.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect(),
        _ => None,
    };
    let Some(shape) = shape else {
        bail!("{label}.shape: expected a list of non-negative integers such as [3] or [3, 1]");
    };
    let datatype = take_string(&mut t, "datatype", &format!("{label}."))?.unwrap_or_default();
    let Some(datatype) = DATATYPES.into_iter().find(|d| *d == datatype) else {
        bail!("{label}.datatype: unknown datatype {datatype:?}; use one of {}", DATATYPES.join(", "));
    };
    let Some(Value::Array(values)) = t.remove("data") else {
        bail!("{label}.data: expected a list of values");
    };
    let mut data = Vec::new();
    flatten(values, &mut data);
    let expected = shape.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    if expected != data.len() as u128 {
        let got = data.len();
        bail!("{label}: shape {shape:?} holds {expected} values but data has {got}; make the shape match the data");
    }
    for (j, x) in data.iter().enumerate() {
        if let Some(takes) = misfit(datatype, x) {
            bail!("{label}.data[{j}]: datatype {datatype} takes {takes}, got {}", kind_of(x));
        }
    }
    Ok(Tensor { label, name, shape, data })
}

fn flatten(values: Vec<Value>, out: &mut Vec<Value>) {
    for v in values {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}

/// What `datatype` takes, when `x` does not fit it. `null` (a missing value) fits every datatype;
/// BYTES also takes numbers and booleans, as clients send rows of mixed types that way.
fn misfit(datatype: &str, x: &Value) -> Option<&'static str> {
    let whole = x.as_f64().is_some_and(|f| f.fract() == 0.0);
    let (fits, takes) = match datatype {
        "BOOL" => (x.is_boolean(), "true or false"),
        "BYTES" => (!x.is_object(), "strings or numbers"),
        d if d.starts_with("FP") => (x.is_number(), "numbers"),
        d if d.starts_with("UINT") => (whole && x.as_f64().is_some_and(|f| f >= 0.0), "non-negative whole numbers"),
        _ => (whole, "whole numbers"),
    };
    (!fits && !x.is_null()).then_some(takes)
}

fn per_field_records(tensors: Vec<Tensor>, fields: &[String]) -> Result<Vec<Value>> {
    let unknown: Vec<String> = tensors
        .iter()
        .filter(|t| !fields.contains(&t.name))
        .map(|t| format!("{:?}{}", t.name, suggestion(&t.name, fields.iter().map(String::as_str))))
        .collect();
    if !unknown.is_empty() {
        let (unknown, list, k) = (unknown.join(", "), fields.join(", "), fields.len());
        bail!(
            "inputs: unknown input name {unknown}; name each input after a model field ({list}), or send a single \
             input of shape [n, {k}] holding the fields in that order"
        );
    }
    let mut seen = HashSet::new();
    for t in &tensors {
        if !matches!(t.shape[..], [_] | [_, 1]) {
            bail!("{}: shape {:?} does not fit a per-field input; use [n] or [n, 1]", t.label, t.shape);
        }
        if !seen.insert(&t.name) {
            bail!("{}: the field {:?} is given twice; send one input per field", t.label, t.name);
        }
        let (first, n, m) = (&tensors[0].label, tensors[0].data.len(), t.data.len());
        if m != n {
            bail!("{}: has {m} values but {first} has {n}; send one value per instance in every input", t.label);
        }
    }
    Ok(from_columns(tensors.into_iter().map(|t| (t.name, t.data)).collect()))
}

/// The v2 datatype of output values: INT64 (all integers), FP64 (numbers), BOOL, else BYTES.
fn datatype_of(values: &[Value]) -> &'static str {
    if values.iter().all(|v| v.is_i64() || v.is_u64()) {
        "INT64"
    } else if values.iter().all(|v| v.is_number() || v.is_null()) {
        "FP64"
    } else if values.iter().all(Value::is_boolean) {
        "BOOL"
    } else {
        "BYTES"
    }
}

/// The v2 inference response: a `predict` output (the predicted values) and, for classifiers,
/// a `predict_proba` output of shape `[n, classes]`. `id` is echoed when the request had one.
pub fn render_infer(model_name: &str, model_version: &str, id: Option<&str>, preds: &[Prediction]) -> Value {
    let mut values: Vec<Value> = preds.iter().map(|p| p.value.clone()).collect();
    let datatype = datatype_of(&values);
    if datatype == "BYTES" {
        for v in values.iter_mut().filter(|v| v.is_number() || v.is_boolean()) {
            *v = Value::String(v.to_string());
        }
    }
    let n = preds.len();
    let mut outputs = vec![json!({"name": "predict", "shape": [n], "datatype": datatype, "data": values})];
    let width = preds.first().and_then(|p| p.probabilities.as_ref()).map_or(0, Vec::len);
    if width > 0 && preds.iter().all(|p| p.probabilities.as_ref().is_some_and(|p| p.len() == width)) {
        let data: Vec<f64> = preds.iter().flat_map(|p| p.probabilities.iter().flatten()).map(|&x| x.into()).collect();
        outputs.push(json!({"name": "predict_proba", "shape": [n, width], "datatype": "FP32", "data": data}));
    }
    let mut response = json!({"model_name": model_name, "model_version": model_version, "outputs": outputs});
    if let Some(id) = id {
        response["id"] = json!(id);
    }
    response
}

/// The v2 model metadata: one input per field of `input` (FP32 for numbers, BYTES for categories
/// and text, BOOL for booleans; shape `[-1]`) and the outputs [`render_infer`] gives, typed from
/// the first field of `output` (the bundle's output schema).
pub fn model_metadata(name: &str, versions: &[String], platform: &str, input: &Schema, output: &Schema) -> Value {
    let datatype = |kind| match kind {
        FieldType::Integer | FieldType::Float => "FP32",
        FieldType::Boolean => "BOOL",
        FieldType::Category | FieldType::String => "BYTES",
    };
    let inputs: Vec<Value> =
        input.fields.iter().map(|f| json!({"name": f.name, "datatype": datatype(f.kind), "shape": [-1]})).collect();
    let predict = |datatype: &str| json!({"name": "predict", "datatype": datatype, "shape": [-1]});
    let outputs = match output.fields.first().map(|f| (f.kind, &f.categories)) {
        Some((FieldType::Category, categories)) => {
            // As the predictor does: a classifier saved without class names has classes 0 and 1.
            let classes = categories.clone().unwrap_or_else(|| vec!["0".into(), "1".into()]);
            let labels: Vec<Value> = (0..classes.len()).map(|i| class_label(&classes, i)).collect();
            let proba = json!({"name": "predict_proba", "datatype": "FP32", "shape": [-1, classes.len()]});
            vec![predict(datatype_of(&labels)), proba]
        }
        Some((FieldType::Integer, _)) => vec![predict("INT64")],
        Some((FieldType::Float, _)) => vec![predict("FP64")],
        Some((FieldType::Boolean, _)) => vec![predict("BOOL")],
        _ => vec![predict("BYTES")],
    };
    json!({"name": name, "versions": versions, "platform": platform, "inputs": inputs, "outputs": outputs})
}

#[cfg(test)]
mod tests {
    use nimbus_core::schema::Field;

    use super::*;
    use crate::protocols::tests::{names, passengers, three};

    fn infer(body: Value) -> Result<InferRequest> {
        parse_infer(body.to_string().as_bytes(), &three())
    }

    #[test]
    fn infer_reads_both_layouts() {
        let per_field = json!({"id": "r1", "parameters": {}, "inputs": [
            {"name": "Age", "shape": [3], "datatype": "INT64", "data": [22, 12, 38]},
            {"name": "Sex", "shape": [3, 1], "datatype": "BYTES", "data": [["male"], ["male"], ["female"]]},
            {"name": "Pclass", "shape": [3], "datatype": "FP32", "data": [3, 1, 1], "parameters": {}}]});
        assert_eq!(infer(per_field).unwrap(), InferRequest { id: Some("r1".into()), records: passengers() });
        let flat = json!({"inputs": [{"name": "input-0", "shape": [3, 3], "datatype": "BYTES",
            "data": [3, "male", 22, 1, "male", 12, 1, "female", 38]}], "outputs": [{"name": "predict"}]});
        assert_eq!(infer(flat).unwrap(), InferRequest { id: None, records: passengers() });
        let nested = json!({"inputs": [{"name": "x", "shape": [3, 3], "datatype": "BYTES",
            "data": [[3, "male", 22], [1, "male", 12], [1, "female", 38]]}]});
        assert_eq!(infer(nested).unwrap().records, passengers());
        let missing = json!({"inputs": [{"name": "Age", "shape": [2], "datatype": "FP64", "data": [null, 1.5]}]});
        assert_eq!(infer(missing).unwrap().records, [json!({"Age": null}), json!({"Age": 1.5})]);
    }

    #[test]
    fn infer_errors_name_the_input() {
        let t = |name: &str, shape: &str, datatype: &str, data: &str| -> Value {
            let text = format!(r#"{{"name":"{name}","shape":{shape},"datatype":"{datatype}","data":{data}}}"#);
            serde_json::from_str(&text).unwrap()
        };
        let (age, sex) = (t("Age", "[2]", "FP32", "[1,2]"), t("Sex", "[1]", "BYTES", r#"["m"]"#));
        let cases = [
            (vec![t("Age", "[3]", "FP64", "[1,2]")], "inputs[0] (Age): shape [3] holds 3 values but data has 2;"),
            (vec![t("Age", "[1]", "FLOAT", "[1]")], r#"inputs[0] (Age).datatype: unknown datatype "FLOAT"; use"#),
            (vec![t("Age", "[2]", "FP32", r#"[1,"x"]"#)], r#"inputs[0] (Age).data[1]: datatype FP32 takes numbers, g"#),
            (vec![t("Age", "[1]", "INT32", "[2.5]")], "inputs[0] (Age).data[0]: datatype INT32 takes whole numbers,"),
            (vec![t("Age", "[1]", "UINT8", "[-1]")], "inputs[0] (Age).data[0]: datatype UINT8 takes non-negative w"),
            (vec![t("x", "[1,2]", "FP32", "[1,2]")], r#"inputs: unknown input name "x"; name each input after a"#),
            (vec![t("Age", "[1,2]", "FP32", "[1,2]")], "inputs[0] (Age): shape [1, 2] does not fit a per-field input;"),
            (vec![t("age", "[1]", "FP32", "[1]"), sex.clone()], r#"inputs: unknown input name "age" (did you mean"#),
            (vec![age.clone(), sex], "inputs[1] (Sex): has 1 values but inputs[0] (Age) has 2; send one value per"),
            (vec![age.clone(), age], r#"inputs[1] (Age): the field "Age" is given twice; send one input per field"#),
            (vec![t("Age", "[0]", "FP32", "[]")], "the inputs hold no instances (n is 0); send at least one"),
            (vec![t("Age", "[1]", "FP32", r#"[{"a":1}]"#)], "inputs[0] (Age).data[0]: datatype FP32 takes numbers,"),
            (vec![], "inputs is missing or empty; send input tensors such as"),
        ];
        for (inputs, expected) in cases {
            let message = infer(json!({ "inputs": inputs })).unwrap_err().message;
            assert!(message.starts_with(expected), "{message}\n  not {expected}");
        }
        let e = infer(json!({"inputs": [t("age", "[1]", "FP32", "[1]")]})).unwrap_err().message;
        assert!(
            e.ends_with("(Pclass, Sex, Age), or send a single input of shape [n, 3] holding the fields in that order")
        );
        assert_eq!(
            infer(json!({"inputs": [t("Age", "[1]", "INT32", "[2.5]")]})).unwrap_err().message,
            "inputs[0] (Age).data[0]: datatype INT32 takes whole numbers, got 2.5"
        );
        assert!(parse_infer(b"{", &three()).unwrap_err().message.contains("EOF while parsing"));
    }

    #[test]
    fn metadata_types_inputs_and_outputs() {
        let field = |name: &str, kind, categories: Option<&[&str]>| Field {
            name: name.into(),
            kind,
            categories: categories.map(names),
            nullable: true,
        };
        let sex = field("Sex", FieldType::Category, Some(&["female", "male"]));
        let input = Schema { fields: vec![field("Pclass", FieldType::Integer, None), sex] };
        let output = Schema { fields: vec![field("Survived", FieldType::Category, Some(&["0", "1"]))] };
        assert_eq!(
            model_metadata("titanic", &names(&["1", "2"]), "nimbus", &input, &output),
            json!({"name": "titanic", "versions": ["1", "2"], "platform": "nimbus",
                "inputs": [{"name": "Pclass", "datatype": "FP32", "shape": [-1]},
                           {"name": "Sex", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 2]}]})
        );
        let output = Schema { fields: vec![field("Fare", FieldType::Float, None)] };
        let v = model_metadata("fare", &[], "nimbus", &input, &output);
        assert_eq!(v["outputs"], json!([{"name": "predict", "datatype": "FP64", "shape": [-1]}]));
        let output = Schema { fields: vec![field("Class", FieldType::Category, Some(&["a", "b", "c"]))] };
        let v = model_metadata("c", &[], "nimbus", &input, &output);
        assert_eq!((&v["outputs"][0]["datatype"], &v["outputs"][1]["shape"]), (&json!("BYTES"), &json!([-1, 3])));
    }
}
