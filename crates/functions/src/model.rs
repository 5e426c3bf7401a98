//! The model runtime: a registry selector served in-process.
//!
//! The loaded model sits behind an atomic pointer. A request takes a reference to whatever is
//! loaded when it starts and finishes on it, so a swap never disturbs requests in flight and
//! none waits for a load that is not its own cold start. Registry changes swap the model
//! ([`ModelRuntime::refresh`]); an idle model is dropped ([`ModelRuntime::unload_if_idle`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use nimbus_core::clock;
use nimbus_ml::predict::Predictor;
use nimbus_registry::{Registry, RegistryError, Selector};
use nimbus_store::Store;

use crate::function::{InvokeError, Ran, Slot};
use crate::logs::LogBook;
use crate::protocol::{self, Answer, Protocol};

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

/// The runtime of one model function.
pub struct ModelRuntime {
    /// The function's name, for messages.
    name: String,
    group: String,
    pub selector: Selector,
    memory_mb: u32,
    loaded: ArcSwapOption<Loaded>,
    load_lock: tokio::sync::Mutex<()>,
    /// The server's bounded pool of blocking prediction work.
    pub(crate) workers: Arc<tokio::sync::Semaphore>,
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    logs: Arc<LogBook>,
    /// A test hook: the load pauses between resolving the version and storing the model.
    #[cfg(test)]
    pub(crate) pause_after_resolve: std::sync::Mutex<Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>>,
}

/// Sets a blocking prediction's stop flag when the invocation is dropped (its timeout) before
/// the work came back.
struct StopOnDrop(Option<Arc<AtomicBool>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = &self.0 {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

impl ModelRuntime {
    /// A runtime that has loaded nothing yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        group: String,
        selector: Selector,
        memory_mb: u32,
        store: Store,
        registry: Registry,
        workers: Arc<tokio::sync::Semaphore>,
        logs: Arc<LogBook>,
    ) -> ModelRuntime {
        ModelRuntime {
            name: name.to_string(),
            group,
            selector,
            memory_mb,
            loaded: ArcSwapOption::empty(),
            load_lock: tokio::sync::Mutex::new(()),
            workers,
            store,
            registry,
            logs,
            #[cfg(test)]
            pause_after_resolve: Default::default(),
        }
    }

    /// The registry group served.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// What is loaded now, if anything.
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded.load_full()
    }

    /// Megabytes the REPORT line shows as used: the loaded model's size.
    pub(crate) fn memory_used_mb(&self) -> u64 {
        self.loaded.load().as_ref().map(|l| l.size_mb).unwrap_or(0)
    }

    fn log(&self, line: String) {
        tracing::info!(function = %self.name, "{line}");
        self.logs.push(clock::now_ms(), [line]);
    }

    /// The version the selector names now, without loading it (for metadata).
    pub async fn resolve(&self) -> Result<nimbus_registry::ModelVersion, RegistryError> {
        self.registry.resolve(&self.group, &self.selector).await
    }

    /// Resolves the selector and loads that version from the store.
    async fn load(&self) -> Result<Loaded, InvokeError> {
        let started = Instant::now();
        let group = self.group.as_str();
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
        if size_mb > u64::from(self.memory_mb) {
            return Err(InvokeError::Unavailable(format!(
                "function {}: model {group} version {} needs about {size_mb} MB, over memory_mb = {}; raise memory_mb",
                self.name, version.version, self.memory_mb
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
        self.log(format!("loaded model {} version {} in {:.2} ms", self.group, loaded.version, loaded.init_ms));
        self.loaded.store(Some(loaded.clone()));
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
        match self.registry.resolve(&self.group, &self.selector).await {
            Ok(v) if v.version == current.version => {}
            Ok(_) => match self.load().await {
                Ok(next) => {
                    self.log(format!(
                        "swapped model {} version {} -> {} (loaded in {:.2} ms)",
                        self.group, current.version, next.version, next.init_ms
                    ));
                    self.loaded.store(Some(Arc::new(next)));
                }
                Err(e) => self.log(format!("kept version {}: the new version did not load: {e}", current.version)),
            },
            Err(RegistryError::Unresolved { .. } | RegistryError::GroupNotFound(_)) => {
                self.loaded.store(None);
                self.log(format!(
                    "unloaded model {} version {}: the selector {} matches no version now",
                    self.group, current.version, self.selector
                ));
            }
            Err(e) => self.log(format!("kept version {}: registry lookup failed: {e}", current.version)),
        }
    }

    /// Drops the loaded model (scale to zero); false when nothing was loaded.
    pub(crate) fn unload(&self, idle_s: u64) -> bool {
        if self.loaded.swap(None).is_none() {
            return false;
        }
        self.log(format!("unloaded after {idle_s} s idle (scaled to zero)"));
        true
    }

    /// Whether a model is in memory.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load().is_some()
    }

    /// Answers one request body: inline when small, on the bounded blocking pool when large.
    /// The slot goes with blocking work, so it is given back when the work really ends.
    pub(crate) async fn answer(
        &self,
        slot: Slot,
        protocol: Protocol,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Ran<Answer>, InvokeError> {
        let (loaded, init_ms) = self.warm().await?;
        let answer = if body.len() > protocol::INLINE_BODY_BYTES {
            let permit = self
                .workers
                .clone()
                .try_acquire_owned()
                .map_err(|_| InvokeError::Busy { workers: crate::prediction_workers() })?;
            let stop = Arc::new(AtomicBool::new(false));
            let _stop_on_drop = StopOnDrop(Some(stop.clone()));
            let (ct, body, l) = (content_type.map(str::to_string), body.to_vec(), loaded.clone());
            tokio::task::spawn_blocking(move || {
                let _held = (slot, permit);
                protocol::answer(&l, &protocol, ct.as_deref(), &body, Some(&stop))
            })
            .await
            .map_err(|e| InvokeError::Unavailable(format!("prediction stopped: {e}")))?
        } else {
            let answer = protocol::answer(&loaded, &protocol, content_type, body, None);
            drop(slot);
            answer
        };
        Ok(Ran { value: answer, init_ms, memory_mb: loaded.size_mb })
    }
}
