//! One instance of a process function: the command running in the sandbox, its Runtime API
//! server, its memory limit, and the pump that moves its output lines into the function's log.
//!
//! Dropping an [`Instance`] stops it: the sandbox ends the command's whole process tree, the
//! Runtime API server stops, the cgroup and the work directory are removed.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nimbus_core::clock;
use nimbus_sandbox::{Command, Ending, LogLimits, MemoryLimit, Sandbox};
use tokio::sync::{mpsc, oneshot, watch};

use super::runtime_api::{InitResult, Pending, Reply, RuntimeApi};
use crate::function::InvokeError;
use crate::logs::LogBook;

/// How long an instance may run: the sandbox's own timeout is only a backstop, instances are
/// stopped by their function.
const INSTANCE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Everything an instance is started from.
pub struct Launch<'a> {
    pub function: &'a str,
    pub arn: &'a str,
    pub command: &'a [String],
    /// Variables of the process, the Lambda ones included.
    pub env: Vec<(String, String)>,
    pub task_root: &'a Path,
    pub memory_mb: u32,
    pub sandbox: &'a Sandbox,
    pub logs: Arc<LogBook>,
}

/// How an instance's command ended.
#[derive(Clone, Debug)]
pub enum Exit {
    Ended(Ending),
    /// The command could not be started at all.
    Failed(String),
}

impl Exit {
    /// Lambda's words for it: `exit status 1`, `signal: killed`.
    pub fn describe(&self) -> String {
        match self {
            Exit::Ended(e) => e.describe(),
            Exit::Failed(reason) => reason.clone(),
        }
    }
}

/// A running instance.
pub struct Instance {
    pub id: String,
    events: mpsc::Sender<Pending>,
    exit: watch::Receiver<Option<Exit>>,
    memory: Option<Arc<MemoryLimit>>,
    pub last_used_ms: AtomicI64,
    /// How long init took, for the REPORT of the invocation that started it.
    pub init_ms: f64,
    _api: RuntimeApi,
    _stop: watch::Sender<bool>,
}

impl Instance {
    /// Starts an instance and waits until its runtime asks for the first event (the end of
    /// init). An `init/error` post or the command ending first is the invocation's error.
    pub async fn start(launch: Launch<'_>) -> Result<Instance, InvokeError> {
        let started = Instant::now();
        let id = nimbus_core::new_id();
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            InvokeError::Unavailable(format!("function {}: cannot start an instance: {what}: {e}", launch.function))
        };
        let (events_tx, events_rx) = mpsc::channel::<Pending>(1);
        let (init_tx, init_rx) = oneshot::channel::<InitResult>();
        let current: Arc<Mutex<Option<Arc<str>>>> = Arc::default();
        let tag = current.clone();
        let api = RuntimeApi::start(
            launch.arn.to_string(),
            events_rx,
            init_tx,
            Box::new(move |id| *tag.lock().unwrap_or_else(|e| e.into_inner()) = id),
        )
        .await
        .map_err(|e| unavailable("runtime API port", &e))?;

        let work = launch
            .sandbox
            .work_dir(&format!("fn-{}", launch.function))
            .map_err(|e| unavailable("work directory", &e))?;
        let memory = launch
            .sandbox
            .memory_limit(&format!("fn-{}", launch.function), u64::from(launch.memory_mb) << 20)
            .map_err(|e| unavailable("memory limit", &e))?;
        let mut env = launch.env;
        env.push(("AWS_LAMBDA_RUNTIME_API".into(), api.addr.to_string()));
        let tmp = work.path().display().to_string();
        env.push(("HOME".into(), tmp.clone()));
        env.push(("TMPDIR".into(), tmp));
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<(bool, Vec<u8>)>();
        let cmd = Command {
            argv: launch.command.to_vec(),
            env,
            cwd: launch.task_root.to_path_buf(),
            timeout: INSTANCE_LIFETIME,
            log: LogLimits::default(),
            lines: Some(lines_tx),
            memory: Some(memory.clone()),
            read_only: vec![launch.task_root.to_path_buf()],
        };
        // The pump: each line goes to the function's log, tagged with the invocation running.
        let logs = launch.logs.clone();
        tokio::spawn(async move {
            while let Some((_, line)) = lines_rx.recv().await {
                let text = String::from_utf8_lossy(&line).into_owned();
                let request = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                logs.push_for(clock::now_ms(), request.as_ref(), [text]);
            }
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let (exit_tx, exit_rx) = watch::channel::<Option<Exit>>(None);
        let sandbox = launch.sandbox.clone();
        let (function, instance) = (launch.function.to_string(), id.clone());
        tokio::spawn(async move {
            let _work = work;
            let exit = match sandbox.run(&cmd, stop_rx, &mut |_| {}).await {
                Ok(outcome) => Exit::Ended(outcome.ending),
                Err(e) => Exit::Failed(e.to_string()),
            };
            tracing::debug!(function, instance, "instance ended: {}", exit.describe());
            let _ = exit_tx.send(Some(exit));
        });

        let mut exit = exit_rx.clone();
        let init = tokio::select! {
            init = init_rx => init.unwrap_or(Err(("Runtime.Unknown".into(), Bytes::new()))),
            _ = ended(&mut exit) => Err(("Runtime.ExitError".into(), Bytes::new())),
        };
        let instance = Instance {
            id,
            events: events_tx,
            exit: exit_rx,
            memory: Some(memory),
            last_used_ms: AtomicI64::new(clock::now_ms()),
            init_ms: started.elapsed().as_secs_f64() * 1e3,
            _api: api,
            _stop: stop_tx,
        };
        match init {
            Ok(()) => Ok(instance),
            Err((error_type, payload)) if !payload.is_empty() => {
                let message = serde_json::from_slice::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
                    .unwrap_or_default();
                Err(InvokeError::Function { error_type, message, payload })
            }
            Err(_) => Err(instance.exited_error(None).await),
        }
    }

    /// The error of an instance whose command ended (during init, or with `request_id` in
    /// progress), in Lambda's words.
    async fn exited_error(&self, request_id: Option<&str>) -> InvokeError {
        let mut exit = self.exit.clone();
        let described = match ended(&mut exit).await {
            Some(e) => e.describe(),
            None => "the instance stopped".into(),
        };
        if self.memory.as_ref().is_some_and(|m| m.exceeded()) {
            tracing::warn!(instance = %self.id, "the instance went over its memory limit and the kernel killed it");
        }
        let message = match request_id {
            Some(id) => format!("RequestId: {id} Error: Runtime exited with error: {described}"),
            None => format!("Runtime exited with error: {described}"),
        };
        InvokeError::function("Runtime.ExitError", message)
    }

    /// Whether the command still runs.
    pub fn alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// Whether the kernel killed the instance for going over its memory limit.
    pub fn over_memory(&self) -> bool {
        self.memory.as_ref().is_some_and(|m| m.exceeded())
    }

    /// Peak memory of the instance so far, MB (rounded up).
    pub fn peak_mb(&self) -> u64 {
        self.memory.as_ref().and_then(|m| m.peak_bytes()).map_or(0, |b| b.div_ceil(1 << 20))
    }

    /// Hands one event to the runtime and waits for its answer, or for the command to end.
    /// `Ok(Err(…))` is a handler's error on a healthy instance; `Err` means the instance is
    /// gone.
    pub async fn invoke(&self, pending: Pending, reply: oneshot::Receiver<Reply>) -> Result<Reply, InvokeError> {
        let request_id = pending.request_id.clone();
        if self.events.send(pending).await.is_err() {
            return Err(self.exited_error(Some(&request_id)).await);
        }
        let mut exit = self.exit.clone();
        tokio::select! {
            r = reply => match r {
                Ok(reply) => Ok(reply),
                // The runtime asked for the next event without answering this one.
                Err(_) => Err(InvokeError::function(
                    "Runtime.InvalidResponse",
                    format!("RequestId: {request_id} Error: the runtime asked for a new event without answering this one"),
                )),
            },
            _ = ended(&mut exit) => Err(self.exited_error(Some(&request_id)).await),
        }
    }

    /// Marks the instance used now.
    pub fn touch(&self) {
        self.last_used_ms.store(clock::now_ms(), Ordering::Relaxed);
    }
}

/// Waits until the instance's command has ended; `None` when its watcher is gone.
async fn ended(exit: &mut watch::Receiver<Option<Exit>>) -> Option<Exit> {
    exit.wait_for(Option::is_some).await.ok().and_then(|e| e.clone())
}
