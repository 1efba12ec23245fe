//! Every metric analytics emits, declared once, with handles registered at
//! start so the hot path never looks a metric up by name. The runtime's
//! (`hookfleet_worker_*`: messages by outcome, handler time, breaker
//! state) and enrichment's (`hookfleet_enrich_*`: cache hits, GeoIP
//! reloads) are described here too.

use hookfleet_store::{InsertReport, StoreError};
use metrics::{Counter, Histogram};

/// Events stored: new rows in `events`, each counted in its minute.
pub const EVENTS_STORED: &str = "hookfleet_analytics_events_stored_total";
/// Events skipped because their `event_id` was already stored (a Tolinku
/// retry or an SQS redelivery).
pub const EVENTS_DUPLICATE: &str = "hookfleet_analytics_events_duplicate_total";
/// Events per insert transaction (histogram).
pub const BATCH_SIZE: &str = "hookfleet_analytics_batch_size_events";
/// Time of one insert transaction, seconds (histogram).
pub const INSERT_DURATION: &str = "hookfleet_analytics_insert_duration_seconds";
/// Failed insert transactions by `error` (see [`InsertFailure`]).
pub const INSERT_FAILURES: &str = "hookfleet_analytics_insert_failures_total";
/// Events that could not be enriched, by `reason` (`malformed`, `lookup`).
pub const ENRICH_FAILURES: &str = "hookfleet_analytics_enrich_failures_total";

/// Why an insert transaction failed; the `error` label of
/// [`INSERT_FAILURES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertFailure {
    /// The database was unreachable or failed; the events are retried.
    Unavailable,
    /// The database refused the data; the batch is split to find the
    /// event at fault.
    Invalid,
    /// The insert took longer than `HOOKFLEET_INSERT_TIMEOUT_SECS`.
    Timeout,
}

impl InsertFailure {
    const ALL: [InsertFailure; 3] = [Self::Unavailable, Self::Invalid, Self::Timeout];

    fn label(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
            Self::Timeout => "timeout",
        }
    }

    /// The label for a store error. Configuration and migration errors
    /// cannot happen after start; they count as unavailable, which is
    /// also how they are treated (retried).
    pub fn of(error: &StoreError) -> Self {
        match error {
            StoreError::Invalid(_) => Self::Invalid,
            _ => Self::Unavailable,
        }
    }
}

/// Why an event could not be enriched; the `reason` label of
/// [`ENRICH_FAILURES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrichFailure {
    /// The body is not an envelope analytics can read (dead-lettered).
    Malformed,
    /// A campaign or user lookup failed.
    Lookup,
}

/// Registered metric handles. Without an installed recorder (unit tests)
/// they count nothing.
#[derive(Debug)]
pub struct AnalyticsMetrics {
    stored: Counter,
    duplicates: Counter,
    batch_size: Histogram,
    insert_duration: Histogram,
    insert_failures: Vec<Counter>,
    malformed: Counter,
    lookup_failures: Counter,
}

impl AnalyticsMetrics {
    /// Describes every metric (analytics' and enrichment's) and registers
    /// the handles.
    pub fn register() -> Self {
        metrics::describe_counter!(
            EVENTS_STORED,
            "Events stored, each counted once in its campaign minute."
        );
        metrics::describe_counter!(
            EVENTS_DUPLICATE,
            "Events not stored because their event_id already was (retries, redeliveries)."
        );
        metrics::describe_histogram!(BATCH_SIZE, "Events per insert transaction.");
        metrics::describe_histogram!(
            INSERT_DURATION,
            metrics::Unit::Seconds,
            "Time of one insert transaction."
        );
        metrics::describe_counter!(INSERT_FAILURES, "Failed insert transactions by error.");
        metrics::describe_counter!(
            ENRICH_FAILURES,
            "Events that could not be enriched, by reason."
        );
        hookfleet_enrich::metrics::describe();

        Self {
            stored: metrics::counter!(EVENTS_STORED),
            duplicates: metrics::counter!(EVENTS_DUPLICATE),
            batch_size: metrics::histogram!(BATCH_SIZE),
            insert_duration: metrics::histogram!(INSERT_DURATION),
            insert_failures: InsertFailure::ALL
                .iter()
                .map(|f| metrics::counter!(INSERT_FAILURES, "error" => f.label()))
                .collect(),
            malformed: metrics::counter!(ENRICH_FAILURES, "reason" => "malformed"),
            lookup_failures: metrics::counter!(ENRICH_FAILURES, "reason" => "lookup"),
        }
    }

    /// Counts one insert transaction of `events` that took `seconds`.
    pub fn inserted(&self, events: usize, seconds: f64, report: InsertReport) {
        self.batch_size.record(events as f64);
        self.insert_duration.record(seconds);
        self.stored.increment(report.inserted as u64);
        self.duplicates.increment(report.duplicates as u64);
    }

    /// Counts one failed insert transaction of `events`.
    pub fn insert_failed(&self, events: usize, seconds: f64, failure: InsertFailure) {
        self.batch_size.record(events as f64);
        self.insert_duration.record(seconds);
        self.insert_failures[failure as usize].increment(1);
    }

    /// Counts an event that could not be enriched.
    pub fn enrich_failed(&self, failure: EnrichFailure) {
        match failure {
            EnrichFailure::Malformed => self.malformed.increment(1),
            EnrichFailure::Lookup => self.lookup_failures.increment(1),
        }
    }
}
