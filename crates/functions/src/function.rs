//! One model function at run time: the loaded model (or none: scaled to zero), its
//! concurrency slots, logs and metrics.
//!
//! The loaded model sits behind an atomic pointer. A request takes a reference to whatever is
//! loaded when it starts and finishes on it, so a swap never disturbs requests in flight and
//! none waits for a load that is not its own cold start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use nimbus_core::clock;
use nimbus_ml::predict::Predictor;
use nimbus_registry::{Registry, RegistryError, Selector};
use nimbus_store::Store;

use crate::logs::{self, LogBook};
use crate::metrics::FunctionMetrics;
use crate::protocol::{self, Answer, Protocol};
use crate::spec::FunctionSpec;

/// A model in memory, ready to answer.
pub struct Loaded {
    /// The registry version.
    pub version: i64,
    pub predictor: Predictor,
    /// Input field names, in the model's order.
    pub fields: Vec<String>,
    /// How long loading took, ms.
    pub init_ms: f64,
    /// Size of the model's artifact, MB (rounded up): what the REPORT line shows as used.
    pub size_mb: u64,
    pub loaded_ms: i64,
}

/// Why an invocation did not produce an answer of the model.
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
    /// The model could not be loaded (no version, a damaged artifact, over the memory limit).
    #[error("{0}")]
    Unavailable(String),
}

impl InvokeError {
    /// The Lambda `errorType` of the error.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvokeError::Throttled { .. } | InvokeError::Busy { .. } => "TooManyRequestsException",
            InvokeError::Timeout(_) => "Sandbox.Timedout",
            InvokeError::Unavailable(_) => "ModelUnavailable",
        }
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

/// A finished invocation. Its log lines (START … REPORT) are in the function's [`LogBook`],
/// found by its [`Call`]'s request id.
pub struct Invocation {
    pub answer: Answer,
}

/// A deployed model function.
pub struct Function {
    pub name: String,
    pub spec: FunctionSpec,
    pub selector: Selector,
    pub arn: String,
    pub logs: LogBook,
    pub metrics: FunctionMetrics,
    loaded: ArcSwapOption<Loaded>,
    load_lock: tokio::sync::Mutex<()>,
    /// Invocations running, counted until their work really ends (a timed-out prediction on
    /// the blocking pool keeps its slot until it stops).
    in_flight: Arc<AtomicU32>,
    last_used_ms: AtomicI64,
    /// The server's bounded pool of blocking prediction work.
    workers: Arc<tokio::sync::Semaphore>,
    store: Store,
    registry: Registry,
    /// A test hook: the load pauses between resolving the version and storing the model.
    #[cfg(test)]
    pause_after_resolve: std::sync::Mutex<Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>>,
}

/// A concurrency slot; dropping it gives the slot back.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Function {
    /// A function that has loaded nothing yet.
    pub fn new(
        name: String,
        spec: FunctionSpec,
        selector: Selector,
        arn: String,
        store: Store,
        registry: Registry,
        workers: Arc<tokio::sync::Semaphore>,
    ) -> Self {
        Function {
            name,
            spec,
            selector,
            arn,
            logs: LogBook::default(),
            metrics: FunctionMetrics::default(),
            loaded: ArcSwapOption::empty(),
            load_lock: tokio::sync::Mutex::new(()),
            in_flight: Arc::new(AtomicU32::new(0)),
            last_used_ms: AtomicI64::new(clock::now_ms()),
            workers,
            store,
            registry,
            #[cfg(test)]
            pause_after_resolve: Default::default(),
        }
    }

    /// The registry group served.
    pub fn group(&self) -> &str {
        self.spec.model_group.as_deref().unwrap_or_default()
    }

    /// The version the selector names now, without loading it (for metadata).
    pub async fn resolve(&self) -> Result<nimbus_registry::ModelVersion, RegistryError> {
        self.registry.resolve(self.group(), &self.selector).await
    }

    /// What is loaded now, if anything.
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded.load_full()
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn log(&self, line: String) {
        tracing::info!(function = %self.name, "{line}");
        self.logs.push(clock::now_ms(), [line]);
    }

    /// Resolves the selector and loads that version from the store.
    async fn load(&self) -> Result<Loaded, InvokeError> {
        let started = Instant::now();
        let group = self.group();
        let version = self.registry.resolve(group, &self.selector).await.map_err(|e| match e {
            RegistryError::Unresolved { reason, .. } => InvokeError::Unavailable(format!(
                "function {}: no version of model group {group} matches {} ({reason}); approve one with `nimbus models approve {group} VERSION`",
                self.name, self.selector
            )),
            RegistryError::GroupNotFound(_) => InvokeError::Unavailable(format!(
                "function {}: model group {group} does not exist; run a pipeline that registers into it or `nimbus models import {group} FILE`",
                self.name
            )),
            other => InvokeError::Unavailable(format!("function {}: {other}", self.name)),
        })?;
        let (bucket, key) = nimbus_store::parse_uri(&version.artifact_uri)
            .ok_or_else(|| InvokeError::Unavailable(format!("artifact URI {} is not s3://", version.artifact_uri)))?;
        let size_mb = (version.artifact_size as u64).div_ceil(1 << 20).max(1);
        if size_mb > u64::from(self.spec.memory_mb) {
            return Err(InvokeError::Unavailable(format!(
                "function {}: model {group} version {} needs about {size_mb} MB, over memory_mb = {}; raise memory_mb",
                self.name, version.version, self.spec.memory_mb
            )));
        }
        #[cfg(test)]
        {
            let pause = self.pause_after_resolve.lock().unwrap().clone();
            if let Some((reached, go)) = pause {
                reached.notify_one();
                go.notified().await;
            }
        }
        // The bytes must be the ones approved: the digest the version recorded, not whatever
        // the object holds now.
        let bytes = self.store.get_expecting(bucket, key, &version.artifact_sha256).await.map_err(|e| {
            InvokeError::Unavailable(format!("function {}: model {group} version {}: {e}", self.name, version.version))
        })?;
        let predictor = tokio::task::spawn_blocking(move || Predictor::from_slice(&bytes))
            .await
            .map_err(|e| InvokeError::Unavailable(format!("loading stopped: {e}")))?
            .map_err(|e| InvokeError::Unavailable(format!("function {}: {e}", self.name)))?;
        let fields = predictor.preprocessor().features.iter().map(|f| f.name.clone()).collect();
        Ok(Loaded {
            version: version.version,
            predictor,
            fields,
            init_ms: started.elapsed().as_secs_f64() * 1e3,
            size_mb,
            loaded_ms: clock::now_ms(),
        })
    }

    /// The loaded model, loading it first on a cold start (one load at a time; concurrent
    /// cold requests wait for the same load). Returns the init time when this call loaded.
    async fn warm(&self) -> Result<(Arc<Loaded>, Option<f64>), InvokeError> {
        if let Some(l) = self.loaded.load_full() {
            return Ok((l, None));
        }
        let _guard = self.load_lock.lock().await;
        if let Some(l) = self.loaded.load_full() {
            return Ok((l, None));
        }
        let loaded = Arc::new(self.load().await?);
        self.log(format!("loaded model {} version {} in {:.2} ms", self.group(), loaded.version, loaded.init_ms));
        self.loaded.store(Some(loaded.clone()));
        self.metrics.cold_starts.fetch_add(1, Ordering::Relaxed);
        let init = loaded.init_ms;
        Ok((loaded, Some(init)))
    }

    /// Re-resolves the selector after a registry change and, when it now names another
    /// version, loads that version and swaps it in. Nothing happens while scaled to zero:
    /// the next cold start resolves afresh. The load lock is taken first, so a cold start that
    /// resolved before the change is stored before this looks, and is corrected.
    pub async fn refresh(&self) {
        let _guard = self.load_lock.lock().await;
        let Some(current) = self.loaded.load_full() else { return };
        match self.registry.resolve(self.group(), &self.selector).await {
            Ok(v) if v.version == current.version => {}
            Ok(_) => match self.load().await {
                Ok(next) => {
                    self.log(format!(
                        "swapped model {} version {} -> {} (loaded in {:.2} ms)",
                        self.group(),
                        current.version,
                        next.version,
                        next.init_ms
                    ));
                    self.loaded.store(Some(Arc::new(next)));
                }
                Err(e) => self.log(format!("kept version {}: the new version did not load: {e}", current.version)),
            },
            Err(RegistryError::Unresolved { .. } | RegistryError::GroupNotFound(_)) => {
                self.loaded.store(None);
                self.log(format!(
                    "unloaded model {} version {}: the selector {} matches no version now",
                    self.group(),
                    current.version,
                    self.selector
                ));
            }
            Err(e) => self.log(format!("kept version {}: registry lookup failed: {e}", current.version)),
        }
    }

    /// Drops the loaded model when idle for `idle_s` (0: never) with nothing in flight.
    pub fn unload_if_idle(&self, now_ms: i64) -> bool {
        let idle_ms = self.spec.idle_s.min(crate::spec::MAX_IDLE_S) as i64 * 1000;
        if self.spec.idle_s == 0 || self.in_flight() > 0 || self.loaded.load().is_none() {
            return false;
        }
        if now_ms - self.last_used_ms.load(Ordering::Relaxed) < idle_ms {
            return false;
        }
        self.loaded.store(None);
        self.log(format!("unloaded after {} s idle (scaled to zero)", self.spec.idle_s));
        true
    }

    /// Answers a prediction request body (the seeds' and MLflow's forms, CSV).
    pub async fn invoke(
        &self,
        call: &Call,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Invocation, InvokeError> {
        self.run(call, Protocol::Predict, content_type, body).await
    }

    /// Answers an Open Inference Protocol v2 `infer` body.
    pub async fn infer(&self, call: &Call, version: Option<i64>, body: &[u8]) -> Result<Invocation, InvokeError> {
        self.run(call, Protocol::Infer { model: self.name.clone(), version }, None, body).await
    }

    /// Runs one invocation, with START/END/REPORT logging, the concurrency limit and the
    /// timeout (the sooner of `timeout_s` and the caller's deadline).
    async fn run(
        &self,
        call: &Call,
        protocol: Protocol,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Invocation, InvokeError> {
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
        // Made only when the work goes to the blocking pool: inline work cannot be interrupted.
        let cancel: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
        let work = async {
            let slot = slot;
            let (loaded, init) = self.warm().await?;
            let answer = if body.len() > protocol::INLINE_BODY_BYTES {
                let permit = self.workers.clone().try_acquire_owned().map_err(|_| {
                    self.metrics.throttles.fetch_add(1, Ordering::Relaxed);
                    InvokeError::Busy { workers: crate::prediction_workers() }
                })?;
                let stop = cancel.get_or_init(|| Arc::new(AtomicBool::new(false))).clone();
                let (ct, body, l, p) =
                    (content_type.map(str::to_string), body.to_vec(), loaded.clone(), protocol.clone());
                // The slot and the worker permit go with the work: they are given back when it
                // really ends, not when the caller stops waiting.
                tokio::task::spawn_blocking(move || {
                    let _held = (slot, permit);
                    protocol::answer(&l, &p, ct.as_deref(), &body, Some(&stop))
                })
                .await
                .map_err(|e| InvokeError::Unavailable(format!("prediction stopped: {e}")))?
            } else {
                let answer = protocol::answer(&loaded, &protocol, content_type, body, None);
                drop(slot);
                answer
            };
            Ok::<_, InvokeError>((answer, init, loaded.size_mb))
        };
        let limit = timeout.as_secs_f64();
        let result = tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| {
            if let Some(stop) = cancel.get() {
                stop.store(true, Ordering::Relaxed);
            }
            self.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(InvokeError::Timeout(limit))
        });
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let (init, used) = match &result {
            Ok((_, init, used)) => (*init, *used),
            Err(_) => (None, self.loaded.load().as_ref().map(|l| l.size_mb).unwrap_or(0)),
        };
        let duration_ms = total_ms - init.unwrap_or(0.0);
        self.metrics.duration.observe(duration_ms / 1e3);
        let request_id = &call.request_id;
        let mut lines = vec![logs::start_line(request_id, "$LATEST")];
        if let Err(e) = &result {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            lines.push(format!("{} {request_id} ERROR {}: {e}", clock::rfc3339(clock::now_ms()), e.error_type()));
        }
        lines.push(logs::end_line(request_id));
        lines.push(logs::report_line(request_id, duration_ms, self.spec.memory_mb, used, init));
        self.logs.push(clock::now_ms(), lines);
        let (answer, _, _) = result?;
        Ok(Invocation { answer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::FunctionKind;

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
        };
        let workers = Arc::new(tokio::sync::Semaphore::new(2));
        let f = Function::new("f".into(), spec, Selector::LatestApproved, "arn".into(), store, registry, workers);
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
        f.store.ensure_bucket("models").await.unwrap();
        let key = format!("titanic/{}.json", nimbus_core::new_id());
        let object = f.store.put("models", &key, bundle.into(), "application/json").await.unwrap();
        let version = new_version(&object, object.size, status);
        f.registry.register("titanic", version, "test").await.unwrap().version
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
        *f.pause_after_resolve.lock().unwrap() = Some((reached.clone(), go.clone()));
        let cold = tokio::spawn({
            let f = f.clone();
            async move { f.invoke(&Call::new(), None, br#"{"instances":[{"Age":2}]}"#).await.map(|_| ()) }
        });
        reached.notified().await;
        *f.pause_after_resolve.lock().unwrap() = None;
        // v1 is rejected now, and the registry watcher's refresh runs while the load is paused.
        f.registry.set_status("titanic", v1, ApprovalStatus::Rejected, "bad", "test").await.unwrap();
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
        let version = f.registry.version("titanic", v1).await.unwrap();
        let (bucket, key) = nimbus_store::parse_uri(&version.artifact_uri).unwrap();
        // Behind the holds (they stop the object API): the row itself replaced.
        nimbus_meta::sqlx::query("UPDATE objects SET sha256 = $1 WHERE bucket = $2 AND object_key = $3")
            .bind("0".repeat(64))
            .bind(bucket)
            .bind(key)
            .execute(f.store.db().pool())
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
        let _all = f.workers.clone().acquire_many_owned(2).await.unwrap();
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
        f.store.ensure_bucket("models").await.unwrap();
        let object = f.store.put("models", "titanic/huge.json", "{}".into(), "application/json").await.unwrap();
        let version = new_version(&object, 300 << 20, nimbus_registry::ApprovalStatus::Approved);
        f.registry.register("titanic", version, "test").await.unwrap();
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
