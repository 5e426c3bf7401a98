//! Training pipelines: definitions ([`spec`]), their executions in the metadata database
//! ([`db`]), and the engine that runs them ([`engine`]).
//!
//! An execution runs inside the server as a background task. Each step's status, log,
//! outputs and cache key are written as it goes, so `nimbus pipelines run --wait` can follow
//! it. The running server owns the execution and renews a lease on it every few seconds; when
//! a server dies, [`Pipelines::recover`] (at start-up and periodically, on any server sharing
//! the database) takes over the executions whose lease has expired and marks them failed;
//! `--retry` then re-runs them from the failed step. `process` steps run in the
//! [`nimbus_sandbox`].
#![forbid(unsafe_code)]

pub mod db;
pub mod engine;
mod process;
pub mod spec;
mod steps;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_meta::Db;
use nimbus_registry::Registry;
use nimbus_store::Store;
use serde_json::Value;

pub use db::{Execution, PipelineInfo, Recovered, StepRun};
pub use nimbus_sandbox as sandbox;
pub use spec::PipelineSpec;

/// How long an execution's lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the owner renews the lease (and looks for a stop request from elsewhere).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The outcome of a step or execution stopped on request.
pub(crate) const STOPPED: &str = "stopped on request";

/// Errors of pipelines, naming the field, parameter or step at fault.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("pipeline {0:?} does not exist; declare it in nimbus.toml and run `nimbus apply`")]
    NotFound(String),
    #[error("execution {0:?} does not exist")]
    ExecutionNotFound(String),
    #[error("execution {id:?} cannot be retried: {reason}")]
    NotRetryable { id: String, reason: String },
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<nimbus_meta::sqlx::Error> for PipelineError {
    fn from(e: nimbus_meta::sqlx::Error) -> Self {
        PipelineError::Meta(e.into())
    }
}

/// What runs executions on this server: its instance id (the lease owner) and the sandbox of
/// `process` steps.
#[derive(Clone, Debug)]
pub struct Runner {
    /// This server's identity, kept in its data directory across restarts; recorded as the
    /// owner of the executions it runs, so that after a crash it takes its own back at once.
    pub instance: String,
    pub sandbox: nimbus_sandbox::Sandbox,
}

/// The pipeline service; cheap to clone.
#[derive(Clone)]
pub struct Pipelines {
    pub(crate) db: Db,
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    pub(crate) runner: Runner,
    /// The stop switch of every execution running here.
    running: Arc<Mutex<HashMap<String, tokio::sync::watch::Sender<bool>>>>,
}

/// The bucket that holds step artifacts.
pub const ARTIFACTS_BUCKET: &str = "nimbus-pipelines";

impl Pipelines {
    /// A pipeline service over the metadata database, store and registry. Starts the periodic
    /// recovery of executions whose server died.
    pub fn new(db: Db, store: Store, registry: Registry, runner: Runner) -> Pipelines {
        let p = Pipelines { db, store, registry, runner, running: Default::default() };
        let weak = Arc::downgrade(&p.running);
        let again = p.clone_detached();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE);
            tick.tick().await;
            loop {
                tick.tick().await;
                if weak.upgrade().is_none() {
                    return;
                }
                if let Err(e) = db::recover_expired(&again.db, None).await {
                    tracing::warn!(error = %e, "recovering executions of stopped servers failed");
                }
            }
        });
        p
    }

    /// A handle for background work that does not keep the running set alive.
    fn clone_detached(&self) -> Pipelines {
        Pipelines {
            db: self.db.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
            runner: self.runner.clone(),
            running: Default::default(),
        }
    }

    /// Called once at start-up, before anything runs: takes over the executions this instance
    /// owned before it stopped and those whose lease expired (another server stopped), each
    /// marked failed with the reason, or succeeded when every step had already finished. The
    /// periodic recovery afterwards takes over expired leases only, never what runs here.
    pub async fn recover(&self) -> Result<Recovered, PipelineError> {
        db::recover_expired(&self.db, Some(&self.runner.instance)).await
    }

    /// Stops a running execution: its current step is killed (a `process` step's whole
    /// process group) and it ends `Stopped`, retryable. Works from any server sharing the
    /// database: the owner notices at its next heartbeat.
    pub async fn stop(&self, id: &str, actor: &str) -> Result<Execution, PipelineError> {
        let exec = self.execution(id).await?;
        if exec.status != "Running" {
            return Err(PipelineError::NotRetryable {
                id: id.to_string(),
                reason: format!("it is {}, and only a Running execution can be stopped", exec.status),
            });
        }
        db::request_stop(&self.db, id, actor).await?;
        self.stop_local(id);
        // Give a local execution a moment to record that it stopped.
        for _ in 0..50 {
            let exec = self.execution(id).await?;
            if exec.status != "Running" || !self.running.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id) {
                return Ok(exec);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.execution(id).await
    }

    /// Flips the stop switch of an execution running here.
    pub(crate) fn stop_local(&self, id: &str) {
        if let Some(switch) = self.running.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            let _ = switch.send(true);
        }
    }

    /// Server shutdown: stops every execution running here (killing their commands) and gives
    /// them a moment to record that they were interrupted (`Failed`, retryable, as after a
    /// crash); one that cannot record it in time is left to the recovery at the next start.
    pub async fn shutdown(&self) {
        let switches: Vec<_> = self.running.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for s in &switches {
            let _ = s.send(true);
        }
        let killed = self.runner.sandbox.kill_all();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.running.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !switches.is_empty() || killed > 0 {
            tracing::info!(executions = switches.len(), commands = killed, "stopped pipeline work for shutdown");
        }
    }

    /// Stores (creates or replaces) a pipeline definition after checking it.
    pub async fn put(&self, name: &str, spec: &PipelineSpec, actor: &str) -> Result<PipelineInfo, PipelineError> {
        spec.validate(name)?;
        db::put_pipeline(&self.db, name, spec, actor).await?;
        self.get(name).await
    }

    /// All pipelines.
    pub async fn list(&self) -> Result<Vec<PipelineInfo>, PipelineError> {
        db::list_pipelines(&self.db).await
    }

    /// One pipeline.
    pub async fn get(&self, name: &str) -> Result<PipelineInfo, PipelineError> {
        db::get_pipeline(&self.db, name).await?.ok_or_else(|| PipelineError::NotFound(name.to_string()))
    }

    /// Starts an execution with parameter overrides (checked against their types first) and
    /// returns it; the steps run in the background.
    pub async fn start(
        &self,
        name: &str,
        overrides: &BTreeMap<String, Value>,
        actor: &str,
    ) -> Result<Execution, PipelineError> {
        let info = self.get(name).await?;
        let order = info.spec.validate(name)?;
        let params = info.spec.resolve_parameters(overrides)?;
        let id =
            db::create_execution(&self.db, name, &info.spec, &order, &params, actor, &self.runner.instance).await?;
        self.spawn(id.clone());
        self.execution(&id).await
    }

    /// Re-runs a failed execution from its failed step; steps that succeeded keep their
    /// results.
    /// The check and the reset are one conditional update, so two concurrent retries start
    /// one engine.
    pub async fn retry(&self, id: &str) -> Result<Execution, PipelineError> {
        let exec = self.execution(id).await?;
        if !db::reset_for_retry(&self.db, id, &self.runner.instance).await? {
            let now = self.execution(id).await.map(|e| e.status).unwrap_or(exec.status);
            return Err(PipelineError::NotRetryable {
                id: id.to_string(),
                reason: format!("it is {now}, and only a Failed or Stopped execution is retried"),
            });
        }
        self.spawn(id.to_string());
        self.execution(id).await
    }

    fn spawn(&self, id: String) {
        let (switch, stop) = tokio::sync::watch::channel(false);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), switch);
        let me = self.clone();
        tokio::spawn(async move {
            engine::run(me.clone(), id.clone(), stop).await;
            me.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    /// Executions of a pipeline, newest first.
    pub async fn executions(&self, pipeline: &str) -> Result<Vec<Execution>, PipelineError> {
        self.get(pipeline).await?;
        db::list_executions(&self.db, pipeline).await
    }

    /// One execution with its steps.
    pub async fn execution(&self, id: &str) -> Result<Execution, PipelineError> {
        db::get_execution(&self.db, id).await?.ok_or_else(|| PipelineError::ExecutionNotFound(id.to_string()))
    }
}
