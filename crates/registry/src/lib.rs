//! The model registry (SageMaker Model Registry's role): model groups, versions numbered
//! 1, 2, 3… per group, approval status with who/when/why, aliases that move atomically, and
//! selectors (`latest-approved`, `@alias`, a number) that serving uses to pick a model.
//!
//! Every change happens in one metadata transaction and is then announced as a
//! [`RegistryEvent`] to in-process subscribers (functions reload on it).
#![forbid(unsafe_code)]

pub mod bundle;
mod events;
mod registry;
mod selector;
mod types;

pub use events::RegistryEvent;
pub use registry::{Registered, Registry};
pub use selector::Selector;
pub use types::{
    ApprovalStatus, Dataset, Field, FieldType, Lineage, ModelEvent, ModelGroup, ModelVersion, NewVersion, Schema,
};

/// Errors of the registry. Each names the resource and, where one exists, the way out.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidName(#[from] nimbus_core::names::InvalidName),
    #[error("model group {0:?} does not exist")]
    GroupNotFound(String),
    #[error("model group {0:?} already exists")]
    GroupExists(String),
    #[error("model group {group:?} has no version {version}")]
    VersionNotFound { group: String, version: i64 },
    #[error("model group {group:?} has no alias {alias:?}")]
    AliasNotFound { group: String, alias: String },
    /// The requested approval change is not allowed from the current status.
    #[error("cannot set version {version} of {group:?} to {to}: {reason}")]
    InvalidTransition { group: String, version: i64, to: ApprovalStatus, reason: String },
    /// A selector that names nothing servable.
    #[error("selector {selector:?} of model group {group:?} resolves to nothing: {reason}")]
    Unresolved { group: String, selector: String, reason: String },
    /// A field of a request is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// The artifact cannot be registered: it does not exist, or it is not the object whose
    /// digest was recorded.
    #[error("artifact: {0}")]
    Artifact(String),
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<nimbus_core::schema::SchemaError> for RegistryError {
    fn from(e: nimbus_core::schema::SchemaError) -> Self {
        RegistryError::InvalidField { field: e.field, reason: e.reason }
    }
}

impl From<nimbus_meta::sqlx::Error> for RegistryError {
    fn from(e: nimbus_meta::sqlx::Error) -> Self {
        RegistryError::Meta(e.into())
    }
}
