//! One module per command group; [`run`] dispatches.

mod access;
mod admin;
mod apply;
mod apply_access;
mod code;
mod models;
mod pipelines;
mod serve;
mod serving;
mod store;
mod up;

use crate::CliError;
use crate::cli::{Cli, Command};
use crate::client::Client;

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Whoami => {
            let v = Client::new(&cli.global)?.json("GET", "/whoami", &[], None).await?;
            let rows = ["user", "arn", "access_key_id", "region", "account"]
                .iter()
                .map(|k| vec![k.to_string(), crate::output::cell(&v[k])])
                .collect();
            crate::output::print(cli.global.output, &v, &["FIELD", "VALUE"], rows);
            Ok(())
        }
        Command::Store(cmd) => store::run(&cli.global, cmd).await,
        Command::Models(cmd) => models::run(&cli.global, cmd).await,
        Command::Apply { path, dry_run } => apply::run(&cli.global, &path, dry_run).await,
        Command::Pipelines(cmd) => pipelines::run(&cli.global, cmd).await,
        Command::Functions(cmd) => serving::functions(&cli.global, cmd).await,
        Command::Apis(cmd) => serving::apis(&cli.global, cmd).await,
        Command::Logs { name, api, since, filter, follow } => {
            serving::logs(&cli.global, &name, api, since, filter, follow).await
        }
        Command::Up { path, serve } => up::run(&cli.global, &path, serve).await,
        Command::Admin(cmd) => admin::run(&cli.global, cmd).await,
        Command::Iam(cmd) => access::iam(&cli.global, cmd).await,
        Command::Keys(cmd) => access::keys(&cli.global, cmd).await,
        Command::Auth(cmd) => access::auth(&cli.global, cmd).await,
        Command::Metrics { function, api } => serving::metrics(&cli.global, function, api).await,
    }
}
