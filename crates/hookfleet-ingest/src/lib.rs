//! `hookfleet-ingest`: receives signed Tolinku webhooks, verifies them and
//! publishes them to the SNS topic through the batching publisher.
//!
//! See `ARCHITECTURE.md` for where it sits in the flow and SPEC §6 for the
//! answers it gives.

pub mod config;
pub mod metrics;
pub mod routes;
mod server;

pub use server::run;
