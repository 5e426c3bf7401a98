//! Serde pieces the request decoders share: borrowed keys, one-value cells described for
//! messages, and errors that pass through serde_json unchanged.
//!
//! A decoder's own refusal is raised inside a serde visitor, where only `de::Error::custom`
//! fits; [`refuse`] marks the message (and its kind) so that [`from_json`] can tell it from a
//! JSON syntax error and give it back word for word, without serde_json's position suffix.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{ErrorKind, ProtocolError};
use crate::preprocess::Scalar;

/// The scalar visits of a visitor that wants a list or an object: each refuses with
/// `self.wrong(cell)`, naming what came.
macro_rules! scalars_are_wrong {
    ($value:ty) => {
        fn visit_unit<E: de::Error>(self) -> Result<$value, E> {
            Err(self.wrong(&Cell::Null))
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<$value, E> {
            Err(self.wrong(&Cell::Bool(b)))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<$value, E> {
            Err(self.wrong(&Cell::Number(n as f64, true)))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<$value, E> {
            Err(self.wrong(&Cell::Number(n as f64, true)))
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<$value, E> {
            Err(self.wrong(&Cell::Number(n, false)))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<$value, E> {
            Err(self.wrong(&Cell::Text(s.into())))
        }
    };
}

const MARK: char = '\u{0}';

/// A serde error carrying a decoder's refusal.
pub(super) fn refuse<E: de::Error>(e: ProtocolError) -> E {
    let kind = match e.kind {
        ErrorKind::BadRequest => 'B',
        ErrorKind::TooLarge => 'T',
        ErrorKind::Cancelled => 'C',
    };
    E::custom(format!("{MARK}{kind}{}{MARK}", e.message))
}

/// A 400 refusal as a serde error.
pub(super) fn bad<E: de::Error>(message: String) -> E {
    refuse(ProtocolError::bad_request(message))
}

/// The refusal a serde error carries, or a JSON syntax error worded with `example`.
pub(super) fn from_json(e: serde_json::Error, example: &str) -> ProtocolError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(MARK)
        && let Some(end) = rest.rfind(MARK)
    {
        let kind = match rest.as_bytes().first() {
            Some(b'T') => ErrorKind::TooLarge,
            Some(b'C') => ErrorKind::Cancelled,
            _ => ErrorKind::BadRequest,
        };
        return ProtocolError::new(kind, &rest[1..end]);
    }
    ProtocolError::bad_request(format!("the request body is not valid JSON: {e}; send a JSON object such as {example}"))
}

/// An object key, borrowed from the body unless it holds escapes.
pub(super) struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One JSON value: a scalar as it is, a list or object only by its kind (its contents skipped).
#[derive(Debug)]
pub(super) enum Cell<'de> {
    Null,
    Bool(bool),
    /// A number, and whether it was written as an integer.
    Number(f64, bool),
    Text(Cow<'de, str>),
    List,
    Object,
}

impl Cell<'_> {
    /// The value as the preprocessing reads it.
    pub fn scalar(&self) -> Scalar<'_> {
        match self {
            Cell::Null => Scalar::Null,
            Cell::Bool(b) => Scalar::Bool(*b),
            Cell::Number(n, _) => Scalar::Number(*n),
            Cell::Text(s) => Scalar::Text(s),
            Cell::List => Scalar::Other("a list"),
            Cell::Object => Scalar::Other("an object"),
        }
    }

    /// For messages: scalars as JSON (`null`, `2.5`, `"male"`), containers by kind.
    pub fn describe(&self) -> String {
        match self {
            Cell::Null => "null".into(),
            Cell::Bool(b) => b.to_string(),
            Cell::Number(n, true) => format!("{n}"),
            Cell::Number(n, false) => Value::from(*n).to_string(),
            Cell::Text(s) if s.len() > 40 => "a long string".into(),
            Cell::Text(s) => Value::from(s.as_ref()).to_string(),
            Cell::List => "a list".into(),
            Cell::Object => "an object".into(),
        }
    }

    pub fn is_container(&self) -> bool {
        matches!(self, Cell::List | Cell::Object)
    }
}

impl<'de> de::Deserialize<'de> for Cell<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }
    fn visit_none<E>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Cell<'de>, E> {
        Ok(Cell::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(n as f64, true))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(n as f64, true))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(n, false))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cell<'de>, E> {
        Ok(Cell::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Cell<'de>, E> {
        Ok(Cell::Text(Cow::Owned(s.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Object)
    }
}

/// Where a name is among the model's fields: a scan for the few fields most models have, a
/// hash map for wide ones.
pub(super) struct FieldIndex<'p> {
    names: Vec<&'p str>,
    map: Option<std::collections::HashMap<&'p str, usize>>,
}

impl<'p> FieldIndex<'p> {
    pub fn new(names: impl Iterator<Item = &'p str>) -> Self {
        let names: Vec<&str> = names.collect();
        let map = (names.len() > 16).then(|| names.iter().enumerate().map(|(i, n)| (*n, i)).collect());
        FieldIndex { names, map }
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        match &self.map {
            Some(m) => m.get(name).copied(),
            None => self.names.iter().position(|n| *n == name),
        }
    }

    pub fn names(&self) -> &[&'p str] {
        &self.names
    }

    /// `instances[i].name: unknown field; the model's fields are …`, with the closest name.
    pub fn unknown(&self, i: usize, name: &str) -> ProtocolError {
        let hint = super::suggestion(name, self.names.iter().copied());
        ProtocolError::bad_request(format!(
            "instances[{i}].{name}: unknown field; the model's fields are {}{hint}",
            self.names.join(", ")
        ))
    }
}
