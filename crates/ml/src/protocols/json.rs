//! The JSON request forms, decoded by serde visitors straight into a [`RowSink`]: rows of
//! objects or positional lists, an object of columns, MLflow's `dataframe_split` and
//! `dataframe_records`. No JSON tree is built and no name is copied per row.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::cells::{Cell, FieldIndex, Key, bad, from_json, refuse};
use super::{ProtocolError, Result, check_key};
use crate::batch::RowSink;
use crate::preprocess::Preprocessor;

/// What the decoders share: the model's preprocessing and field names, and the sink.
pub(super) struct Rows<'s, 'p> {
    pub pre: &'p Preprocessor,
    pub fields: FieldIndex<'p>,
    pub sink: &'s mut dyn RowSink,
}

impl<'p> Rows<'_, 'p> {
    pub fn new<'s>(pre: &'p Preprocessor, sink: &'s mut dyn RowSink) -> Rows<'s, 'p> {
        Rows { pre, fields: FieldIndex::new(pre.features.iter().map(|f| f.name.as_str())), sink }
    }
}

/// Encodes `cell` as feature `j` of instance `i`.
pub(super) fn encode(pre: &Preprocessor, i: usize, j: usize, cell: &Cell<'_>) -> Result<f32> {
    if cell.is_container() {
        let (name, got) = (&pre.features[j].name, cell.describe());
        bail!("instances[{i}].{name}: expected a number, string, boolean or null, got {got}; send one value");
    }
    pre.encode_scalar(j, cell.scalar(), i).map_err(|e| ProtocolError::bad_request(e.to_string()))
}

/// Decodes `raw`, the value of the body's `key`, into rows.
pub(super) fn decode(key: &str, raw: &RawValue, rows: &mut Rows<'_, '_>) -> Result<()> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    match key {
        "instances" | "inputs" => de.deserialize_any(Tensor { key, rows }),
        "dataframe_records" => de.deserialize_any(Records { rows }),
        _ => de.deserialize_any(Split { rows }),
    }
    .map_err(|e| from_json(e, super::EXAMPLE))
}

/// `instances` / `inputs`: a list of objects or of positional lists, or an object of columns.
struct Tensor<'r, 's, 'p> {
    key: &'r str,
    rows: &'r mut Rows<'s, 'p>,
}

impl Tensor<'_, '_, '_> {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        bad(format!("{}: expected a list of instances or an object of columns, got {}", self.key, got.describe()))
    }
}

impl<'de> Visitor<'de> for Tensor<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of instances or an object of columns")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let order: Vec<usize> = (0..self.rows.pre.width()).collect();
        let shape = Shape { order: &order, names: None, objects: true, lists: true };
        while seq.next_element_seed(Row { rows: &mut *self.rows, shape })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        columns(self.key, self.rows, map)
    }
    scalars_are_wrong!(());
}

/// `dataframe_records`: a list of objects.
struct Records<'r, 's, 'p> {
    rows: &'r mut Rows<'s, 'p>,
}

impl Records<'_, '_, '_> {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        bad(format!("dataframe_records: expected a list of objects, got {}", got.describe()))
    }
}

impl<'de> Visitor<'de> for Records<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let shape = Shape { order: &[], names: None, objects: true, lists: false };
        while seq.next_element_seed(Row { rows: &mut *self.rows, shape })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong(&Cell::Object))
    }
    scalars_are_wrong!(());
}

/// What an instance may be: an object of field values, and/or a list of values in the order
/// `order` (feature indexes; `names` words them when they are not the model's own order).
#[derive(Clone, Copy)]
struct Shape<'r> {
    order: &'r [usize],
    names: Option<&'r [String]>,
    objects: bool,
    lists: bool,
}

/// One instance, decoded into the sink's next row.
struct Row<'r, 's, 'p> {
    rows: &'r mut Rows<'s, 'p>,
    shape: Shape<'r>,
}

impl Row<'_, '_, '_> {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        let (i, got) = (self.rows.sink.rows(), got.describe());
        bad(match (self.shape.objects, self.shape.lists) {
            (true, true) => format!(
                "instances[{i}]: expected an object of field values or a list of {} values, got {got}",
                self.shape.order.len()
            ),
            (true, false) => format!("instances[{i}]: expected an object of field values, got {got}"),
            _ => format!("instances[{i}]: expected a row (a list of values), got {got}"),
        })
    }
}

impl<'de> DeserializeSeed<'de> for Row<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Row<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if !self.shape.objects {
            return Err(self.wrong(&Cell::Object));
        }
        let Rows { pre, fields, sink } = self.rows;
        let (i, row) = sink.next_row().map_err(refuse)?;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            let Some(j) = fields.get(&name) else {
                return Err(refuse(fields.unknown(i, &name)));
            };
            let cell: Cell<'de> = map.next_value()?;
            row[j] = encode(pre, i, j, &cell).map_err(refuse)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.shape.lists {
            return Err(self.wrong(&Cell::List));
        }
        let Shape { order, names, .. } = self.shape;
        let Rows { pre, fields, sink } = self.rows;
        let (i, row) = sink.next_row().map_err(refuse)?;
        let n = order.len();
        let mut m = 0;
        while let Some(cell) = seq.next_element::<Cell<'de>>()? {
            if let Some(&j) = order.get(m) {
                row[j] = encode(pre, i, j, &cell).map_err(refuse)?;
            }
            m += 1;
        }
        if m != n {
            let order = match names {
                Some(names) => names.join(", "),
                None => fields.names().join(", "),
            };
            return Err(bad(format!(
                "instances[{i}]: expected {n} values, one per field in the order {order}, got {m}; null is missing"
            )));
        }
        Ok(())
    }
    scalars_are_wrong!(());
}

/// An object of equally long columns, one per named field: encoded column by column (4 bytes a
/// value), then handed to the sink row by row.
fn columns<'de, A: MapAccess<'de>>(key: &str, rows: &mut Rows<'_, '_>, mut map: A) -> Result<(), A::Error> {
    let mut columns: Vec<(usize, Vec<f32>)> = Vec::new();
    while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
        let Some(j) = rows.fields.get(&name) else {
            return Err(refuse(rows.fields.unknown(0, &name)));
        };
        if columns.iter().any(|(k, _)| *k == j) {
            return Err(bad(format!("{key}.{name}: the column is given twice; send each field once")));
        }
        let values = map.next_value_seed(Column { key, name: &name, j, pre: rows.pre })?;
        if let Some((first, v)) = columns.first().filter(|(_, v)| v.len() != values.len()) {
            let first = &rows.pre.features[*first].name;
            let counts = format!("{first} has {} values, {name} has {}", v.len(), values.len());
            return Err(bad(format!(
                "{key}: columns differ in length ({counts}); send one value per instance in every column"
            )));
        }
        columns.push((j, values));
    }
    let n = columns.first().map_or(0, |(_, v)| v.len());
    for r in 0..n {
        let (_, row) = rows.sink.next_row().map_err(refuse)?;
        for (j, values) in &columns {
            row[*j] = values[r];
        }
    }
    Ok(())
}

/// One column of values of feature `j`, encoded.
struct Column<'r> {
    key: &'r str,
    name: &'r str,
    j: usize,
    pre: &'r Preprocessor,
}

impl Column<'_> {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        bad(format!("{}.{}: expected a list of values, one per instance, got {}", self.key, self.name, got.describe()))
    }
}

impl<'de> DeserializeSeed<'de> for Column<'_> {
    type Value = Vec<f32>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<f32>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Column<'_> {
    type Value = Vec<f32>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f32>, A::Error> {
        let mut values = Vec::new();
        while let Some(cell) = seq.next_element::<Cell<'de>>()? {
            values.push(encode(self.pre, values.len(), self.j, &cell).map_err(refuse)?);
        }
        Ok(values)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<f32>, A::Error> {
        Err(self.wrong(&Cell::Object))
    }
    scalars_are_wrong!(Vec<f32>);
}

/// MLflow's `dataframe_split`: `{"columns": [names], "data": [[values], …], "index": […]}`, in
/// any key order (the rows wait, undecoded, until the columns are known).
struct Split<'r, 's, 'p> {
    rows: &'r mut Rows<'s, 'p>,
}

impl Split<'_, '_, '_> {
    fn wrong<E: de::Error>(&self, got: &Cell<'_>) -> E {
        bad(format!("dataframe_split: expected an object with \"columns\" and \"data\", got {}", got.describe()))
    }
}

impl<'de> Visitor<'de> for Split<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with \"columns\" and \"data\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names: Option<Vec<String>> = None;
        let mut data: Option<&'de RawValue> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            check_key(&key, &["columns", "data", "index"], "dataframe_split").map_err(refuse)?;
            match key.as_ref() {
                "columns" => names = map.next_value::<Names>()?.0,
                "data" => data = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let order: Vec<usize> = match &names {
            None => (0..self.rows.pre.width()).collect(),
            Some(names) => {
                let mut order = Vec::with_capacity(names.len());
                for name in names {
                    let j = self.rows.fields.get(name).ok_or_else(|| refuse(self.rows.fields.unknown(0, name)))?;
                    if order.contains(&j) {
                        return Err(bad(format!(
                            "dataframe_split.columns: {name:?} is given twice; name each field once"
                        )));
                    }
                    order.push(j);
                }
                order
            }
        };
        let Some(data) = data.filter(|d| d.get().trim_start().starts_with('[')) else {
            return Err(no_split_rows());
        };
        let shape = Shape { order: &order, names: names.as_deref(), objects: false, lists: true };
        let mut de = serde_json::Deserializer::from_str(data.get());
        de.deserialize_seq(SplitRows { rows: self.rows, shape }).map_err(|e| refuse(from_json(e, super::EXAMPLE)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong(&Cell::List))
    }
    scalars_are_wrong!(());
}

/// `dataframe_split.columns`: a list of names (or null: the model's order).
struct Names(Option<Vec<String>>);

impl<'de> de::Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wrong = |got: &str| bad(format!("dataframe_split.columns: expected a list of field names, got {got}"));
        match listed(d)? {
            Listed::Null => Ok(Names(None)),
            Listed::Names(names) => Ok(Names(Some(names))),
            Listed::Other(got) => Err(wrong(&got)),
        }
    }
}

/// A value that should be a list of strings, as read.
enum Listed {
    Null,
    Names(Vec<String>),
    Other(String),
}

/// Reads a list of strings, or says what came instead.
fn listed<'de, D: Deserializer<'de>>(d: D) -> Result<Listed, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Listed;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listed, A::Error> {
            let mut names = Vec::new();
            let mut other = None;
            while let Some(cell) = seq.next_element::<Cell<'de>>()? {
                match cell {
                    Cell::Text(s) if other.is_none() => names.push(s.into_owned()),
                    _ => other = Some("a list holding other values than strings".to_string()),
                }
            }
            Ok(other.map_or(Listed::Names(names), Listed::Other))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listed, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Listed::Other("an object".into()))
        }
        fn visit_unit<E>(self) -> Result<Listed, E> {
            Ok(Listed::Null)
        }
        fn visit_bool<E>(self, b: bool) -> Result<Listed, E> {
            Ok(Listed::Other(Cell::Bool(b).describe()))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Listed, E> {
            Ok(Listed::Other(n.to_string()))
        }
        fn visit_u64<E>(self, n: u64) -> Result<Listed, E> {
            Ok(Listed::Other(n.to_string()))
        }
        fn visit_f64<E>(self, n: f64) -> Result<Listed, E> {
            Ok(Listed::Other(Cell::Number(n, false).describe()))
        }
        fn visit_str<E>(self, s: &str) -> Result<Listed, E> {
            Ok(Listed::Other(Cell::Text(s.into()).describe()))
        }
    }
    d.deserialize_any(V)
}

struct SplitRows<'r, 's, 'p> {
    rows: &'r mut Rows<'s, 'p>,
    shape: Shape<'r>,
}

impl<'de> Visitor<'de> for SplitRows<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Row { rows: &mut *self.rows, shape: self.shape })?.is_some() {}
        Ok(())
    }
}

fn no_split_rows<E: de::Error>() -> E {
    bad("dataframe_split.data: expected a list of rows, each a list of values in the order of columns".into())
}
