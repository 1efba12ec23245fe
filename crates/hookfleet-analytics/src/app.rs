//! Start-up and shutdown of the worker process.
//!
//! Start-up, in order: open the GeoIP database (a bad file is a
//! configuration error: exit 2); connect to the database and apply the
//! migrations, waiting for it up to `HOOKFLEET_DATABASE_WAIT_SECS`; start
//! the batcher and the GeoIP reload watcher; then hand the handler to the
//! worker runtime, which resolves the queue, serves the admin endpoint and
//! consumes until SIGTERM.
//!
//! Shutdown: the runtime stops receiving, lets in-flight handlers finish
//! (their batches are written) and returns, dropping the handler; the
//! batcher then has no sender left, writes nothing more and ends; the
//! watcher is stopped and the pool closed.
//!
//! Known limit: `/readyz` is the runtime's and checks the queue only; the
//! admin endpoint has no hook for a worker's own checks yet. The database
//! shows on `/status` instead, as the state of the `database` breaker,
//! which opens after a few failed transactions or lookups in a row.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookfleet_enrich::geo::GEOIP_DB_VAR;
use hookfleet_enrich::{Enricher, GeoIp, Lookups};
use hookfleet_store::BackendKind;
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::{Worker, WorkerSettings};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::batcher::{BatchConfig, Batcher};
use crate::config::Settings;
use crate::handler::AnalyticsHandler;
use crate::metrics::AnalyticsMetrics;

/// The worker's name: `worker` on dead-lettered messages.
pub const WORKER: &str = "hookfleet-analytics";

/// The queue it drains, by its topology name (`HOOKFLEET_QUEUE` may point
/// elsewhere).
pub const QUEUE: &str = "hookfleet-analytics";

/// The destination its breaker guards: the database.
pub const DATABASE_DESTINATION: &str = "database";

/// How long the batcher may take to finish once the runtime has returned.
const BATCHER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the worker until SIGTERM or Ctrl-C. Configuration problems found
/// here (an unreadable GeoIP file, an unusable data directory) exit 2 with
/// one line; other failures come back as errors (exit 1).
pub async fn run(
    worker: WorkerSettings,
    settings: Settings,
    prometheus: PrometheusHandle,
) -> anyhow::Result<()> {
    tracing::info!(
        worker = %worker.summary(),
        analytics = %settings.summary(),
        "starting"
    );
    let geo = GeoIp::from_setting(settings.geoip_db.as_deref())
        .unwrap_or_else(|e| exit_config_error(GEOIP_DB_VAR, e));
    let store = settings.database.connect_waiting().await.with_context(|| {
        format!(
            "cannot use the database ({})",
            settings.database.database.describe()
        )
    })?;
    let metrics = Arc::new(AnalyticsMetrics::register());

    let batch = BatchConfig {
        // More events than can be in flight never come.
        max_events: settings
            .batch
            .max_events
            .min(worker.queues.first().map_or(1, |q| q.config.concurrency)),
        // SQLite has one writer: a second transaction would only wait.
        max_in_flight: match store.kind() {
            BackendKind::Sqlite => 1,
            BackendKind::Postgres => settings.batch.max_in_flight,
        },
        ..settings.batch
    };
    let (batcher, batcher_task) = Batcher::start(store.clone(), batch, Arc::clone(&metrics));
    let lookups = Arc::new(Lookups::new(store.clone(), settings.cache.clone()));
    let handler = AnalyticsHandler::new(Enricher::new(geo.clone(), lookups), batcher, metrics);

    let worker =
        Worker::new(worker, prometheus).queue(QUEUE, Arc::new(handler), Some(DATABASE_DESTINATION));
    let shutdown = worker.shutdown_token();
    let watcher = geo.map(|geo| geo.watch(settings.geoip_reload, shutdown.clone()));

    let result = worker.run().await;

    shutdown.cancel();
    if tokio::time::timeout(BATCHER_STOP_TIMEOUT, batcher_task)
        .await
        .is_err()
    {
        tracing::warn!("the batcher did not stop in time");
    }
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    store.close().await;
    result.context("worker failed")
}
