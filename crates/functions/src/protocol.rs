//! A model function's answer to a prediction request body: the request formats of
//! [`nimbus_ml::protocols`] in, `{"predictions": […]}` out, or 400 with `{"error": …}` naming
//! the instance and field at fault.

use bytes::Bytes;
use nimbus_ml::instances;
use nimbus_ml::protocols;
use serde_json::json;

use crate::function::Loaded;

/// Bodies up to this size are answered on the request's own task; larger batches go to the
/// blocking pool so they do not hold up other requests.
pub const INLINE_BODY_BYTES: usize = 64 * 1024;

/// An HTTP-shaped answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Answer {
        Answer { status, content_type: "application/json", body: Bytes::from(value.to_string()) }
    }

    /// 400 with `{"error": message}`.
    pub fn bad_request(message: impl std::fmt::Display) -> Answer {
        Answer::json(400, &json!({ "error": message.to_string() }))
    }
}

/// Which protocol a request speaks.
#[derive(Clone, Debug, PartialEq)]
pub enum Protocol {
    /// The seeds' and MLflow's bodies (and CSV): `{"predictions": …}`.
    Predict,
    /// Open Inference Protocol v2 `infer`, for the model called `model` (the function), at
    /// `version` when the path names one.
    Infer { model: String, version: Option<i64> },
}

/// Answers a request body with the loaded model.
pub fn answer(loaded: &Loaded, protocol: &Protocol, content_type: Option<&str>, body: &[u8]) -> Answer {
    match protocol {
        Protocol::Predict => predict(loaded, content_type, body),
        Protocol::Infer { model, version } => infer(loaded, model, *version, body),
    }
}

fn infer(loaded: &Loaded, model: &str, version: Option<i64>, body: &[u8]) -> Answer {
    if let Some(v) = version.filter(|v| *v != loaded.version) {
        return Answer::json(
            404,
            &json!({ "error": format!("model {model} serves version {}, not version {v}", loaded.version) }),
        );
    }
    let request = match protocols::parse_infer(body, &loaded.fields) {
        Ok(r) => r,
        Err(e) => return Answer::bad_request(e),
    };
    match loaded.predictor.predict_records(&request.records) {
        Ok(preds) => Answer::json(
            200,
            &protocols::render_infer(model, &loaded.version.to_string(), request.id.as_deref(), &preds),
        ),
        Err(e) => Answer::bad_request(e),
    }
}

fn predict(loaded: &Loaded, content_type: Option<&str>, body: &[u8]) -> Answer {
    let csv =
        content_type.is_some_and(|ct| ct.trim_start().get(..8).is_some_and(|t| t.eq_ignore_ascii_case("text/csv")));
    // The seeds' `{"instances": [{…}]}` decodes straight into the feature matrix.
    if !csv && let Some(d) = instances::decode(body, loaded.predictor.preprocessor()) {
        let mut out = Vec::with_capacity(16 + d.rows * if d.return_probabilities { 48 } else { 2 });
        return match loaded.predictor.write_predictions(&d.x, d.return_probabilities, &mut out) {
            Ok(()) => Answer { status: 200, content_type: "application/json", body: Bytes::from(out) },
            Err(e) => Answer::bad_request(e),
        };
    }
    let request = match protocols::parse_request(content_type, body, &loaded.fields) {
        Ok(r) => r,
        Err(e) => return Answer::bad_request(e),
    };
    match loaded.predictor.predict_records(&request.records) {
        Ok(preds) => Answer::json(200, &protocols::render(request.format, &preds, request.return_probabilities)),
        Err(e) => Answer::bad_request(e),
    }
}
