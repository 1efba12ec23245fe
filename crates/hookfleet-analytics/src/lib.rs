//! `hookfleet-analytics`: drains the analytics queue, enriches each event
//! (geo from a MaxMind database, campaign and referrer from the database,
//! through caches) and stores it once, with exactly-once per-minute counts
//! (SPEC §8).
//!
//! - [`config`]: the settings (flags and environment variables).
//! - [`handler`]: [`AnalyticsHandler`], one message to one outcome, and
//!   the table of what is retried and what is dead-lettered.
//! - [`batcher`]: [`Batcher`], which turns concurrent handler calls into
//!   one transaction per batch.
//! - [`metrics`]: the metrics, declared once.
//! - [`app`]: start-up (GeoIP, database and migrations) and shutdown.
//!
//! The storage itself (idempotent inserts, the counts) is
//! `hookfleet-store`'s; the enrichment rules are `hookfleet-enrich`'s; the
//! queue, retries, dead-lettering, the breaker and the admin endpoint are
//! the runtime's (`hookfleet-worker`).

pub mod app;
pub mod batcher;
pub mod config;
pub mod handler;
pub mod metrics;

pub use app::run;
pub use batcher::{BatchConfig, Batcher};
pub use handler::AnalyticsHandler;
