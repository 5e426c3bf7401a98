//! Prediction request and response bodies: the formats existing clients send, decoded straight
//! into a model's encoded rows, and the answers in the matching shape.
//!
//! [`answer`] accepts `{"instances": [{"Age": 22, …}, …]}` (the seeds' form, through the fast
//! scanner of [`crate::instances`]); MLflow's scoring-server bodies (exactly one of
//! `dataframe_split`, `dataframe_records`, `instances`, `inputs`, with `params` ignored); and CSV
//! (`Content-Type: text/csv`). Every name is checked against the model's fields before any
//! value is read: a field the model does not have is an error naming the instance
//! (`instances[i]`, its position in the request), the field and the closest field name; a field
//! left out, `null`, or an empty CSV field is a missing value, which the trees handle. Rows go
//! into a [`Batch`], which predicts them a chunk at a time and bounds the request's memory (see
//! [`crate::batch`]); the answer is `{"predictions": […]}`.
//!
//! The Open Inference Protocol v2 (KServe) is answered by [`answer_infer`], its metadata by
//! [`model_metadata`] (module `infer`).

use std::sync::atomic::AtomicBool;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::batch::{Batch, Form, RowSink};
use crate::predict::Predictor;
use crate::preprocess::Preprocessor;
use cells::{Cell, Key, bad, from_json, refuse};

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is wrong: 400.
    BadRequest,
    /// The answer would be too large: 413.
    TooLarge,
    /// The work was stopped (its time ran out).
    Cancelled,
}

/// A request that cannot be answered; the message names the instance and field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub message: String,
    pub kind: ErrorKind,
}

impl ProtocolError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProtocolError { message: message.into(), kind }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadRequest => 400,
            ErrorKind::TooLarge => 413,
            ErrorKind::Cancelled => 504,
        }
    }
}

type Result<T, E = ProtocolError> = std::result::Result<T, E>;

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(ProtocolError::bad_request(format!($($arg)*)))
    };
}

#[macro_use]
mod cells;
mod json;

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

/// A prediction request whose envelope is read and checked; its rows are decoded by
/// [`Request::decode`].
pub struct Request<'a> {
    pub format: RequestFormat,
    /// Whether the response should carry class probabilities.
    pub return_probabilities: bool,
    data: Data<'a>,
}

enum Data<'a> {
    /// The value of the data key, not yet decoded.
    Json(&'static str, &'a RawValue),
    Csv(&'a [u8]),
}

const DATA_KEYS: [&str; 4] = ["instances", "inputs", "dataframe_split", "dataframe_records"];
const REQUEST_KEYS: [&str; 6] =
    ["instances", "inputs", "dataframe_split", "dataframe_records", "params", "return_probabilities"];
const EXAMPLE: &str = r#"{"instances": [{"field": value, …}]}"#;

/// Answers a prediction request body (JSON, or CSV when `content_type` is `text/csv`) with
/// `predictor`: the seeds' form through the fast scanner, every other form through the
/// decoders here. `cancel` stops the work between chunks.
pub fn answer(
    predictor: &Predictor,
    content_type: Option<&str>,
    body: &[u8],
    cancel: Option<&AtomicBool>,
) -> Result<Vec<u8>> {
    let csv = is_csv(content_type);
    if !csv && let Some(answer) = crate::instances::answer(body, predictor, cancel) {
        return answer;
    }
    let request = read_request(content_type, body)?;
    let mut batch = Batch::new(predictor, Form::Predict, request.return_probabilities, cancel);
    request.decode(predictor.preprocessor(), &mut batch)?;
    batch.finish(request.return_probabilities)
}

fn is_csv(content_type: Option<&str>) -> bool {
    let mime = content_type.and_then(|ct| ct.split(';').next()).unwrap_or_default();
    mime.trim().eq_ignore_ascii_case("text/csv")
}

/// Reads a prediction request's envelope: its form, whether probabilities are wanted, and
/// where its rows are.
pub fn read_request<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<Request<'a>> {
    if is_csv(content_type) {
        return Ok(Request { format: RequestFormat::Csv, return_probabilities: false, data: Data::Csv(body) });
    }
    let example = format!("{EXAMPLE}, or CSV with Content-Type: text/csv");
    if body.iter().all(u8::is_ascii_whitespace) {
        bail!("the request body is empty; send a JSON object such as {example}");
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope =
        de.deserialize_any(Envelope).and_then(|e| de.end().map(|()| e)).map_err(|e| from_json(e, &example))?;
    let [key] = envelope.found[..] else {
        let present = if envelope.found.is_empty() { envelope.keys } else { envelope.found.clone() };
        let present = if present.is_empty() { "no keys".to_string() } else { present.join(", ") };
        let accepted = DATA_KEYS.join(", ");
        bail!("the request body needs exactly one of the keys {accepted}, found {present}; e.g. {EXAMPLE}");
    };
    let format = match key {
        "instances" => RequestFormat::Instances,
        "inputs" => RequestFormat::Inputs,
        "dataframe_records" => RequestFormat::DataframeRecords,
        _ => RequestFormat::DataframeSplit,
    };
    let raw = envelope.data.expect("a data key was found");
    Ok(Request { format, return_probabilities: envelope.return_probabilities, data: Data::Json(key, raw) })
}

impl Request<'_> {
    /// Decodes the rows into `sink`, checking each name against the model's fields before
    /// its values are read.
    pub fn decode(&self, pre: &Preprocessor, sink: &mut dyn RowSink) -> Result<()> {
        let before = sink.rows();
        let what = match &self.data {
            Data::Csv(body) => {
                decode_csv(body, pre, sink)?;
                "the CSV body"
            }
            Data::Json(key, raw) => {
                json::decode(key, raw, &mut json::Rows::new(pre, sink))?;
                if *key == "dataframe_split" { "dataframe_split.data" } else { key }
            }
        };
        if sink.rows() == before {
            if let Data::Csv(_) = self.data {
                bail!("the CSV body has no data rows; send a header line of field names and one row per instance");
            }
            bail!("{what} is empty; send at least one instance");
        }
        Ok(())
    }
}

/// The request body's top level, read without decoding its rows.
struct Envelope;

struct Read<'de> {
    /// Data keys present, in order.
    found: Vec<&'static str>,
    /// Every key present, for messages.
    keys: Vec<&'static str>,
    data: Option<&'de RawValue>,
    return_probabilities: bool,
}

impl<'de> Visitor<'de> for Envelope {
    type Value = Read<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read<'de>, A::Error> {
        let mut read = Read { found: Vec::new(), keys: Vec::new(), data: None, return_probabilities: false };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            check_key(&key, &REQUEST_KEYS, "the request body").map_err(refuse)?;
            let key = REQUEST_KEYS.into_iter().find(|k| *k == key).expect("checked");
            if !read.keys.contains(&key) {
                read.keys.push(key);
            }
            match key {
                "return_probabilities" => {
                    read.return_probabilities = match map.next_value::<Cell<'de>>()? {
                        Cell::Null => false,
                        Cell::Bool(b) => b,
                        other => {
                            return Err(bad(format!(
                                "return_probabilities: expected true or false, got {}",
                                other.describe()
                            )));
                        }
                    }
                }
                "params" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    if !read.found.contains(&key) {
                        read.found.push(key);
                    }
                    read.data = Some(map.next_value()?);
                }
            }
        }
        Ok(read)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Read<'de>, A::Error> {
        Err(self.wrong(&Cell::List))
    }
    scalars_are_wrong!(Read<'de>);
}

impl Envelope {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        not_an_object(&got.describe())
    }
}

fn not_an_object<E: de::Error>(got: &str) -> E {
    bad(format!("the request body must be a JSON object such as {EXAMPLE}, got {got}"))
}

/// A CSV body: the header's names are checked against the model's fields first, then each row
/// is read into one reused record and encoded.
fn decode_csv(body: &[u8], pre: &Preprocessor, sink: &mut dyn RowSink) -> Result<()> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body); // a UTF-8 byte order mark, as Excel writes
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(body);
    let fields = cells::FieldIndex::new(pre.features.iter().map(|f| f.name.as_str()));
    let mut order = Vec::new();
    for (p, name) in reader.headers().map_err(csv_error)?.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            bail!("CSV header: column {} has no name; name every column after a model field", p + 1);
        }
        let Some(j) = fields.get(name) else { return Err(fields.unknown(0, name)) };
        if order.contains(&j) {
            bail!("CSV header: column {name:?} is given twice; name each field once");
        }
        order.push(j);
    }
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
        let (i, row) = sink.next_row()?;
        for (p, field) in record.iter().enumerate() {
            let j = order[p];
            row[j] = pre.encode_scalar(j, csv_cell(field), i).map_err(|e| ProtocolError::bad_request(e.to_string()))?;
        }
    }
    Ok(())
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
    ProtocolError::bad_request(message)
}

/// A CSV field as the preprocessing reads it: missing (the same words as in training tables),
/// a number, or the text.
fn csv_cell(field: &str) -> crate::preprocess::Scalar<'_> {
    use crate::preprocess::Scalar;
    let t = field.trim();
    if matches!(t, "" | "NA" | "NaN" | "nan" | "null" | "NULL") {
        Scalar::Null
    } else if let Ok(i) = t.parse::<i64>() {
        Scalar::Number(i as f64)
    } else if let Some(n) = t.parse::<f64>().ok().filter(|n| n.is_finite()) {
        Scalar::Number(n)
    } else {
        Scalar::Text(field)
    }
}

/// Refuses `key` unless it is one of `accepted`, naming the closest.
fn check_key(key: &str, accepted: &[&str], what: &str) -> Result<()> {
    if !accepted.contains(&key) {
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

mod infer;

pub use infer::{Infer, answer_infer, model_metadata, read_infer};

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {

    use serde_json::{Value, json};

    use super::*;
    use crate::batch::Matrix;

    pub(super) fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    pub(super) fn three() -> Vec<String> {
        names(&["Pclass", "Sex", "Age"])
    }

    /// A preprocessing over `fields`: `Sex` and `Embarked` categorical, the rest numbers.
    pub(super) fn pre_of(fields: &[String]) -> Preprocessor {
        use crate::preprocess::{FeatureKind, FeatureSpec};
        let features = fields
            .iter()
            .map(|name| {
                let kind = match name.as_str() {
                    "Sex" => FeatureKind::Categorical { categories: names(&["female", "male"]) },
                    "Embarked" => FeatureKind::Categorical { categories: names(&["C", "Q", "S"]) },
                    _ => FeatureKind::Numeric { integer: false },
                };
                FeatureSpec { name: name.clone(), kind }
            })
            .collect();
        Preprocessor { features }
    }

    /// The encoded matrix of `records`, as text (NaN-aware equality).
    pub(super) fn encoded(pre: &Preprocessor, records: &[Value]) -> String {
        let w = pre.width();
        let mut x = vec![0f32; records.len() * w];
        for (i, r) in records.iter().enumerate() {
            pre.encode_record(r, i, &mut x[i * w..(i + 1) * w]).unwrap();
        }
        format!("{x:?}")
    }

    /// A request decoded into a matrix: the matrix as text, the form, and the probabilities flag.
    pub(super) fn decoded(
        content_type: Option<&str>,
        body: &[u8],
        fields: &[String],
    ) -> Result<(String, RequestFormat, bool)> {
        let pre = pre_of(fields);
        let request = read_request(content_type, body)?;
        let mut m = Matrix::new(&pre);
        request.decode(&pre, &mut m)?;
        Ok((format!("{:?}", m.x), request.format, request.return_probabilities))
    }

    pub(super) fn passengers() -> Vec<Value> {
        vec![
            json!({"Age": 22, "Sex": "male", "Pclass": 3}),
            json!({"Age": 12, "Sex": "male", "Pclass": 1}),
            json!({"Age": 38, "Sex": "female", "Pclass": 1}),
        ]
    }

    fn parse(content_type: &str, body: &str) -> Result<(String, RequestFormat, bool)> {
        decoded(Some(content_type), body.as_bytes(), &three())
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
        let expected = encoded(&pre_of(&three()), &passengers());
        for (body, format) in cases {
            let got = parse("application/json", &body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(got, (expected.clone(), format, false), "{body}");
        }
        let got = parse("Text/CSV; charset=utf-8", "Age,Sex,Pclass\n22,male,3\n12,male,1\n38,female,1\n").unwrap();
        assert_eq!((got.0, got.1), (expected.clone(), Csv));
        let got = parse("application/json", &format!(r#"{{"instances":{lists},"return_probabilities":true}}"#));
        assert!(got.unwrap().2);
        assert!(expected.ends_with("1.0, 0.0, 38.0]"), "{expected}");
    }

    #[test]
    fn missing_values_are_null_or_absent_and_allowed() {
        let pre = pre_of(&three());
        let r = parse("application/json", r#"{"instances":[{"Sex":"male","Age":null},[null,"female",4]]}"#).unwrap();
        let expected = [json!({"Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": "female", "Age": 4})];
        assert_eq!(r.0, encoded(&pre, &expected));
        let r = parse("text/csv", "Pclass,Sex,Age\n3,male,\n,NA,2.5\n").unwrap();
        let expected =
            [json!({"Pclass": 3, "Sex": "male", "Age": null}), json!({"Pclass": null, "Sex": null, "Age": 2.5})];
        assert_eq!(r.0, encoded(&pre, &expected));
    }

    #[test]
    fn unknown_fields_name_the_instance_and_the_closest_field() {
        let titanic = names(&["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]);
        let error = |body: &str| decoded(None, body.as_bytes(), &titanic).unwrap_err().message;
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
            (
                "",
                "{\"instances\": [\n{\"Age\": 22,}]}",
                "the request body is not valid JSON: key must be a string at line 2",
            ),
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
            parse("text/csv", "\u{feff}Sex,\"Age\",Pclass\r\n\"male\",22,3\r\n\"say \"\"hi\"\"\",1e1,1\r\n").unwrap();
        let second = json!({"Sex": "say \"hi\"", "Age": 10.0, "Pclass": 1});
        assert_eq!(r.0, encoded(&pre_of(&three()), &[json!({"Sex": "male", "Age": 22, "Pclass": 3}), second]));
    }

    #[test]
    fn suggestions_use_edit_distance_ignoring_case() {
        assert_eq!((edit_distance("age", "age"), edit_distance("embarkd", "embarked")), (0, 1));
        assert_eq!((edit_distance("", "abc"), edit_distance("kitten", "sitting")), (3, 3));
        assert_eq!(suggestion("SEX", ["Pclass", "Sex"]), r#" (did you mean "Sex"?)"#);
        assert_eq!(suggestion("Cabin", ["Pclass", "Sex", "Age"]) + &suggestion("x", ["Sex"]), "");
    }
}
