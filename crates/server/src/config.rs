//! Server settings, typed, each with its default.

use std::path::PathBuf;

use crate::listener::Limits;

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
    /// Connection limits and timeouts of the listener.
    pub limits: Limits,
    /// Whether the local-emulator Invoke path (`/2015-03-31/functions/function/invocations`)
    /// answers unsigned requests from loopback addresses. Off by default: behind a proxy on
    /// the same host every request comes from loopback. `nimbus up` turns it on.
    pub allow_unsigned_local_invoke: bool,
    /// Whether `process` pipeline steps may run when no sandbox (Landlock, or a separate uid)
    /// can keep them out of the data directory. Off by default.
    pub allow_unconfined_processes: bool,
    /// The nimbus binary, re-executed as `nimbus sandbox-exec` to confine commands; `None`
    /// leaves commands unconfined (and so refused unless `allow_unconfined_processes`).
    pub sandbox_helper: Option<PathBuf>,
    /// Which protection confines `process` steps (default: the strongest available).
    pub process_sandbox: nimbus_pipeline::sandbox::Choice,
    /// `--tls-cert`/`--tls-key`: serve HTTPS with this certificate and key; plain HTTP when
    /// unset. Both files are read once, at start.
    pub tls: Option<TlsFiles>,
    /// `--public-url`: the URL clients reach this server at (behind a proxy or a DNS name);
    /// the OAuth2 issuer (`iss`) and the OpenID configuration name it. Default: the
    /// listener's own URL.
    pub public_url: Option<String>,
}

/// The PEM files of the listener's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// Its private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`), unencrypted.
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from(".nimbus"),
            listen: "127.0.0.1:8080".into(),
            database: None,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            limits: Limits::default(),
            allow_unsigned_local_invoke: false,
            allow_unconfined_processes: false,
            sandbox_helper: None,
            public_url: None,
            process_sandbox: Default::default(),
            tls: None,
        }
    }
}
