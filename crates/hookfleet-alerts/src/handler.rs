//! The queue handler: one event in, its counts and alerts committed in
//! one transaction (see `hookfleet_store::alerting`), the deliverer woken
//! when an alert is queued.
//!
//! | case | outcome |
//! |---|---|
//! | no enabled rule looks at the event (type, missing campaign/IP/referrer) | done, nothing written |
//! | event time outside the horizon | done, nothing written (logged at debug) |
//! | `event_id` counted before | done, nothing written: a redelivery counts once |
//! | counted (and maybe fired) | done |
//! | database unavailable | retry with the runtime's backoff |
//! | database refused the data | dead letter with the reason |
//!
//! Slack is not called here, so a Slack outage never slows or blocks the
//! evaluation of events: alerts wait in the outbox.

use std::sync::Arc;
use std::time::Duration;

use hookfleet_enrich::GeoIp;
use hookfleet_store::{NewAlert, Store, StoreError};
use hookfleet_worker::{Delivery, Handler, Outcome};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::facts::{Facts, Kind};
use crate::metrics::{AlertMetrics, EventOutcome};
use crate::rules::{Firing, Plan, Rules};

/// What the handler needs; built once at start.
pub struct AlertsHandler {
    store: Store,
    rules: Rules,
    geo: Option<GeoIp>,
    deliver: bool,
    horizon: Duration,
    wake: Arc<Notify>,
    metrics: Arc<AlertMetrics>,
}

impl std::fmt::Debug for AlertsHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsHandler")
            .field("store", &self.store)
            .field("rules", &self.rules)
            .field("deliver", &self.deliver)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

/// How one event's transaction ended.
enum Evaluated {
    /// Counted before: nothing done.
    Duplicate,
    /// Counted; these alerts were stored.
    Counted,
}

impl AlertsHandler {
    /// A handler evaluating `rules` on `store`. With `deliver`, stored
    /// alerts get an outbox row and `wake` is notified; `geo` resolves
    /// the country of clicks that carry none; events whose time is more
    /// than `horizon` from now are ignored.
    pub fn new(
        store: Store,
        rules: Rules,
        geo: Option<GeoIp>,
        deliver: bool,
        horizon: Duration,
        wake: Arc<Notify>,
        metrics: Arc<AlertMetrics>,
    ) -> Self {
        Self {
            store,
            rules,
            geo,
            deliver,
            horizon,
            wake,
            metrics,
        }
    }

    async fn evaluate(&self, facts: &Facts, plan: &Plan) -> Result<Evaluated, StoreError> {
        let mut tx = self.store.begin_alerting().await?;
        if !tx.record_event(&facts.event_id, facts.occurred_at).await? {
            tx.rollback().await?;
            return Ok(Evaluated::Duplicate);
        }

        let subjects: Vec<&str> = plan.subjects.iter().map(String::as_str).collect();
        tx.lock_subjects(&subjects).await?;
        let counts: Vec<(&str, OffsetDateTime)> = plan
            .counts
            .iter()
            .map(|scope| (scope.as_str(), facts.occurred_at))
            .collect();
        tx.add_to_windows(&counts).await?;

        let mut firings: Vec<Firing> = plan.immediate.clone();
        if let (Some(from), Some(to)) = (plan.read_from, plan.read_to) {
            let reads: Vec<&str> = plan.reads.iter().map(String::as_str).collect();
            let windows = tx.window_counts(&reads, from, to).await?;
            firings.extend(self.rules.evaluate(facts, &windows));
        }

        let mut stored = Vec::new();
        for firing in &firings {
            let alert = NewAlert {
                alert_key: &firing.alert_key,
                rule: firing.rule.as_str(),
                details: &firing.details,
                at: facts.occurred_at,
                cooldown: self.rules.cooldown,
                deliver: self.deliver,
            };
            match tx.fire(&alert).await? {
                Some(id) => stored.push((id, firing)),
                None => self.metrics.suppressed(firing.rule),
            }
        }
        tx.commit().await?;

        for (id, firing) in &stored {
            self.metrics.fired(firing.rule);
            tracing::warn!(
                alert_id = id,
                rule = firing.rule.as_str(),
                alert_key = %firing.alert_key,
                event_id = %facts.event_id,
                details = %firing.details,
                "alert fired"
            );
        }
        if self.deliver && !stored.is_empty() {
            self.wake.notify_one();
        }
        Ok(Evaluated::Counted)
    }

    fn outside_horizon(&self, occurred_at: OffsetDateTime) -> bool {
        let distance = (OffsetDateTime::now_utc() - occurred_at).abs();
        distance > self.horizon
    }
}

impl Handler for AlertsHandler {
    async fn handle(&self, delivery: &Delivery<'_>) -> Outcome {
        let kind = Kind::of(delivery.event_type());
        if kind == Kind::Other {
            self.metrics.event(EventOutcome::Ignored);
            return Outcome::Done;
        }
        let mut facts = match Facts::read(delivery.event_id.to_hex(), delivery.envelope) {
            Ok(facts) => facts,
            Err(error) => return Outcome::give_up(format!("event data is not an object: {error}")),
        };
        if self.outside_horizon(facts.occurred_at) {
            tracing::debug!(
                event_id = %facts.event_id,
                occurred_at = %facts.occurred_at,
                "event time outside the horizon; not evaluated"
            );
            self.metrics.event(EventOutcome::OutsideHorizon);
            return Outcome::Done;
        }
        if kind == Kind::Click && self.rules.suspicious_country.is_some() {
            facts.resolve_country(self.geo.as_ref());
        }

        let plan = self.rules.plan(&facts);
        if plan.is_empty() {
            self.metrics.event(EventOutcome::Ignored);
            return Outcome::Done;
        }

        let started = Instant::now();
        let result = self.evaluate(&facts, &plan).await;
        self.metrics.evaluated_in(started.elapsed().as_secs_f64());
        match result {
            Ok(Evaluated::Counted) => {
                self.metrics.event(EventOutcome::Evaluated);
                Outcome::Done
            }
            Ok(Evaluated::Duplicate) => {
                tracing::debug!(event_id = %facts.event_id, "counted before; skipped");
                self.metrics.event(EventOutcome::Duplicate);
                Outcome::Done
            }
            Err(error) if error.is_retryable() => {
                self.metrics.event(EventOutcome::Failed);
                Outcome::retry(error.to_string())
            }
            Err(error) => {
                self.metrics.event(EventOutcome::Failed);
                Outcome::give_up(error.to_string())
            }
        }
    }
}
