//! Lambda's view of a model function: an invocation payload in, a proxy response out.
//!
//! A payload is either an API Gateway event (format 1.0 or 2.0: it has `body` and
//! `requestContext`), whose body is the prediction request, or the prediction request itself,
//! as the seeds' local-emulator call sends it (`{"instances": […]}`). The answer is the proxy
//! response the seeds' handler returns: `{"statusCode": 200, "body": "{\"predictions\": [0]}"}`.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::protocol::Answer;

/// The parts of an API Gateway event a model function reads; everything else is skipped
/// without being built.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "requestContext")]
    request_context: Option<IgnoredAny>,
    #[serde(default)]
    headers: Option<HashMap<String, Value>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(rename = "isBase64Encoded", default)]
    is_base64_encoded: bool,
}

/// The content type and body of the prediction request inside an invocation payload.
pub fn request_of_event(payload: &[u8]) -> (Option<String>, Cow<'_, [u8]>) {
    let event = match serde_json::from_slice::<Event>(payload) {
        Ok(e) if e.request_context.is_some() => e,
        _ => return (None, Cow::Borrowed(payload)),
    };
    let content_type = event
        .headers
        .iter()
        .flatten()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    let body = match event.body {
        Some(s) if event.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD.decode(&s).unwrap_or_else(|_| s.into_bytes())
        }
        Some(s) => s.into_bytes(),
        None => Vec::new(),
    };
    (content_type, Cow::Owned(body))
}

/// The proxy response of an answer, keys in the order Lambda prints them.
pub fn proxy_response(answer: &Answer) -> String {
    let body = Value::String(String::from_utf8_lossy(&answer.body).into_owned());
    format!("{{\"statusCode\":{},\"body\":{body}}}", answer.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_and_plain_bodies() {
        let plain = br#"{"instances":[{"Age":80}]}"#;
        assert_eq!(request_of_event(plain), (None, Cow::Borrowed(plain.as_slice())));
        let event = json!({
            "version": "2.0", "routeKey": "POST /predict", "headers": {"Content-Type": "text/csv"},
            "body": "QWdlCjgwCg==", "isBase64Encoded": true, "requestContext": {"stage": "prod"}
        });
        let event = event.to_string();
        let (ct, body) = request_of_event(event.as_bytes());
        assert_eq!((ct.as_deref(), &*body), (Some("text/csv"), b"Age\n80\n".as_slice()));
        let answer = Answer::json(200, &json!({"predictions": [0]}));
        assert_eq!(proxy_response(&answer), r#"{"statusCode":200,"body":"{\"predictions\":[0]}"}"#);
    }
}
