//! `nimbus admin`: work on a data directory directly, with the server stopped.

use nimbus_core::arn::Partition;
use nimbus_iam::Iam;
use nimbus_iam::credentials::{self, Profile};
use nimbus_iam::crypto::MasterKey;
use nimbus_meta::Db;

use crate::CliError;
use crate::cli::{AdminCommand, Global};

pub async fn run(g: &Global, cmd: AdminCommand) -> Result<(), CliError> {
    match cmd {
        AdminCommand::ResetKey { database, region } => reset_key(g, database, region).await,
    }
}

/// A new admin key, the old ones retired, the credentials file rewritten before the commit.
async fn reset_key(g: &Global, database: Option<String>, region: String) -> Result<(), CliError> {
    let dir = &g.data_dir;
    let master_key = dir.join("master.key");
    if database.is_none() && !dir.join("meta.db").exists() {
        return Err(CliError::Input(format!(
            "{} holds no nimbus data (no meta.db); pass --data-dir DIR of the server, and --database URL if it uses one",
            dir.display()
        )));
    }
    if !master_key.exists() && std::env::var(nimbus_iam::crypto::MASTER_KEY_ENV).is_err() {
        return Err(CliError::Input(format!(
            "{} is missing and {} is not set: without the master key no secret can be sealed",
            master_key.display(),
            nimbus_iam::crypto::MASTER_KEY_ENV
        )));
    }
    let fail = |e: &dyn std::fmt::Display| CliError::Failure(e.to_string());
    let db = match &database {
        Some(url) => Db::open(url).await,
        None => Db::open_sqlite(&dir.join("meta.db")).await,
    }
    .map_err(|e| fail(&e))?;
    let key = MasterKey::load_or_create(&master_key).map_err(|e| fail(&e))?;
    let iam = Iam::new(db, key, Partition { region: region.clone(), ..Partition::default() });
    let endpoint = std::fs::read_to_string(dir.join("endpoint")).ok().map(|s| s.trim().to_string());
    let path = dir.join("credentials");
    let (k, retired) = iam
        .reset_admin_key(|k| {
            credentials::write(
                &path,
                &Profile {
                    aws_access_key_id: k.access_key_id.clone(),
                    aws_secret_access_key: k.secret_access_key.clone(),
                    region: Some(region.clone()),
                    endpoint_url: endpoint.clone(),
                },
            )
        })
        .await
        .map_err(|e| fail(&e))?;
    outln!("made a new admin access key and retired {retired} old one(s); written to {} (mode 0600):", path.display());
    outln!("  aws_access_key_id     = {}", k.access_key_id);
    outln!("  aws_secret_access_key = {}", k.secret_access_key);
    outln!("A server that is running now accepts the old keys it has already seen until it restarts.");
    Ok(())
}
