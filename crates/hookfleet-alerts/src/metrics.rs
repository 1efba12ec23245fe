//! Every metric the alerts worker emits, declared once, with handles
//! registered at start so the hot path never looks a metric up by name.
//! The runtime's own (`hookfleet_worker_*`, including the `slack`
//! breaker's state) are declared in `hookfleet-worker`.

use metrics::{Counter, Gauge, Histogram};

use crate::rules::Rule;

/// Events by `outcome` (see [`EventOutcome`]).
pub const EVENTS: &str = "hookfleet_alerts_events_total";
/// Alerts stored, by `rule`.
pub const FIRED: &str = "hookfleet_alerts_fired_total";
/// Alerts a cooldown suppressed, by `rule`.
pub const SUPPRESSED: &str = "hookfleet_alerts_suppressed_total";
/// Slack delivery attempts by `result` (see [`DeliveryResult`]).
pub const DELIVERIES: &str = "hookfleet_alerts_deliveries_total";
/// Alerts waiting in the outbox.
pub const OUTBOX_PENDING: &str = "hookfleet_alerts_outbox_pending";
/// One event's transaction: count, read, evaluate, fire, commit.
pub const EVALUATION_DURATION: &str = "hookfleet_alerts_evaluation_duration_seconds";
/// One Slack request.
pub const SLACK_DURATION: &str = "hookfleet_alerts_slack_request_duration_seconds";

/// What became of one event; the `outcome` label of [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Counted and evaluated.
    Evaluated,
    /// Counted before (a redelivery): skipped.
    Duplicate,
    /// No enabled rule looks at it (type, or fields missing).
    Ignored,
    /// Its event time is outside the horizon: skipped.
    OutsideHorizon,
    /// The database failed; the message is retried.
    Failed,
}

impl EventOutcome {
    const ALL: [Self; 5] = [
        Self::Evaluated,
        Self::Duplicate,
        Self::Ignored,
        Self::OutsideHorizon,
        Self::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Evaluated => "evaluated",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::OutsideHorizon => "outside_horizon",
            Self::Failed => "failed",
        }
    }
}

/// How one Slack attempt went; the `result` label of [`DELIVERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Slack accepted it.
    Delivered,
    /// 429, 5xx, timeout or connection failure: retried later.
    Retried,
    /// Another 4xx: Slack will never accept it.
    Abandoned,
}

impl DeliveryResult {
    const ALL: [Self; 3] = [Self::Delivered, Self::Retried, Self::Abandoned];

    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Abandoned => "abandoned",
        }
    }
}

/// Registered metric handles. Cheap to share behind an `Arc`.
pub struct AlertMetrics {
    events: Vec<Counter>,
    fired: Vec<Counter>,
    suppressed: Vec<Counter>,
    deliveries: Vec<Counter>,
    outbox_pending: Gauge,
    evaluation: Histogram,
    slack: Histogram,
}

impl std::fmt::Debug for AlertMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertMetrics").finish_non_exhaustive()
    }
}

impl AlertMetrics {
    /// Describes and registers every metric.
    pub fn register() -> Self {
        metrics::describe_counter!(EVENTS, "Events by what became of them.");
        metrics::describe_counter!(FIRED, "Alerts stored, by rule.");
        metrics::describe_counter!(SUPPRESSED, "Alerts a cooldown suppressed, by rule.");
        metrics::describe_counter!(DELIVERIES, "Slack delivery attempts, by result.");
        metrics::describe_gauge!(OUTBOX_PENDING, "Alerts waiting to be delivered to Slack.");
        metrics::describe_histogram!(
            EVALUATION_DURATION,
            metrics::Unit::Seconds,
            "One event's transaction: count, read the windows, evaluate, fire, commit."
        );
        metrics::describe_histogram!(
            SLACK_DURATION,
            metrics::Unit::Seconds,
            "One request to the Slack webhook."
        );

        let by_rule = |name: &'static str| {
            Rule::ALL
                .iter()
                .map(|r| metrics::counter!(name, "rule" => r.as_str()))
                .collect()
        };
        Self {
            events: EventOutcome::ALL
                .iter()
                .map(|o| metrics::counter!(EVENTS, "outcome" => o.label()))
                .collect(),
            fired: by_rule(FIRED),
            suppressed: by_rule(SUPPRESSED),
            deliveries: DeliveryResult::ALL
                .iter()
                .map(|r| metrics::counter!(DELIVERIES, "result" => r.label()))
                .collect(),
            outbox_pending: metrics::gauge!(OUTBOX_PENDING),
            evaluation: metrics::histogram!(EVALUATION_DURATION),
            slack: metrics::histogram!(SLACK_DURATION),
        }
    }

    /// Counts one event's outcome.
    pub fn event(&self, outcome: EventOutcome) {
        self.events[outcome as usize].increment(1);
    }

    /// Records how long one event's transaction took.
    pub fn evaluated_in(&self, seconds: f64) {
        self.evaluation.record(seconds);
    }

    /// Counts an alert stored.
    pub fn fired(&self, rule: Rule) {
        self.fired[rule as usize].increment(1);
    }

    /// Counts an alert suppressed by its cooldown.
    pub fn suppressed(&self, rule: Rule) {
        self.suppressed[rule as usize].increment(1);
    }

    /// Counts one Slack attempt and its duration.
    pub fn delivery(&self, result: DeliveryResult, seconds: f64) {
        self.deliveries[result as usize].increment(1);
        self.slack.record(seconds);
    }

    /// Sets the outbox depth.
    pub fn outbox_pending(&self, pending: i64) {
        self.outbox_pending.set(pending as f64);
    }
}
