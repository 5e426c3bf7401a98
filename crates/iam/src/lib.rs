//! Identity and authentication: users, access keys, secrets sealed at rest, SigV4.
//!
//! [`sigv4`] is protocol glue with no storage; [`Iam`] ties it to the metadata database and
//! the master key. Nothing here knows about HTTP frameworks: the server turns a request into
//! a [`sigv4::Request`] and asks [`Iam::authenticate`] who sent it.
#![forbid(unsafe_code)]

mod authorize;
pub mod credentials;
pub mod crypto;
mod directory;
mod keys;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod sigv4;

pub use authorize::{Authorization, RequestFacts};
pub use directory::{ADMINISTRATOR_ACCESS, Attachment, GroupInfo, ManagedPolicy, PrincipalKind, RoleInfo, UserInfo};
pub use keys::{AccessKeyInfo, Iam, NewAccessKey, Prepared, Principal};

/// Errors of the identity layer.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The request's signature was not accepted.
    #[error(transparent)]
    Signature(#[from] sigv4::SigError),
    /// A name breaks its rules.
    #[error(transparent)]
    InvalidName(#[from] nimbus_core::names::InvalidName),
    /// The user does not exist.
    #[error("user {0:?} does not exist")]
    UserNotFound(String),
    /// A user, group, role, policy or key does not exist.
    #[error("{kind} {name:?} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// A user, group, role or policy of that name exists already.
    #[error("{kind} {name:?} already exists")]
    Exists { kind: &'static str, name: String },
    /// A policy document breaks the grammar; the error points at the statement and key.
    #[error("policy {name}: {error}")]
    Policy { name: String, error: policy::PolicyError },
    /// The change would break something that depends on it; the message says what.
    #[error("{0}")]
    Conflict(String),
    /// The master key is missing, malformed or cannot open a sealed secret.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Reading or writing a key or credentials file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<nimbus_meta::sqlx::Error> for IamError {
    fn from(e: nimbus_meta::sqlx::Error) -> Self {
        IamError::Meta(nimbus_meta::MetaError::Sql(e))
    }
}
