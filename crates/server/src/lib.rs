//! The nimbus server: opens the data directory, wires the parts together and serves HTTP.
//!
//! This is the only crate that knows about HTTP and JSON wire shapes. Requests under
//! `/_nimbus/v1/` go through one chain: buffer the body (bounded) → authenticate (SigV4,
//! service `nimbus`) → route → handler → the error mapping in [`error`].
#![forbid(unsafe_code)]

pub mod admin;
mod auth;
mod body;
mod config;
mod datadir;
pub mod error;
mod invoke;
pub mod listener;
mod oauth;
mod state;
mod tls;

pub use config::{ServerConfig, TlsFiles};
pub use listener::Limits;
pub use state::{AppState, Parts};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use nimbus_core::arn::Partition;
use nimbus_iam::credentials::{self, Profile};
use nimbus_iam::crypto::MasterKey;
use nimbus_iam::{Iam, NewAccessKey};
use nimbus_meta::Db;
use nimbus_registry::Registry;
use nimbus_store::Store;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
    #[error(transparent)]
    Iam(#[from] nimbus_iam::IamError),
    #[error(transparent)]
    Store(#[from] nimbus_store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] nimbus_pipeline::PipelineError),
    #[error(transparent)]
    Functions(#[from] nimbus_functions::FunctionsError),
    #[error(transparent)]
    Gateway(#[from] nimbus_gateway::GatewayError),
    #[error(transparent)]
    Usage(#[from] nimbus_gateway::usage::UsageError),
    #[error(transparent)]
    Oauth(#[from] nimbus_oauth::OauthError),
    #[error("registry: {0}")]
    Registry(String),
    #[error("server: {0}")]
    Http(#[from] std::io::Error),
}

/// A started server: its state and bound address, not yet serving.
pub struct Server {
    pub state: AppState,
    pub addr: SocketAddr,
    /// The URL clients reach it at: `https://ADDR` with TLS, else `http://ADDR`.
    pub endpoint: String,
    listener: tokio::net::TcpListener,
    limits: listener::Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The admin key created on this start, when this was the first start.
    pub new_admin_key: Option<NewAccessKey>,
}

impl Server {
    /// Opens the data directory and metadata database, bootstraps the admin key on the first
    /// start, sweeps what an earlier crash left in the store, and binds the listener.
    pub async fn start(cfg: &ServerConfig) -> Result<Server, ServeError> {
        // First, before anything is created or opened: a wrong certificate or key is the most
        // likely mistake of a TLS start, and should cost nothing.
        let tls = cfg.tls.as_ref().map(tls::acceptor).transpose()?;
        let dir = &cfg.data_dir;
        let io = |source| ServeError::DataDir { path: dir.display().to_string(), source };
        datadir::prepare(dir).map_err(io)?;
        let open_files = datadir::raise_open_files_limit();
        if let Some(n) = open_files.filter(|n| *n < cfg.limits.max_connections as u64 + 64) {
            tracing::warn!(
                open_files = n,
                max_connections = cfg.limits.max_connections,
                "the open-file limit is below --max-connections; connections past it will fail to be accepted"
            );
        }
        let db = match &cfg.database {
            Some(url) => Db::open(url).await?,
            None => Db::open_sqlite(&dir.join("meta.db")).await?,
        };
        let partition = Partition { region: cfg.region.clone(), account: cfg.account.clone() };
        let key = MasterKey::load_or_create(&dir.join("master.key"))?;
        let iam = Iam::new(db.clone(), key.clone(), partition.clone());
        let store = Store::local(db.clone(), &dir.join("objects"))?;
        let swept = nimbus_store::fsck::sweep(&store).await?;
        if swept > 0 {
            tracing::warn!(files = swept, "removed blobs and temporary files an interrupted write left in the store");
        }
        let registry = Registry::new(db.clone());
        let held = registry.hold_artifacts().await.map_err(|e| ServeError::Registry(e.to_string()))?;
        if held > 0 {
            tracing::info!(artifacts = held, "placed holds on the artifacts of registered versions");
        }
        let sandbox = nimbus_pipeline::sandbox::Sandbox::choose(
            dir,
            cfg.sandbox_helper.clone(),
            cfg.allow_unconfined_processes,
            cfg.process_sandbox,
        );
        tracing::info!("process steps and functions: {}", sandbox.describe());
        let instance = datadir::instance_id(dir).map_err(io)?;
        let task_roots = nimbus_functions::TaskRoots::new(code_root(dir, sandbox.protection()));
        let unfinished = task_roots.sweep(std::time::Duration::from_secs(3600));
        if unfinished > 0 {
            tracing::warn!(directories = unfinished, "removed code directories an interrupted unpack left behind");
        }
        let process_host = nimbus_functions::ProcessHost {
            sandbox: Some(sandbox.clone()),
            secrets: Arc::new(SealedSecrets(key.clone())),
            task_roots,
            region: cfg.region.clone(),
        };
        let pipelines = nimbus_pipeline::Pipelines::new(
            db.clone(),
            store.clone(),
            registry.clone(),
            nimbus_pipeline::Runner { instance: instance.clone(), sandbox },
        );
        let recovered = pipelines.recover().await?;
        if recovered.failed > 0 {
            tracing::warn!(
                executions = recovered.failed,
                "marked pipeline executions whose server stopped (their lease expired) as failed"
            );
        }

        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|source| ServeError::Listen { addr: cfg.listen.clone(), source })?;
        let addr = listener.local_addr()?;
        let endpoint = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        nimbus_iam::crypto::write_private(&dir.join("endpoint"), format!("{endpoint}\n").as_bytes())?;

        let credentials_path = dir.join("credentials");
        let new_admin_key = iam
            .bootstrap_admin(|k| {
                credentials::write(
                    &credentials_path,
                    &Profile {
                        aws_access_key_id: k.access_key_id.clone(),
                        aws_secret_access_key: k.secret_access_key.clone(),
                        region: Some(cfg.region.clone()),
                        endpoint_url: Some(endpoint.clone()),
                    },
                )
            })
            .await?;
        let functions = nimbus_functions::Functions::open(
            db.clone(),
            store.clone(),
            registry.clone(),
            partition.clone(),
            process_host,
        )
        .await?;
        functions.start_queue(instance).await?;
        let issuer = cfg.public_url.clone().unwrap_or_else(|| endpoint.clone()).trim_end_matches('/').to_string();
        let oauth = nimbus_oauth::Oauth::open(db.clone(), key.clone(), issuer.clone()).await?;
        // The first signing key is made in the background (RSA key generation takes a moment),
        // so the start is not delayed and the first token request rarely waits for it.
        let first_key = oauth.clone();
        tokio::spawn(async move {
            if let Err(e) = first_key.prepare().await {
                tracing::error!("cannot prepare the token signing key: {e}");
            }
        });
        let usage = nimbus_gateway::usage::Usage::with_db_counters(db.clone(), key.derive("api-key-hash")).await?;
        let gateway = nimbus_gateway::Gateway::open(nimbus_gateway::GatewayParts {
            db: db.clone(),
            functions: functions.clone(),
            iam: iam.clone(),
            usage,
            verifier: oauth.verifier(),
            issuer,
        })
        .await?;
        let state = AppState::new(state::Parts {
            iam,
            oauth,
            store,
            registry,
            pipelines,
            functions,
            gateway,
            partition,
            db,
            allow_unsigned_local_invoke: cfg.allow_unsigned_local_invoke,
        });
        Ok(Server { state, addr, endpoint, listener, limits: cfg.limits, tls, new_admin_key })
    }

    /// The whole HTTP surface.
    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and pipeline
    /// executions' current writes, and closes the database.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let app = app(self.state.clone());
        listener::serve(self.listener, app, self.limits, self.tls, shutdown).await?;
        self.state.pipelines.shutdown().await;
        self.state.db.close().await;
        Ok(())
    }
}

/// The router of every listener path: the reserved prefixes, then the gateway for the rest.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/_nimbus/health", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .nest("/_nimbus/v1", admin::router(state.clone()))
        .route("/_nimbus/{*rest}", axum::routing::any(error::not_found))
        .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke::invoke))
        .route("/metrics", axum::routing::get(invoke::metrics))
        .route("/oauth2/token", axum::routing::post(oauth::token))
        .route("/.well-known/jwks.json", axum::routing::get(oauth::jwks))
        .route("/.well-known/openid-configuration", axum::routing::get(oauth::openid_configuration))
        .fallback(gateway)
        .with_state(state)
}

/// Everything outside the reserved prefixes goes to the API gateway.
async fn gateway(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
    state.gateway.handle(req, peer).await
}

/// Resolves on SIGTERM or Ctrl-C.
/// Function secrets sealed with the master key, bound to their function.
struct SealedSecrets(MasterKey);

impl nimbus_functions::process::Secrets for SealedSecrets {
    fn seal(&self, plain: &str, owner: &str) -> String {
        self.0.seal(plain, &format!("function:{owner}"))
    }

    fn open(&self, sealed: &str, owner: &str) -> Result<String, String> {
        self.0.open(sealed, &format!("function:{owner}")).map_err(|e| e.to_string())
    }
}

/// Where function bundles are unpacked: outside the data directory, which the sandbox closes
/// to commands. With Landlock, a read-only task root also keeps commands from creating
/// entries directly in the directories on the way to it, so it goes under the cache directory
/// (`~/.cache/nimbus/code`) rather than `/tmp`, which handlers expect to write. As the separate
/// user, it must be a path that user can reach, so `/tmp/nimbus-code`.
fn code_root(data_dir: &std::path::Path, protection: &nimbus_pipeline::sandbox::Protection) -> std::path::PathBuf {
    use nimbus_pipeline::sandbox::Protection;
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")));
    let root = match (protection, cache) {
        (Protection::Landlock, Some(cache)) => cache.join("nimbus").join("code"),
        _ => std::env::temp_dir().join("nimbus-code"),
    };
    if root.starts_with(&data_dir) {
        data_dir.parent().unwrap_or(std::path::Path::new("/")).join(".nimbus-code")
    } else {
        root
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
