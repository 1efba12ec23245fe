//! Every metric the CRM worker emits, declared once, with handles
//! registered at start so a call never looks a metric up by name. The
//! runtime's own (`hookfleet_worker_*`: messages by outcome, breaker
//! states) come on top.

use metrics::{Counter, Histogram};

/// Calls to a destination by `destination` (`crm`, `welcome`) and
/// `result` (see [`CallResult`]).
pub const CALLS: &str = "hookfleet_crm_calls_total";
/// Time from request to answer (or failure), seconds, by `destination`
/// (histogram).
pub const CALL_DURATION: &str = "hookfleet_crm_call_duration_seconds";
/// Side effects by `destination` and `outcome` (see [`EffectOutcome`]).
pub const EFFECTS: &str = "hookfleet_crm_effects_total";
/// Delayed welcome follow-ups by `result`: `sent` or `failed`.
pub const FOLLOW_UPS: &str = "hookfleet_crm_welcome_follow_ups_total";

/// How one call ended; the `result` label of [`CALLS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// Answered 2xx.
    Accepted,
    /// Answered 429 or 5xx: retried.
    Retried,
    /// Answered another status: given up.
    Refused,
    /// No answer (timeout, connection refused): retried.
    Failed,
    /// Not made: the destination's URL is unset.
    Logged,
}

impl CallResult {
    const ALL: [Self; 5] = [
        Self::Accepted,
        Self::Retried,
        Self::Refused,
        Self::Failed,
        Self::Logged,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Retried => "retried",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Logged => "logged",
        }
    }
}

/// What the ledger said about one delivery; the `outcome` label of
/// [`EFFECTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectOutcome {
    /// Claimed and performed (or logged): the first time.
    Performed,
    /// Already performed: a redelivery or a Tolinku retry, skipped.
    Duplicate,
    /// Held by another claim: tried again later.
    Held,
}

impl EffectOutcome {
    const ALL: [Self; 3] = [Self::Performed, Self::Duplicate, Self::Held];

    fn label(self) -> &'static str {
        match self {
            Self::Performed => "performed",
            Self::Duplicate => "duplicate",
            Self::Held => "held",
        }
    }
}

/// The handles of one destination.
#[derive(Debug)]
pub struct DestinationMetrics {
    calls: Vec<Counter>,
    duration: Histogram,
    effects: Vec<Counter>,
}

impl DestinationMetrics {
    /// Registers the handles of `destination`.
    pub fn register(destination: &'static str) -> Self {
        Self {
            calls: CallResult::ALL
                .iter()
                .map(|r| metrics::counter!(CALLS, "destination" => destination, "result" => r.label()))
                .collect(),
            duration: metrics::histogram!(CALL_DURATION, "destination" => destination),
            effects: EffectOutcome::ALL
                .iter()
                .map(|o| {
                    metrics::counter!(EFFECTS, "destination" => destination, "outcome" => o.label())
                })
                .collect(),
        }
    }

    /// Counts a call and, when one was made, its duration.
    pub fn call(&self, result: CallResult, seconds: Option<f64>) {
        self.calls[result as usize].increment(1);
        if let Some(seconds) = seconds {
            self.duration.record(seconds);
        }
    }

    /// Counts what the ledger said.
    pub fn effect(&self, outcome: EffectOutcome) {
        self.effects[outcome as usize].increment(1);
    }
}

/// The follow-up counters.
#[derive(Debug)]
pub struct FollowUpMetrics {
    sent: Counter,
    failed: Counter,
}

impl FollowUpMetrics {
    /// Registers the handles.
    pub fn register() -> Self {
        Self {
            sent: metrics::counter!(FOLLOW_UPS, "result" => "sent"),
            failed: metrics::counter!(FOLLOW_UPS, "result" => "failed"),
        }
    }

    /// Counts a follow-up send.
    pub fn sent(&self, ok: bool) {
        if ok {
            self.sent.increment(1);
        } else {
            self.failed.increment(1);
        }
    }
}

/// Registers the help texts with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        CALLS,
        "Calls to the CRM and the welcome workflow, by result."
    );
    metrics::describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "Time from request to answer or failure, per destination."
    );
    metrics::describe_counter!(
        EFFECTS,
        "Side effects by what the ledger said: performed, duplicate (skipped) or held (retried)."
    );
    metrics::describe_counter!(
        FOLLOW_UPS,
        "Delayed welcome follow-ups sent to the welcome queue, by result."
    );
}
