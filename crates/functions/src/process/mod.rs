//! The process runtime: a command per instance (`python3 -m awslambdaric app.handler`, a
//! compiled `lambda_runtime` binary, …) that takes events through the Lambda Runtime API.
//!
//! - [`runtime_api`]: the Runtime API server of one instance.
//! - [`instance`]: one instance: the sandboxed command, its server, its memory limit, its log.
//!
//! The pool: an invocation takes an idle instance (warm) or starts one (cold, with `Init
//! Duration`); there is one invocation per instance, so `max_concurrency` bounds the
//! instances (the function's slots refuse the next one with 429 before it gets here). An
//! answered instance goes back to the pool; one that timed out, crashed or went over its memory
//! is dropped, which kills its processes, and the next invocation starts a fresh one. Idle
//! instances beyond `min_instances` stop after `idle_s`; `min_instances` are started ahead.

pub mod instance;
pub mod runtime_api;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use nimbus_core::clock;
use nimbus_sandbox::Sandbox;
use nimbus_store::Store;
use tokio::sync::{OnceCell, oneshot};

use self::instance::{Instance, Launch};
use self::runtime_api::{Pending, Reply};
use crate::function::{Call, InvokeError, Ran, Slot};
use crate::logs::LogBook;
use crate::spec::{FunctionSpec, SEALED_PREFIX};

/// What the server lends process functions.
#[derive(Clone)]
pub struct ProcessHost {
    /// The sandbox commands run in; `None` refuses process functions' invocations.
    pub sandbox: Option<Sandbox>,
    /// Seals and opens the secret environment values of functions.
    pub secrets: Arc<dyn Secrets>,
    /// Where bundles are unpacked (outside the data directory).
    pub task_roots: crate::bundle::TaskRoots,
    pub region: String,
}

/// Seals secret values at rest (the server's master key), bound to their function.
pub trait Secrets: Send + Sync {
    /// Seals `plain` for the function `owner`.
    fn seal(&self, plain: &str, owner: &str) -> String;
    /// Opens what [`Secrets::seal`] sealed for `owner`.
    fn open(&self, sealed: &str, owner: &str) -> Result<String, String>;
}

impl std::fmt::Debug for ProcessHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHost").field("sandbox", &self.sandbox).finish_non_exhaustive()
    }
}

struct Pool {
    idle: Vec<Arc<Instance>>,
    /// Instances running now, idle or busy.
    live: usize,
    /// Starts of `min_instances` in progress.
    warming: usize,
}

struct Shared {
    name: String,
    arn: String,
    version: String,
    spec: FunctionSpec,
    host: ProcessHost,
    store: Store,
    logs: Arc<LogBook>,
    pool: Mutex<Pool>,
    task_root: OnceCell<Result<PathBuf, String>>,
    last_peak_mb: AtomicU64,
}

/// The runtime of one process function.
pub struct ProcessRuntime {
    shared: Arc<Shared>,
}

/// A checked-out instance. Given back with [`Lease::release`]; dropped otherwise (a
/// timeout, a crash), which stops the instance.
struct Lease {
    shared: Arc<Shared>,
    instance: Option<Arc<Instance>>,
}

impl Lease {
    fn release(mut self) {
        if let Some(i) = self.instance.take() {
            i.touch();
            if i.alive() {
                self.shared.lock_pool().idle.push(i);
            } else {
                self.shared.lock_pool().live -= 1;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(i) = self.instance.take() {
            // The REPORT of a timed-out invocation reads the peak after this.
            self.shared.last_peak_mb.store(i.peak_mb(), Ordering::Relaxed);
            self.shared.lock_pool().live -= 1;
            tracing::debug!(function = %self.shared.name, instance = %i.id, "instance stopped");
            drop(i);
        }
    }
}

impl Shared {
    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sandbox(&self) -> Result<&Sandbox, InvokeError> {
        let sandbox = self.host.sandbox.as_ref().ok_or_else(|| {
            InvokeError::Unavailable(format!("function {}: this server runs no process functions", self.name))
        })?;
        sandbox.check_usable().map_err(|e| InvokeError::Unavailable(format!("function {}: {e}", self.name)))?;
        Ok(sandbox)
    }

    /// The task root: the bundle unpacked (and its requirements installed) once per
    /// function, or an empty directory for a function without code.
    async fn task_root(&self) -> Result<PathBuf, InvokeError> {
        let sandbox = self.sandbox()?;
        let root = self
            .task_root
            .get_or_init(|| async {
                match (&self.spec.code, &self.spec.code_sha256) {
                    (Some(uri), Some(sha)) => {
                        let python = crate::bundle::python_of(&self.spec.command);
                        let requirements = self.spec.requirements.as_deref();
                        let prepared =
                            self.host.task_roots.prepare(&self.store, uri, sha, requirements, python, sandbox).await;
                        match prepared {
                            Ok(dir) => Ok(dir),
                            Err(e) => {
                                let reason = format!("function {}: the code bundle could not be prepared: {e}", self.name);
                                self.logs.push(clock::now_ms(), [reason.clone()]);
                                Err(reason)
                            }
                        }
                    }
                    (Some(uri), None) => Err(format!(
                        "function {}: code {uri} has no recorded digest; deploy it with `nimbus functions deploy {} --code DIR`",
                        self.name, self.name
                    )),
                    (None, _) => self.host.task_roots.empty().map_err(|e| format!("function {}: {e}", self.name)),
                }
            })
            .await;
        root.clone().map_err(InvokeError::Unavailable)
    }

    /// The process environment: the declaration's variables, the opened secrets, and the
    /// standard Lambda ones.
    fn environment(&self, task_root: &std::path::Path, instance: &str) -> Result<Vec<(String, String)>, InvokeError> {
        let mut env: Vec<(String, String)> = Vec::new();
        for key in ["PATH", "LANG"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        if !env.iter().any(|(k, _)| k == "LANG") {
            env.push(("LANG".into(), "C.UTF-8".into()));
        }
        env.extend(self.spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (k, v) in &self.spec.secrets {
            let value = match v.strip_prefix(SEALED_PREFIX) {
                Some(sealed) => self.host.secrets.open(sealed, &self.name).map_err(|e| {
                    InvokeError::Unavailable(format!("function {}: secret {k} cannot be opened: {e}", self.name))
                })?,
                None => v.clone(),
            };
            env.push((k.clone(), value));
        }
        let day = &clock::rfc3339(clock::now_ms())[..10];
        let standard = [
            ("_HANDLER", self.spec.handler.clone().unwrap_or_default()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", self.version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.spec.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.name)),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("{}/[{}]{instance}", day.replace('-', "/"), self.version)),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", self.host.region.clone()),
            ("AWS_DEFAULT_REGION", self.host.region.clone()),
            ("TZ", ":UTC".into()),
            ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
            ("LAMBDA_RUNTIME_DIR", task_root.display().to_string()),
            ("PYTHONUNBUFFERED", "1".into()),
        ];
        env.extend(standard.into_iter().map(|(k, v)| (k.to_string(), v)));
        Ok(env)
    }

    /// Starts one instance.
    async fn start_instance(&self) -> Result<Instance, InvokeError> {
        let task_root = self.task_root().await?;
        let sandbox = self.sandbox()?;
        let id = nimbus_core::new_id();
        let env = self.environment(&task_root, &id)?;
        Instance::start(Launch {
            function: &self.name,
            arn: &self.arn,
            command: &self.spec.command,
            env,
            task_root: &task_root,
            memory_mb: self.spec.memory_mb,
            sandbox,
            logs: self.logs.clone(),
        })
        .await
    }
}

impl ProcessRuntime {
    /// A runtime with no instance yet; `min_instances` are started by the first
    /// [`ProcessRuntime::stop_idle`] tick.
    pub(crate) fn new(
        name: &str,
        version: &str,
        arn: &str,
        spec: FunctionSpec,
        host: ProcessHost,
        store: Store,
        logs: Arc<LogBook>,
    ) -> ProcessRuntime {
        let shared = Shared {
            name: name.to_string(),
            arn: arn.to_string(),
            version: version.to_string(),
            spec,
            host,
            store,
            logs,
            pool: Mutex::new(Pool { idle: Vec::new(), live: 0, warming: 0 }),
            task_root: OnceCell::new(),
            last_peak_mb: AtomicU64::new(0),
        };
        ProcessRuntime { shared: Arc::new(shared) }
    }

    /// Instances running now, idle or busy.
    pub fn instances(&self) -> usize {
        self.shared.lock_pool().live
    }

    /// Instances waiting for an invocation.
    pub fn idle_instances(&self) -> usize {
        self.shared.lock_pool().idle.len()
    }

    /// Peak memory of the most recently used instance, MB.
    pub(crate) fn memory_used_mb(&self) -> u64 {
        self.shared.last_peak_mb.load(Ordering::Relaxed)
    }

    /// An idle instance, or a new one (a cold start: its init time is returned).
    async fn acquire(&self) -> Result<(Lease, Option<f64>), InvokeError> {
        let shared = &self.shared;
        loop {
            let taken = shared.lock_pool().idle.pop();
            match taken {
                Some(i) if i.alive() => return Ok((Lease { shared: shared.clone(), instance: Some(i) }, None)),
                Some(_) => shared.lock_pool().live -= 1,
                None => break,
            }
        }
        shared.lock_pool().live += 1;
        match shared.start_instance().await {
            Ok(i) => {
                let init = i.init_ms;
                Ok((Lease { shared: shared.clone(), instance: Some(Arc::new(i)) }, Some(init)))
            }
            Err(e) => {
                shared.lock_pool().live -= 1;
                Err(e)
            }
        }
    }

    /// One invocation on one instance.
    pub(crate) async fn invoke(&self, slot: Slot, call: &Call, event: Bytes) -> Result<Ran<Bytes>, InvokeError> {
        let _slot = slot;
        let (lease, init_ms) = self.acquire().await?;
        let instance = lease.instance.clone().expect("a lease holds its instance");
        let deadline_ms = clock::now_ms()
            + call
                .deadline
                .map_or((self.shared.spec.timeout_s * 1000.0) as i64, |d| {
                    d.saturating_duration_since(std::time::Instant::now()).as_millis() as i64
                })
                .min((self.shared.spec.timeout_s * 1000.0) as i64);
        let (reply_tx, reply_rx) = oneshot::channel();
        let pending = Pending {
            request_id: Arc::from(call.request_id.as_str()),
            deadline_ms,
            event,
            trace_id: trace_id(),
            client_context: None,
            cognito_identity: None,
            reply: reply_tx,
        };
        let outcome = instance.invoke(pending, reply_rx).await;
        let peak = instance.peak_mb();
        self.shared.last_peak_mb.store(peak, Ordering::Relaxed);
        let ran = |value| Ran { value, init_ms, memory_mb: peak };
        match outcome {
            Ok(Reply::Response(body)) => {
                lease.release();
                Ok(ran(body))
            }
            Ok(Reply::Error { error_type, payload }) => {
                lease.release();
                let message = serde_json::from_slice::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
                    .unwrap_or_default();
                Err(InvokeError::Function { error_type, message, payload })
            }
            Ok(Reply::TooLarge) => {
                lease.release();
                Err(InvokeError::function(
                    "Function.ResponseSizeTooLarge",
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        runtime_api::MAX_RESPONSE_BYTES
                    ),
                ))
            }
            Err(e) => {
                if instance.over_memory() {
                    self.shared.logs.push(
                        clock::now_ms(),
                        [format!(
                            "{} {} ERROR the instance used more than its memory limit of {} MB and was killed; raise memory_mb",
                            clock::rfc3339(clock::now_ms()),
                            call.request_id,
                            self.shared.spec.memory_mb
                        )],
                    );
                }
                drop(lease);
                Err(e)
            }
        }
    }

    /// Stops idle instances unused for `idle_ms` (none when `idle_s` is 0) beyond
    /// `min_instances`, and starts instances up to `min_instances`. Called by the reaper.
    pub(crate) fn stop_idle(&self, now_ms: i64, idle_ms: i64) -> bool {
        let shared = &self.shared;
        let min = shared.spec.min_instances as usize;
        let mut stopped = Vec::new();
        {
            let mut pool = shared.lock_pool();
            // Dead idle instances go first.
            let before = pool.idle.len();
            pool.idle.retain(|i| i.alive());
            pool.live -= before - pool.idle.len();
            if shared.spec.idle_s > 0 {
                while pool.live > min {
                    let Some(pos) =
                        pool.idle.iter().position(|i| now_ms - i.last_used_ms.load(Ordering::Relaxed) >= idle_ms)
                    else {
                        break;
                    };
                    stopped.push(pool.idle.remove(pos));
                    pool.live -= 1;
                }
            }
            let missing = min.saturating_sub(pool.live + pool.warming);
            pool.warming += missing;
            for _ in 0..missing {
                let weak = Arc::downgrade(shared);
                tokio::spawn(warm_one(weak));
            }
        }
        if !stopped.is_empty() {
            shared.logs.push(
                clock::now_ms(),
                [format!("stopped {} idle instance(s) after {} s (scaled down)", stopped.len(), shared.spec.idle_s)],
            );
        }
        !stopped.is_empty()
    }
}

/// Starts one instance for `min_instances` and puts it in the pool.
async fn warm_one(shared: Weak<Shared>) {
    let Some(s) = shared.upgrade() else { return };
    s.lock_pool().live += 1;
    let started = s.start_instance().await;
    let mut pool = s.lock_pool();
    pool.warming -= 1;
    match started {
        Ok(i) => pool.idle.push(Arc::new(i)),
        Err(e) => {
            pool.live -= 1;
            drop(pool);
            s.logs.push(clock::now_ms(), [format!("could not start a warm instance: {e}")]);
        }
    }
}

/// An X-Ray-style trace id: `Root=1-{epoch hex}-{96 random bits};Parent={64 bits};Sampled=0`.
fn trace_id() -> String {
    let id = nimbus_core::new_id().replace('-', "");
    let secs = clock::now_ms() / 1000;
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=0", &id[..24], &id[16..32])
}
