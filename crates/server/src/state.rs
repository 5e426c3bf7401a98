//! The shared state every handler sees.

use std::sync::Arc;

use nimbus_core::arn::Partition;
use nimbus_functions::Functions;
use nimbus_gateway::Gateway;
use nimbus_iam::Iam;
use nimbus_meta::Db;
use nimbus_pipeline::Pipelines;
use nimbus_registry::Registry;
use nimbus_store::Store;

/// The shared state: one allocation, so the per-request clone axum makes is a reference count.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// Handles on every part.
pub struct Parts {
    pub iam: Iam,
    /// The OAuth2 authorization server.
    pub oauth: nimbus_oauth::Oauth,
    pub store: Store,
    pub registry: Registry,
    pub pipelines: Pipelines,
    pub functions: Functions,
    pub gateway: Gateway,
    pub partition: Partition,
    pub db: Db,
    /// Whether the local-emulator Invoke path answers unsigned requests from loopback.
    pub allow_unsigned_local_invoke: bool,
}
