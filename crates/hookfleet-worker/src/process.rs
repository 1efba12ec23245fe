//! One message, from receipt to settlement.
//!
//! The decision of what is retried and what is dead-lettered is made here:
//!
//! - A body that is not a valid envelope is **poison**: it fails the same
//!   way on every attempt, so it goes to the dead-letter queue at once,
//!   before the handler or the breaker sees it, with the parse error as
//!   `error`.
//! - The handler's [`Outcome`] decides everything else: `Done` deletes,
//!   `Retry` releases with backoff (or the handler's own delay),
//!   `GiveUp` dead-letters, `BreakerOpen` releases for the cooldown.
//! - A dead-letter send that fails turns into a retry, never a delete: the
//!   message reaches the DLQ later, by this path or by the queue's redrive
//!   policy once `maxReceiveCount` is exhausted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hookfleet_bus::attributes;
use hookfleet_event::{Envelope, EventId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::breaker::{BreakerPermit, CircuitBreaker};
use crate::handler::{Delivery, Handler, Outcome};
use crate::metrics::Processed;
use crate::queue::{Message, Queue, SQS_MAX_MESSAGE_ATTRIBUTES};
use crate::settle::{Action, Settlement};

/// The longest `error` attribute written, in bytes.
const MAX_ERROR_LEN: usize = 1024;

/// What every processing task of one queue shares.
pub(crate) struct Shared<Q, H> {
    pub(crate) queue: Arc<Q>,
    pub(crate) handler: Arc<H>,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    pub(crate) settle: mpsc::UnboundedSender<Settlement>,
    pub(crate) worker: String,
    pub(crate) visibility: Duration,
    pub(crate) backoff: Backoff,
}

/// A received message and what it holds while in flight.
pub(crate) struct Received {
    pub(crate) message: Message,
    pub(crate) slot: OwnedSemaphorePermit,
    pub(crate) probe: Option<BreakerPermit>,
}

impl<Q: Queue, H: Handler> Shared<Q, H> {
    /// Processes one message and hands it to the settler with its slot;
    /// returns what became of it and how long the handler ran (when it
    /// ran).
    pub(crate) async fn process(&self, received: Received) -> (Processed, Option<Duration>) {
        let Received {
            message,
            slot,
            probe,
        } = received;
        let (processed, handler_time, action) = self.decide(&message, probe).await;
        self.settle(Settlement {
            receipt: message.receipt,
            action,
            slot: Some(slot),
        });
        (processed, handler_time)
    }

    /// Everything but the settling: the poison check, the breaker, the
    /// handler, and what its outcome means for the message.
    async fn decide(
        &self,
        message: &Message,
        probe: Option<BreakerPermit>,
    ) -> (Processed, Option<Duration>, Action) {
        let envelope = match Envelope::parse(message.body.as_bytes()) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "poison message: not an envelope");
                let (processed, action) = self.dead_letter(message, &error.to_string()).await;
                return (processed, None, action);
            }
        };

        let permit = match (probe, &self.breaker) {
            (Some(probe), _) => Some(probe),
            (None, None) => None,
            (None, Some(breaker)) => match breaker.try_acquire() {
                Ok(permit) => Some(permit),
                Err(rejected) => {
                    let action = Action::Release {
                        after: rejected.remaining,
                    };
                    return (Processed::BreakerOpen, None, action);
                }
            },
        };

        let delivery = Delivery {
            message,
            envelope: &envelope,
            event_id: event_id(message),
        };
        let started = Instant::now();
        let outcome = self.handle_with_heartbeat(&delivery).await;
        let handler_time = Some(started.elapsed());

        let (processed, action) = match outcome {
            Outcome::Done => {
                report(permit, true);
                (Processed::Done, Action::Delete)
            }
            Outcome::Skipped => {
                drop(permit);
                (Processed::Done, Action::Delete)
            }
            Outcome::Retry { after, reason } => {
                report(permit, false);
                self.retry_later(&delivery, after, &reason)
            }
            Outcome::Wait { after, reason } => {
                drop(permit);
                self.retry_later(&delivery, after, &reason)
            }
            Outcome::GiveUp { reason } => {
                // The destination answered (with a refusal): it is up.
                report(permit, true);
                self.dead_letter(message, &reason).await
            }
            Outcome::BreakerOpen { remaining } => {
                drop(permit);
                (Processed::BreakerOpen, Action::Release { after: remaining })
            }
        };
        (processed, handler_time, action)
    }

    /// Logs a retry and puts the message back after `after`, or after the
    /// backoff for its receive count.
    fn retry_later(
        &self,
        delivery: &Delivery<'_>,
        after: Option<Duration>,
        reason: &str,
    ) -> (Processed, Action) {
        let delay = after.unwrap_or_else(|| self.backoff.delay(delivery.message.receive_count));
        tracing::info!(
            event_id = %delivery.event_id,
            reason = %one_line(reason),
            retry_in_secs = delay.as_secs_f64(),
            "retrying later"
        );
        (Processed::Retried, Action::Release { after: delay })
    }

    /// Puts a message back with a backoff after its handler panicked (its
    /// slot was freed with the task).
    pub(crate) fn release_after_panic(&self, receipt: &str, receive_count: u32) {
        self.settle(Settlement {
            receipt: receipt.to_owned(),
            action: Action::Release {
                after: self.backoff.delay(receive_count),
            },
            slot: None,
        });
    }

    /// Runs the handler, extending the message's visibility every half
    /// visibility timeout until it returns.
    async fn handle_with_heartbeat(&self, delivery: &Delivery<'_>) -> Outcome {
        let period = (self.visibility / 2).max(Duration::from_millis(500));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        let handling = self.handler.handle(delivery);
        tokio::pin!(handling);

        loop {
            // The handler first: one that is done at its first poll never
            // registers the heartbeat's timer.
            tokio::select! {
                biased;
                outcome = &mut handling => return outcome,
                _ = heartbeat.tick() => {
                    let receipt = &delivery.message.receipt;
                    if let Err(error) = self.queue.change_visibility(receipt, self.visibility).await {
                        tracing::warn!(%error, "visibility heartbeat failed");
                    }
                }
            }
        }
    }

    /// Copies the message to the dead-letter queue, then has it deleted;
    /// a failed copy becomes a retry.
    async fn dead_letter(&self, message: &Message, error: &str) -> (Processed, Action) {
        let attributes =
            dead_letter_attributes(message, error, &self.worker, OffsetDateTime::now_utc());
        match self
            .queue
            .send_to_dead_letter(&message.body, &attributes)
            .await
        {
            Ok(()) => {
                tracing::warn!(
                    error = attributes[attributes::ERROR].as_str(),
                    "message dead-lettered"
                );
                (Processed::GaveUp, Action::Delete)
            }
            Err(send_error) => {
                tracing::error!(%send_error, "dead-letter send failed; retrying later");
                let after = self.backoff.delay(message.receive_count);
                (Processed::Retried, Action::Release { after })
            }
        }
    }

    fn settle(&self, settlement: Settlement) {
        // The settler outlives every processing task (the runtime drops
        // its sender last), so this cannot fail while tasks run.
        let _ = self.settle.send(settlement);
    }
}

/// Tells the breaker (if any) how the destination fared.
fn report(permit: Option<BreakerPermit>, success: bool) {
    match permit {
        Some(permit) if success => permit.success(),
        Some(permit) => permit.failure(),
        None => {}
    }
}

/// The attributes of a dead-lettered copy (SPEC §5): the original ones
/// plus `error` (one line), `worker`, `failed_at` (RFC 3339) and
/// `receive_count`. Failure attributes from an earlier give-up (a
/// redriven message) are replaced. SQS allows 10 attributes: when the
/// original has more than 6, the §5 ones are kept first.
pub fn dead_letter_attributes(
    message: &Message,
    error: &str,
    worker: &str,
    failed_at: OffsetDateTime,
) -> BTreeMap<String, String> {
    let room = SQS_MAX_MESSAGE_ATTRIBUTES - attributes::FAILURE_ATTRIBUTES.len();
    let original = message
        .attributes
        .iter()
        .filter(|(name, _)| !attributes::FAILURE_ATTRIBUTES.contains(&name.as_str()));
    let (bus, other): (Vec<_>, Vec<_>) = original.partition(|(name, _)| {
        [
            attributes::EVENT_TYPE,
            attributes::EVENT_ID,
            attributes::RECEIVED_AT,
        ]
        .contains(&name.as_str())
    });
    let mut kept: BTreeMap<String, String> = bus
        .into_iter()
        .chain(other)
        .take(room)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();

    let failed_at = failed_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| failed_at.unix_timestamp().to_string());
    kept.insert(attributes::ERROR.to_owned(), one_line(error));
    kept.insert(attributes::WORKER.to_owned(), worker.to_owned());
    kept.insert(attributes::FAILED_AT.to_owned(), failed_at);
    kept.insert(
        attributes::RECEIVE_COUNT.to_owned(),
        message.receive_count.to_string(),
    );
    kept
}

/// The message's `event_id` attribute when it is well-formed, else the
/// hash of its body (what ingest would have put there).
fn event_id(message: &Message) -> EventId {
    message
        .attributes
        .get(attributes::EVENT_ID)
        .and_then(|id| EventId::parse(id))
        .unwrap_or_else(|| EventId::of_body(message.body.as_bytes()))
}

/// Whitespace runs (newlines included) become one space; the result is
/// cut to [`MAX_ERROR_LEN`] bytes on a character boundary.
fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    if line.is_empty() {
        line.push_str("no reason given");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(attributes: &[(&str, &str)]) -> Message {
        Message {
            id: "m-1".into(),
            receipt: "r-1".into(),
            body: "{}".into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            receive_count: 3,
            sent_at: None,
            first_received_at: None,
        }
    }

    #[test]
    fn dead_letters_carry_the_originals_and_the_failure() {
        let original = message(&[
            ("event_type", "link.clicked"),
            ("event_id", "abc"),
            ("received_at", "2026-12-03T10:00:00Z"),
        ]);
        let failed_at = time::macros::datetime!(2026-12-03 10:05:00 UTC);
        let attributes = dead_letter_attributes(
            &original,
            "crm said 422:\n bad field",
            "hookfleet-crm",
            failed_at,
        );
        let expected: BTreeMap<String, String> = [
            ("event_type", "link.clicked"),
            ("event_id", "abc"),
            ("received_at", "2026-12-03T10:00:00Z"),
            ("error", "crm said 422: bad field"),
            ("worker", "hookfleet-crm"),
            ("failed_at", "2026-12-03T10:05:00Z"),
            ("receive_count", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(attributes, expected);
    }

    #[test]
    fn earlier_failures_are_replaced_and_the_attribute_limit_kept() {
        let mut pairs = vec![
            ("error", "old"),
            ("worker", "old"),
            ("event_id", "abc"),
            ("event_type", "x"),
        ];
        let extra: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        pairs.extend(extra.iter().map(|name| (name.as_str(), "v")));
        let attributes =
            dead_letter_attributes(&message(&pairs), "new", "w", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(attributes.len(), SQS_MAX_MESSAGE_ATTRIBUTES);
        assert_eq!(attributes["error"], "new");
        assert_eq!(attributes["worker"], "w");
        assert_eq!(attributes["event_id"], "abc");
        assert_eq!(attributes["event_type"], "x");
    }

    #[test]
    fn errors_are_one_bounded_line() {
        assert_eq!(one_line(""), "no reason given");
        let long = "é".repeat(MAX_ERROR_LEN);
        let line = one_line(&long);
        assert!(line.len() <= MAX_ERROR_LEN && line.len() > MAX_ERROR_LEN - 2);
    }

    #[test]
    fn event_id_falls_back_to_the_body_hash() {
        let id = "a".repeat(64);
        assert_eq!(event_id(&message(&[("event_id", &id)])).to_hex(), id);
        let fallback = event_id(&message(&[("event_id", "nope")]));
        assert_eq!(fallback, EventId::of_body(b"{}"));
    }
}
