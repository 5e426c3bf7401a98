//! Identity and authentication: users, access keys, secrets sealed at rest, SigV4.
//!
//! [`sigv4`] is protocol glue with no storage; [`Iam`] ties it to the metadata database and
//! the master key. Nothing here knows about HTTP frameworks: the server turns a request into
//! a [`sigv4::Request`] and asks [`Iam::authenticate`] who sent it.
#![forbid(unsafe_code)]

pub mod credentials;
pub mod crypto;
mod keys;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod sigv4;

pub use keys::{Iam, NewAccessKey, Prepared, Principal};

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
