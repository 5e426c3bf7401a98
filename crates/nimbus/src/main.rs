//! `nimbus`: one binary for the server and the CLI.
//!
//! The CLI is a client of the admin API: it signs every request with SigV4 and prints a
//! table or (`--output json`) stable JSON. Errors print one line on stderr and exit with 2
//! for bad usage or input, 1 for failures.
#![forbid(unsafe_code)]

#[macro_use]
mod output;
mod cli;
mod client;
mod commands;
mod project;
#[cfg(test)]
mod proptests;

use std::process::ExitCode;

/// mimalloc: request handling allocates many small short-lived buffers, which it serves
/// faster than the system allocator (measured in bench/serve.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// A CLI failure, sorted by whose fault it is.
#[derive(Debug)]
pub enum CliError {
    /// Bad usage or input (exit code 2).
    Input(String),
    /// Anything else (exit code 1).
    Failure(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Failure(m) => f.write_str(m),
        }
    }
}

fn main() -> ExitCode {
    // The sandbox's helper (`nimbus sandbox-exec …`, started by the server for each confined
    // command): confine this process and become the command, before anything else starts.
    let mut raw = std::env::args_os();
    if raw.nth(1).is_some_and(|a| a == nimbus_sandbox::confine::SUBCOMMAND) {
        let failure = match nimbus_sandbox::confine::parse_args(raw) {
            Ok(c) => nimbus_sandbox::confine::exec(&c),
            Err(e) => format!("usage: {e}"),
        };
        eprintln!("nimbus sandbox: {failure}");
        return ExitCode::from(126);
    }
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
