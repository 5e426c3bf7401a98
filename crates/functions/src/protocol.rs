//! A model function's answer to a prediction request body: the request formats of
//! [`nimbus_ml::protocols`] in, `{"predictions": […]}` out, or 400 with `{"error": …}` naming
//! the instance and field at fault (413 when the answer would pass 6 MiB).

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use nimbus_ml::protocols;
use serde_json::json;

use crate::model::Loaded;

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

/// Answers a request body with the loaded model; `cancel`, once set, stops the work at its
/// next chunk of rows.
pub fn answer(
    loaded: &Loaded,
    protocol: &Protocol,
    content_type: Option<&str>,
    body: &[u8],
    cancel: Option<&AtomicBool>,
) -> Answer {
    let result = match protocol {
        Protocol::Predict => protocols::answer(&loaded.predictor, content_type, body, cancel),
        Protocol::Infer { model, version } => {
            if let Some(v) = version.filter(|v| *v != loaded.version) {
                let message = format!("model {model} serves version {}, not version {v}", loaded.version);
                return Answer::json(404, &json!({ "error": message }));
            }
            protocols::answer_infer(&loaded.predictor, model, &loaded.version.to_string(), body, cancel)
        }
    };
    match result {
        Ok(body) => Answer { status: 200, content_type: "application/json", body: Bytes::from(body) },
        Err(e) => Answer::json(e.status(), &json!({ "error": e.message })),
    }
}
