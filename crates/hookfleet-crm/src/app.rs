//! Start-up and shutdown of the worker process.
//!
//! Start-up, in order: check the AWS settings (exit 2 when unusable);
//! resolve the welcome queue, where follow-ups go; connect to the database
//! and apply the migrations, waiting for it up to
//! `HOOKFLEET_DATABASE_WAIT_SECS`; then hand both handlers to the worker
//! runtime, which resolves the queues, serves the admin endpoint and
//! consumes until SIGTERM. Each queue is gated on its own destination's
//! breaker (`crm`, `welcome`), so a failing CRM pauses only the CRM
//! queue.
//!
//! Shutdown: the runtime stops receiving, lets in-flight calls finish and
//! returns; the pool is then closed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::wire::AwsWire;
use hookfleet_bus::wire::sqs::Sqs;
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::{Worker, WorkerSettings};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::destination::Destination;
use crate::effect::Effects;
use crate::referral::ReferralHandler;
use crate::welcome::{FollowUps, WelcomeHandler};

/// The worker's name: `worker` on dead-lettered messages.
pub const WORKER: &str = "hookfleet-crm";

/// The queue of referral updates, by its topology name.
pub const CRM_QUEUE: &str = "hookfleet-crm";

/// The queue of installs and their delayed follow-ups, by its topology
/// name.
pub const WELCOME_QUEUE: &str = "hookfleet-welcome";

/// The queues this worker drains, in order (for [`WorkerArgs::validate`]).
///
/// [`WorkerArgs::validate`]: hookfleet_worker::WorkerArgs::validate
pub const QUEUES: [&str; 2] = [CRM_QUEUE, WELCOME_QUEUE];

/// The CRM API's breaker and metric label.
pub const CRM_DESTINATION: &str = "crm";

/// The welcome workflow's breaker and metric label.
pub const WELCOME_DESTINATION: &str = "welcome";

/// Runs the worker until SIGTERM or Ctrl-C. Configuration problems found
/// here (unusable AWS settings, an unusable data directory) exit 2 with
/// one line; other failures come back as errors (exit 1).
pub async fn run(
    worker: WorkerSettings,
    settings: Settings,
    prometheus: PrometheusHandle,
) -> anyhow::Result<()> {
    tracing::info!(
        worker = %worker.summary(),
        crm = %settings.summary(),
        "starting"
    );
    let sdk = aws::load_checked(AwsTimeouts::default())
        .await
        .unwrap_or_else(|e| exit_config_error(e.setting, e.reason));
    let sqs = aws::sqs(&sdk);
    // Follow-ups are one call per install: the lean client, like the
    // runtime's own per-message calls.
    let follow_up_wire = AwsWire::new(&sdk, "sqs", AwsTimeouts::default())
        .unwrap_or_else(|e| exit_config_error("AWS configuration", e));
    let welcome_location = worker
        .queues
        .iter()
        .find(|q| q.default_name == WELCOME_QUEUE)
        .map(|q| q.location.clone())
        .context("the settings have no welcome queue")?;
    let welcome_queue_url = hookfleet_bus::resolve::queue_url(&sqs, &welcome_location)
        .await
        .with_context(|| {
            format!(
                "cannot resolve the welcome queue {welcome_location:?} \
                 (run `hookfleet infra apply`, or check HOOKFLEET_QUEUE and AWS_ENDPOINT_URL)"
            )
        })?;

    let store = settings
        .database
        .connect_waiting()
        .await
        .context("cannot use the database")?;
    crate::metrics::describe();
    let client = http_client(settings.http_timeout)?;
    // A Retry-After is honoured up to the longest backoff of the runtime.
    let retry_after_max = worker
        .queues
        .first()
        .map_or(Duration::from_secs(900), |q| q.config.backoff.max);

    let effects = Effects::new(store.clone(), settings.effect_lease);
    let crm = Destination::new(
        CRM_DESTINATION,
        settings.referrals_url.clone(),
        client.clone(),
        retry_after_max,
    );
    let welcome = Destination::new(
        WELCOME_DESTINATION,
        settings.welcome_url.clone(),
        client,
        retry_after_max,
    );
    log_when_off(&settings);
    let referrals = ReferralHandler::new(effects.clone(), crm);
    let welcome = WelcomeHandler::new(
        effects,
        welcome,
        FollowUps::new(Sqs::new(follow_up_wire), welcome_queue_url),
        settings.welcome_delay,
    );

    let result = Worker::new(worker, prometheus)
        .queue(CRM_QUEUE, Arc::new(referrals), Some(CRM_DESTINATION))
        .queue(WELCOME_QUEUE, Arc::new(welcome), Some(WELCOME_DESTINATION))
        .run()
        .await;
    store.close().await;
    result.context("worker failed")
}

/// Says once, at start, which destinations are off (SPEC §3: unset means
/// only logged).
fn log_when_off(settings: &Settings) {
    if settings.referrals_url.is_none() {
        tracing::warn!("HOOKFLEET_CRM_URL is unset: referral updates are logged, not sent");
    }
    if settings.welcome_url.is_none() {
        tracing::warn!("HOOKFLEET_WELCOME_URL is unset: welcome calls are logged, not made");
    }
}

/// The HTTP client both destinations share: rustls on ring (installed by
/// `main`), no redirects, the call timeout on every request.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hookfleet-crm/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}
