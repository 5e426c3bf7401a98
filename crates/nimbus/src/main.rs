//! `nimbus`: one binary for the server and the CLI.
//!
//! The CLI is a client of the admin API: it signs every request with SigV4 and prints a
//! table or (`--output json`) stable JSON. Errors print one line on stderr and exit with 2
//! for bad usage or input, 1 for failures.
#![forbid(unsafe_code)]

mod cli;
mod client;
mod commands;
mod output;
mod project;

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
