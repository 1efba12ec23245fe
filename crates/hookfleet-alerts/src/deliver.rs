//! The deliverer: drains the outbox of stored alerts to Slack, one at a
//! time, through the `slack` circuit breaker.
//!
//! One deliverer runs per worker process. It wakes when this process
//! stores an alert, and every poll interval for the rest (alerts of other
//! replicas whose deliverer is busy or gone, retries coming due). Each
//! round claims up to [`CLAIM_BATCH`] due alerts for a lease, then for
//! each:
//!
//! 1. asks the breaker; when it is open (or a probe is out) the claims
//!    still in hand are released untried and the deliverer sleeps for the
//!    rest of the cooldown — nothing is attempted, nothing lost;
//! 2. posts the message, and settles the claim by the answer: delivered;
//!    retried later (429, 5xx, timeout: after `Retry-After`, or the
//!    exponential backoff of the alert's attempts), which counts as a
//!    failure for the breaker and, with `Retry-After`, pauses the whole
//!    deliverer since every alert goes to the same webhook; or abandoned
//!    (another 4xx, logged as an error).
//!
//! Settling is retried a few times when the database hiccups: a
//! delivered alert whose completion cannot be written would be sent
//! again once its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use hookfleet_store::{PendingAlert, Store, StoreError};
use hookfleet_worker::{Backoff, CircuitBreaker};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{AlertMetrics, DeliveryResult};
use crate::slack::{Posted, Slack, message};

/// Alerts claimed per round.
pub const CLAIM_BATCH: usize = 10;

/// How many times settling a claim is tried before giving up on it (the
/// lease then hands the alert to a later round).
const SETTLE_TRIES: u32 = 5;

/// How the deliverer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// How long a claim keeps other deliverers off an alert: longer than
    /// one Slack attempt can take.
    pub lease: Duration,
    /// How often to look for due alerts nobody told this process about.
    pub poll: Duration,
    /// Delays between attempts of one alert when Slack gives no
    /// `Retry-After`.
    pub retry: Backoff,
}

/// The deliverer of one process.
pub struct Deliverer {
    store: Store,
    slack: Slack,
    breaker: Arc<CircuitBreaker>,
    wake: Arc<Notify>,
    config: DeliveryConfig,
    metrics: Arc<AlertMetrics>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("slack", &self.slack)
            .field("breaker", &self.breaker)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a round asks for next.
enum Next {
    /// The outbox had nothing due: wait for a wake-up or the poll.
    Idle,
    /// Go again at once.
    More,
    /// Attempt nothing for this long (breaker open, `Retry-After`).
    Pause(Duration),
}

impl Deliverer {
    /// A deliverer posting to `slack` through `breaker`, woken by `wake`.
    pub fn new(
        store: Store,
        slack: Slack,
        breaker: Arc<CircuitBreaker>,
        wake: Arc<Notify>,
        config: DeliveryConfig,
        metrics: Arc<AlertMetrics>,
    ) -> Self {
        Self {
            store,
            slack,
            breaker,
            wake,
            config,
            metrics,
        }
    }

    /// Delivers until `shutdown` is cancelled; an attempt in progress is
    /// finished and settled first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(breaker = self.breaker.destination(), "slack delivery on");
        let mut failing_since: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let wait = match self.round(&shutdown).await {
                Ok(next) => {
                    failing_since = None;
                    match next {
                        Next::More => continue,
                        Next::Idle => {
                            self.record_depth().await;
                            None
                        }
                        Next::Pause(pause) => Some(pause),
                    }
                }
                Err(error) => {
                    // Logged once per outage, not once per poll.
                    if failing_since.is_none() {
                        tracing::warn!(%error, "cannot read the alert outbox; retrying");
                        failing_since = Some(Instant::now());
                    }
                    None
                }
            };
            match wait {
                Some(pause) => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                    }
                }
            }
        }
        tracing::info!("slack delivery stopped");
    }

    /// Claims due alerts and attempts them in order.
    async fn round(&self, shutdown: &CancellationToken) -> Result<Next, StoreError> {
        let claimed = self
            .store
            .claim_alert_deliveries(CLAIM_BATCH, self.config.lease)
            .await?;
        if claimed.is_empty() {
            return Ok(Next::Idle);
        }

        let mut claimed = claimed.into_iter();
        while let Some(alert) = claimed.next() {
            if shutdown.is_cancelled() {
                self.release(std::iter::once(alert).chain(claimed)).await;
                return Ok(Next::More);
            }
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    self.release(std::iter::once(alert).chain(claimed)).await;
                    return Ok(Next::Pause(rejected.remaining));
                }
            };

            let started = Instant::now();
            let posted = self.slack.post(&message(&alert)).await;
            let seconds = started.elapsed().as_secs_f64();
            match posted {
                Posted::Delivered => {
                    permit.success();
                    self.metrics.delivery(DeliveryResult::Delivered, seconds);
                    tracing::info!(
                        alert_id = alert.id,
                        alert_key = %alert.alert_key,
                        rule = %alert.rule,
                        attempts = alert.attempts + 1,
                        "alert delivered to slack"
                    );
                    self.settle(alert.id, |store, id| async move {
                        store.complete_alert_delivery(id).await
                    })
                    .await;
                }
                Posted::Retry { after, reason } => {
                    permit.failure();
                    self.metrics.delivery(DeliveryResult::Retried, seconds);
                    let delay =
                        after.unwrap_or_else(|| self.config.retry.delay(alert.attempts + 1));
                    tracing::warn!(
                        alert_id = alert.id,
                        alert_key = %alert.alert_key,
                        reason = %reason,
                        retry_in_secs = delay.as_secs_f64(),
                        "slack delivery failed; will retry"
                    );
                    let reason = reason.as_str();
                    self.settle(alert.id, |store, id| async move {
                        store.retry_alert_delivery(id, delay, reason).await
                    })
                    .await;
                    if let Some(after) = after {
                        self.release(claimed).await;
                        return Ok(Next::Pause(after));
                    }
                }
                Posted::Rejected { reason } => {
                    // Slack answered: it is up, the message is the problem.
                    permit.success();
                    self.metrics.delivery(DeliveryResult::Abandoned, seconds);
                    tracing::error!(
                        alert_id = alert.id,
                        alert_key = %alert.alert_key,
                        reason = %reason,
                        "slack refused the alert; it stays stored but will not be sent"
                    );
                    let reason = reason.as_str();
                    self.settle(alert.id, |store, id| async move {
                        store.abandon_alert_delivery(id, reason).await
                    })
                    .await;
                }
            }
        }
        Ok(Next::More)
    }

    /// Gives claims back untried.
    async fn release(&self, alerts: impl IntoIterator<Item = PendingAlert>) {
        for alert in alerts {
            self.settle(alert.id, |store, id| async move {
                store.release_alert_delivery(id).await
            })
            .await;
        }
    }

    /// Runs one settling write, retrying a database hiccup a few times.
    async fn settle<'a, F, Fut>(&'a self, alert_id: i64, write: F)
    where
        F: Fn(&'a Store, i64) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=SETTLE_TRIES {
            match write(&self.store, alert_id).await {
                Ok(()) => return,
                Err(error) if attempt == SETTLE_TRIES || !error.is_retryable() => {
                    tracing::error!(
                        alert_id,
                        %error,
                        "cannot record the delivery; the alert is retried after its lease"
                    );
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    async fn record_depth(&self) {
        if let Ok(pending) = self.store.pending_alert_deliveries().await {
            self.metrics.outbox_pending(pending);
        }
    }
}
