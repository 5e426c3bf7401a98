//! The fast path for the most common request, the seeds' `{"instances": [{…}, …]}` (with an
//! optional `"return_probabilities"`): decoded straight from the body bytes into the encoded
//! feature matrix, without building a JSON tree. Strings are borrowed from the body when they
//! have no escapes, so a request allocates the matrix and little else.
//!
//! Anything else — another body shape, an unknown field, a value of the wrong type — returns
//! `None`, and the caller takes the general path ([`crate::protocols`]), which accepts every
//! format and words the errors. Both paths encode through [`Preprocessor::encode_scalar`], so
//! they cannot disagree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::preprocess::{Preprocessor, Scalar};

/// A decoded `{"instances": […]}` body.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// Row-major encoded features, `rows × width`.
    pub x: Vec<f32>,
    pub rows: usize,
    pub return_probabilities: bool,
}

/// Decodes the seeds' body, or `None` when the general path must handle it.
pub fn decode(body: &[u8], pre: &Preprocessor) -> Option<Decoded> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut out = Decoded { x: Vec::new(), rows: 0, return_probabilities: false };
    de.deserialize_map(BodyVisitor { pre, out: &mut out }).ok()?;
    de.end().ok()?;
    (out.rows > 0).then_some(out)
}

/// Refuses the fast path; the general path then handles (and words) the request.
fn fallback<E: de::Error>() -> E {
    E::custom("fallback")
}

/// A map key, borrowed from the body when it can be.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A raw value; lists and objects are refused (the general path words that error).
struct Raw<'de>(RawValue<'de>);

enum RawValue<'de> {
    Null,
    Number(f64),
    Text(Cow<'de, str>),
    Bool(bool),
}

impl<'de> de::Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, string, boolean or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Number(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Number(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Number(v)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw<'de>, E> {
                Ok(Raw(RawValue::Text(Cow::Owned(v.to_string()))))
            }
        }
        d.deserialize_any(V)
    }
}

struct BodyVisitor<'a> {
    pre: &'a Preprocessor,
    out: &'a mut Decoded,
}

impl<'de> Visitor<'de> for BodyVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_instances = false;
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                "instances" if !seen_instances => {
                    seen_instances = true;
                    map.next_value_seed(Rows { pre: self.pre, out: &mut *self.out })?;
                }
                "return_probabilities" => self.out.return_probabilities = map.next_value::<bool>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(fallback());
                }
            }
        }
        if seen_instances { Ok(()) } else { Err(fallback()) }
    }
}

struct Rows<'a> {
    pre: &'a Preprocessor,
    out: &'a mut Decoded,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of instances")
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let width = self.pre.width();
        if let Some(n) = seq.size_hint() {
            self.out.x.reserve(n * width);
        }
        loop {
            let index = self.out.rows;
            self.out.x.resize((index + 1) * width, f32::NAN);
            let row = Row { pre: self.pre, row: &mut self.out.x[index * width..], index };
            if seq.next_element_seed(row)?.is_none() {
                self.out.x.truncate(index * width);
                return Ok(());
            }
            self.out.rows += 1;
        }
    }
}

struct Row<'a> {
    pre: &'a Preprocessor,
    row: &'a mut [f32],
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an instance object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let features = &self.pre.features;
        let mut guess = 0;
        while let Some(Key(key)) = map.next_key()? {
            // Clients send the fields in the model's order more often than not: try the
            // feature after the last one first, then scan.
            let j = match features.get(guess) {
                Some(f) if f.name == key.as_ref() => Some(guess),
                _ => self.pre.feature_index(&key),
            };
            let Some(j) = j else {
                map.next_value::<IgnoredAny>()?;
                return Err(fallback());
            };
            let Raw(value) = map.next_value()?;
            let scalar = match &value {
                RawValue::Null => Scalar::Null,
                RawValue::Number(n) => Scalar::Number(*n),
                RawValue::Text(t) => Scalar::Text(t),
                RawValue::Bool(b) => Scalar::Bool(*b),
            };
            self.row[j] = self.pre.encode_scalar(j, scalar, self.index).map_err(|_| fallback())?;
            guess = j + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::preprocess::{FeatureKind, FeatureSpec};

    fn pre() -> Preprocessor {
        let num = |name: &str| FeatureSpec { name: name.into(), kind: FeatureKind::Numeric { integer: true } };
        let sex = FeatureKind::Categorical { categories: vec!["female".into(), "male".into()] };
        Preprocessor { features: vec![num("Pclass"), FeatureSpec { name: "Sex".into(), kind: sex }, num("Age")] }
    }

    #[test]
    fn decodes_like_the_general_path() {
        let p = pre();
        let body = json!({"instances": [
            {"Age": 22, "Sex": "male", "Pclass": 3},
            {"Sex": "fe\u{6d}ale", "Age": null},
            {"Age": "38", "Sex": "unseen", "Pclass": 1.0}
        ], "return_probabilities": true})
        .to_string();
        let d = decode(body.as_bytes(), &p).unwrap();
        assert_eq!((d.rows, d.return_probabilities), (3, true));
        let records = [
            json!({"Age": 22, "Sex": "male", "Pclass": 3}),
            json!({"Sex": "female", "Age": null}),
            json!({"Age": "38", "Sex": "unseen", "Pclass": 1.0}),
        ];
        let mut expected = vec![0f32; 9];
        for (i, r) in records.iter().enumerate() {
            p.encode_record(r, i, &mut expected[i * 3..(i + 1) * 3]).unwrap();
        }
        assert_eq!(format!("{:?}", d.x), format!("{expected:?}"), "NaN-aware equality");
        let escaped = r#"{"instances":[{"Sex":"ma\u006ce"}]}"#;
        assert_eq!(decode(escaped.as_bytes(), &p).unwrap().x[1], 1.0);
    }

    #[test]
    fn everything_else_falls_back() {
        let p = pre();
        for body in [
            r#"{"instances":[{"age":22}]}"#,
            r#"{"instances":[{"Age":[22]}]}"#,
            r#"{"instances":[{"Age":"old"}]}"#,
            r#"{"instances":[[3,"male",22]]}"#,
            r#"{"instances":[]}"#,
            r#"{"inputs":[{"Age":22}]}"#,
            r#"{"instances":[{"Age":22}],"params":{}}"#,
            r#"{"instances":[{"Age":22}]} trailing"#,
            r#"{"instances":[{"Age":22}]"#,
            "[]",
        ] {
            assert!(decode(body.as_bytes(), &p).is_none(), "{body}");
        }
    }
}
