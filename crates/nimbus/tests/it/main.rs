//! Integration tests: the real `nimbus` binary on 127.0.0.1, driven through its CLI and raw
//! HTTP. Tests that take a `Backend` run on SQLite and, when `NIMBUS_TEST_POSTGRES_URL` is
//! set, on PostgreSQL too.

mod harness;

mod access_cors;
mod access_iam;
mod access_keys;
mod access_oauth;
mod browser;
mod cli_errors;
mod crash;
mod docs;
mod examples_functions;
mod function_code;
mod functions_authorizers;
mod functions_process;
mod functions_versions;
mod hardening_http;
mod hardening_processes;
mod hardening_serving;
mod pipelines;
mod registry;
mod serving;
mod sigv4;
mod store;
mod tls;
mod up;
mod xgboost_models;
