//! `nimbus serve`: start the server in the foreground until SIGTERM or Ctrl-C.

use nimbus_server::{Server, ServerConfig, TlsFiles};

use crate::CliError;
use crate::cli::{Global, ProcessSandbox, ServeArgs};
use nimbus_sandbox::Choice;

pub async fn run(g: &Global, args: ServeArgs) -> Result<(), CliError> {
    let server = start(g, args).await?;
    server.run(nimbus_server::shutdown_signal()).await.map_err(|e| CliError::Failure(e.to_string()))?;
    outln!("nimbus stopped");
    Ok(())
}

/// Starts the server (listening, not yet serving) and prints where, and the admin key on the
/// first start.
pub async fn start(g: &Global, args: ServeArgs) -> Result<Server, CliError> {
    init_logging();
    let secs = std::time::Duration::from_secs_f64;
    let cfg = ServerConfig {
        data_dir: g.data_dir.clone(),
        listen: args.listen,
        database: args.database,
        region: args.region,
        account: args.account,
        limits: nimbus_server::Limits {
            header_timeout: secs(args.header_timeout),
            idle_timeout: secs(args.idle_timeout),
            body_timeout: secs(args.body_timeout),
            max_connections: args.max_connections as usize,
        },
        allow_unsigned_local_invoke: args.allow_unsigned_local_invoke,
        allow_unconfined_processes: args.allow_unconfined_processes,
        // This very binary confines commands, re-executed as `nimbus sandbox-exec`.
        sandbox_helper: std::env::current_exe().ok(),
        process_sandbox: match args.process_sandbox {
            ProcessSandbox::Auto => Choice::Auto,
            ProcessSandbox::Landlock => Choice::Landlock,
            ProcessSandbox::SeparateUser => Choice::SeparateUser,
        },
        // clap has already required both flags or neither.
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        public_url: args.public_url,
    };
    let started = std::time::Instant::now();
    let server = Server::start(&cfg).await.map_err(|e| match e {
        // A certificate or key that cannot be used is the operator's to fix, like a bad flag.
        nimbus_server::ServeError::Tls(_) => CliError::Input(e.to_string()),
        _ => CliError::Failure(e.to_string()),
    })?;
    let metadata = match &cfg.database {
        Some(url) => nimbus_meta::redact_url(url),
        None => format!("sqlite {}", cfg.data_dir.join("meta.db").display()),
    };
    outln!(
        "nimbus {} serving on {} (data dir {}, metadata {}, ready in {:.1} ms)",
        env!("CARGO_PKG_VERSION"),
        server.endpoint,
        cfg.data_dir.display(),
        metadata,
        started.elapsed().as_secs_f64() * 1000.0
    );
    if let Some(k) = &server.new_admin_key {
        // The only time the secret is shown; it is never logged.
        outln!(
            "First start: created the admin access key. The secret is shown only now; it is also in {} (mode 0600).",
            cfg.data_dir.join("credentials").display()
        );
        outln!("  aws_access_key_id     = {}", k.access_key_id);
        outln!("  aws_secret_access_key = {}", k.secret_access_key);
    }
    Ok(server)
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("NIMBUS_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
