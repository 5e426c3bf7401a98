//! Training pipelines: definitions ([`spec`]), their executions in the metadata database
//! ([`db`]), and the engine that runs them ([`engine`]).
//!
//! An execution runs inside the server as a background task. Each step's status, log,
//! outputs and cache key are written as it goes, so `nimbus pipelines run --wait` can follow
//! it, and a server that dies mid-run finds the execution on restart and marks it failed
//! ([`Pipelines::recover`]); `--retry` then re-runs it from the failed step.
#![forbid(unsafe_code)]

pub mod db;
pub mod engine;
mod process;
pub mod spec;
mod steps;

use std::collections::BTreeMap;

use nimbus_meta::Db;
use nimbus_registry::Registry;
use nimbus_store::Store;
use serde_json::Value;

pub use db::{Execution, PipelineInfo, StepRun};
pub use spec::PipelineSpec;

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

/// The pipeline service; cheap to clone.
#[derive(Clone)]
pub struct Pipelines {
    pub(crate) db: Db,
    /// Where `process` steps get their work directories.
    pub(crate) work_dir: std::path::PathBuf,
    pub(crate) store: Store,
    pub(crate) registry: Registry,
}

/// The bucket that holds step artifacts.
pub const ARTIFACTS_BUCKET: &str = "nimbus-pipelines";

impl Pipelines {
    /// A pipeline service over the metadata database, store and registry.
    pub fn new(db: Db, store: Store, registry: Registry, work_dir: std::path::PathBuf) -> Pipelines {
        Pipelines { db, store, registry, work_dir }
    }

    /// Marks executions left running by a previous server process as failed, with the
    /// reason. Call once at start-up, before serving.
    pub async fn recover(&self) -> Result<usize, PipelineError> {
        db::fail_interrupted(&self.db).await
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
        let id = db::create_execution(&self.db, name, &info.spec, &order, &params, actor).await?;
        self.spawn(id.clone());
        self.execution(&id).await
    }

    /// Re-runs a failed execution from its failed step; steps that succeeded keep their
    /// results.
    pub async fn retry(&self, id: &str) -> Result<Execution, PipelineError> {
        let exec = self.execution(id).await?;
        if exec.status != "Failed" {
            return Err(PipelineError::NotRetryable {
                id: id.to_string(),
                reason: format!("it is {}, and only a Failed execution is retried", exec.status),
            });
        }
        db::reset_for_retry(&self.db, id).await?;
        self.spawn(id.to_string());
        self.execution(id).await
    }

    fn spawn(&self, id: String) {
        let me = self.clone();
        tokio::spawn(async move { engine::run(me, id).await });
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
