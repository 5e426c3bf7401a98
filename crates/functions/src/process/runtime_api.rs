//! The Lambda Runtime API server of one instance (base `http://$AWS_LAMBDA_RUNTIME_API/2018-06-01`),
//! as AWS's runtime clients (`awslambdaric`, the `lambda_runtime` crate) speak it:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /runtime/invocation/next` | long-polls (no timeout) for the next event, with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id` and, when set, `Lambda-Runtime-Client-Context` / `Lambda-Runtime-Cognito-Identity` |
//! | `POST /runtime/invocation/{id}/response` | 202; 413 past 6 MB; 403 when `{id}` is not the invocation in progress |
//! | `POST /runtime/invocation/{id}/error` | 202 (`{"errorMessage","errorType"}`, header `Lambda-Runtime-Function-Error-Type`) |
//! | `POST /runtime/init/error` | 202; 403 once the runtime has asked for its first event |
//!
//! The first `next` marks the end of the instance's init (its `Init Duration`). One invocation
//! at a time: the instance hands over an event only when the previous one was answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

/// Largest response (and error document) a runtime may post: Lambda's 6 MB.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// One event waiting for the runtime.
pub struct Pending {
    pub request_id: Arc<str>,
    pub deadline_ms: i64,
    pub event: Bytes,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub reply: oneshot::Sender<Reply>,
}

/// What the runtime answered for one invocation.
#[derive(Debug)]
pub enum Reply {
    Response(Bytes),
    /// The handler failed: the error document and its type.
    Error {
        error_type: String,
        payload: Bytes,
    },
    /// The response passed [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

/// How init ended: the first `next`, or an `init/error` document.
pub type InitResult = Result<(), (String, Bytes)>;

struct Current {
    id: Arc<str>,
    reply: oneshot::Sender<Reply>,
}

struct ApiState {
    arn: String,
    events: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    current: Mutex<Option<Current>>,
    init: Mutex<Option<oneshot::Sender<InitResult>>>,
    /// Told the id of the invocation in progress (for tagging the instance's log lines).
    on_current: Box<dyn Fn(Option<Arc<str>>) + Send + Sync>,
}

/// A running Runtime API server; dropping it stops the server.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl RuntimeApi {
    /// Binds a loopback port and serves the Runtime API for one instance. Events arrive on
    /// `events`; `init` learns how init ended; `on_current` is told which invocation is in
    /// progress.
    pub async fn start(
        arn: String,
        events: mpsc::Receiver<Pending>,
        init: oneshot::Sender<InitResult>,
        on_current: Box<dyn Fn(Option<Arc<str>>) + Send + Sync>,
    ) -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            arn,
            events: tokio::sync::Mutex::new(events),
            current: Mutex::new(None),
            init: Mutex::new(Some(init)),
            on_current,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("runtime API server ended: {e}");
            }
        });
        Ok(RuntimeApi { addr, _stop: stop })
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    res
}

fn accepted() -> Response<Body> {
    answer(StatusCode::ACCEPTED, json!({ "status": "OK" }))
}

fn wrong_state(message: String) -> Response<Body> {
    answer(StatusCode::FORBIDDEN, json!({ "errorMessage": message, "errorType": "InvalidStateTransition" }))
}

async fn next(State(s): State<Arc<ApiState>>) -> Response<Body> {
    // The first poll ends init.
    if let Some(init) = s.init.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = init.send(Ok(()));
    }
    // A runtime that polls again without answering has abandoned its invocation; the caller
    // learns it when the reply channel closes.
    drop(s.current.lock().unwrap_or_else(|e| e.into_inner()).take());
    let pending = {
        let mut events = s.events.lock().await;
        events.recv().await
    };
    let Some(p) = pending else {
        // The instance is stopping; the runtime is about to be killed.
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "errorMessage": "the instance is stopping", "errorType": "ServiceException" }),
        );
    };
    let mut res = Response::new(Body::from(p.event));
    let h = res.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", &p.request_id);
    set("lambda-runtime-deadline-ms", &p.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &s.arn);
    set("lambda-runtime-trace-id", &p.trace_id);
    if let Some(c) = &p.client_context {
        set("lambda-runtime-client-context", c);
    }
    if let Some(c) = &p.cognito_identity {
        set("lambda-runtime-cognito-identity", c);
    }
    (s.on_current)(Some(p.request_id.clone()));
    *s.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current { id: p.request_id, reply: p.reply });
    res
}

/// Takes the invocation in progress when it is `id`.
fn take_current(s: &ApiState, id: &str) -> Option<oneshot::Sender<Reply>> {
    let mut current = s.current.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_ref() {
        Some(c) if &*c.id == id => current.take().map(|c| c.reply),
        _ => None,
    }
}

async fn response(State(s): State<Arc<ApiState>>, Path(id): Path<String>, body: Body) -> Response<Body> {
    let bytes = to_bytes(body, MAX_RESPONSE_BYTES).await;
    let Some(reply) = take_current(&s, &id) else {
        return wrong_state(format!("invocation {id} is not in progress on this instance"));
    };
    // Lines printed after the answer still belong to this invocation, until the next `next`.
    match bytes {
        Ok(b) => {
            let _ = reply.send(Reply::Response(b));
            accepted()
        }
        Err(_) => {
            let _ = reply.send(Reply::TooLarge);
            answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({
                    "errorMessage": format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                    "errorType": "RequestEntityTooLarge"
                }),
            )
        }
    }
}

/// The error document and type of an `error` or `init/error` post: the body when it is a
/// JSON object (its `errorType`, else the header's), else a document made from the text.
fn error_document(headers: &HeaderMap, body: &[u8]) -> (String, Bytes) {
    let header_type = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok());
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => {
            let t = v["errorType"].as_str().or(header_type).unwrap_or("Unhandled").to_string();
            (t, Bytes::copy_from_slice(body))
        }
        _ => {
            let t = header_type.unwrap_or("Unhandled").to_string();
            let message = String::from_utf8_lossy(body).into_owned();
            (t.clone(), Bytes::from(json!({ "errorMessage": message, "errorType": t }).to_string()))
        }
    }
}

async fn error(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let bytes = to_bytes(body, MAX_RESPONSE_BYTES).await.unwrap_or_default();
    let Some(reply) = take_current(&s, &id) else {
        return wrong_state(format!("invocation {id} is not in progress on this instance"));
    };
    let (error_type, payload) = error_document(&headers, &bytes);
    let _ = reply.send(Reply::Error { error_type, payload });
    accepted()
}

async fn init_error(State(s): State<Arc<ApiState>>, headers: HeaderMap, body: Body) -> Response<Body> {
    let bytes = to_bytes(body, MAX_RESPONSE_BYTES).await.unwrap_or_default();
    let Some(init) = s.init.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return wrong_state("init has ended: the runtime already asked for an event".into());
    };
    let _ = init.send(Err(error_document(&headers, &bytes)));
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn api() -> (RuntimeApi, mpsc::Sender<Pending>, oneshot::Receiver<InitResult>) {
        let (tx, rx) = mpsc::channel(1);
        let (init_tx, init_rx) = oneshot::channel();
        let api =
            RuntimeApi::start("arn:aws:lambda:r:1:function:f".into(), rx, init_tx, Box::new(|_| {})).await.unwrap();
        (api, tx, init_rx)
    }

    fn pending(id: &str, event: &'static str) -> (Pending, oneshot::Receiver<Reply>) {
        let (reply, rx) = oneshot::channel();
        let p = Pending {
            request_id: id.into(),
            deadline_ms: 1_700_000_000_000,
            event: Bytes::from_static(event.as_bytes()),
            trace_id: "Root=1-5e1b4151-5ac6c58f5b5dbd6a1f7b8e2a;Parent=0000000000000001;Sampled=0".into(),
            client_context: None,
            cognito_identity: None,
            reply,
        };
        (p, rx)
    }

    #[tokio::test]
    async fn next_response_error_and_states() {
        let (api, tx, init) = api().await;
        let base = format!("http://{}/2018-06-01/runtime", api.addr);
        let http = reqwest::Client::new();
        let (p, reply) = pending("r1", r#"{"a":1}"#);
        tx.send(p).await.unwrap();
        let res = http.get(format!("{base}/invocation/next")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(init.await.unwrap().is_ok(), "the first next ends init");
        let h = res.headers();
        assert_eq!(h["lambda-runtime-aws-request-id"], "r1");
        assert_eq!(h["lambda-runtime-deadline-ms"], "1700000000000");
        assert_eq!(h["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:r:1:function:f");
        assert!(h["lambda-runtime-trace-id"].to_str().unwrap().starts_with("Root=1-"));
        assert!(h.get("lambda-runtime-client-context").is_none());
        assert_eq!(res.text().await.unwrap(), r#"{"a":1}"#);
        // Another id is the wrong state.
        let res = http.post(format!("{base}/invocation/r2/response")).body("x").send().await.unwrap();
        assert_eq!(res.status(), 403);
        let res = http.post(format!("{base}/invocation/r1/response")).body("\"ok\"").send().await.unwrap();
        assert_eq!(res.status(), 202);
        assert!(matches!(reply.await.unwrap(), Reply::Response(b) if &b[..] == b"\"ok\""));
        // Answered once only.
        let res = http.post(format!("{base}/invocation/r1/response")).body("x").send().await.unwrap();
        assert_eq!(res.status(), 403);
        let res = http.post(format!("{base}/init/error")).body("{}").send().await.unwrap();
        assert_eq!(res.status(), 403, "init is over");

        let (p, reply) = pending("r3", "{}");
        tx.send(p).await.unwrap();
        http.get(format!("{base}/invocation/next")).send().await.unwrap();
        let res = http
            .post(format!("{base}/invocation/r3/error"))
            .header("lambda-runtime-function-error-type", "Runtime.Unknown")
            .body(r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let Reply::Error { error_type, payload } = reply.await.unwrap() else { panic!("an error") };
        assert_eq!(error_type, "ValueError");
        assert!(std::str::from_utf8(&payload).unwrap().contains("\"boom\""));

        let (p, reply) = pending("r4", "{}");
        tx.send(p).await.unwrap();
        http.get(format!("{base}/invocation/next")).send().await.unwrap();
        let big = vec![b'a'; MAX_RESPONSE_BYTES + 1];
        let res = http.post(format!("{base}/invocation/r4/response")).body(big).send().await.unwrap();
        assert_eq!(res.status(), 413);
        assert!(matches!(reply.await.unwrap(), Reply::TooLarge));
    }

    #[tokio::test]
    async fn init_error_is_reported_with_its_type() {
        let (api, _tx, init) = api().await;
        let res = reqwest::Client::new()
            .post(format!("http://{}/2018-06-01/runtime/init/error", api.addr))
            .header("lambda-runtime-function-error-type", "Runtime.ImportModuleError")
            .body("Unable to import module 'app'")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let (t, payload) = init.await.unwrap().unwrap_err();
        assert_eq!(t, "Runtime.ImportModuleError");
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["errorMessage"], "Unable to import module 'app'");
    }
}
