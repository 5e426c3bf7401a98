//! Prediction request and response bodies: the formats existing clients send, turned into JSON
//! records for [`Predictor::predict_records`](crate::predict::Predictor::predict_records), and
//! predictions rendered back in the matching shape.
//!
//! Accepted by [`parse_request`] (every JSON form may add `"return_probabilities": true`):
//! - `{"instances": [{"Age": 22, "Sex": "male"}, …]}`: one object of field values per instance.
//! - MLflow's scoring server: exactly one of `dataframe_split` (`{"columns", "data"}`, `index`
//!   ignored; without `columns` the model's field order), `dataframe_records` (list of objects),
//!   `instances` or `inputs` (a list of objects, a list of lists in the model's field order, or an
//!   object of equally long columns), plus an optional `params` object, which is ignored.
//! - CSV (`Content-Type: text/csv`): a header line of field names and one row per instance.
//!
//! Every record is checked the same way: a field the model does not have is an error naming the
//! instance (`instances[i]`, its position in the request), the field and the closest field name;
//! a field left out, `null`, or an empty CSV field is a missing value, which the trees handle.
//!
//! The Open Inference Protocol v2 (KServe) is read by [`parse_infer`] and answered by
//! [`render_infer`] and [`model_metadata`].

use std::collections::{HashMap, HashSet};

use nimbus_core::schema::{Field, FieldType, Schema};
use serde_json::{Map, Value, json};

use crate::MlError;
use crate::predict::Prediction;
use crate::train::class_label;

/// A request body that cannot be used; the message is meant for a 400 response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub message: String,
}

impl From<ProtocolError> for MlError {
    fn from(e: ProtocolError) -> Self {
        MlError::Input(e.message)
    }
}

type Result<T, E = ProtocolError> = std::result::Result<T, E>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(ProtocolError { message: message.into() })
}

/// The form a prediction request came in. All forms are answered with `{"predictions": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFormat {
    /// `{"instances": …}` (nimbus' own form, and MLflow's).
    Instances,
    /// MLflow's `{"inputs": …}`.
    Inputs,
    /// MLflow's `{"dataframe_split": {"columns": …, "data": …}}`.
    DataframeSplit,
    /// MLflow's `{"dataframe_records": […]}`.
    DataframeRecords,
    /// A CSV body.
    Csv,
}

/// A prediction request, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictRequest {
    /// One JSON object of field values per instance, in request order.
    pub records: Vec<Value>,
    /// Whether the response should carry class probabilities.
    pub return_probabilities: bool,
    pub format: RequestFormat,
}

const DATA_KEYS: [&str; 4] = ["instances", "inputs", "dataframe_split", "dataframe_records"];
const REQUEST_KEYS: [&str; 6] =
    ["instances", "inputs", "dataframe_split", "dataframe_records", "params", "return_probabilities"];
const EXAMPLE: &str = r#"{"instances": [{"field": value, …}]}"#;

/// Reads a prediction request body (JSON, or CSV when `content_type` is `text/csv`) into records
/// for the model whose input fields are `fields`, in the model's order.
pub fn parse_request(content_type: Option<&str>, body: &[u8], fields: &[String]) -> Result<PredictRequest> {
    let is_csv = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/csv"));
    let request = if is_csv {
        PredictRequest { records: parse_csv(body)?, return_probabilities: false, format: RequestFormat::Csv }
    } else {
        parse_json_request(body, fields)?
    };
    check_records(&request.records, fields)?;
    Ok(request)
}

/// The response to a prediction request: `{"predictions": […]}`, plus `"probabilities"` (one list
/// per instance, in class order) when asked for and the model gives them.
pub fn render(_format: RequestFormat, preds: &[Prediction], return_probabilities: bool) -> Value {
    let mut response = json!({ "predictions": preds.iter().map(|p| p.value.clone()).collect::<Vec<_>>() });
    if return_probabilities && !preds.is_empty() && preds.iter().all(|p| p.probabilities.is_some()) {
        let rows: Vec<Vec<f64>> =
            preds.iter().map(|p| p.probabilities.iter().flatten().map(|&x| f64::from(x)).collect()).collect();
        response["probabilities"] = json!(rows);
    }
    response
}

fn parse_json(body: &[u8], example: &str) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return fail(format!("the request body is empty; send a JSON object such as {example}"));
    }
    serde_json::from_slice(body)
        .or_else(|e| fail(format!("the request body is not valid JSON: {e}; send a JSON object such as {example}")))
}

fn parse_json_request(body: &[u8], fields: &[String]) -> Result<PredictRequest> {
    let value = parse_json(body, EXAMPLE)?;
    let Value::Object(mut obj) = value else {
        return fail(format!("the request body must be a JSON object such as {EXAMPLE}, got {}", kind_of(&value)));
    };
    check_keys(&obj, &REQUEST_KEYS, "the request body")?;
    let found: Vec<&str> = DATA_KEYS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    let [key] = found[..] else {
        let present: Vec<&str> = if found.is_empty() { obj.keys().map(String::as_str).collect() } else { found };
        let present = if present.is_empty() { "no keys".to_string() } else { present.join(", ") };
        return fail(format!(
            "the request body needs exactly one of the keys {}, found {present}; e.g. {EXAMPLE}",
            DATA_KEYS.join(", ")
        ));
    };
    let return_probabilities = match obj.get("return_probabilities") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return fail(format!("return_probabilities: expected true or false, got {}", kind_of(other))),
    };
    let data = obj.remove(key).unwrap_or(Value::Null);
    let (records, format, what) = match key {
        "instances" => (tensor_records(data, key, fields)?, RequestFormat::Instances, key),
        "inputs" => (tensor_records(data, key, fields)?, RequestFormat::Inputs, key),
        "dataframe_records" => (dataframe_records(data)?, RequestFormat::DataframeRecords, key),
        _ => (dataframe_split(data, fields)?, RequestFormat::DataframeSplit, "dataframe_split.data"),
    };
    if records.is_empty() {
        return fail(format!("{what} is empty; send at least one instance"));
    }
    Ok(PredictRequest { records, return_probabilities, format })
}

/// `instances` / `inputs`: a list of objects or of positional lists, or an object of columns.
fn tensor_records(data: Value, key: &str, fields: &[String]) -> Result<Vec<Value>> {
    match data {
        Value::Array(rows) => rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| match row {
                Value::Object(_) => Ok(row),
                Value::Array(values) => positional(values, i, fields),
                other => fail(format!(
                    "instances[{i}]: expected an object of field values or a list of {} values in the model's \
                     field order ({}), got {}",
                    fields.len(),
                    fields.join(", "),
                    kind_of(&other)
                )),
            })
            .collect(),
        Value::Object(columns) => columnar(columns, key),
        other => fail(format!(
            "{key}: expected a list of instances or an object of columns (field name to list of values), got {}",
            kind_of(&other)
        )),
    }
}

fn positional(values: Vec<Value>, i: usize, fields: &[String]) -> Result<Value> {
    if values.len() != fields.len() {
        return fail(format!(
            "instances[{i}]: expected {} values in the model's field order ({}), got {}; send one value per \
             field (null when missing), or an object of field names to values",
            fields.len(),
            fields.join(", "),
            values.len()
        ));
    }
    Ok(Value::Object(fields.iter().cloned().zip(values).collect()))
}

fn columnar(columns: Map<String, Value>, key: &str) -> Result<Vec<Value>> {
    let mut n: Option<(&str, usize)> = None;
    for (name, column) in &columns {
        let Value::Array(values) = column else {
            return fail(format!(
                "{key}.{name}: expected a list of values, one per instance (columnar form), got {}",
                kind_of(column)
            ));
        };
        match n {
            None => n = Some((name, values.len())),
            Some((first, len)) if len != values.len() => {
                return fail(format!(
                    "{key}: columns have different lengths ({first} has {len} values, {name} has {}); send one \
                     value per instance in every column",
                    values.len()
                ));
            }
            Some(_) => {}
        }
    }
    let mut records = vec![Map::new(); n.map_or(0, |(_, len)| len)];
    for (name, column) in columns {
        if let Value::Array(values) = column {
            for (record, value) in records.iter_mut().zip(values) {
                record.insert(name.clone(), value);
            }
        }
    }
    Ok(records.into_iter().map(Value::Object).collect())
}

fn dataframe_records(data: Value) -> Result<Vec<Value>> {
    let Value::Array(rows) = data else {
        return fail(format!("dataframe_records: expected a list of objects, got {}", kind_of(&data)));
    };
    for (i, row) in rows.iter().enumerate() {
        if !row.is_object() {
            return fail(format!("instances[{i}]: expected an object of field values, got {}", kind_of(row)));
        }
    }
    Ok(rows)
}

fn dataframe_split(data: Value, fields: &[String]) -> Result<Vec<Value>> {
    let Value::Object(mut split) = data else {
        return fail(format!(
            "dataframe_split: expected an object with \"columns\" and \"data\", got {}",
            kind_of(&data)
        ));
    };
    check_keys(&split, &["columns", "data", "index"], "dataframe_split")?;
    let columns: Vec<String> = match split.remove("columns") {
        None | Some(Value::Null) => fields.to_vec(),
        Some(Value::Array(names)) => names
            .into_iter()
            .enumerate()
            .map(|(j, name)| match name {
                Value::String(s) => Ok(s),
                other => fail(format!("dataframe_split.columns[{j}]: expected a field name, got {}", kind_of(&other))),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return fail(format!("dataframe_split.columns: expected a list of field names, got {}", kind_of(&other)));
        }
    };
    check_unique(&columns, "dataframe_split.columns")?;
    let rows = match split.remove("data") {
        Some(Value::Array(rows)) => rows,
        None => return fail("dataframe_split.data is missing; send a list of rows, each a list of values"),
        Some(other) => return fail(format!("dataframe_split.data: expected a list of rows, got {}", kind_of(&other))),
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let Value::Array(values) = row else {
                return fail(format!("instances[{i}]: expected a row (a list of values), got {}", kind_of(&row)));
            };
            if values.len() != columns.len() {
                return fail(format!(
                    "instances[{i}]: the row has {} values but dataframe_split.columns names {} ({})",
                    values.len(),
                    columns.len(),
                    columns.join(", ")
                ));
            }
            Ok(Value::Object(columns.iter().cloned().zip(values).collect()))
        })
        .collect()
}

fn parse_csv(body: &[u8]) -> Result<Vec<Value>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(body);
    let headers: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(|h| h.trim().to_string()).collect();
    if let Some(j) = headers.iter().position(String::is_empty) {
        return fail(format!("CSV header: column {} has no name; name every column after a model field", j + 1));
    }
    check_unique(&headers, "the CSV header")?;
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(csv_error)?;
        records.push(Value::Object(headers.iter().cloned().zip(row.iter().map(csv_cell)).collect()));
    }
    if records.is_empty() {
        return fail("the CSV body has no data rows; send a header line of field names and one row per instance");
    }
    Ok(records)
}

fn csv_error(e: csv::Error) -> ProtocolError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("malformed CSV at line {line}: expected {expected_len} fields like the header, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => format!("malformed CSV at line {line}: the text is not valid UTF-8"),
        _ => format!("malformed CSV: {e}"),
    };
    ProtocolError { message }
}

/// A CSV field as JSON: missing (as in training tables), a number, or the text as it is.
fn csv_cell(field: &str) -> Value {
    let t = field.trim();
    if matches!(t, "" | "NA" | "NaN" | "nan" | "null" | "NULL") {
        Value::Null
    } else if let Ok(i) = t.parse::<i64>() {
        Value::from(i)
    } else if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        Value::Number(n)
    } else {
        Value::String(field.to_string())
    }
}

/// Checks every record names only model fields and holds plain values.
fn check_records(records: &[Value], fields: &[String]) -> Result<()> {
    let known: HashSet<&str> = fields.iter().map(String::as_str).collect();
    for (i, record) in records.iter().enumerate() {
        let Value::Object(map) = record else { continue };
        for (name, value) in map {
            if !known.contains(name.as_str()) {
                return fail(format!(
                    "instances[{i}].{name}: unknown field; the model's fields are {}{}",
                    fields.join(", "),
                    suggestion(name, fields.iter().map(String::as_str))
                ));
            }
            if value.is_array() || value.is_object() {
                return fail(format!(
                    "instances[{i}].{name}: expected a number, string, boolean or null, got {}; send one plain \
                     value per field",
                    kind_of(value)
                ));
            }
        }
    }
    Ok(())
}

fn check_keys(obj: &Map<String, Value>, accepted: &[&str], what: &str) -> Result<()> {
    match obj.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(key) => fail(format!(
            "unknown key {key:?} in {what}; accepted keys are {}{}",
            accepted.join(", "),
            suggestion(key, accepted.iter().copied())
        )),
        None => Ok(()),
    }
}

fn check_unique(names: &[String], what: &str) -> Result<()> {
    let mut seen = HashSet::new();
    match names.iter().find(|n| !seen.insert(n.as_str())) {
        Some(name) => fail(format!("{what}: {name:?} appears twice; name each field once")),
        None => Ok(()),
    }
}

/// ` (did you mean "X"?)` for the closest candidate within edit distance 2, ignoring case.
fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn kind_of_opt(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing (the key is missing)".into(), kind_of)
}

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
        return fail(format!(
            "the inference request must be a JSON object such as {INFER_EXAMPLE}, got {}",
            kind_of(&value)
        ));
    };
    check_keys(&obj, &["id", "parameters", "inputs", "outputs"], "the inference request")?;
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return fail(format!("id: expected a string, got {}", kind_of(&other))),
    };
    let inputs = match obj.remove("inputs") {
        Some(Value::Array(inputs)) if !inputs.is_empty() => inputs,
        None | Some(Value::Array(_)) => {
            return fail(format!("inputs is missing or empty; send input tensors such as {INFER_EXAMPLE}"));
        }
        Some(other) => return fail(format!("inputs: expected a list of input tensors, got {}", kind_of(&other))),
    };
    let tensors: Vec<Tensor> =
        inputs.into_iter().enumerate().map(|(i, t)| parse_tensor(i, t)).collect::<Result<_>>()?;
    let k = fields.len();
    // A single input is the whole matrix when shaped [n, k], or when it is not named after a
    // field and not shaped like a per-field input.
    let is_matrix = |t: &Tensor| {
        let named_field = fields.contains(&t.name);
        match t.shape[..] {
            [_, cols] if cols == k && (k > 1 || !named_field) => true,
            [_] | [_, 1] => false,
            _ => !named_field,
        }
    };
    let mut tensors = tensors;
    let records = if tensors.len() == 1 && is_matrix(&tensors[0]) {
        matrix_records(tensors.swap_remove(0), fields)?
    } else {
        per_field_records(tensors, fields)?
    };
    if records.is_empty() {
        return fail("the inputs hold no instances (n is 0); send at least one");
    }
    Ok(InferRequest { id, records })
}

fn parse_tensor(i: usize, input: Value) -> Result<Tensor> {
    let Value::Object(mut t) = input else {
        return fail(format!(
            "inputs[{i}]: expected an object with name, shape, datatype and data, got {}",
            kind_of(&input)
        ));
    };
    check_keys(&t, &["name", "shape", "datatype", "data", "parameters"], &format!("inputs[{i}]"))?;
    let name = match t.remove("name") {
        Some(Value::String(s)) => s,
        other => return fail(format!("inputs[{i}].name: expected a string, got {}", kind_of_opt(other.as_ref()))),
    };
    let label = format!("inputs[{i}] ({name})");
    let shape: Option<Vec<usize>> = match t.remove("shape") {
        Some(Value::Array(dims)) => dims.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect(),
        _ => None,
    };
    let Some(shape) = shape else {
        return fail(format!("{label}.shape: expected a list of non-negative integers such as [3] or [3, 1]"));
    };
    let datatype = match t.remove("datatype") {
        Some(Value::String(s)) => s,
        other => return fail(format!("{label}.datatype: expected a string, got {}", kind_of_opt(other.as_ref()))),
    };
    let Some(datatype) = DATATYPES.into_iter().find(|d| *d == datatype) else {
        return fail(format!("{label}.datatype: unknown datatype {datatype:?}; use one of {}", DATATYPES.join(", ")));
    };
    let mut data = Vec::new();
    match t.remove("data") {
        Some(Value::Array(values)) => flatten(values, &mut data),
        other => return fail(format!("{label}.data: expected a list of values, got {}", kind_of_opt(other.as_ref()))),
    }
    let expected = shape.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    if expected != data.len() as u128 {
        return fail(format!(
            "{label}: shape {shape:?} holds {expected} values but data has {}; make the shape match the data",
            data.len()
        ));
    }
    for (j, x) in data.iter().enumerate() {
        if let Err(takes) = check_datatype(datatype, x) {
            return fail(format!("{label}.data[{j}]: datatype {datatype} takes {takes}, got {}", kind_of(x)));
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

/// Whether `x` fits `datatype`; `null` (a missing value) fits every datatype. BYTES also takes
/// numbers and booleans, as clients send mixed rows that way.
fn check_datatype(datatype: &str, x: &Value) -> Result<(), &'static str> {
    let whole = |n: &serde_json::Number| n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
    let (ok, takes) = match datatype {
        _ if x.is_null() => (true, ""),
        "BOOL" => (x.is_boolean(), "true or false"),
        "BYTES" => (x.is_string() || x.is_number() || x.is_boolean(), "strings or numbers"),
        d if d.starts_with("FP") => (x.is_number(), "numbers"),
        d if d.starts_with("UINT") => (
            x.as_number().is_some_and(|n| whole(n) && n.as_f64().is_some_and(|f| f >= 0.0)),
            "non-negative whole numbers",
        ),
        _ => (x.as_number().is_some_and(whole), "whole numbers"),
    };
    if ok { Ok(()) } else { Err(takes) }
}

fn matrix_records(t: Tensor, fields: &[String]) -> Result<Vec<Value>> {
    let k = fields.len();
    if k == 0 || t.shape.len() != 2 || t.shape[1] != k {
        return fail(format!(
            "{}: shape {:?} does not fit the model; a single input holding all fields needs shape [n, {k}] with \
             the fields in this order: {}; or send one input per field, named after it",
            t.label,
            t.shape,
            fields.join(", ")
        ));
    }
    let mut values = t.data.into_iter();
    Ok((0..t.shape[0]).map(|_| Value::Object(fields.iter().cloned().zip(values.by_ref().take(k)).collect())).collect())
}

fn per_field_records(tensors: Vec<Tensor>, fields: &[String]) -> Result<Vec<Value>> {
    let unknown: Vec<String> = tensors
        .iter()
        .filter(|t| !fields.contains(&t.name))
        .map(|t| format!("{:?}{}", t.name, suggestion(&t.name, fields.iter().map(String::as_str))))
        .collect();
    if !unknown.is_empty() {
        return fail(format!(
            "inputs: unknown input name{} {}; name each input after a model field ({}), or send a single input \
             of shape [n, {}] holding the fields in that order",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            fields.join(", "),
            fields.len()
        ));
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut first: Option<(&str, usize)> = None;
    for t in &tensors {
        if !(t.shape.len() == 1 || (t.shape.len() == 2 && t.shape[1] == 1)) {
            return fail(format!(
                "{}: shape {:?} does not fit a per-field input; use [n] or [n, 1], one value per instance",
                t.label, t.shape
            ));
        }
        if let Some(other) = seen.insert(&t.name, &t.label) {
            return fail(format!("{}: the field {:?} is given twice (also by {other})", t.label, t.name));
        }
        match first {
            None => first = Some((&t.label, t.shape[0])),
            Some((label, n)) if n != t.shape[0] => {
                return fail(format!(
                    "{}: has {} values but {label} has {n}; every per-field input needs one value per instance",
                    t.label, t.shape[0]
                ));
            }
            Some(_) => {}
        }
    }
    let mut records = vec![Map::new(); first.map_or(0, |(_, n)| n)];
    for t in tensors {
        for (record, value) in records.iter_mut().zip(t.data) {
            record.insert(t.name.clone(), value);
        }
    }
    Ok(records.into_iter().map(Value::Object).collect())
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
    let values: Vec<Value> = preds.iter().map(|p| p.value.clone()).collect();
    let datatype = datatype_of(&values);
    let data: Vec<Value> = if datatype == "BYTES" {
        values
            .into_iter()
            .map(|v| match v {
                Value::Number(_) | Value::Bool(_) => Value::String(v.to_string()),
                other => other,
            })
            .collect()
    } else {
        values
    };
    let mut outputs = vec![json!({"name": "predict", "shape": [preds.len()], "datatype": datatype, "data": data})];
    let width = preds.first().and_then(|p| p.probabilities.as_ref()).map(Vec::len);
    if let Some(width) = width.filter(|_| preds.iter().all(|p| p.probabilities.as_ref().map(Vec::len) == width)) {
        let data: Vec<f64> =
            preds.iter().flat_map(|p| p.probabilities.iter().flatten()).map(|&x| f64::from(x)).collect();
        outputs.push(json!({"name": "predict_proba", "shape": [preds.len(), width], "datatype": "FP32", "data": data}));
    }
    let mut response = json!({"model_name": model_name, "model_version": model_version, "outputs": outputs});
    if let Some(id) = id {
        response["id"] = json!(id);
    }
    response
}

/// The v2 model metadata: one input per field of `input` (FP32 for numbers, BYTES for
/// categories and text, BOOL for booleans, shape `[-1]`), and the outputs [`render_infer`]
/// gives, typed from the first field of `output` (the bundle's output schema).
pub fn model_metadata(name: &str, versions: &[String], platform: &str, input: &Schema, output: &Schema) -> Value {
    let inputs: Vec<Value> = input
        .fields
        .iter()
        .map(|f| {
            let datatype = match f.kind {
                FieldType::Integer | FieldType::Float => "FP32",
                FieldType::Boolean => "BOOL",
                FieldType::Category | FieldType::String => "BYTES",
            };
            json!({"name": f.name, "datatype": datatype, "shape": [-1]})
        })
        .collect();
    let mut outputs = Vec::new();
    match output.fields.first() {
        Some(Field { kind: FieldType::Category, categories, .. }) => {
            // As the predictor does: a classifier saved without class names has classes 0 and 1.
            let classes = categories.clone().unwrap_or_else(|| vec!["0".into(), "1".into()]);
            let labels: Vec<Value> = (0..classes.len()).map(|i| class_label(&classes, i)).collect();
            outputs.push(json!({"name": "predict", "datatype": datatype_of(&labels), "shape": [-1]}));
            outputs.push(json!({"name": "predict_proba", "datatype": "FP32", "shape": [-1, classes.len()]}));
        }
        Some(f) => {
            let datatype = match f.kind {
                FieldType::Integer => "INT64",
                FieldType::Boolean => "BOOL",
                FieldType::String | FieldType::Category => "BYTES",
                FieldType::Float => "FP64",
            };
            outputs.push(json!({"name": "predict", "datatype": datatype, "shape": [-1]}));
        }
        None => outputs.push(json!({"name": "predict", "datatype": "BYTES", "shape": [-1]})),
    }
    json!({"name": name, "versions": versions, "platform": platform, "inputs": inputs, "outputs": outputs})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn three() -> Vec<String> {
        names(&["Pclass", "Sex", "Age"])
    }

    fn titanic() -> Vec<String> {
        names(&["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"])
    }

    fn passengers() -> Vec<Value> {
        vec![
            json!({"Age": 22, "Sex": "male", "Pclass": 3}),
            json!({"Age": 12, "Sex": "male", "Pclass": 1}),
            json!({"Age": 38, "Sex": "female", "Pclass": 1}),
        ]
    }

    fn parse(body: &str) -> Result<PredictRequest> {
        parse_request(Some("application/json"), body.as_bytes(), &three())
    }

    fn error(body: &str, fields: &[String]) -> String {
        parse_request(None, body.as_bytes(), fields).unwrap_err().message
    }

    #[test]
    fn every_form_gives_the_same_records() {
        use RequestFormat::*;
        let objects = r#"[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},
                          {"Age":38,"Sex":"female","Pclass":1}]"#;
        let lists = r#"[[3,"male",22],[1,"male",12],[1,"female",38]]"#;
        let columns = r#"{"Sex":["male","male","female"],"Pclass":[3,1,1],"Age":[22,12,38]}"#;
        let rows = r#""data":[[22,"male",3],[12,"male",1],[38,"female",1]]"#;
        let cases = [
            (format!(r#"{{"instances":{objects}}}"#), Instances),
            (format!(r#"{{"instances":{lists}}}"#), Instances),
            (format!(r#"{{"instances":{columns}}}"#), Instances),
            (format!(r#"{{"inputs":{objects},"params":{{"x":1}}}}"#), Inputs),
            (format!(r#"{{"inputs":{lists}}}"#), Inputs),
            (format!(r#"{{"inputs":{columns}}}"#), Inputs),
            (format!(r#"{{"dataframe_records":{objects}}}"#), DataframeRecords),
            (
                format!(r#"{{"dataframe_split":{{"index":[0,1,2],"columns":["Age","Sex","Pclass"],{rows}}}}}"#),
                DataframeSplit,
            ),
            (format!(r#"{{"dataframe_split":{{"data":{lists}}}}}"#), DataframeSplit),
        ];
        for (body, format) in cases {
            let request = parse(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!((request.records, request.format, request.return_probabilities), (passengers(), format, false));
        }
        let csv = "Age,Sex,Pclass\n22,male,3\n12,male,1\n38,female,1\n";
        let request = parse_request(Some("Text/CSV; charset=utf-8"), csv.as_bytes(), &three()).unwrap();
        assert_eq!((request.records, request.format), (passengers(), Csv));
        let request = parse(&format!(r#"{{"instances":{objects},"return_probabilities":true}}"#)).unwrap();
        assert!(request.return_probabilities);
        // The records feed the preprocessing as they are.
        use crate::preprocess::{FeatureKind, FeatureSpec, Preprocessor};
        let num = |name: &str| FeatureSpec { name: name.into(), kind: FeatureKind::Numeric { integer: true } };
        let sex = FeatureKind::Categorical { categories: names(&["female", "male"]) };
        let pre =
            Preprocessor { features: vec![num("Pclass"), FeatureSpec { name: "Sex".into(), kind: sex }, num("Age")] };
        let mut row = [0f32; 3];
        pre.encode_record(&request.records[2], 2, &mut row).unwrap();
        assert_eq!(row, [1.0, 0.0, 38.0]);
    }

    #[test]
    fn missing_values_are_null_or_absent_and_allowed() {
        let r = parse(r#"{"instances":[{"Sex":"male","Age":null},[null,"female",4]]}"#).unwrap();
        assert_eq!(
            r.records,
            vec![json!({"Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": "female", "Age": 4})]
        );
        let r = parse(r#"{"dataframe_split":{"columns":["Age"],"data":[[null]]}}"#).unwrap();
        assert_eq!(r.records, vec![json!({"Age": null})]);
        let csv = b"Pclass,Sex,Age\n3,male,\n,NA,2.5\n";
        let r = parse_request(Some("text/csv"), csv, &three()).unwrap();
        assert_eq!(
            r.records,
            vec![json!({"Pclass": 3, "Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": null, "Age": 2.5})]
        );
    }

    #[test]
    fn unknown_fields_name_the_instance_and_the_closest_field() {
        let body = r#"{"instances":[{"Age":22},{"Pclass":1,"age":12}]}"#;
        assert_eq!(
            error(body, &titanic()),
            r#"instances[1].age: unknown field; the model's fields are Pclass, Sex, Age, SibSp, Parch, Fare, Embarked (did you mean "Age"?)"#
        );
        let e = error(r#"{"dataframe_records":[{"Embarkd":"S"}]}"#, &titanic());
        assert!(
            e.starts_with("instances[0].Embarkd: unknown field;") && e.ends_with(r#"(did you mean "Embarked"?)"#),
            "{e}"
        );
        let e = error(r#"{"inputs":{"Cabin":["C85"]}}"#, &titanic());
        assert!(e.starts_with("instances[0].Cabin: unknown field;") && !e.contains("did you mean"), "{e}");
        let e = parse_request(Some("text/csv"), b"Pclass,Name\n1,A\n2,B\n", &three()).unwrap_err().message;
        assert!(e.starts_with("instances[0].Name: unknown field;"), "{e}");
        let e = error(r#"{"instances":[{"Age":1},{"Age":[22]}]}"#, &three());
        assert_eq!(
            e,
            "instances[1].Age: expected a number, string, boolean or null, got a list; send one plain value per field"
        );
    }

    #[test]
    fn the_body_needs_exactly_one_data_key() {
        let e = error(r#"{"instances":[],"dataframe_records":[]}"#, &three());
        assert!(e.contains("exactly one of the keys instances, inputs, dataframe_split, dataframe_records, found instances, dataframe_records"), "{e}");
        let e = error(r#"{"params":{}}"#, &three());
        assert!(e.contains("dataframe_records, found params;"), "{e}");
        assert!(error("{}", &three()).contains("found no keys;"));
        let e = error(r#"{"instance":[{"Age":1}]}"#, &three());
        assert!(
            e.starts_with(r#"unknown key "instance" in the request body"#)
                && e.ends_with(r#"(did you mean "instances"?)"#),
            "{e}"
        );
        let e = error(r#"{"instances":[{"Age":1}],"return_probabilities":"yes"}"#, &three());
        assert_eq!(e, r#"return_probabilities: expected true or false, got the string "yes""#);
    }

    #[test]
    fn rows_and_columns_must_fit() {
        let e = error(r#"{"instances":[[3,"male",22],[1,"male"]]}"#, &three());
        assert_eq!(
            e,
            "instances[1]: expected 3 values in the model's field order (Pclass, Sex, Age), got 2; send one value per field (null when missing), or an object of field names to values"
        );
        let e = error(r#"{"inputs":{"Age":[22,12],"Sex":["male"]}}"#, &three());
        assert_eq!(
            e,
            "inputs: columns have different lengths (Age has 2 values, Sex has 1); send one value per instance in every column"
        );
        let e = error(r#"{"dataframe_split":{"columns":["Age","Sex"],"data":[[1,"male"],[2]]}}"#, &three());
        assert_eq!(e, "instances[1]: the row has 1 values but dataframe_split.columns names 2 (Age, Sex)");
        let e = error(r#"{"dataframe_split":{"columns":["Age","Age"],"data":[[1,2]]}}"#, &three());
        assert!(e.contains(r#""Age" appears twice"#), "{e}");
        let e = error(r#"{"instances":[3]}"#, &three());
        assert!(
            e.starts_with("instances[0]: expected an object of field values or a list of 3 values")
                && e.ends_with("got the number 3"),
            "{e}"
        );
    }

    #[test]
    fn malformed_bodies_are_explained() {
        let e = error("{\"instances\": [\n{\"Age\": 22,}]}", &three());
        assert!(e.starts_with("the request body is not valid JSON: ") && e.contains("line 2 column 12"), "{e}");
        assert_eq!(
            error("[1]", &three()),
            format!("the request body must be a JSON object such as {EXAMPLE}, got a list")
        );
        assert!(error("  ", &three()).starts_with("the request body is empty;"));
        assert_eq!(error(r#"{"instances":[]}"#, &three()), "instances is empty; send at least one instance");
        assert_eq!(error(r#"{"inputs":{}}"#, &three()), "inputs is empty; send at least one instance");
        assert_eq!(
            error(r#"{"dataframe_split":{"data":[]}}"#, &three()),
            "dataframe_split.data is empty; send at least one instance"
        );
    }

    #[test]
    fn csv_handles_quotes_crlf_and_reports_bad_rows() {
        let csv = "Sex,\"Age\",Pclass\r\n\"ma,le\",22,3\r\n\"say \"\"hi\"\"\",1e1,1\r\n";
        let r = parse_request(Some("text/csv"), csv.as_bytes(), &three()).unwrap();
        assert_eq!(
            r.records,
            vec![
                json!({"Sex": "ma,le", "Age": 22, "Pclass": 3}),
                json!({"Sex": "say \"hi\"", "Age": 10.0, "Pclass": 1})
            ]
        );
        let e = parse_request(Some("text/csv"), b"Age,Sex\n1,male\n2\n", &three()).unwrap_err().message;
        assert_eq!(e, "malformed CSV at line 3: expected 2 fields like the header, found 1");
        let e = parse_request(Some("text/csv"), b"Age,Sex\n", &three()).unwrap_err().message;
        assert!(e.starts_with("the CSV body has no data rows"), "{e}");
        let e = parse_request(Some("text/csv"), b"Age,,Sex\n1,2,3\n", &three()).unwrap_err().message;
        assert!(e.starts_with("CSV header: column 2 has no name"), "{e}");
    }

    fn infer(body: Value) -> Result<InferRequest> {
        parse_infer(body.to_string().as_bytes(), &three())
    }

    #[test]
    fn infer_reads_both_layouts() {
        let per_field = json!({"id": "r1", "inputs": [
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
    }

    #[test]
    fn infer_rejects_bad_tensors() {
        let one = |t: Value| infer(json!({ "inputs": [t] })).unwrap_err().message;
        let e = one(json!({"name": "Age", "shape": [3], "datatype": "FP64", "data": [1, 2]}));
        assert_eq!(e, "inputs[0] (Age): shape [3] holds 3 values but data has 2; make the shape match the data");
        let e = one(json!({"name": "Age", "shape": [1], "datatype": "FLOAT", "data": [1]}));
        assert!(e.starts_with(r#"inputs[0] (Age).datatype: unknown datatype "FLOAT"; use one of BOOL, INT8"#), "{e}");
        let e = one(json!({"name": "Age", "shape": [2], "datatype": "FP32", "data": [1, "x"]}));
        assert_eq!(e, r#"inputs[0] (Age).data[1]: datatype FP32 takes numbers, got the string "x""#);
        let e = one(json!({"name": "Age", "shape": [1], "datatype": "INT32", "data": [2.5]}));
        assert_eq!(e, "inputs[0] (Age).data[0]: datatype INT32 takes whole numbers, got the number 2.5");
        let e = one(json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}));
        assert!(e.starts_with("inputs[0] (x): shape [1, 2] does not fit the model; a single input holding all fields needs shape [n, 3]"), "{e}");
        let e = infer(json!({"inputs": [{"name": "age", "shape": [1], "datatype": "FP32", "data": [1]},
            {"name": "Sex", "shape": [1], "datatype": "BYTES", "data": ["male"]}]}))
        .unwrap_err()
        .message;
        assert!(
            e.starts_with(r#"inputs: unknown input name "age" (did you mean "Age"?); name each input after"#),
            "{e}"
        );
        let e = infer(json!({"inputs": [{"name": "Age", "shape": [2], "datatype": "FP32", "data": [1, 2]},
            {"name": "Sex", "shape": [1], "datatype": "BYTES", "data": ["male"]}]}))
        .unwrap_err()
        .message;
        assert_eq!(
            e,
            "inputs[1] (Sex): has 1 values but inputs[0] (Age) has 2; every per-field input needs one value per instance"
        );
        assert!(infer(json!({"inputs": []})).unwrap_err().message.starts_with("inputs is missing or empty"));
        assert!(parse_infer(b"{", &three()).unwrap_err().message.contains("EOF while parsing"));
    }

    fn classified() -> Vec<Prediction> {
        vec![
            Prediction { value: json!(0), probabilities: Some(vec![0.75, 0.25]) },
            Prediction { value: json!(1), probabilities: Some(vec![0.125, 0.875]) },
        ]
    }

    #[test]
    fn renders_predictions() {
        let preds = classified();
        assert_eq!(render(RequestFormat::Instances, &preds, false), json!({"predictions": [0, 1]}));
        assert_eq!(
            render(RequestFormat::Csv, &preds, true),
            json!({"predictions": [0, 1], "probabilities": [[0.75, 0.25], [0.125, 0.875]]})
        );
        let regression = [Prediction { value: json!(2.5f32), probabilities: None }];
        assert_eq!(render(RequestFormat::Inputs, &regression, true), json!({"predictions": [2.5]}));
        assert_eq!(
            render_infer("titanic", "3", Some("r1"), &preds),
            json!({"model_name": "titanic", "model_version": "3", "id": "r1", "outputs": [
                {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]},
                {"name": "predict_proba", "shape": [2, 2], "datatype": "FP32", "data": [0.75, 0.25, 0.125, 0.875]}]})
        );
        let labels = [Prediction { value: json!("yes"), probabilities: None }];
        let v = render_infer("m", "1", None, &labels);
        assert_eq!(v.get("id"), None);
        assert_eq!(v["outputs"], json!([{"name": "predict", "shape": [1], "datatype": "BYTES", "data": ["yes"]}]));
        assert_eq!(render_infer("m", "1", None, &regression)["outputs"][0]["datatype"], "FP64");
    }

    #[test]
    fn metadata_types_inputs_and_outputs() {
        let field = |name: &str, kind, categories: Option<&[&str]>| Field {
            name: name.into(),
            kind,
            categories: categories.map(names),
            nullable: true,
        };
        let input = Schema {
            fields: vec![
                field("Pclass", FieldType::Integer, None),
                field("Sex", FieldType::Category, Some(&["female", "male"])),
            ],
        };
        let output = Schema { fields: vec![field("Survived", FieldType::Category, Some(&["0", "1"]))] };
        assert_eq!(
            model_metadata("titanic", &names(&["1", "2"]), "nimbus-hessboost", &input, &output),
            json!({"name": "titanic", "versions": ["1", "2"], "platform": "nimbus-hessboost",
                "inputs": [{"name": "Pclass", "datatype": "FP32", "shape": [-1]},
                           {"name": "Sex", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 2]}]})
        );
        let output = Schema { fields: vec![field("Fare", FieldType::Float, None)] };
        let v = model_metadata("fare", &[], "p", &input, &output);
        assert_eq!(v["outputs"], json!([{"name": "predict", "datatype": "FP64", "shape": [-1]}]));
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!((edit_distance("age", "age"), edit_distance("embarkd", "embarked")), (0, 1));
        assert_eq!((edit_distance("", "abc"), edit_distance("kitten", "sitting")), (3, 3));
        assert_eq!(suggestion("SEX", ["Pclass", "Sex"]), r#" (did you mean "Sex"?)"#);
    }
}
