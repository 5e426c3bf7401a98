//! Server settings, typed, each with its default.

use std::path::PathBuf;

/// Settings of `nimbus serve`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Data directory: SQLite metadata, objects, master key, credentials. Default `./.nimbus`.
    pub data_dir: PathBuf,
    /// Main listener address. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: String,
    /// Metadata database URL (`postgres://…`); SQLite in the data directory when unset.
    pub database: Option<String>,
    /// Region of ARNs and SigV4 scopes. Default `us-east-1`.
    pub region: String,
    /// Account id of ARNs. Default `000000000000`.
    pub account: String,
    /// Largest request body the admin API accepts, in bytes. Default 256 MiB.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from(".nimbus"),
            listen: "127.0.0.1:8080".into(),
            database: None,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            max_body_bytes: 256 << 20,
        }
    }
}
