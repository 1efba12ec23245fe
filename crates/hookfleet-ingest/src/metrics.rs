//! Every metric ingest emits, declared once, with handles registered at
//! start so the request path never looks a metric up by name.

use metrics::{Counter, Histogram};

/// Webhook requests by `outcome`.
pub const REQUESTS: &str = "hookfleet_ingest_requests_total";
/// Verified signatures by `secret`: the matching secret's position in the
/// configured list (0 = first). When an old secret's count stops growing
/// it can be retired.
pub const SIGNATURE_MATCHES: &str = "hookfleet_ingest_signature_matches_total";
/// Time from request to answer, seconds (histogram).
pub const REQUEST_DURATION: &str = "hookfleet_ingest_request_duration_seconds";

/// What became of a webhook request; the `outcome` label of [`REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Published,
    Test,
    TooLarge,
    SignatureMissing,
    SignatureMalformed,
    SignatureMismatch,
    BadRequest,
    QueueFull,
    PublishTimeout,
    PublishFailed,
}

impl Outcome {
    const ALL: [Outcome; 10] = [
        Self::Published,
        Self::Test,
        Self::TooLarge,
        Self::SignatureMissing,
        Self::SignatureMalformed,
        Self::SignatureMismatch,
        Self::BadRequest,
        Self::QueueFull,
        Self::PublishTimeout,
        Self::PublishFailed,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Test => "test",
            Self::TooLarge => "too_large",
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::BadRequest => "bad_request",
            Self::QueueFull => "queue_full",
            Self::PublishTimeout => "publish_timeout",
            Self::PublishFailed => "publish_failed",
        }
    }
}

/// Registered metric handles.
pub struct IngestMetrics {
    outcomes: Vec<Counter>,
    secret_matches: Vec<Counter>,
    duration: Histogram,
}

impl IngestMetrics {
    /// Describes and registers every metric; `secrets` is how many webhook
    /// secrets are configured.
    pub fn register(secrets: usize) -> Self {
        metrics::describe_counter!(REQUESTS, "Webhook requests by outcome.");
        metrics::describe_counter!(
            SIGNATURE_MATCHES,
            "Verified webhooks by the position of the secret that matched (0 = first)."
        );
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "Webhook request duration, from first byte to answer."
        );
        hookfleet_bus::metrics::describe();

        Self {
            outcomes: Outcome::ALL
                .iter()
                .map(|o| metrics::counter!(REQUESTS, "outcome" => o.label()))
                .collect(),
            secret_matches: (0..secrets)
                .map(|i| metrics::counter!(SIGNATURE_MATCHES, "secret" => i.to_string()))
                .collect(),
            duration: metrics::histogram!(REQUEST_DURATION),
        }
    }

    /// Counts one request's outcome and duration.
    pub fn request(&self, outcome: Outcome, seconds: f64) {
        self.outcomes[outcome as usize].increment(1);
        self.duration.record(seconds);
    }

    /// Counts a verification by the secret at `position`.
    pub fn secret_matched(&self, position: usize) {
        if let Some(counter) = self.secret_matches.get(position) {
            counter.increment(1);
        }
    }
}
