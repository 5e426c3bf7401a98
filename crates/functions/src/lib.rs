//! Functions: model functions that serve a registry selector in-process, and process
//! functions that run any Lambda handler through the Lambda Runtime API.
//!
//! - [`spec`]: the declaration (`[functions.NAME]` in `nimbus.toml`) and its validation.
//! - [`function`]: one function at run time, whatever its kind — concurrency limit, deadline,
//!   START/END/REPORT, metrics — in front of its runtime:
//! - [`model`]: lazy load (the cold start), atomic hot swap on registry changes, idle unload
//!   (scale to zero);
//! - [`process`]: instances of a command, each with its own Runtime API server, in the
//!   sandbox, with a memory limit; cold starts, reuse, scale to zero and `min_instances`;
//! - [`bundle`]: code bundles (zip) unpacked once into read-only task roots, requirements
//!   installed with pip.
//! - [`versions`]: published versions (frozen declarations, a model pinned) and aliases
//!   with weighted routing; [`Functions::resolve`] picks the function a qualifier names.
//! - [`queue`]: asynchronous invocations kept in the metadata database, retried, and their
//!   failures.
//! - [`protocol`]: prediction request bodies in, `{"predictions": …}` out.
//! - [`lambda`]: Invoke API payloads and proxy responses.
//! - [`logs`], [`metrics`]: START/END/REPORT lines and Prometheus counters.
//!
//! [`Functions`] holds the deployed set. Declarations are stored in the metadata database
//! (`specs`, kind `function`) and compiled into an immutable table that is swapped whole on
//! every change, so the request path reads it without locks.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod function;
pub mod lambda;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod process;
pub mod protocol;
pub mod queue;
pub mod spec;
pub mod versions;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use nimbus_core::arn::Partition;
use nimbus_core::clock;
use nimbus_meta::Db;
use nimbus_registry::Registry;
use nimbus_store::Store;
use tokio::sync::broadcast::error::RecvError;

pub use bundle::{BundleError, TaskRoots};
pub use function::{Call, Function, Invocation, InvokeError, Runtime};
pub use model::Loaded;
pub use process::ProcessHost;
pub use protocol::Answer;
pub use spec::{FunctionKind, FunctionSpec};
pub use versions::{Alias, LATEST, Qualifier, Version};

/// The metadata kind of stored function declarations.
const KIND: &str = "function";

/// How often idle functions are checked for unloading.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Errors of managing functions.
#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    /// A declaration is invalid; the message names the field.
    #[error("function {name}: {reason}")]
    Invalid { name: String, reason: String },
    /// No such function.
    #[error("function {0:?} does not exist")]
    NotFound(String),
    /// The function has no such published version.
    #[error("function {function} has no version {version}; see `nimbus functions versions {function}`")]
    VersionNotFound { function: String, version: i64 },
    /// The function has no such alias.
    #[error("function {function} has no alias {alias:?}; see `nimbus functions alias list {function}`")]
    AliasNotFound { function: String, alias: String },
    /// The current declaration cannot be published as it stands (a model selector that names
    /// no version).
    #[error("function {name}: cannot publish: {reason}")]
    NotPublishable { name: String, reason: String },
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

struct Inner {
    db: Db,
    store: Store,
    registry: Registry,
    partition: Partition,
    /// Each function's current declaration (`$LATEST`), by name.
    table: ArcSwap<HashMap<String, Arc<Function>>>,
    /// Each function's published versions and aliases, by function name.
    published: ArcSwap<HashMap<String, Arc<versions::Published>>>,
    /// Held by every create, replace, delete, publish and alias change: the `default` check,
    /// the stored rows and the tables change as one step.
    put_lock: tokio::sync::Mutex<()>,
    /// The bounded pool of blocking prediction work, shared by every function.
    workers: Arc<tokio::sync::Semaphore>,
    /// What process functions run on.
    host: ProcessHost,
    /// Wakes the asynchronous-event worker when an event is accepted.
    queue_wake: tokio::sync::Notify,
}

/// How many large predictions run on the blocking pool at once: two per core. One more is
/// answered 429 at once rather than queued behind them.
pub fn prediction_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// The deployed functions; cheap to clone.
#[derive(Clone)]
pub struct Functions {
    inner: Arc<Inner>,
}

impl Functions {
    /// Loads the stored declarations (nothing is loaded into memory until first use) and
    /// starts the registry watcher and the idle reaper.
    pub async fn open(
        db: Db,
        store: Store,
        registry: Registry,
        partition: Partition,
        host: ProcessHost,
    ) -> Result<Functions, FunctionsError> {
        let inner = Arc::new(Inner {
            db,
            store,
            registry,
            partition,
            host,
            queue_wake: tokio::sync::Notify::new(),
            table: ArcSwap::from_pointee(HashMap::new()),
            published: ArcSwap::from_pointee(HashMap::new()),
            put_lock: tokio::sync::Mutex::new(()),
            workers: Arc::new(tokio::sync::Semaphore::new(prediction_workers())),
        });
        let functions = Functions { inner };
        let mut table = HashMap::new();
        for stored in functions.inner.db.specs(KIND).await? {
            match serde_json::from_str::<FunctionSpec>(&stored.spec) {
                Ok(spec) => match functions.build(&stored.name, None, spec) {
                    Ok(f) => {
                        table.insert(stored.name.clone(), Arc::new(f));
                    }
                    Err(e) => tracing::error!(function = %stored.name, "stored function is invalid, not deployed: {e}"),
                },
                Err(e) => tracing::error!(function = %stored.name, "stored function is damaged, not deployed: {e}"),
            }
        }
        functions.inner.table.store(Arc::new(table));
        let published = functions.load_published().await?;
        functions.inner.published.store(Arc::new(published));
        functions.spawn_watcher();
        functions.spawn_reaper();
        Ok(functions)
    }

    /// The run-time function of a declaration: `$LATEST` (`published` is `None`) or a
    /// published version, each with its own ARN, runtime, logs and metrics.
    fn build(&self, name: &str, published: Option<i64>, spec: FunctionSpec) -> Result<Function, FunctionsError> {
        let selector = spec
            .validate(name)
            .and_then(|selector| spec.validate_stored().map(|()| selector))
            .map_err(|reason| FunctionsError::Invalid { name: name.to_string(), reason })?;
        let p = &self.inner.partition;
        let version = published.map_or_else(|| LATEST.to_string(), |n| n.to_string());
        let (arn, display) = match published {
            None => (format!("arn:aws:lambda:{}:{}:function:{name}", p.region, p.account), name.to_string()),
            Some(n) => {
                (format!("arn:aws:lambda:{}:{}:function:{name}:{n}", p.region, p.account), format!("{name}:{n}"))
            }
        };
        let logs = Arc::new(logs::LogBook::default());
        let runtime = match spec.kind {
            FunctionKind::Model => Runtime::Model(model::ModelRuntime::new(
                &display,
                spec.model_group.clone().unwrap_or_default(),
                selector,
                spec.memory_mb,
                self.inner.store.clone(),
                self.inner.registry.clone(),
                self.inner.workers.clone(),
                logs.clone(),
            )),
            FunctionKind::Process => Runtime::Process(process::ProcessRuntime::new(
                name,
                &version,
                &arn,
                // `min_instances` keeps `$LATEST` warm. A published version scales to zero:
                // warming every version ever published would multiply idle instances with each
                // publish (Lambda keeps versions warm only by provisioned concurrency, set per
                // alias or version, not frozen in it).
                FunctionSpec {
                    min_instances: if published.is_some() { 0 } else { spec.min_instances },
                    ..spec.clone()
                },
                self.inner.host.clone(),
                self.inner.store.clone(),
                logs.clone(),
            )),
        };
        Ok(Function::new(name.to_string(), version, spec, arn, runtime, logs))
    }

    /// Creates or replaces a function. Returns `false` when the stored declaration was already
    /// this one (the running function is kept, warm).
    pub async fn put(&self, name: &str, mut spec: FunctionSpec, actor: &str) -> Result<bool, FunctionsError> {
        spec.validate(name).map_err(|reason| FunctionsError::Invalid { name: name.to_string(), reason })?;
        let _one_at_a_time = self.inner.put_lock.lock().await;
        self.seal_secrets(name, &mut spec)?;
        let function = Arc::new(self.build(name, None, spec.clone())?);
        if spec.default
            && let Some(other) = self.list().into_iter().find(|f| f.spec.default && f.name != name)
        {
            return Err(FunctionsError::Invalid {
                name: name.to_string(),
                reason: format!("default: function {} is already the default; only one function can be", other.name),
            });
        }
        let changed = self.inner.db.put_spec(KIND, name, &spec, clock::now_ms(), actor).await?;
        if changed || self.get(name).is_none() {
            self.inner.table.rcu(|table| {
                let mut table = HashMap::clone(table);
                table.insert(name.to_string(), function.clone());
                table
            });
        }
        Ok(changed)
    }

    /// Seals every plain secret value of `spec`. A value equal to the one stored keeps its
    /// sealed form (so an unchanged declaration stays unchanged); a value that is already
    /// sealed must open with this server's key.
    fn seal_secrets(&self, name: &str, spec: &mut FunctionSpec) -> Result<(), FunctionsError> {
        let current = self.get(name);
        let stored = current.as_ref().map(|f| &f.spec.secrets);
        let secrets = &self.inner.host.secrets;
        for (key, value) in spec.secrets.iter_mut() {
            if let Some(sealed) = value.strip_prefix(spec::SEALED_PREFIX) {
                secrets.open(sealed, name).map_err(|_| FunctionsError::Invalid {
                    name: name.to_string(),
                    reason: format!(
                        "secrets.{key}: the sealed value does not open with this server's master key; give the plain value"
                    ),
                })?;
                continue;
            }
            let same = stored
                .and_then(|s| s.get(key))
                .and_then(|old| old.strip_prefix(spec::SEALED_PREFIX))
                .filter(|old| secrets.open(old, name).is_ok_and(|plain| plain == *value));
            *value = match same {
                Some(old) => format!("{}{old}", spec::SEALED_PREFIX),
                None => format!("{}{}", spec::SEALED_PREFIX, secrets.seal(value, name)),
            };
        }
        Ok(())
    }

    /// Removes a function with its published versions and aliases, in one transaction: a
    /// function created again under this name starts again at version 1.
    pub async fn delete(&self, name: &str) -> Result<(), FunctionsError> {
        use nimbus_meta::sqlx;
        let _one_at_a_time = self.inner.put_lock.lock().await;
        let sql = |e: sqlx::Error| FunctionsError::Meta(e.into());
        let mut tx = self.inner.db.write().await?;
        let removed = sqlx::query("DELETE FROM specs WHERE kind = $1 AND name = $2")
            .bind(KIND)
            .bind(name)
            .execute(&mut *tx.tx)
            .await
            .map_err(sql)?
            .rows_affected();
        if removed == 0 {
            return Err(FunctionsError::NotFound(name.to_string()));
        }
        for table in ["function_versions", "function_aliases"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE function_name = $1"))
                .bind(name)
                .execute(&mut *tx.tx)
                .await
                .map_err(sql)?;
        }
        tx.commit().await?;
        self.inner.table.rcu(|table| {
            let mut table = HashMap::clone(table);
            table.remove(name);
            table
        });
        self.inner.published.rcu(|table| {
            let mut table = HashMap::clone(table);
            table.remove(name);
            table
        });
        Ok(())
    }

    /// The function called `name`, as currently declared (`$LATEST`).
    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.inner.table.load().get(name).cloned()
    }

    /// Every function, by name.
    pub fn list(&self) -> Vec<Arc<Function>> {
        let mut all: Vec<Arc<Function>> = self.inner.table.load().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The function the local-emulator path invokes: the one marked `default`, or the only one.
    pub fn default_function(&self) -> Option<Arc<Function>> {
        let table = self.inner.table.load();
        table
            .values()
            .find(|f| f.spec.default)
            .cloned()
            .or_else(|| if table.len() == 1 { table.values().next().cloned() } else { None })
    }

    /// Reloads functions whose selector may now resolve elsewhere after a registry change.
    fn spawn_watcher(&self) {
        let mut events = self.inner.registry.subscribe();
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let group = match events.recv().await {
                    Ok(e) => Some(e.group().to_string()),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                // Published versions too: a pinned model that is deleted or rejected is unloaded.
                let affected: Vec<Arc<Function>> = Functions { inner }
                    .everything()
                    .into_iter()
                    .filter(|f| group.as_deref().is_none_or(|g| f.group() == g))
                    .collect();
                for f in affected {
                    // Loads run in the background; requests keep using the current model.
                    tokio::spawn(async move { f.refresh().await });
                }
            }
        });
    }

    /// Unloads models idle longer than their function's `idle_s`.
    fn spawn_reaper(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let now = clock::now_ms();
                for f in (Functions { inner }).everything() {
                    f.unload_if_idle(now);
                }
            }
        });
    }

    /// The Prometheus text of every function's counters. `$LATEST` is labelled by `function`
    /// alone (as before versions existed); each published version adds `version="N"`.
    pub fn render_metrics(&self, out: &mut String) {
        use metrics::{family, label};
        let published = self.inner.published.load();
        let mut all: Vec<(Arc<Function>, String)> = Vec::new();
        for f in self.list() {
            let labels = format!("function=\"{}\"", label(&f.name));
            let versions = published.get(&f.name).map(|p| p.versions.values().cloned().collect::<Vec<_>>());
            all.push((f, labels.clone()));
            for v in versions.unwrap_or_default() {
                all.push((v.function.clone(), format!("{labels},version=\"{}\"", v.number)));
            }
        }
        type Counter = (&'static str, &'static str, fn(&Function) -> u64);
        let counters: [Counter; 5] = [
            ("nimbus_function_invocations_total", "Invocations, including errors and throttles.", |f| {
                f.metrics.invocations.load(Ordering::Relaxed)
            }),
            ("nimbus_function_errors_total", "Invocations that ended in a function error or timeout.", |f| {
                f.metrics.errors.load(Ordering::Relaxed)
            }),
            ("nimbus_function_throttles_total", "Invocations refused over max_concurrency.", |f| {
                f.metrics.throttles.load(Ordering::Relaxed)
            }),
            ("nimbus_function_timeouts_total", "Invocations stopped at their timeout or the caller's deadline.", |f| {
                f.metrics.timeouts.load(Ordering::Relaxed)
            }),
            ("nimbus_function_cold_starts_total", "Invocations that loaded the model first.", |f| {
                f.metrics.cold_starts.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, value) in counters {
            family(out, name, "counter", help);
            for (f, labels) in &all {
                let _ = writeln!(out, "{name}{{{labels}}} {}", value(f));
            }
        }
        family(out, "nimbus_function_concurrent_executions", "gauge", "Invocations running now.");
        for (f, labels) in &all {
            let _ = writeln!(out, "nimbus_function_concurrent_executions{{{labels}}} {}", f.in_flight());
        }
        family(out, "nimbus_function_loaded_version", "gauge", "The model version in memory; 0 when scaled to zero.");
        for (f, labels) in &all {
            let v = f.loaded().map(|l| l.version).unwrap_or(0);
            let _ = writeln!(out, "nimbus_function_loaded_version{{{labels}}} {v}");
        }
        family(out, "nimbus_function_duration_seconds", "histogram", "Invocation duration, excluding the cold start.");
        for (f, labels) in &all {
            f.metrics.duration.render(out, "nimbus_function_duration_seconds", labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) async fn functions() -> (tempfile::TempDir, Functions) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("meta.db")).await.unwrap();
        let store = Store::local(db.clone(), &dir.path().join("objects")).unwrap();
        let registry = Registry::new(db.clone());
        let partition = Partition { region: "us-east-1".into(), account: "000000000000".into() };
        let host = test_host(&dir);
        (dir, Functions::open(db, store, registry, partition, host).await.unwrap())
    }

    struct Plain;
    impl process::Secrets for Plain {
        fn seal(&self, plain: &str, owner: &str) -> String {
            format!("{owner}:{plain}")
        }
        fn open(&self, sealed: &str, owner: &str) -> Result<String, String> {
            sealed.strip_prefix(&format!("{owner}:")).map(str::to_string).ok_or_else(|| "not sealed for it".into())
        }
    }

    fn test_host(dir: &tempfile::TempDir) -> ProcessHost {
        ProcessHost {
            sandbox: None,
            secrets: Arc::new(Plain),
            task_roots: bundle::TaskRoots::new(dir.path().join("code")),
            region: "us-east-1".into(),
        }
    }

    fn spec(default: bool) -> FunctionSpec {
        serde_json::from_value(serde_json::json!({"kind": "model", "model_group": "g", "default": default})).unwrap()
    }

    #[tokio::test]
    async fn concurrent_puts_lose_no_function_and_one_default_wins() {
        let (_dir, f) = functions().await;
        let puts = (0..16).map(|i| {
            let f = f.clone();
            tokio::spawn(async move { f.put(&format!("f{i}"), spec(false), "t").await })
        });
        for p in puts {
            p.await.unwrap().unwrap();
        }
        assert_eq!(f.list().len(), 16, "every concurrent create is in the table");
        let defaults = (0..8).map(|i| {
            let f = f.clone();
            tokio::spawn(async move { f.put(&format!("d{i}"), spec(true), "t").await.is_ok() })
        });
        let mut won = 0;
        for d in defaults {
            won += usize::from(d.await.unwrap());
        }
        assert_eq!(won, 1, "exactly one of the racing defaults is accepted");
        assert_eq!(f.list().iter().filter(|x| x.spec.default).count(), 1);
    }
}
