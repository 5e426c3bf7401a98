//! The fast path for the most common request, the seeds' `{"instances": [{…}, …]}` (with an
//! optional `"return_probabilities"`): scanned straight from the body bytes into encoded rows
//! of a [`Batch`], without building a JSON tree or copying a string.
//!
//! The scanner is deliberately narrow: objects of plain values in one list. Anything else — a
//! string with an escape, a nested value, another top-level key, an unknown field, a value of
//! the wrong type, a number outside JSON's grammar, malformed JSON — returns `None`, and the
//! caller takes the general path ([`crate::protocols`]), which accepts every format and words
//! the errors. Both paths encode through [`Preprocessor::encode_scalar`], so they cannot
//! disagree.

use std::sync::atomic::AtomicBool;

use crate::batch::{Batch, Form, Matrix, RowSink};
use crate::predict::Predictor;
use crate::preprocess::{Preprocessor, Scalar};
use crate::protocols::ProtocolError;

/// Answers the seeds' body with `predictor`, rows predicted a chunk at a time (see
/// [`crate::batch`]); `None` when the general path must handle the body. A refusal of the batch
/// itself (cancelled, answer too large) is `Some(Err)`.
pub fn answer(
    body: &[u8],
    predictor: &Predictor,
    cancel: Option<&AtomicBool>,
) -> Option<Result<Vec<u8>, ProtocolError>> {
    let pre = predictor.preprocessor();
    let mut batch = Batch::new(predictor, Form::Predict, false, cancel);
    let mut failed = None;
    let asked = scan(body, pre, &mut batch, &mut failed);
    if let Some(e) = failed {
        return Some(Err(e));
    }
    match asked? {
        Asked::Probabilities { collected: false } => {
            // Asked for after the rows: once more, collecting them.
            let mut batch = Batch::new(predictor, Form::Predict, true, cancel);
            let mut failed = None;
            scan(body, pre, &mut batch, &mut failed);
            match failed {
                Some(e) => Some(Err(e)),
                None => Some(batch.finish(true)),
            }
        }
        Asked::Probabilities { collected: true } => Some(batch.finish(true)),
        Asked::Predictions => Some(batch.finish(false)),
    }
}

/// A decoded `{"instances": […]}` body, every row kept (for tests and tools).
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// Row-major encoded features, `rows × width`.
    pub x: Vec<f32>,
    pub rows: usize,
    pub return_probabilities: bool,
}

/// Decodes the seeds' body into one matrix, or `None` when the general path must handle it.
pub fn decode(body: &[u8], pre: &Preprocessor) -> Option<Decoded> {
    let mut m = Matrix::new(pre);
    let asked = scan(body, pre, &mut m, &mut None)?;
    let return_probabilities = matches!(asked, Asked::Probabilities { .. });
    Some(Decoded { x: m.x, rows: m.rows, return_probabilities })
}

/// What the body asked for.
enum Asked {
    Predictions,
    /// With probabilities; `collected` when the sink was told before its first row.
    Probabilities {
        collected: bool,
    },
}

/// Scans the body into `sink`; `None` for the general path (or, with `failed` set, when the
/// sink refused).
fn scan<S: RowSink>(
    body: &[u8],
    pre: &Preprocessor,
    sink: &mut S,
    failed: &mut Option<ProtocolError>,
) -> Option<Asked> {
    let mut s = Scan { b: body, i: 0 };
    let mut asked = Asked::Predictions;
    let mut seen_instances = false;
    s.eat(b'{')?;
    loop {
        match s.string()? {
            b"instances" if !seen_instances => {
                seen_instances = true;
                s.eat(b':')?;
                rows(&mut s, pre, sink, failed)?;
            }
            b"return_probabilities" => {
                s.eat(b':')?;
                asked = match s.value()? {
                    Value::Bool(true) => Asked::Probabilities { collected: sink.collect_probabilities() },
                    Value::Bool(false) => Asked::Predictions,
                    _ => return None,
                };
            }
            _ => return None,
        }
        if s.eat(b',').is_none() {
            break;
        }
    }
    s.eat(b'}')?;
    s.ws();
    (s.i == s.b.len() && seen_instances && sink.rows() > 0).then_some(asked)
}

fn rows<S: RowSink>(
    s: &mut Scan<'_>,
    pre: &Preprocessor,
    sink: &mut S,
    failed: &mut Option<ProtocolError>,
) -> Option<()> {
    s.eat(b'[')?;
    if s.eat(b']').is_some() {
        return Some(());
    }
    loop {
        let (index, row) = match sink.next_row() {
            Ok(r) => r,
            Err(e) => {
                *failed = Some(e);
                return None;
            }
        };
        s.eat(b'{')?;
        if s.eat(b'}').is_none() {
            // Clients send the fields in the model's order more often than not: try the
            // feature after the last one first, then scan.
            let mut guess = 0;
            loop {
                let key = s.string()?;
                let j = match pre.features.get(guess) {
                    Some(f) if same(f.name.as_bytes(), key) => guess,
                    _ => pre.features.iter().position(|f| same(f.name.as_bytes(), key))?,
                };
                s.eat(b':')?;
                let scalar = match s.value()? {
                    Value::Null => Scalar::Null,
                    Value::Number(n) => Scalar::Number(n),
                    Value::Bool(b) => Scalar::Bool(b),
                    Value::Text(t) => Scalar::Text(std::str::from_utf8(t).ok()?),
                };
                row[j] = pre.encode_scalar(j, scalar, index).ok()?;
                guess = j + 1;
                if s.eat(b',').is_none() {
                    break;
                }
            }
            s.eat(b'}')?;
        }
        if s.eat(b',').is_none() {
            break;
        }
    }
    s.eat(b']')
}

/// Byte equality for short names: lengths, then an inlined loop (cheaper than a `memcmp`
/// call for a few bytes).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Exact powers of ten for the number shortcut.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// A plain JSON value as the scanner reads it; strings are the raw bytes between the quotes.
enum Value<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Text(&'a [u8]),
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Skips whitespace and takes `c`, if it is next.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i - 1]);
                }
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    fn literal(&mut self, word: &[u8], value: Value<'a>) -> Option<Value<'a>> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())?;
        Some(value)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(Value::Text),
            b'n' => self.literal(b"null", Value::Null),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => None,
        }
    }

    /// A number in JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        // Digits also accumulate into `mantissa`, for the exact shortcut below.
        let mut mantissa: u64 = 0;
        let mut digits = |s: &mut Self| {
            let from = s.i;
            while let Some(&d @ b'0'..=b'9') = s.b.get(s.i) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                s.i += 1;
            }
            s.i - from
        };
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        let int_digits = digits(self);
        match int_digits {
            0 => return None,
            n if n > 1 && self.b[int_start] == b'0' => return None,
            _ => {}
        }
        let mut frac_digits = 0;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            frac_digits = digits(self);
            if frac_digits == 0 {
                return None;
            }
        }
        let exponent = matches!(self.b.get(self.i), Some(b'e' | b'E'));
        // Up to 15 digits without an exponent: the mantissa and 10^k are exact doubles, so one
        // division is correctly rounded, the very value `str::parse` gives (Clinger's fast path).
        if !exponent && int_digits + frac_digits <= 15 {
            let v = mantissa as f64 / POW10[frac_digits];
            return Some(if negative { -v } else { v });
        }
        if exponent {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        // The bytes are ASCII digits and signs, so this is valid UTF-8.
        std::str::from_utf8(&self.b[start..self.i]).ok()?.parse().ok().filter(|v: &f64| v.is_finite())
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
        let spaced =
            " {\n \"instances\" : [ { \"Age\" : -2.5e1 , \"Pclass\":0 } , {} ] ,\"return_probabilities\":false }\r\n";
        let d = decode(spaced.as_bytes(), &p).unwrap();
        assert_eq!((d.rows, d.x[2], d.x[0], d.return_probabilities), (2, -25.0, 0.0, false));
        assert!(d.x[3..].iter().all(|v| v.is_nan()), "an empty instance is all missing");
    }

    #[test]
    fn numbers_read_exactly_as_str_parse_reads_them() {
        let p = pre();
        for text in [
            "0",
            "-0",
            "22",
            "7.25",
            "71.2833",
            "0.1",
            "-3.14159",
            "123456789012345",
            "1234567.89012345",
            "0.000001",
            "8.05",
            "1e3",
            "2.5E-2",
            "12345678901234567890",
            "0.30000000000000004",
        ] {
            let body = format!(r#"{{"instances":[{{"Age":{text}}}]}}"#);
            let got = decode(body.as_bytes(), &p).unwrap().x[2];
            assert_eq!(got, text.parse::<f64>().unwrap() as f32, "{text}");
            let mut s = Scan { b: text.as_bytes(), i: 0 };
            assert_eq!(s.number().unwrap().to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
        }
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
            r#"{"instances":[{"Age":01}]}"#,
            r#"{"instances":[{"Age":+1}]}"#,
            r#"{"instances":[{"Age":1.}]}"#,
            r#"{"instances":[{"Age":.5}]}"#,
            r#"{"instances":[{"Age":1e}]}"#,
            r#"{"instances":[{"Sex":"ma\u006ce"}]}"#,
            r#"{"instances":[{"Age":nul}]}"#,
            r#"{"instances":[{"Age":22,}]}"#,
            r#"{"instances":[{"Age":22}],}"#,
            r#"{"instances":[{"Age":22}]}{}"#,
            r#"{"instances":[{"Age":1e999}]}"#,
        ] {
            assert!(decode(body.as_bytes(), &p).is_none(), "{body}");
        }
    }
}
