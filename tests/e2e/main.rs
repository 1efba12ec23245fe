//! The end-to-end suite: the real binaries against LocalStack.
//!
//! Needs `cargo build --workspace --bins` first and LocalStack on
//! `AWS_ENDPOINT_URL` (default `http://127.0.0.1:4566`); `scripts/test`
//! does both. Without LocalStack a test skips, saying so, unless `CI=true`.

mod alerts;
mod analytics;
mod cli_send;
mod crm;
mod deploy;
mod dlq;
mod infra;
mod ingest;
mod status;
