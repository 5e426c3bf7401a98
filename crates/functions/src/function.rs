//! One function at run time, whatever its kind: the concurrency slots, the deadline, the
//! START/END/REPORT lines and the metrics are shared here ([`Function::run`]); what runs is the
//! function's [`Runtime`] — a registry model in-process ([`crate::model`]) or a command per
//! instance behind the Lambda Runtime API ([`crate::process`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nimbus_core::clock;
use nimbus_registry::{RegistryError, Selector};

use crate::logs::{self, LogBook};
use crate::metrics::FunctionMetrics;
use crate::model::{Loaded, ModelRuntime};
use crate::process::ProcessRuntime;
use crate::protocol::{Answer, Protocol};
use crate::spec::FunctionSpec;

/// How long a process function's END and REPORT wait for the last output lines of the
/// invocation to arrive through the instance's pipe.
pub const LINES_SETTLE: Duration = Duration::from_millis(5);

/// Why an invocation did not produce an answer of the function.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// More invocations are running than `max_concurrency` allows.
    #[error("Rate Exceeded: function {function} is running its maximum of {limit} concurrent invocations")]
    Throttled { function: String, limit: u32 },
    /// Every worker of the server's bounded prediction pool is busy.
    #[error("Rate Exceeded: all {workers} prediction workers of this server are busy; retry shortly")]
    Busy { workers: usize },
    /// The invocation ran longer than `timeout_s` (or its caller's deadline).
    #[error("Task timed out after {0:.2} seconds")]
    Timeout(f64),
    /// The model could not be loaded (no version, a damaged artifact, over the memory limit),
    /// or a process function could not be started (no sandbox, its code could not be prepared).
    #[error("{0}")]
    Unavailable(String),
    /// The function itself failed: the handler raised, its runtime failed to start, exited or
    /// was killed, or its response was too large. `payload` is the error document Lambda
    /// returns (`{"errorMessage", "errorType", …}`).
    #[error("{error_type}: {message}")]
    Function { error_type: String, message: String, payload: Bytes },
}

impl InvokeError {
    /// The Lambda `errorType` of the error.
    pub fn error_type(&self) -> &str {
        match self {
            InvokeError::Throttled { .. } | InvokeError::Busy { .. } => "TooManyRequestsException",
            InvokeError::Timeout(_) => "Sandbox.Timedout",
            InvokeError::Unavailable(_) => "ModelUnavailable",
            InvokeError::Function { error_type, .. } => error_type,
        }
    }

    /// The error document the Invoke API returns with `X-Amz-Function-Error: Unhandled`.
    pub fn payload(&self) -> Bytes {
        match self {
            InvokeError::Function { payload, .. } => payload.clone(),
            InvokeError::Timeout(_) => Bytes::from(
                serde_json::json!({ "errorMessage": self.to_string(), "errorType": self.error_type() }).to_string(),
            ),
            other => Bytes::from(
                serde_json::json!({ "errorMessage": other.to_string(), "errorType": other.error_type() }).to_string(),
            ),
        }
    }

    /// A function error built from a message and a type.
    pub fn function(error_type: &str, message: String) -> InvokeError {
        let payload = Bytes::from(serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string());
        InvokeError::Function { error_type: error_type.to_string(), message, payload }
    }
}

/// One invocation's identity and time limit, handed down by whoever received the request (the
/// gateway, the Invoke API): the access-log line and the function's START/END/REPORT lines carry
/// the same request id, and the function stops at the caller's deadline, writing its REPORT.
#[derive(Clone, Debug)]
pub struct Call {
    pub request_id: String,
    /// When the caller stops waiting; the function's own `timeout_s` applies when sooner.
    pub deadline: Option<Instant>,
}

impl Call {
    /// A call with a fresh request id and no deadline but the function's own.
    pub fn new() -> Call {
        Call { request_id: nimbus_core::request_id(), deadline: None }
    }
}

impl Default for Call {
    fn default() -> Self {
        Call::new()
    }
}

/// A finished invocation of a model function. Its log lines (START … REPORT) are in the
/// function's [`LogBook`], found by its [`Call`]'s request id.
pub struct Invocation {
    pub answer: Answer,
}

/// What a runtime hands back from one invocation, for the REPORT line.
pub(crate) struct Ran<T> {
    pub value: T,
    /// Set on a cold start: how long the model load or the instance's start took.
    pub init_ms: Option<f64>,
    /// Memory used, MB.
    pub memory_mb: u64,
}

/// What runs behind a function.
// One per deployed function, built once and never moved: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Runtime {
    Model(ModelRuntime),
    Process(ProcessRuntime),
}

/// A deployed function.
pub struct Function {
    pub name: String,
    pub spec: FunctionSpec,
    pub arn: String,
    /// `$LATEST`, or the number of a published version.
    pub version: String,
    pub logs: Arc<LogBook>,
    pub metrics: FunctionMetrics,
    pub runtime: Runtime,
    /// Invocations running, counted until their work really ends (a timed-out prediction on
    /// the blocking pool keeps its slot until it stops).
    in_flight: Arc<AtomicU32>,
    last_used_ms: AtomicI64,
}

/// A concurrency slot; dropping it gives the slot back.
pub(crate) struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Function {
    /// A function that has started nothing yet; `version` is `$LATEST` or a published
    /// version's number.
    pub(crate) fn new(
        name: String,
        version: String,
        spec: FunctionSpec,
        arn: String,
        runtime: Runtime,
        logs: Arc<LogBook>,
    ) -> Self {
        Function {
            name,
            spec,
            arn,
            version,
            logs,
            metrics: FunctionMetrics::default(),
            runtime,
            in_flight: Arc::new(AtomicU32::new(0)),
            last_used_ms: AtomicI64::new(clock::now_ms()),
        }
    }

    /// The model runtime, for model functions.
    pub fn model(&self) -> Option<&ModelRuntime> {
        match &self.runtime {
            Runtime::Model(m) => Some(m),
            Runtime::Process(_) => None,
        }
    }

    /// The process runtime, for process functions.
    pub fn process(&self) -> Option<&ProcessRuntime> {
        match &self.runtime {
            Runtime::Process(p) => Some(p),
            Runtime::Model(_) => None,
        }
    }

    /// Whether the function takes Lambda events (process) rather than prediction bodies (model).
    pub fn takes_events(&self) -> bool {
        matches!(self.runtime, Runtime::Process(_))
    }

    /// The registry group served (empty for process functions).
    pub fn group(&self) -> &str {
        self.model().map_or("", |m| m.group())
    }

    /// The model selector, for model functions.
    pub fn selector(&self) -> Option<&Selector> {
        self.model().map(|m| &m.selector)
    }

    /// The version the selector names now, without loading it (for metadata).
    pub async fn resolve(&self) -> Result<nimbus_registry::ModelVersion, RegistryError> {
        match &self.runtime {
            Runtime::Model(m) => m.resolve().await,
            Runtime::Process(_) => Err(RegistryError::GroupNotFound(String::new())),
        }
    }

    /// The model loaded now, if any (model functions only).
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.model().and_then(|m| m.loaded())
    }

    /// Whether anything is warm: a model loaded, or a process instance running.
    pub fn is_warm(&self) -> bool {
        match &self.runtime {
            Runtime::Model(m) => m.is_loaded(),
            Runtime::Process(p) => p.instances() > 0,
        }
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Re-resolves a model function's selector after a registry change (see
    /// [`ModelRuntime::refresh`]).
    pub async fn refresh(&self) {
        if let Runtime::Model(m) = &self.runtime {
            m.refresh().await;
        }
    }

    /// Scales down what has been idle for `idle_s` (0: never) with nothing in flight: the
    /// loaded model, or process instances beyond `min_instances`.
    pub fn unload_if_idle(&self, now_ms: i64) -> bool {
        let idle_ms = self.spec.idle_s.min(crate::spec::MAX_IDLE_S) as i64 * 1000;
        match &self.runtime {
            Runtime::Process(p) => p.stop_idle(now_ms, idle_ms),
            Runtime::Model(m) => {
                if self.spec.idle_s == 0 || self.in_flight() > 0 || !m.is_loaded() {
                    return false;
                }
                if now_ms - self.last_used_ms.load(Ordering::Relaxed) < idle_ms {
                    return false;
                }
                m.unload(self.spec.idle_s)
            }
        }
    }

    /// Answers a prediction request body (the seeds' and MLflow's forms, CSV). Model
    /// functions only; a process function takes events ([`Function::invoke_event`]).
    pub async fn invoke(
        &self,
        call: &Call,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Invocation, InvokeError> {
        let Runtime::Model(m) = &self.runtime else {
            return Err(InvokeError::Unavailable(format!(
                "function {} takes events, not prediction bodies",
                self.name
            )));
        };
        let answer = self.run(call, |slot| m.answer(slot, Protocol::Predict, content_type, body)).await?;
        Ok(Invocation { answer })
    }

    /// Answers an Open Inference Protocol v2 `infer` body (model functions only).
    pub async fn infer(&self, call: &Call, version: Option<i64>, body: &[u8]) -> Result<Invocation, InvokeError> {
        let Runtime::Model(m) = &self.runtime else {
            return Err(InvokeError::Unavailable(format!("function {} does not serve a model", self.name)));
        };
        let protocol = Protocol::Infer { model: self.name.clone(), version };
        let answer = self.run(call, |slot| m.answer(slot, protocol, None, body)).await?;
        Ok(Invocation { answer })
    }

    /// Invokes the function with a Lambda event (an Invoke API payload or an API Gateway
    /// event) and returns its response payload. A model function reads the prediction request
    /// inside the event and answers with a proxy response; a process function's handler gets
    /// the event as it is.
    pub async fn invoke_event(&self, call: &Call, event: Bytes) -> Result<Bytes, InvokeError> {
        match &self.runtime {
            Runtime::Model(m) => {
                let (ct, body) = crate::lambda::request_of_event(&event);
                let answer = self.run(call, |slot| m.answer(slot, Protocol::Predict, ct.as_deref(), &body)).await?;
                Ok(Bytes::from(crate::lambda::proxy_response(&answer)))
            }
            Runtime::Process(p) => self.run(call, |slot| p.invoke(slot, call, event)).await,
        }
    }

    /// Runs one invocation, with START/END/REPORT logging, the concurrency limit and the
    /// timeout (the sooner of `timeout_s` and the caller's deadline). `work` gets the
    /// invocation's slot and gives it back (drops it) when its work really ends.
    async fn run<T, Fut>(&self, call: &Call, work: impl FnOnce(Slot) -> Fut) -> Result<T, InvokeError>
    where
        Fut: Future<Output = Result<Ran<T>, InvokeError>>,
    {
        self.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.spec.max_concurrency {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.metrics.throttles.fetch_add(1, Ordering::Relaxed);
            return Err(InvokeError::Throttled { function: self.name.clone(), limit: self.spec.max_concurrency });
        }
        let slot = Slot(self.in_flight.clone());
        self.last_used_ms.store(clock::now_ms(), Ordering::Relaxed);
        let started = Instant::now();
        let own = Duration::from_secs_f64(self.spec.timeout_s);
        let timeout = call.deadline.map_or(own, |d| own.min(d.saturating_duration_since(started)));
        let request_id = &call.request_id;
        // A process prints between START and END, so START goes first; a model's lines go in
        // one push at the end.
        let streams = self.takes_events();
        if streams {
            self.logs.push(clock::now_ms(), [logs::start_line(request_id, &self.version)]);
        }
        let limit = timeout.as_secs_f64();
        let result = match tokio::time::timeout(timeout, work(slot)).await {
            // Work that finished past its limit (the timer's granularity is a millisecond) ran
            // longer than allowed all the same.
            Ok(Ok(_)) if started.elapsed() > timeout => Err(InvokeError::Timeout(limit)),
            Ok(r) => r,
            Err(_) => Err(InvokeError::Timeout(limit)),
        };
        if matches!(result, Err(InvokeError::Timeout(_))) {
            self.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let (init, used) = match &result {
            Ok(ran) => (ran.init_ms, ran.memory_mb),
            Err(_) => (None, self.memory_used_mb()),
        };
        if init.is_some() {
            self.metrics.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        let duration_ms = total_ms - init.unwrap_or(0.0);
        self.metrics.duration.observe(duration_ms / 1e3);
        let mut lines = Vec::with_capacity(4);
        if !streams {
            lines.push(logs::start_line(request_id, &self.version));
        }
        if let Err(e) = &result {
            if matches!(e, InvokeError::Busy { .. }) {
                self.metrics.throttles.fetch_add(1, Ordering::Relaxed);
            }
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            lines.extend(error_lines(e, request_id));
        }
        lines.push(logs::end_line(request_id));
        lines.push(logs::report_line(request_id, duration_ms, self.spec.memory_mb, used, init));
        if streams {
            // What the handler printed just before it answered may still be on its way through
            // the instance's pipe: END and REPORT follow a moment later, off the answer's path.
            let logs = self.logs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(LINES_SETTLE).await;
                logs.push(clock::now_ms(), lines);
            });
        } else {
            self.logs.push(clock::now_ms(), lines);
        }
        result.map(|ran| ran.value)
    }

    fn memory_used_mb(&self) -> u64 {
        match &self.runtime {
            Runtime::Model(m) => m.memory_used_mb(),
            Runtime::Process(p) => p.memory_used_mb(),
        }
    }
}

/// The lines Lambda writes for a failed invocation: the timeout, a runtime that exited, or
/// (for a model) the error itself. A handler's own error is printed by its runtime.
fn error_lines(e: &InvokeError, request_id: &str) -> Vec<String> {
    let now = clock::rfc3339(clock::now_ms());
    match e {
        InvokeError::Timeout(_) => vec![format!("{now} {request_id} {e}")],
        InvokeError::Function { error_type, message, .. } if error_type.starts_with("Runtime.") => {
            vec![message.clone(), error_type.clone()]
        }
        InvokeError::Function { .. } => Vec::new(),
        other => vec![format!("{now} {request_id} ERROR {}: {other}", other.error_type())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol;
    use crate::spec::FunctionKind;
    use nimbus_registry::Registry;
    use nimbus_store::Store;

    async fn function(max_concurrency: u32) -> (tempfile::TempDir, Function) {
        let dir = tempfile::tempdir().unwrap();
        let db = nimbus_meta::Db::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
        let store = Store::local(db.clone(), &dir.path().join("objects")).unwrap();
        let registry = Registry::new(db);
        registry.create_group("titanic", "", "test").await.unwrap();
        let spec = FunctionSpec {
            kind: FunctionKind::Model,
            model_group: Some("titanic".into()),
            selector: "latest-approved".into(),
            memory_mb: 256,
            timeout_s: 5.0,
            max_concurrency,
            idle_s: 1,
            default: false,
            description: String::new(),
            command: Vec::new(),
            handler: None,
            code: None,
            code_sha256: None,
            requirements: None,
            environment: Default::default(),
            secrets: Default::default(),
            min_instances: 0,
            async_retries: 2,
            async_retry_delay_s: 60.0,
        };
        let workers = Arc::new(tokio::sync::Semaphore::new(2));
        let logs = Arc::new(LogBook::default());
        let runtime = Runtime::Model(ModelRuntime::new(
            "f",
            "titanic".into(),
            Selector::LatestApproved,
            spec.memory_mb,
            store,
            registry,
            workers,
            logs.clone(),
        ));
        let f = Function::new("f".into(), crate::LATEST.into(), spec, "arn".into(), runtime, logs);
        (dir, f)
    }

    /// Trains a two-round model on a few rows and registers it into `titanic`.
    async fn register_model(f: &Function, status: nimbus_registry::ApprovalStatus) -> i64 {
        use nimbus_ml::{bundle::Bundle, preprocess::Preprocessor, table::Table, train};
        let csv = "Age,Survived\n1,1\n2,1\n3,0\n4,0\n5,1\n6,0\n7,0\n8,1\n";
        let t = Table::from_csv(csv.as_bytes(), "t.csv").unwrap();
        let pre = Preprocessor::fit(&t, &["Age".into()], &[]).unwrap();
        let labels = train::labels(&t, "Survived", "binary:logistic").unwrap();
        let params = [("objective".to_string(), serde_json::json!("binary:logistic"))].into_iter().collect();
        let model =
            train::fit(&pre.transform_table(&t).unwrap(), &pre, &labels, &train::TrainSpec { params, num_round: 2 })
                .unwrap();
        let bundle = Bundle::new(
            &model,
            &pre,
            "binary:logistic",
            "Survived",
            labels.classes,
            Default::default(),
            Default::default(),
        )
        .unwrap()
        .to_vec();
        f.model().unwrap().store.ensure_bucket("models").await.unwrap();
        let key = format!("titanic/{}.json", nimbus_core::new_id());
        let object = f.model().unwrap().store.put("models", &key, bundle.into(), "application/json").await.unwrap();
        let version = new_version(&object, object.size, status);
        f.model().unwrap().registry.register("titanic", version, "test").await.unwrap().version
    }

    /// A native-model version of `object`, recorded as `size` bytes.
    fn new_version(
        object: &nimbus_store::ObjectInfo,
        size: i64,
        status: nimbus_registry::ApprovalStatus,
    ) -> nimbus_registry::NewVersion {
        nimbus_registry::NewVersion {
            artifact_uri: object.uri(),
            artifact_sha256: object.sha256.clone(),
            artifact_size: size,
            format: "nimbus-model".into(),
            input_schema: Default::default(),
            output_schema: Default::default(),
            metrics: Default::default(),
            parameters: Default::default(),
            lineage: Default::default(),
            tags: Default::default(),
            description: String::new(),
            status: Some(status),
        }
    }

    #[tokio::test]
    async fn a_rejected_version_never_serves_after_a_racing_cold_start() {
        use nimbus_registry::ApprovalStatus;
        let (_dir, f) = function(4).await;
        let f = Arc::new(f);
        let v1 = register_model(&f, ApprovalStatus::Approved).await;
        // The cold start resolves v1, then waits before storing it.
        let (reached, go) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        *f.model().unwrap().pause_after_resolve.lock().unwrap() = Some((reached.clone(), go.clone()));
        let cold = tokio::spawn({
            let f = f.clone();
            async move { f.invoke(&Call::new(), None, br#"{"instances":[{"Age":2}]}"#).await.map(|_| ()) }
        });
        reached.notified().await;
        *f.model().unwrap().pause_after_resolve.lock().unwrap() = None;
        // v1 is rejected now, and the registry watcher's refresh runs while the load is paused.
        f.model().unwrap().registry.set_status("titanic", v1, ApprovalStatus::Rejected, "bad", "test").await.unwrap();
        let mut refresh = tokio::spawn({
            let f = f.clone();
            async move { f.refresh().await }
        });
        // A refresh that does not wait for the load in progress ends here, before v1 is stored.
        let early = tokio::time::timeout(Duration::from_millis(200), &mut refresh).await.is_ok();
        go.notify_one();
        cold.await.unwrap().unwrap();
        if !early {
            refresh.await.unwrap();
        }
        assert!(f.loaded().is_none(), "the rejected version was unloaded");
        let e = f.invoke(&Call::new(), None, br#"{"instances":[{"Age":2}]}"#).await.err().expect("nothing approved");
        assert!(matches!(e, InvokeError::Unavailable(_)), "{e}");
    }

    #[tokio::test]
    async fn serving_checks_the_bytes_against_the_approved_digest() {
        use nimbus_registry::ApprovalStatus;
        let (_dir, f) = function(4).await;
        let v1 = register_model(&f, ApprovalStatus::Approved).await;
        let version = f.model().unwrap().registry.version("titanic", v1).await.unwrap();
        let (bucket, key) = nimbus_store::parse_uri(&version.artifact_uri).unwrap();
        // Behind the holds (they stop the object API): the row itself replaced.
        nimbus_meta::sqlx::query("UPDATE objects SET sha256 = $1 WHERE bucket = $2 AND object_key = $3")
            .bind("0".repeat(64))
            .bind(bucket)
            .bind(key)
            .execute(f.model().unwrap().store.db().pool())
            .await
            .unwrap();
        let e = f.invoke(&Call::new(), None, br#"{"instances":[{"Age":2}]}"#).await.err().expect("refused");
        let InvokeError::Unavailable(m) = &e else { panic!("{e}") };
        assert!(m.contains(&format!("version {v1}")), "{m}");
    }

    #[tokio::test]
    async fn timed_out_prediction_reports_with_the_callers_id_and_counts() {
        use nimbus_registry::ApprovalStatus;
        let (_dir, f) = function(4).await;
        register_model(&f, ApprovalStatus::Approved).await;
        // The caller's deadline has already passed: the function stops at once.
        let call = Call { request_id: "req-1".into(), deadline: Some(Instant::now()) };
        let e = f.invoke(&call, None, br#"{"instances":[{"Age":2}]}"#).await.err().expect("timed out");
        assert!(matches!(e, InvokeError::Timeout(_)), "{e}");
        assert_eq!(f.metrics.timeouts.load(Ordering::Relaxed), 1);
        let lines: Vec<String> = f.logs.query(0, Some("req-1"), 10).into_iter().map(|l| l.text).collect();
        assert!(lines.iter().any(|l| l.starts_with("REPORT RequestId: req-1")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("START RequestId: req-1")), "{lines:?}");
        assert_eq!(f.in_flight(), 0, "the slot is back");
    }

    #[tokio::test]
    async fn a_full_prediction_pool_answers_429_at_once() {
        use nimbus_registry::ApprovalStatus;
        let (_dir, f) = function(4).await;
        register_model(&f, ApprovalStatus::Approved).await;
        let _all = f.model().unwrap().workers.clone().acquire_many_owned(2).await.unwrap();
        let rows = vec![r#"{"Age":2}"#; 10_000].join(",");
        let body = format!(r#"{{"instances":[{rows}]}}"#);
        assert!(body.len() > protocol::INLINE_BODY_BYTES);
        let e = f.invoke(&Call::new(), None, body.as_bytes()).await.err().expect("busy");
        assert!(matches!(e, InvokeError::Busy { .. }), "{e}");
        assert_eq!(e.error_type(), "TooManyRequestsException");
        assert_eq!(f.in_flight(), 0);
        drop(_all);
        let ok = f.invoke(&Call::new(), None, body.as_bytes()).await.unwrap();
        assert_eq!(ok.answer.status, 200);
    }

    #[tokio::test]
    async fn over_max_concurrency_is_throttled_before_any_work() {
        let (_dir, f) = function(1).await;
        f.in_flight.store(1, Ordering::SeqCst);
        let e = f.invoke(&Call::new(), None, b"{}").await.err().expect("throttled");
        assert!(matches!(e, InvokeError::Throttled { limit: 1, .. }), "{e}");
        assert_eq!(e.error_type(), "TooManyRequestsException");
        assert_eq!(f.in_flight(), 1, "a throttled call gives back the slot it never held");
        assert_eq!(f.metrics.throttles.load(Ordering::Relaxed), 1);
        f.in_flight.store(0, Ordering::SeqCst);
        // Nothing approved: the invocation fails as a function error and frees its slot.
        let e = f.invoke(&Call::new(), None, b"{}").await.err().expect("no model");
        assert!(matches!(e, InvokeError::Unavailable(ref m) if m.contains("nimbus models approve titanic")), "{e}");
        assert_eq!(f.in_flight(), 0);
        assert!(f.logs.query(0, Some("ModelUnavailable"), 10).len() == 1);
    }

    #[tokio::test]
    async fn a_model_over_the_memory_limit_is_refused_before_it_is_read() {
        let (_dir, f) = function(4).await;
        // The recorded size is what the check reads; the object itself can be small.
        f.model().unwrap().store.ensure_bucket("models").await.unwrap();
        let object =
            f.model().unwrap().store.put("models", "titanic/huge.json", "{}".into(), "application/json").await.unwrap();
        let version = new_version(&object, 300 << 20, nimbus_registry::ApprovalStatus::Approved);
        f.model().unwrap().registry.register("titanic", version, "test").await.unwrap();
        let e = f.invoke(&Call::new(), None, b"{}").await.err().expect("over the limit");
        let InvokeError::Unavailable(m) = &e else { panic!("{e}") };
        assert!(m.contains("needs about 300 MB, over memory_mb = 256; raise memory_mb"), "{m}");
    }

    #[tokio::test]
    async fn idle_unload_needs_a_loaded_model_and_quiet() {
        let (_dir, f) = function(1).await;
        assert!(!f.unload_if_idle(clock::now_ms() + 10_000), "nothing loaded");
    }
}
