//! Property tests of the request decoders against serde_json: the fast `instances` scanner and
//! the general decoders never panic, accept nothing serde_json rejects, agree with each other,
//! and encode exactly what the records serde_json reads encode to. (A key given twice in one
//! instance: the last value counts, as in serde_json, and every value must be valid.)

use proptest::prelude::*;
use serde_json::Value;

use super::read_request;
use super::tests::{pre_of, three};
use crate::batch::Matrix;
use crate::instances;
use crate::preprocess::Preprocessor;

/// The general path's matrix, or its refusal.
fn general(body: &[u8], pre: &Preprocessor) -> Result<(String, bool), String> {
    let request = read_request(None, body).map_err(|e| e.message)?;
    let mut m = Matrix::new(pre);
    request.decode(pre, &mut m).map_err(|e| e.message)?;
    Ok((format!("{:?}", m.x), request.return_probabilities))
}

/// Whether some object in the body names a key twice. serde_json keeps the last value; the
/// decoders also let the last one count but refuse an invalid earlier one, so such bodies are
/// compared only between the two decoders.
fn has_duplicate_keys(body: &[u8]) -> bool {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Check;
    impl<'de> serde::de::DeserializeSeed<'de> for Check {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(Check)
        }
    }
    impl<'de> Visitor<'de> for Check {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut seen, mut dup) = (std::collections::HashSet::new(), false);
            while let Some(k) = map.next_key::<String>()? {
                dup |= !seen.insert(k);
                dup |= map.next_value_seed(Check)?;
            }
            Ok(dup)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dup = false;
            while let Some(d) = seq.next_element_seed(Check)? {
                dup |= d;
            }
            Ok(dup)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    serde_json::Deserializer::from_slice(body).deserialize_any(Check).unwrap_or(false)
}

/// What serde_json says the records encode to, when the body is the `instances` form with
/// objects of known fields and plain values.
fn reference(body: &[u8], pre: &Preprocessor) -> Option<Result<String, ()>> {
    if has_duplicate_keys(body) {
        return None;
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else { return None };
    if obj.keys().any(|k| k != "instances" && k != "return_probabilities") {
        return None;
    }
    let Some(Value::Array(rows)) = obj.get("instances") else { return None };
    if rows.is_empty() || !rows.iter().all(Value::is_object) {
        return None;
    }
    let known = |k: &String| pre.features.iter().any(|f| &f.name == k);
    if !rows
        .iter()
        .flat_map(|r| r.as_object().unwrap().iter())
        .all(|(k, v)| known(k) && !v.is_array() && !v.is_object())
    {
        return None;
    }
    if !matches!(obj.get("return_probabilities"), None | Some(Value::Bool(_)) | Some(Value::Null)) {
        return None;
    }
    let w = pre.width();
    let mut x = vec![0f32; rows.len() * w];
    for (i, r) in rows.iter().enumerate() {
        if pre.encode_record(r, i, &mut x[i * w..(i + 1) * w]).is_err() {
            return Some(Err(()));
        }
    }
    Some(Ok(format!("{x:?}")))
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
        (0u32..100, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b:03}e-2")),
        prop_oneof![Just("male"), Just("female"), Just("ma\\u006ce"), Just("x\\\"y"), Just("3"), Just("")]
            .prop_map(|s| format!("\"{s}\"")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("Pclass"), Just("Sex"), Just("Age"), Just("age"), Just("S\\u0065x"), Just("Cabin")]
        .prop_map(|s| s.to_string())
}

fn row() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), scalar()), 0..5).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", inner.join(","))
    })
}

fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(row(), 0..6),
        prop_oneof![Just(""), Just("true"), Just("false"), Just("1")],
        any::<bool>(),
        " ?\n?",
    )
        .prop_map(|(rows, flag, flag_first, ws)| {
            let instances = format!("\"instances\":{ws}[{}]", rows.join(","));
            match (flag, flag_first) {
                ("", _) => format!("{{{instances}}}"),
                (f, true) => format!("{{\"return_probabilities\":{f},{instances}}}"),
                (f, false) => format!("{{{instances},\"return_probabilities\":{f}}}"),
            }
        })
}

/// A body with one byte replaced, one removed, or cut short.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (body(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(|(b, at, byte, how)| {
        let mut b = b.into_bytes();
        let i = at.index(b.len());
        match how {
            0 => b[i] = byte,
            1 => {
                b.remove(i);
            }
            _ => b.truncate(i),
        }
        b
    })
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let pre = pre_of(&three());
    let fast = instances::decode(body, &pre);
    let general = general(body, &pre);
    let valid = serde_json::from_slice::<Value>(body).is_ok();
    if !valid {
        prop_assert!(fast.is_none(), "the scanner accepted invalid JSON");
        prop_assert!(general.is_err(), "the decoder accepted invalid JSON");
    }
    if let Some(d) = &fast {
        let got = general.clone().expect("what the scanner takes, the decoder takes");
        prop_assert_eq!(&got.0, &format!("{:?}", d.x));
        prop_assert_eq!(got.1, d.return_probabilities);
    }
    match reference(body, &pre) {
        Some(Ok(expected)) => prop_assert_eq!(general.map(|g| g.0), Ok(expected)),
        Some(Err(())) => prop_assert!(general.is_err(), "a value the preprocessing refuses was accepted"),
        None => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::proptests::config(2000))]

    #[test]
    fn generated_bodies_decode_as_serde_json_reads_them(body in body()) {
        check(body.as_bytes())?;
    }

    #[test]
    fn mutated_bodies_decode_the_same_or_fail_cleanly(body in mutated()) {
        check(&body)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        check(&body)?;
        let pre = pre_of(&three());
        let _ = read_request(Some("text/csv"), &body).and_then(|r| r.decode(&pre, &mut Matrix::new(&pre)));
    }
}
