//! `hookfleet-alerts`: fraud and broken-link rules over the alerts queue,
//! each alert stored and posted to Slack (SPEC §9).
//!
//! ```text
//!  SQS hookfleet-alerts ──▶ AlertsHandler ──one transaction──▶ database
//!                           (rules.rs)       count the event once,      │
//!                                            read its windows, fire     │ alert_deliveries
//!                                            (cooldown), queue delivery │ (the outbox)
//!                                                                       ▼
//!                           Deliverer ◀──claim (lease)──────────────────┘
//!                           (deliver.rs) ──slack breaker──▶ Slack webhook
//! ```
//!
//! # Decisions
//!
//! **Windows.** Per-minute counts in the database
//! (`alert_window_counts`), keyed by *event time* truncated to the
//! minute, shared by every replica. An event is counted only if its
//! `event_id` is new in `alert_events`, in the same transaction as the
//! counts, so a redelivered event never counts twice. Windows are whole
//! minutes sliding by a minute (see [`rules`]); exact per-event windows
//! would cost a row per click and a range scan per evaluation, minute
//! buckets cost one upsert and a read of at most a window's minutes.
//! Transactions that touch the same campaign, IP or referrer are
//! serialised (an advisory lock on PostgreSQL, SQLite's single writer),
//! so each evaluation sees every event committed before it: two replicas
//! cannot both miss a threshold they cross together.
//!
//! **Cooldown.** One row per alert key in `alert_cooldowns`, taken by a
//! conditional upsert in the event's transaction: of any number of
//! replicas firing one key, exactly one stores the alert. The cooldown
//! runs in event time, like the windows, so the alerts fired depend on
//! the events, not on how many workers handled them or how fast.
//!
//! **Delivery: an outbox drained by a separate task.** The handler never
//! calls Slack. It stores each alert with an `alert_deliveries` row in the
//! transaction that counted the event, and wakes this process's
//! [`Deliverer`](deliver::Deliverer), which claims due rows for a lease
//! (replicas claim disjoint rows), posts them through the `slack`
//! circuit breaker and records the result. So:
//!
//! - while Slack is down, events are still evaluated and alerts stored;
//!   the breaker opens after repeated failures and the deliverer stops
//!   trying (no queue message burns its receive count on Slack), then
//!   probes, and on recovery delivers every stored alert, each once;
//! - a redelivered event finds its `event_id` counted and does nothing:
//!   its alerts are already in the outbox, so they are neither lost nor
//!   doubled;
//! - 429 and 5xx are retried after `Retry-After` (or a backoff), other
//!   4xx are abandoned and logged as errors;
//! - with `HOOKFLEET_SLACK_WEBHOOK_URL` unset there is no deliverer and
//!   alerts are stored without an outbox row, and logged.
//!
//! The queue is therefore not gated on the breaker (the worker runtime's
//! per-queue breaker would stop evaluation during a Slack outage); the
//! `slack` breaker belongs to the deliverer, and its state is the
//! `hookfleet_worker_breaker_state{destination="slack"}` gauge.
//!
//! # Limits
//!
//! - Slack webhooks take no idempotency key: a process that dies after
//!   Slack accepted a message and before the delivery is recorded sends
//!   it again when the lease (three Slack timeouts) runs out. That window
//!   is one HTTP round trip wide.
//! - `broken_link` is evaluated when clicks arrive: an install that
//!   arrives after the clicks that crossed the threshold does not recall
//!   the alert.
//! - Events further than the horizon (default 24 h) from now are not
//!   evaluated, and older window state is pruned.
//! - The embedded SQLite database serialises every event (one writer) and
//!   serves one replica; run several replicas on PostgreSQL.
//! - The `slack` breaker is the deliverer's own, so `/status` (which lists
//!   the runtime's breakers) does not show it; `/metrics` does.

#![warn(missing_docs)]

pub mod config;
pub mod deliver;
pub mod facts;
pub mod handler;
pub mod metrics;
pub mod rules;
pub mod slack;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_enrich::geo::DEFAULT_RELOAD_INTERVAL;
use hookfleet_store::Store;
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::{CircuitBreaker, Worker};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{QUEUE, SLACK_DESTINATION, Settings};
use crate::deliver::Deliverer;
use crate::handler::AlertsHandler;
use crate::metrics::AlertMetrics;
use crate::slack::Slack;

/// How often old window state is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How far past the horizon state is kept: the longest window allowed.
const PRUNE_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// Runs the worker until SIGTERM: connects the database (applying the
/// migrations), starts the deliverer (when Slack is configured), the
/// pruner and the GeoIP watcher, and drains the queue.
pub async fn run(settings: Settings, prometheus: PrometheusHandle) -> anyhow::Result<()> {
    let sdk = aws::load_checked(AwsTimeouts::long_poll())
        .await
        .unwrap_or_else(|e| exit_config_error(e.setting, e.reason));

    let store = settings
        .database
        .connect_waiting()
        .await
        .context("cannot open the database")?;

    match &settings.geo {
        Some(geo) => tracing::info!(path = %geo.path().display(), "geoip lookups on"),
        None => tracing::info!("geoip lookups off: HOOKFLEET_GEOIP_DB is not set"),
    }
    let metrics = Arc::new(AlertMetrics::register());
    let wake = Arc::new(Notify::new());
    let slack = match &settings.slack_url {
        Some(url) => Some(
            Slack::new(url.clone(), settings.slack_timeout)
                .context("cannot build the HTTP client")?,
        ),
        None => {
            tracing::info!(
                "slack delivery off: HOOKFLEET_SLACK_WEBHOOK_URL is not set; alerts are logged and stored"
            );
            None
        }
    };

    let handler = AlertsHandler::new(
        store.clone(),
        settings.rules.clone(),
        settings.geo.clone(),
        slack.is_some(),
        settings.horizon,
        Arc::clone(&wake),
        Arc::clone(&metrics),
    );
    let breaker = CircuitBreaker::new(SLACK_DESTINATION, settings.worker.breaker);
    let worker = Worker::new(settings.worker, prometheus)
        .aws_config(sdk.clone())
        .queue(QUEUE, Arc::new(handler), None);
    let shutdown = worker.shutdown_token();

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(slack) = slack {
        let deliverer = Deliverer::new(
            store.clone(),
            slack,
            breaker,
            wake,
            settings.delivery,
            Arc::clone(&metrics),
        );
        tasks.spawn(deliverer.run(shutdown.clone()));
    }
    tasks.spawn(prune(store.clone(), settings.horizon, shutdown.clone()));
    if let Some(geo) = &settings.geo {
        let watcher = geo.watch(DEFAULT_RELOAD_INTERVAL, shutdown.clone());
        tasks.spawn(async move {
            if let Err(error) = watcher.await {
                tracing::error!(%error, "geoip watcher failed");
            }
        });
    }

    let result = worker.run().await;
    shutdown.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a background task failed");
        }
    }
    store.close().await;
    result.context("the worker failed")
}

/// Deletes window state past the horizon, every [`PRUNE_EVERY`].
async fn prune(store: Store, horizon: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // A day past the horizon (the longest window), so an event at the
        // horizon's edge still reads its whole window.
        let before = OffsetDateTime::now_utc() - horizon - PRUNE_MARGIN;
        match store.prune_alerting(before).await {
            Ok(report) => tracing::debug!(
                events = report.events,
                window_counts = report.window_counts,
                cooldowns = report.cooldowns,
                "pruned alert state past the horizon"
            ),
            Err(error) => tracing::warn!(%error, "cannot prune alert state; trying again later"),
        }
    }
}
