//! A Rust Lambda handler built with the `lambda_runtime` crate, as AWS's Rust runtime runs it.
//! nimbus starts it as a process function (`command = ["./bootstrap"]`) and it talks to the
//! Runtime API server nimbus runs for its instance (`AWS_LAMBDA_RUNTIME_API`).
//!
//! Behind a gateway route it gets an API Gateway 2.0 event and answers a proxy response:
//! `POST {"name": "Ada"}` → 200 `{"message": "Hello Ada!", "requestId": …}`; a body that is
//! not JSON → 400. Invoked directly, the event is the payload itself.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    // An API Gateway event carries the request in `body`; a direct invocation is the request.
    let request = match payload.get("body") {
        Some(Value::String(body)) => match serde_json::from_str::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(json!({
                    "statusCode": 400,
                    "headers": {"content-type": "application/json"},
                    "body": json!({"error": format!("the body is not JSON: {e}")}).to_string(),
                }));
            }
        },
        _ => payload.clone(),
    };
    let name = request.get("name").and_then(Value::as_str).unwrap_or("stranger");
    let answer = json!({"message": format!("Hello {name}!"), "requestId": context.request_id});
    if payload.get("requestContext").is_some() {
        Ok(json!({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": answer.to_string()}))
    } else {
        Ok(answer)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
