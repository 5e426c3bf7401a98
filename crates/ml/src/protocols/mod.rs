//! Prediction request and response bodies: the formats existing clients send, turned into JSON
//! records for [`Predictor::predict_records`](crate::predict::Predictor::predict_records), and
//! predictions rendered back in the matching shape.
//!
//! [`parse_request`] accepts `{"instances": [{"Age": 22, …}, …]}`; MLflow's scoring-server bodies
//! (exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs`, with `params`
//! ignored); and CSV (`Content-Type: text/csv`). Every record is checked the same way: a field the
//! model does not have is an error naming the instance (`instances[i]`, its position in the
//! request), the field and the closest field name; a field left out, `null`, or an empty CSV
//! field is a missing value, which the trees handle. [`render`] answers `{"predictions": […]}`.
//!
//! The Open Inference Protocol v2 (KServe) is read by [`parse_infer`] and answered by
//! [`render_infer`] and [`model_metadata`] (module `infer`).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::predict::Prediction;

/// A request body that cannot be used; the message is meant for a 400 response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub message: String,
}

type Result<T, E = ProtocolError> = std::result::Result<T, E>;

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(ProtocolError { message: format!($($arg)*) })
    };
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
/// for a model whose input fields are `fields`, in the model's order.
pub fn parse_request(content_type: Option<&str>, body: &[u8], fields: &[String]) -> Result<PredictRequest> {
    let mime = content_type.and_then(|ct| ct.split(';').next()).unwrap_or_default();
    let request = if mime.trim().eq_ignore_ascii_case("text/csv") {
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
        bail!("the request body is empty; send a JSON object such as {example}");
    }
    serde_json::from_slice(body).map_err(|e| ProtocolError {
        message: format!("the request body is not valid JSON: {e}; send a JSON object such as {example}"),
    })
}

fn parse_json_request(body: &[u8], fields: &[String]) -> Result<PredictRequest> {
    let value = parse_json(body, &format!("{EXAMPLE}, or CSV with Content-Type: text/csv"))?;
    let Value::Object(mut obj) = value else {
        bail!("the request body must be a JSON object such as {EXAMPLE}, got {}", kind_of(&value));
    };
    check_keys(&obj, &REQUEST_KEYS, "the request body")?;
    let found: Vec<&str> = DATA_KEYS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    let [key] = found[..] else {
        let present: Vec<&str> = if found.is_empty() { obj.keys().map(String::as_str).collect() } else { found };
        let present = if present.is_empty() { "no keys".to_string() } else { present.join(", ") };
        let accepted = DATA_KEYS.join(", ");
        bail!("the request body needs exactly one of the keys {accepted}, found {present}; e.g. {EXAMPLE}");
    };
    let return_probabilities = match obj.get("return_probabilities") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => bail!("return_probabilities: expected true or false, got {}", kind_of(other)),
    };
    let data = obj.remove(key).unwrap_or_default();
    let (records, format) = match key {
        "instances" => (tensor_records(data, key, fields)?, RequestFormat::Instances),
        "inputs" => (tensor_records(data, key, fields)?, RequestFormat::Inputs),
        "dataframe_records" => (dataframe_records(data)?, RequestFormat::DataframeRecords),
        _ => (dataframe_split(data, fields)?, RequestFormat::DataframeSplit),
    };
    if records.is_empty() {
        let what = if key == "dataframe_split" { "dataframe_split.data" } else { key };
        bail!("{what} is empty; send at least one instance");
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
                Value::Array(values) => record(fields, values, i),
                other => bail!(
                    "instances[{i}]: expected an object of field values or a list of {} values, got {}",
                    fields.len(),
                    kind_of(&other)
                ),
            })
            .collect(),
        Value::Object(map) => {
            let mut columns: Vec<(String, Vec<Value>)> = Vec::with_capacity(map.len());
            for (name, column) in map {
                let Value::Array(values) = column else {
                    bail!("{key}.{name}: expected a list of values, one per instance, got {}", kind_of(&column));
                };
                if let Some((first, v)) = columns.first().filter(|(_, v)| v.len() != values.len()) {
                    let (a, b) = (v.len(), values.len());
                    let counts = format!("{first} has {a} values, {name} has {b}");
                    bail!("{key}: columns differ in length ({counts}); send one value per instance in every column");
                }
                columns.push((name, values));
            }
            Ok(from_columns(columns))
        }
        other => bail!("{key}: expected a list of instances or an object of columns, got {}", kind_of(&other)),
    }
}

/// The record of one positional row, `values` in the order of `names`.
fn record(names: &[String], values: Vec<Value>, i: usize) -> Result<Value> {
    if values.len() != names.len() {
        let (n, m, order) = (names.len(), values.len(), names.join(", "));
        bail!("instances[{i}]: expected {n} values, one per field in the order {order}, got {m}; null is missing");
    }
    Ok(Value::Object(names.iter().cloned().zip(values).collect()))
}

/// Records from equally long named columns.
fn from_columns(columns: Vec<(String, Vec<Value>)>) -> Vec<Value> {
    let mut records = vec![Map::new(); columns.first().map_or(0, |(_, v)| v.len())];
    for (name, values) in columns {
        for (record, value) in records.iter_mut().zip(values) {
            record.insert(name.clone(), value);
        }
    }
    records.into_iter().map(Value::Object).collect()
}

fn dataframe_records(data: Value) -> Result<Vec<Value>> {
    let Value::Array(rows) = data else {
        bail!("dataframe_records: expected a list of objects, got {}", kind_of(&data));
    };
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, row)| !row.is_object()) {
        bail!("instances[{i}]: expected an object of field values, got {}", kind_of(row));
    }
    Ok(rows)
}

fn dataframe_split(data: Value, fields: &[String]) -> Result<Vec<Value>> {
    let Value::Object(mut split) = data else {
        bail!("dataframe_split: expected an object with \"columns\" and \"data\", got {}", kind_of(&data));
    };
    check_keys(&split, &["columns", "data", "index"], "dataframe_split")?;
    let columns: Vec<String> = match split.remove("columns") {
        None | Some(Value::Null) => fields.to_vec(),
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => {
            names.iter().filter_map(Value::as_str).map(String::from).collect()
        }
        Some(other) => bail!("dataframe_split.columns: expected a list of field names, got {}", kind_of(&other)),
    };
    let Some(Value::Array(rows)) = split.remove("data") else {
        bail!("dataframe_split.data: expected a list of rows, each a list of values in the order of columns");
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Array(values) => record(&columns, values, i),
            other => bail!("instances[{i}]: expected a row (a list of values), got {}", kind_of(&other)),
        })
        .collect()
}

fn parse_csv(body: &[u8]) -> Result<Vec<Value>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body); // a UTF-8 byte order mark, as Excel writes
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(body);
    let headers: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(|h| h.trim().to_string()).collect();
    if let Some(j) = headers.iter().position(String::is_empty) {
        bail!("CSV header: column {} has no name; name every column after a model field", j + 1);
    }
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(csv_error)?;
        records.push(Value::Object(headers.iter().cloned().zip(row.iter().map(csv_cell)).collect()));
    }
    if records.is_empty() {
        bail!("the CSV body has no data rows; send a header line of field names and one row per instance");
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

/// A CSV field as JSON: missing (the same words as in training tables), a number, or the text.
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
        for (name, value) in record.as_object().into_iter().flatten() {
            if !known.contains(name.as_str()) {
                let hint = suggestion(name, fields.iter().map(String::as_str));
                bail!("instances[{i}].{name}: unknown field; the model's fields are {}{hint}", fields.join(", "));
            }
            if value.is_array() || value.is_object() {
                let got = kind_of(value);
                bail!("instances[{i}].{name}: expected a number, string, boolean or null, got {got}; send one value");
            }
        }
    }
    Ok(())
}

fn check_keys(obj: &Map<String, Value>, accepted: &[&str], what: &str) -> Result<()> {
    if let Some(key) = obj.keys().find(|k| !accepted.contains(&k.as_str())) {
        let hint = suggestion(key, accepted.iter().copied());
        bail!("unknown key {key:?} in {what}; accepted keys are {}{hint}", accepted.join(", "));
    }
    Ok(())
}

/// ` (did you mean "X"?)` for the closest candidate within edit distance 2, ignoring case (and
/// shorter than `name` itself, so `x` does not suggest `Sex`).
fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 2 && *d < lower.chars().count())
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

/// A value for messages: scalars as JSON (`null`, `2.5`, `"male"`), containers by kind.
fn kind_of(v: &Value) -> String {
    match v {
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        Value::String(s) if s.len() > 40 => "a long string".into(),
        _ => v.to_string(),
    }
}

mod infer;

pub use infer::{InferRequest, model_metadata, parse_infer, render_infer};

#[cfg(test)]
mod tests {

    use super::*;

    pub(super) fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    pub(super) fn three() -> Vec<String> {
        names(&["Pclass", "Sex", "Age"])
    }

    pub(super) fn passengers() -> Vec<Value> {
        vec![
            json!({"Age": 22, "Sex": "male", "Pclass": 3}),
            json!({"Age": 12, "Sex": "male", "Pclass": 1}),
            json!({"Age": 38, "Sex": "female", "Pclass": 1}),
        ]
    }

    fn parse(content_type: &str, body: &str) -> Result<PredictRequest> {
        parse_request(Some(content_type), body.as_bytes(), &three())
    }

    /// Asserts each `(content type, body)` fails with a message starting with the expected text.
    fn assert_errors(cases: &[(&str, &str, &str)]) {
        for (content_type, body, expected) in cases {
            let message = parse(content_type, body).unwrap_err().message;
            assert!(message.starts_with(expected), "{body}\n  gave {message}\n  not {expected}");
        }
    }

    #[test]
    fn every_form_gives_the_same_records() {
        use RequestFormat::*;
        let objects = r#"[{"Age":22,"Sex":"male","Pclass":3},{"Age":12,"Sex":"male","Pclass":1},
                          {"Age":38,"Sex":"female","Pclass":1}]"#;
        let lists = r#"[[3,"male",22],[1,"male",12],[1,"female",38]]"#;
        let columns = r#"{"Sex":["male","male","female"],"Pclass":[3,1,1],"Age":[22,12,38]}"#;
        let split = r#"{"index":[0,1,2],"columns":["Age","Sex","Pclass"],"data":[[22,"male",3],[12,"male",1],
                        [38,"female",1]]}"#;
        let cases = [
            (format!(r#"{{"instances":{objects}}}"#), Instances),
            (format!(r#"{{"instances":{lists}}}"#), Instances),
            (format!(r#"{{"instances":{columns}}}"#), Instances),
            (format!(r#"{{"inputs":{objects},"params":{{"x":1}}}}"#), Inputs),
            (format!(r#"{{"inputs":{lists}}}"#), Inputs),
            (format!(r#"{{"inputs":{columns}}}"#), Inputs),
            (format!(r#"{{"dataframe_records":{objects}}}"#), DataframeRecords),
            (format!(r#"{{"dataframe_split":{split}}}"#), DataframeSplit),
            (format!(r#"{{"dataframe_split":{{"data":{lists}}}}}"#), DataframeSplit),
        ];
        for (body, format) in cases {
            let request = parse("application/json", &body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!((request.records, request.format, request.return_probabilities), (passengers(), format, false));
        }
        let request = parse("Text/CSV; charset=utf-8", "Age,Sex,Pclass\n22,male,3\n12,male,1\n38,female,1\n").unwrap();
        assert_eq!((request.records, request.format), (passengers(), Csv));
        let request = parse("application/json", &format!(r#"{{"instances":{lists},"return_probabilities":true}}"#));
        let request = request.unwrap();
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
        let r = parse("application/json", r#"{"instances":[{"Sex":"male","Age":null},[null,"female",4]]}"#).unwrap();
        assert_eq!(
            r.records,
            [json!({"Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": "female", "Age": 4})]
        );
        let r = parse("text/csv", "Pclass,Sex,Age\n3,male,\n,NA,2.5\n").unwrap();
        let expected =
            [json!({"Pclass": 3, "Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": null, "Age": 2.5})];
        assert_eq!(r.records, expected);
    }

    #[test]
    fn unknown_fields_name_the_instance_and_the_closest_field() {
        let titanic = names(&["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]);
        let error = |body: &str| parse_request(None, body.as_bytes(), &titanic).unwrap_err().message;
        assert_eq!(
            error(r#"{"instances":[{"Age":22},{"Pclass":1,"age":12}]}"#),
            "instances[1].age: unknown field; the model's fields are Pclass, Sex, Age, SibSp, Parch, Fare, Embarked \
             (did you mean \"Age\"?)"
        );
        let e = error(r#"{"dataframe_records":[{"Embarkd":"S"}]}"#);
        assert!(e.starts_with("instances[0].Embarkd: unknown field;") && e.ends_with(r#"(did you mean "Embarked"?)"#));
        let e = error(r#"{"inputs":{"Cabin":["C85"]}}"#);
        assert!(e.starts_with("instances[0].Cabin: unknown field;") && !e.contains("did you mean"), "{e}");
        assert_errors(&[(
            "text/csv",
            "Pclass,Name\n1,A\n",
            "instances[0].Name: unknown field; the model's fields are",
        )]);
        let e = error(r#"{"instances":[{"Age":1},{"Age":[2]}]}"#);
        assert_eq!(e, "instances[1].Age: expected a number, string, boolean or null, got a list; send one value");
    }

    #[test]
    fn request_errors_name_the_problem() {
        let one_of = "the request body needs exactly one of the keys instances, inputs, dataframe_split, \
                      dataframe_records, found";
        assert_errors(&[
            ("", r#"{"instances":[],"dataframe_records":[]}"#, &format!("{one_of} instances, dataframe_records;")),
            ("", r#"{"params":{}}"#, &format!("{one_of} params;")),
            ("", "{}", &format!("{one_of} no keys;")),
            ("", r#"{"instance":[]}"#, r#"unknown key "instance" in the request body; accepted keys are instances,"#),
            ("", r#"{"inputs":[[1]],"return_probabilities":"yes"}"#, r#"return_probabilities: expected true or"#),
            ("", r#"{"instances":[[3,"male",22],[1,"male"]]}"#, "instances[1]: expected 3 values, one per field in"),
            ("", r#"{"inputs":{"Age":[2,1],"Sex":["male"]}}"#, "inputs: columns differ in length (Age has 2 values,"),
            ("", r#"{"inputs":{"Age":1}}"#, "inputs.Age: expected a list of values, one per instance, got 1"),
            ("", r#"{"instances":[3]}"#, "instances[0]: expected an object of field values or a list of 3 values,"),
            ("", r#"{"dataframe_split":{"columns":["Age","Sex"],"data":[[2]]}}"#, "instances[0]: expected 2 values,"),
            ("", "{\"instances\": [\n{\"Age\": 22,}]}", "the request body is not valid JSON: trailing comma at line 2"),
            ("", "Age\n22\n", "the request body is not valid JSON: expected value at line 1 column 1; send a JSON"),
            ("", "[1]", r#"the request body must be a JSON object such as {"instances": [{"field": value, …}]}, got"#),
            ("", " \n", "the request body is empty;"),
            ("", r#"{"instances":[]}"#, "instances is empty; send at least one instance"),
            ("", r#"{"inputs":{}}"#, "inputs is empty; send at least one instance"),
            ("", r#"{"dataframe_split":{"data":[]}}"#, "dataframe_split.data is empty; send at least one instance"),
            ("text/csv", "Age,Sex\n1,male\n2\n", "malformed CSV at line 3: expected 2 fields like the header, found 1"),
            ("text/csv", "Age,Sex\n", "the CSV body has no data rows;"),
            ("text/csv", "", "the CSV body has no data rows;"),
            ("text/csv", "Age,,Sex\n1,2,3\n", "CSV header: column 2 has no name;"),
        ]);
        // Whole messages, once each.
        let error = |body: &str| parse("application/json", body).unwrap_err().message;
        let e = error(r#"{"instance":[]}"#);
        assert!(e.ends_with("params, return_probabilities (did you mean \"instances\"?)"), "{e}");
        let e = error(r#"{"inputs":{"Age":[22,12],"Sex":["male"]}}"#);
        assert!(e.starts_with("inputs: columns differ in length (Age has 2 values, Sex has 1); send one value per"));
        let e = error(r#"{"instances":[[3,"male",22],[1,"male"]]}"#);
        assert_eq!(
            e,
            "instances[1]: expected 3 values, one per field in the order Pclass, Sex, Age, got 2; null is missing"
        );
        let e = error(r#"{"inputs":[[1,2,3]],"return_probabilities":"yes"}"#);
        assert_eq!(e, r#"return_probabilities: expected true or false, got "yes""#);
    }

    #[test]
    fn csv_handles_quotes_and_crlf() {
        let r =
            parse("text/csv", "\u{feff}Sex,\"Age\",Pclass\r\n\"ma,le\",22,3\r\n\"say \"\"hi\"\"\",1e1,1\r\n").unwrap();
        let second = json!({"Sex": "say \"hi\"", "Age": 10.0, "Pclass": 1});
        assert_eq!(r.records, [json!({"Sex": "ma,le", "Age": 22, "Pclass": 3}), second]);
    }

    #[test]
    fn renders_predictions() {
        let preds = [
            Prediction { value: json!(0), probabilities: Some(vec![0.75, 0.25]) },
            Prediction { value: json!(1), probabilities: Some(vec![0.125, 0.875]) },
        ];
        assert_eq!(render(RequestFormat::Instances, &preds, false), json!({"predictions": [0, 1]}));
        let expected = json!({"predictions": [0, 1], "probabilities": [[0.75, 0.25], [0.125, 0.875]]});
        assert_eq!(render(RequestFormat::Csv, &preds, true), expected);
        let regression = [Prediction { value: json!(2.5f32), probabilities: None }];
        assert_eq!(render(RequestFormat::Inputs, &regression, true), json!({"predictions": [2.5]}));
        assert_eq!(
            render_infer("titanic", "3", Some("r1"), &preds),
            json!({"model_name": "titanic", "model_version": "3", "id": "r1", "outputs": [
                {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]},
                {"name": "predict_proba", "shape": [2, 2], "datatype": "FP32", "data": [0.75, 0.25, 0.125, 0.875]}]})
        );
        let labels = [json!("yes"), json!(2)].map(|value| Prediction { value, probabilities: None });
        let v = render_infer("m", "1", None, &labels);
        assert_eq!(v.get("id"), None);
        assert_eq!(v["outputs"], json!([{"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["yes", "2"]}]));
        assert_eq!(render_infer("m", "1", None, &regression)["outputs"][0]["datatype"], "FP64");
    }

    #[test]
    fn suggestions_use_edit_distance_ignoring_case() {
        assert_eq!((edit_distance("age", "age"), edit_distance("embarkd", "embarked")), (0, 1));
        assert_eq!((edit_distance("", "abc"), edit_distance("kitten", "sitting")), (3, 3));
        assert_eq!(suggestion("SEX", ["Pclass", "Sex"]), r#" (did you mean "Sex"?)"#);
        assert_eq!(suggestion("Cabin", ["Pclass", "Sex", "Age"]) + &suggestion("x", ["Sex"]), "");
    }
}
