//! Lambda's view of a model function: an invocation payload in, a proxy response out.
//!
//! A payload is either an API Gateway event (format 1.0 or 2.0: it has `body` and
//! `requestContext`), whose body is the prediction request, or the prediction request itself,
//! as the seeds' local-emulator call sends it (`{"instances": […]}`). The answer is the proxy
//! response the seeds' handler returns: `{"statusCode": 200, "body": "{\"predictions\": [0]}"}`.

use base64::Engine;
use serde_json::Value;

use crate::protocol::Answer;

/// The content type and body of the prediction request inside an invocation payload.
pub fn request_of_event(payload: &[u8]) -> (Option<String>, Vec<u8>) {
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(payload) else {
        return (None, payload.to_vec());
    };
    if !event.contains_key("requestContext") {
        return (None, payload.to_vec());
    }
    let content_type = event
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    let body = match event.get("body") {
        Some(Value::String(s)) if event.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec())
        }
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    };
    (content_type, body)
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
        assert_eq!(request_of_event(plain), (None, plain.to_vec()));
        let event = json!({
            "version": "2.0", "routeKey": "POST /predict", "headers": {"Content-Type": "text/csv"},
            "body": "QWdlCjgwCg==", "isBase64Encoded": true, "requestContext": {"stage": "prod"}
        });
        let (ct, body) = request_of_event(event.to_string().as_bytes());
        assert_eq!((ct.as_deref(), body.as_slice()), (Some("text/csv"), b"Age\n80\n".as_slice()));
        let answer = Answer::json(200, &json!({"predictions": [0]}));
        assert_eq!(proxy_response(&answer), r#"{"statusCode":200,"body":"{\"predictions\":[0]}"}"#);
    }
}
