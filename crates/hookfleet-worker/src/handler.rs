//! What a worker supplies: a [`Handler`] that turns one delivery into an
//! [`Outcome`]. Everything else (receiving, deleting, retrying,
//! dead-lettering, the breaker) is the runtime's.

use std::future::Future;
use std::time::Duration;

use hookfleet_event::{Envelope, EventId};

use crate::queue::Message;

/// One message, handed to a handler after its body parsed as an envelope.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The message as received (attributes, receive count, timestamps).
    pub message: &'a Message,
    /// The parsed body.
    pub envelope: &'a Envelope<'a>,
    /// The deduplication key: the `event_id` attribute when present and
    /// well-formed, otherwise the SHA-256 of the body (which is what ingest
    /// puts in the attribute).
    pub event_id: EventId,
}

impl Delivery<'_> {
    /// The event type, e.g. `link.clicked`.
    pub fn event_type(&self) -> &str {
        self.envelope.event_type()
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed (or already processed before): the message is deleted.
    Done,
    /// Failed in a way that may pass later (a 5xx, a timeout, a database
    /// that is down). The message comes back after `after` when given
    /// (e.g. from `Retry-After`), otherwise after the runtime's exponential
    /// backoff from its receive count. With a breaker, this counts as a
    /// failure of the destination.
    Retry {
        /// How long to wait before the next attempt, if the handler knows.
        after: Option<Duration>,
        /// Why, for the log.
        reason: String,
    },
    /// Failed in a way that will never pass (the destination refused the
    /// content): the message goes to the dead-letter queue with `reason`
    /// as its `error` attribute, then is deleted from the source.
    GiveUp {
        /// Why, one line; becomes the `error` attribute.
        reason: String,
    },
    /// Nothing for the destination to do (the effect was made before, or is
    /// scheduled for later): the message is deleted, and the breaker is
    /// told nothing — this says nothing about the destination's health.
    Skipped,
    /// Come back later for a reason that is not the destination's (another
    /// worker holds the effect's claim, a local dependency is down): the
    /// message comes back after `after` or the runtime's backoff, and the
    /// breaker is told nothing.
    Wait {
        /// How long to wait before the next attempt, if the handler knows.
        after: Option<Duration>,
        /// Why, for the log.
        reason: String,
    },
    /// The handler did not try because the destination's breaker is open:
    /// the message comes back after `remaining`, and this is not counted
    /// as a failure.
    BreakerOpen {
        /// The rest of the breaker's cooldown.
        remaining: Duration,
    },
}

impl Outcome {
    /// A retry with the runtime's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    /// A wait (not the destination's fault) with the runtime's backoff.
    pub fn wait(reason: impl Into<String>) -> Self {
        Self::Wait {
            after: None,
            reason: reason.into(),
        }
    }

    /// A give-up with a reason.
    pub fn give_up(reason: impl Into<String>) -> Self {
        Self::GiveUp {
            reason: reason.into(),
        }
    }
}

/// A worker's processing of one delivery.
///
/// The runtime calls `handle` concurrently, up to the configured bound,
/// and keeps the message invisible (a visibility heartbeat) for as long as
/// the future runs. Processing must be idempotent: SQS delivers at least
/// once, and a worker killed after the side effect but before the delete
/// sees the message again. A panic is caught and treated as a retry.
pub trait Handler: Send + Sync + 'static {
    /// Processes one delivery.
    fn handle(&self, delivery: &Delivery<'_>) -> impl Future<Output = Outcome> + Send;
}
