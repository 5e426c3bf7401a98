//! The shared state every handler sees.

use nimbus_core::arn::Partition;
use nimbus_functions::Functions;
use nimbus_gateway::Gateway;
use nimbus_iam::Iam;
use nimbus_meta::Db;
use nimbus_pipeline::Pipelines;
use nimbus_registry::Registry;
use nimbus_store::Store;

/// Handles on every part; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub iam: Iam,
    pub store: Store,
    pub registry: Registry,
    pub pipelines: Pipelines,
    pub functions: Functions,
    pub gateway: Gateway,
    pub partition: Partition,
    pub db: Db,
    /// Largest accepted request body, bytes.
    pub max_body: usize,
}
