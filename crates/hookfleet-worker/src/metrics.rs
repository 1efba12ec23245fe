//! Every metric the worker runtime emits, declared once, and
//! [`QueueStats`]: the one place a queue's events are counted, for
//! Prometheus and for `/status` alike, so the two cannot drift.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;

use crate::queue::Message;

/// Messages received, by `queue`.
pub const MESSAGES_RECEIVED: &str = "hookfleet_worker_messages_received_total";
/// Messages processed, by `queue` and `outcome` (see [`Processed`]).
pub const MESSAGES: &str = "hookfleet_worker_messages_total";
/// Handler run time, seconds, by `queue` (histogram).
pub const HANDLER_DURATION: &str = "hookfleet_worker_handler_duration_seconds";
/// Messages being processed now, by `queue` (gauge).
pub const IN_FLIGHT: &str = "hookfleet_worker_in_flight";
/// Age of the oldest message in the last receive that returned any, by
/// `queue` (gauge; 0 after an empty receive).
pub const OLDEST_MESSAGE_AGE: &str = "hookfleet_worker_oldest_message_age_seconds";
/// Breaker state by `destination`: 0 closed, 1 open, 2 half-open (gauge).
pub const BREAKER_STATE: &str = "hookfleet_worker_breaker_state";

/// Registers help texts with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(MESSAGES_RECEIVED, "SQS messages received.");
    metrics::describe_counter!(MESSAGES, "SQS messages processed, by outcome.");
    metrics::describe_histogram!(
        HANDLER_DURATION,
        metrics::Unit::Seconds,
        "Handler run time per message."
    );
    metrics::describe_gauge!(IN_FLIGHT, "Messages being processed.");
    metrics::describe_gauge!(
        OLDEST_MESSAGE_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest message in the last non-empty receive."
    );
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open."
    );
}

/// What became of a message; the `outcome` label of [`MESSAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Handled and deleted.
    Done,
    /// Put back with a backoff (handler retry, or a failed dead-letter
    /// send).
    Retried,
    /// Sent to the dead-letter queue and deleted (poison included).
    GaveUp,
    /// Put back for the rest of the breaker's cooldown.
    BreakerOpen,
    /// The handler panicked; put back with a backoff.
    Panicked,
    /// Cut off at shutdown after the grace period; it reappears when its
    /// visibility runs out.
    Abandoned,
}

impl Processed {
    const ALL: [Processed; 6] = [
        Self::Done,
        Self::Retried,
        Self::GaveUp,
        Self::BreakerOpen,
        Self::Panicked,
        Self::Abandoned,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retried => "retried",
            Self::GaveUp => "gave_up",
            Self::BreakerOpen => "breaker_open",
            Self::Panicked => "panicked",
            Self::Abandoned => "abandoned",
        }
    }
}

/// One queue's counters, registered once.
#[derive(Debug)]
pub struct QueueStats {
    name: String,
    received_total: Counter,
    outcome_totals: Vec<Counter>,
    duration: Histogram,
    in_flight_gauge: Gauge,
    oldest_age_gauge: Gauge,

    received: AtomicU64,
    outcomes: [AtomicU64; Processed::ALL.len()],
    in_flight: AtomicU64,
    oldest_age_ms: AtomicU64,
}

/// `/status`'s view of one queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    /// The queue's name.
    pub queue: String,
    /// Messages being processed.
    pub in_flight: u64,
    /// Messages received since start.
    pub received: u64,
    /// Messages processed since start, by outcome label.
    pub processed: std::collections::BTreeMap<&'static str, u64>,
    /// Age of the oldest message in the last non-empty receive, seconds.
    pub oldest_message_age_secs: f64,
}

impl QueueStats {
    /// Registers the metrics of queue `name`.
    pub fn new(name: &str) -> Self {
        let label = name.to_owned();
        Self {
            name: label.clone(),
            received_total: metrics::counter!(MESSAGES_RECEIVED, "queue" => label.clone()),
            outcome_totals: Processed::ALL
                .iter()
                .map(|o| metrics::counter!(MESSAGES, "queue" => label.clone(), "outcome" => o.label()))
                .collect(),
            duration: metrics::histogram!(HANDLER_DURATION, "queue" => label.clone()),
            in_flight_gauge: metrics::gauge!(IN_FLIGHT, "queue" => label.clone()),
            oldest_age_gauge: metrics::gauge!(OLDEST_MESSAGE_AGE, "queue" => label),
            received: AtomicU64::new(0),
            outcomes: Default::default(),
            in_flight: AtomicU64::new(0),
            oldest_age_ms: AtomicU64::new(0),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages ended with `outcome` so far.
    pub fn count(&self, outcome: Processed) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// Messages received so far.
    pub fn received_count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Messages being processed now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A copy for `/status`.
    pub fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            queue: self.name.clone(),
            in_flight: self.in_flight(),
            received: self.received_count(),
            processed: Processed::ALL
                .iter()
                .map(|&o| (o.label(), self.count(o)))
                .collect(),
            oldest_message_age_secs: self.oldest_age_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    pub(crate) fn received(&self, messages: &[Message], now: SystemTime) {
        let count = messages.len() as u64;
        self.received_total.increment(count);
        self.received.fetch_add(count, Ordering::Relaxed);

        let oldest = messages
            .iter()
            .map(|m| m.age(now))
            .max()
            .unwrap_or_default();
        self.oldest_age_gauge.set(oldest.as_secs_f64());
        self.oldest_age_ms
            .store(oldest.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.in_flight_gauge.set(now as f64);
    }

    pub(crate) fn finished(&self, outcome: Processed, handler_time: Option<Duration>) {
        let now = self
            .in_flight
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.in_flight_gauge.set(now as f64);
        self.outcome_totals[outcome as usize].increment(1);
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(time) = handler_time {
            self.duration.record(time.as_secs_f64());
        }
    }
}
