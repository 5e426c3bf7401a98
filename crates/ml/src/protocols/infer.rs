//! The Open Inference Protocol v2 (KServe's v2 REST API): inference requests with one input
//! per model field or one `[n, k]` tensor in field order, their responses, and model metadata.
//!
//! The request's envelope and tensor headers are read first (their data left undecoded), the
//! input names checked against the model's fields, and only then is each tensor's data decoded,
//! value by value, into encoded features.

use std::fmt;
use std::sync::atomic::AtomicBool;

use nimbus_core::schema::{FieldType, Schema};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::cells::{Cell, FieldIndex, Key, bad, from_json, refuse};
use super::json::encode;
use super::{ProtocolError, Result, check_key, suggestion};
use crate::batch::{Batch, Form, RowSink, datatype_of};
use crate::predict::Predictor;
use crate::preprocess::Preprocessor;
use crate::train::class_label;

const DATATYPES: [&str; 13] =
    ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES"];
const INFER_EXAMPLE: &str = r#"{"inputs": [{"name": "<field>", "shape": [1], "datatype": "FP64", "data": [22]}]}"#;
/// More dimensions than any input has.
const MAX_DIMS: usize = 8;

/// An inference request whose envelope and tensor headers are read and checked.
pub struct Infer<'a> {
    /// The request's `id`, to echo in the response.
    pub id: Option<String>,
    tensors: Vec<Tensor<'a>>,
}

struct Tensor<'a> {
    /// `inputs[i] (name)`, for messages.
    label: String,
    name: String,
    shape: Vec<usize>,
    datatype: &'static str,
    data: &'a RawValue,
}

/// Answers an Open Inference Protocol v2 inference request for `model` at `version`.
pub fn answer_infer(
    predictor: &Predictor,
    model: &str,
    version: &str,
    body: &[u8],
    cancel: Option<&AtomicBool>,
) -> Result<Vec<u8>> {
    let request = read_infer(body)?;
    let form = Form::Infer { model, version, id: request.id.as_deref() };
    let mut batch = Batch::new(predictor, form, true, cancel);
    request.decode(predictor.preprocessor(), &mut batch)?;
    batch.finish(true)
}

/// Reads an inference request's envelope and tensor headers.
pub fn read_infer(body: &[u8]) -> Result<Infer<'_>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        bail!("the request body is empty; send a JSON object such as {INFER_EXAMPLE}");
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let read =
        de.deserialize_any(Envelope).and_then(|r| de.end().map(|()| r)).map_err(|e| from_json(e, INFER_EXAMPLE))?;
    let id = read.id;
    let Some(inputs) = read.inputs.filter(|i| !i.is_empty()) else {
        bail!("inputs is missing or empty; send input tensors such as {INFER_EXAMPLE}");
    };
    let tensors = inputs.into_iter().enumerate().map(|(i, h)| h.check(i)).collect::<Result<_>>()?;
    Ok(Infer { id, tensors })
}

impl Infer<'_> {
    /// Decodes the tensors into rows: either one input per model field (shape `[n]` or
    /// `[n, 1]`), or a single input of shape `[n, fields]` in field order.
    pub fn decode(&self, pre: &Preprocessor, sink: &mut dyn RowSink) -> Result<()> {
        let k = pre.width();
        let fields = FieldIndex::new(pre.features.iter().map(|f| f.name.as_str()));
        // A single input of shape [n, k] holds all fields (unless it is a per-field input of a one-field model).
        let is_matrix =
            |t: &Tensor| matches!(t.shape[..], [_, cols] if cols == k && (k > 1 || fields.get(&t.name).is_none()));
        let before = sink.rows();
        if self.tensors.len() == 1 && k > 0 && is_matrix(&self.tensors[0]) {
            let t = &self.tensors[0];
            let mut i = 0;
            let count = t.values(|v, cell| {
                let j = v % k;
                if j == 0 {
                    i = sink.next_row()?.0;
                }
                sink.current_row()[j] = encode(pre, i, j, cell)?;
                Ok(())
            })?;
            t.check_count(count)?;
        } else {
            per_field(&self.tensors, pre, &fields, sink)?;
        }
        if sink.rows() == before {
            bail!("the inputs hold no instances (n is 0); send at least one");
        }
        Ok(())
    }
}

fn per_field(
    tensors: &[Tensor<'_>],
    pre: &Preprocessor,
    fields: &FieldIndex<'_>,
    sink: &mut dyn RowSink,
) -> Result<()> {
    let unknown: Vec<String> = tensors
        .iter()
        .filter(|t| fields.get(&t.name).is_none())
        .map(|t| format!("{:?}{}", t.name, suggestion(&t.name, fields.names().iter().copied())))
        .collect();
    if !unknown.is_empty() {
        let (unknown, list, k) = (unknown.join(", "), fields.names().join(", "), fields.names().len());
        bail!(
            "inputs: unknown input name {unknown}; name each input after a model field ({list}), or send a single \
             input of shape [n, {k}] holding the fields in that order"
        );
    }
    let mut columns: Vec<(usize, Vec<f32>)> = Vec::with_capacity(tensors.len());
    for t in tensors {
        if !matches!(t.shape[..], [_] | [_, 1]) {
            bail!("{}: shape {:?} does not fit a per-field input; use [n] or [n, 1]", t.label, t.shape);
        }
        let j = fields.get(&t.name).expect("checked above");
        if columns.iter().any(|(c, _)| *c == j) {
            bail!("{}: the field {:?} is given twice; send one input per field", t.label, t.name);
        }
        let mut values = Vec::new();
        t.values(|v, cell| {
            values.push(encode(pre, v, j, cell)?);
            Ok(())
        })?;
        t.check_count(values.len())?;
        if let Some((_, first)) = columns.first().filter(|(_, c)| c.len() != values.len()) {
            let (m, n) = (values.len(), first.len());
            bail!(
                "{}: has {m} values but {} has {n}; send one value per instance in every input",
                t.label,
                tensors[0].label
            );
        }
        columns.push((j, values));
    }
    let n = columns.first().map_or(0, |(_, c)| c.len());
    for r in 0..n {
        let (_, row) = sink.next_row()?;
        for (j, values) in &columns {
            row[*j] = values[r];
        }
    }
    Ok(())
}

impl Tensor<'_> {
    /// Calls `f` with each value of the (flattened) data and its position, after checking it
    /// fits the datatype; returns how many there were.
    fn values(&self, mut f: impl FnMut(usize, &Cell<'_>) -> Result<()>) -> Result<usize> {
        let mut de = serde_json::Deserializer::from_str(self.data.get());
        let mut count = 0;
        de.deserialize_seq(Flatten { tensor: self, f: &mut f, count: &mut count })
            .map_err(|e| from_json(e, INFER_EXAMPLE))?;
        Ok(count)
    }

    fn check_count(&self, got: usize) -> Result<()> {
        let expected = self.shape.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
        if expected != got as u128 {
            let (label, shape) = (&self.label, &self.shape);
            bail!("{label}: shape {shape:?} holds {expected} values but data has {got}; make the shape match the data");
        }
        Ok(())
    }
}

type ValueFn<'f> = dyn FnMut(usize, &Cell<'_>) -> Result<()> + 'f;

struct Flatten<'r, 'a, 'f> {
    tensor: &'r Tensor<'a>,
    f: &'r mut ValueFn<'f>,
    count: &'r mut usize,
}

impl<'de> Visitor<'de> for Flatten<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Flatten { tensor, f, count } = self;
        while seq.next_element_seed(Element { tensor, f: &mut *f, count: &mut *count })?.is_some() {}
        Ok(())
    }
}

/// One element of a tensor's data: a value, or a nested list flattened in place.
struct Element<'r, 'a, 'f> {
    tensor: &'r Tensor<'a>,
    f: &'r mut ValueFn<'f>,
    count: &'r mut usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Element<'_, '_, '_> {
    fn value<E: de::Error>(self, cell: Cell<'_>) -> Result<(), E> {
        let j = *self.count;
        let datatype = self.tensor.datatype;
        if let Some(takes) = misfit(datatype, &cell) {
            let label = &self.tensor.label;
            return Err(bad(format!("{label}.data[{j}]: datatype {datatype} takes {takes}, got {}", cell.describe())));
        }
        *self.count += 1;
        (self.f)(j, &cell).map_err(refuse)
    }
}

impl<'de> Visitor<'de> for Element<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Element { tensor, f, count } = self;
        while seq.next_element_seed(Element { tensor, f: &mut *f, count: &mut *count })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.value(Cell::Object)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.value(Cell::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.value(Cell::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.value(Cell::Number(n as f64, true))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.value(Cell::Number(n as f64, true))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        self.value(Cell::Number(n, false))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<(), E> {
        self.value(Cell::Text(s.into()))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.value(Cell::Text(s.to_string().into()))
    }
}

/// What `datatype` takes, when `x` does not fit it. `null` (a missing value) fits every datatype;
/// BYTES also takes numbers and booleans, as clients send rows of mixed types that way.
fn misfit(datatype: &str, x: &Cell<'_>) -> Option<&'static str> {
    let number = match x {
        Cell::Number(n, _) => Some(*n),
        _ => None,
    };
    let whole = number.is_some_and(|f| f.fract() == 0.0);
    let (fits, takes) = match datatype {
        "BOOL" => (matches!(x, Cell::Bool(_)), "true or false"),
        "BYTES" => (!matches!(x, Cell::Object), "strings or numbers"),
        d if d.starts_with("FP") => (number.is_some(), "numbers"),
        d if d.starts_with("UINT") => (whole && number.is_some_and(|f| f >= 0.0), "non-negative whole numbers"),
        _ => (whole, "whole numbers"),
    };
    (!fits && !matches!(x, Cell::Null)).then_some(takes)
}

/// The request's top level.
struct Envelope;

struct Read<'de> {
    id: Option<String>,
    inputs: Option<Vec<Header<'de>>>,
}

impl<'de> Visitor<'de> for Envelope {
    type Value = Read<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read<'de>, A::Error> {
        let mut read = Read { id: None, inputs: None };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            check_key(&key, &["id", "parameters", "inputs", "outputs"], "the inference request").map_err(refuse)?;
            match key.as_ref() {
                "id" => {
                    read.id = match map.next_value::<Cell<'de>>()? {
                        Cell::Null => None,
                        Cell::Text(s) => Some(s.into_owned()),
                        other => return Err(bad(format!("id: expected a string, got {}", other.describe()))),
                    }
                }
                "inputs" => read.inputs = Some(map.next_value::<Inputs<'de>>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
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
    bad(format!("the inference request must be a JSON object such as {INFER_EXAMPLE}, got {got}"))
}

/// `inputs`: a list of tensor headers.
struct Inputs<'de>(Vec<Header<'de>>);

impl<'de> de::Deserialize<'de> for Inputs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Inputs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of input tensors")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inputs<'de>, A::Error> {
                let mut inputs = Vec::new();
                while let Some(h) = seq.next_element_seed(HeaderSeed(inputs.len()))? {
                    inputs.push(h);
                }
                Ok(Inputs(inputs))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Inputs<'de>, A::Error> {
                Err(self.wrong(&Cell::Object))
            }
            fn visit_unit<E>(self) -> Result<Inputs<'de>, E> {
                Ok(Inputs(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Inputs<'de>, E> {
                Err(self.wrong(&Cell::Bool(b)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Inputs<'de>, E> {
                Err(self.wrong(&Cell::Number(n as f64, true)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Inputs<'de>, E> {
                Err(self.wrong(&Cell::Number(n as f64, true)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Inputs<'de>, E> {
                Err(self.wrong(&Cell::Number(n, false)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Inputs<'de>, E> {
                Err(self.wrong(&Cell::Text(s.into())))
            }
        }
        impl V {
            fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
                bad(format!("inputs: expected a list of input tensors, got {}", got.describe()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One input tensor as sent: its fields read, its data left undecoded.
struct Header<'de> {
    name: Option<Cell<'de>>,
    shape: Option<Option<Vec<usize>>>,
    datatype: Option<Cell<'de>>,
    data: Option<&'de RawValue>,
}

impl<'de> Header<'de> {
    /// Checks the header of `inputs[i]`, in the order name, shape, datatype, data.
    fn check(self, i: usize) -> Result<Tensor<'de>> {
        let name = match self.name {
            None | Some(Cell::Null) => bail!("inputs[{i}].name is missing; name the input after a model field"),
            Some(Cell::Text(s)) => s.into_owned(),
            Some(other) => bail!("inputs[{i}].name: expected a string, got {}", other.describe()),
        };
        let label = format!("inputs[{i}] ({name})");
        let Some(Some(shape)) = self.shape else {
            bail!("{label}.shape: expected a list of non-negative integers such as [3] or [3, 1]");
        };
        let datatype = match self.datatype {
            None | Some(Cell::Null) => String::new(),
            Some(Cell::Text(s)) => s.into_owned(),
            Some(other) => bail!("{label}.datatype: expected a string, got {}", other.describe()),
        };
        let Some(datatype) = DATATYPES.into_iter().find(|d| *d == datatype) else {
            bail!("{label}.datatype: unknown datatype {datatype:?}; use one of {}", DATATYPES.join(", "));
        };
        let Some(data) = self.data.filter(|d| d.get().trim_start().starts_with('[')) else {
            bail!("{label}.data: expected a list of values");
        };
        Ok(Tensor { label, name, shape, datatype, data })
    }
}

struct HeaderSeed(usize);

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Header<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Header<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed {
    type Value = Header<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input tensor")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
        let i = self.0;
        let mut h = Header { name: None, shape: None, datatype: None, data: None };
        let accepted = ["name", "shape", "datatype", "data", "parameters"];
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            check_key(&key, &accepted, &format!("inputs[{i}]")).map_err(refuse)?;
            match key.as_ref() {
                "name" => h.name = Some(map.next_value()?),
                "datatype" => h.datatype = Some(map.next_value()?),
                "shape" => h.shape = Some(map.next_value::<Dims>()?.0),
                "data" => h.data = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(h)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Header<'de>, A::Error> {
        Err(self.wrong(&Cell::List))
    }
    scalars_are_wrong!(Header<'de>);
}

impl HeaderSeed {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        let got = got.describe();
        bad(format!("inputs[{}]: expected an object with name, shape, datatype and data, got {got}", self.0))
    }
}

/// A shape: up to [`MAX_DIMS`] non-negative integers; `None` when it is anything else.
struct Dims(Option<Vec<usize>>);

impl<'de> de::Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dims;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a shape")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
                let mut dims = Some(Vec::new());
                while let Some(cell) = seq.next_element::<Cell<'de>>()? {
                    let dim = match cell {
                        Cell::Number(n, true) if n >= 0.0 && n <= usize::MAX as f64 => Some(n as usize),
                        _ => None,
                    };
                    dims = match (dims, dim) {
                        (Some(mut v), Some(d)) if v.len() < MAX_DIMS => {
                            v.push(d);
                            Some(v)
                        }
                        _ => None,
                    };
                }
                Ok(Dims(dims))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dims, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Dims(None))
            }
            fn visit_unit<E>(self) -> Result<Dims, E> {
                Ok(Dims(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Dims, E> {
                Ok(Dims(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Dims, E> {
                Ok(Dims(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Dims, E> {
                Ok(Dims(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Dims, E> {
                Ok(Dims(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Dims, E> {
                Ok(Dims(None))
            }
        }
        d.deserialize_any(V)
    }
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
    use crate::batch::Matrix;
    use crate::protocols::tests::{encoded, names, passengers, pre_of, three};

    /// The request's id and its rows, encoded, as text.
    fn infer(body: Value) -> Result<(Option<String>, String)> {
        let pre = pre_of(&three());
        let text = body.to_string();
        let request = read_infer(text.as_bytes())?;
        let mut m = Matrix::new(&pre);
        request.decode(&pre, &mut m)?;
        Ok((request.id.clone(), format!("{:?}", m.x)))
    }

    #[test]
    fn infer_reads_both_layouts() {
        let per_field = json!({"id": "r1", "parameters": {}, "inputs": [
            {"name": "Age", "shape": [3], "datatype": "INT64", "data": [22, 12, 38]},
            {"name": "Sex", "shape": [3, 1], "datatype": "BYTES", "data": [["male"], ["male"], ["female"]]},
            {"name": "Pclass", "shape": [3], "datatype": "FP32", "data": [3, 1, 1], "parameters": {}}]});
        let expected = encoded(&pre_of(&three()), &passengers());
        assert_eq!(infer(per_field).unwrap(), (Some("r1".into()), expected.clone()));
        let flat = json!({"inputs": [{"name": "input-0", "shape": [3, 3], "datatype": "BYTES",
            "data": [3, "male", 22, 1, "male", 12, 1, "female", 38]}], "outputs": [{"name": "predict"}]});
        assert_eq!(infer(flat).unwrap(), (None, expected.clone()));
        let nested = json!({"inputs": [{"name": "x", "shape": [3, 3], "datatype": "BYTES",
            "data": [[3, "male", 22], [1, "male", 12], [1, "female", 38]]}]});
        assert_eq!(infer(nested).unwrap().1, expected);
        let missing = json!({"inputs": [{"name": "Age", "shape": [2], "datatype": "FP64", "data": [null, 1.5]}]});
        let records = [json!({"Age": null}), json!({"Age": 1.5})];
        assert_eq!(infer(missing).unwrap().1, encoded(&pre_of(&three()), &records));
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
        assert!(read_infer(b"{").err().unwrap().message.contains("EOF while parsing"));
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
