//! `hookfleet-crm`'s handler of the `hookfleet-welcome` queue: the welcome
//! workflow, `HOOKFLEET_WELCOME_DELAY` after each `install.tracked`.
//!
//! The delay is an SQS message timer, never a sleeping task, so a restart
//! loses nothing and a waiting install holds no worker resources:
//!
//! 1. An install arrives from the topic (no [`FOLLOW_UP`] attribute). The
//!    handler sends a **follow-up** to the same queue: the same body, the
//!    original attributes plus `follow_up=welcome`, with `DelaySeconds`
//!    set so that it becomes visible the delay after the install entered
//!    the queue. Then the original is deleted (`Done`).
//! 2. The follow-up arrives after its timer: the handler calls the
//!    workflow through the effect ledger, once per event.
//!
//! If the delay has already passed when the original is handled (a
//! backlog, a long outage), the call is made at once without a
//! follow-up. A worker that dies between sending the follow-up and
//! deleting the original sends a second follow-up on the redelivery; the
//! ledger turns the second call into a no-op, so duplicates are harmless.
//! A follow-up that is dead-lettered and later redriven keeps its
//! attribute, so it calls at once instead of waiting again.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hookfleet_bus::attributes;
use hookfleet_bus::wire::sqs::Sqs;
use hookfleet_worker::queue::SQS_MAX_MESSAGE_ATTRIBUTES;
use hookfleet_worker::{Delivery, Handler, Message, Outcome};

use crate::body::welcome_trigger;
use crate::delay::remaining_delay;
use crate::destination::Destination;
use crate::effect::{Effect, Effects};
use crate::metrics::FollowUpMetrics;

/// The event type this queue carries (SPEC §4).
pub const INSTALL_TRACKED: &str = "install.tracked";

/// The message attribute marking a delayed follow-up.
pub const FOLLOW_UP: &str = "follow_up";

/// The value of [`FOLLOW_UP`] on welcome follow-ups.
pub const FOLLOW_UP_WELCOME: &str = "welcome";

/// The ledger key of an event's welcome call.
pub fn effect_key(event_id: &str) -> String {
    format!("welcome:{event_id}")
}

/// Sends follow-ups to the welcome queue.
#[derive(Debug)]
pub struct FollowUps {
    sqs: Sqs,
    queue_url: String,
    metrics: FollowUpMetrics,
}

impl FollowUps {
    /// Follow-ups sent to the queue at `queue_url` (the welcome queue).
    pub fn new(sqs: Sqs, queue_url: String) -> Self {
        Self {
            sqs,
            queue_url,
            metrics: FollowUpMetrics::register(),
        }
    }

    /// Sends the follow-up of `message`, visible after `delay` (at most
    /// 15 minutes).
    async fn send(&self, message: &Message, delay: Duration) -> Result<(), String> {
        let attributes = follow_up_attributes(&message.attributes);
        let delay_seconds = u32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        let sent = self
            .sqs
            .send_delayed(&self.queue_url, &message.body, &attributes, delay_seconds)
            .await;
        self.metrics.sent(sent.is_ok());
        sent.map(|_| ())
            .map_err(|e| format!("cannot send the welcome follow-up: {e}"))
    }
}

/// The follow-up's attributes: the original ones (the bus's first, and
/// without the failure attributes of an earlier dead-lettering) plus
/// `follow_up=welcome`, within SQS's 10.
fn follow_up_attributes(original: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let bus = [
        attributes::EVENT_TYPE,
        attributes::EVENT_ID,
        attributes::RECEIVED_AT,
    ];
    let (first, other): (Vec<_>, Vec<_>) = original
        .iter()
        .filter(|(name, _)| {
            name.as_str() != FOLLOW_UP && !attributes::FAILURE_ATTRIBUTES.contains(&name.as_str())
        })
        .partition(|(name, _)| bus.contains(&name.as_str()));
    let mut kept: BTreeMap<String, String> = first
        .into_iter()
        .chain(other)
        .take(SQS_MAX_MESSAGE_ATTRIBUTES - 1)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    kept.insert(FOLLOW_UP.to_owned(), FOLLOW_UP_WELCOME.to_owned());
    kept
}

/// Whether `message` is a welcome follow-up (rather than the install as
/// the topic delivered it).
fn is_follow_up(message: &Message) -> bool {
    message.attributes.get(FOLLOW_UP).map(String::as_str) == Some(FOLLOW_UP_WELCOME)
}

/// Triggers the welcome workflow once per install, after the delay.
#[derive(Debug)]
pub struct WelcomeHandler {
    effects: Effects,
    welcome: Destination,
    follow_ups: FollowUps,
    delay: Duration,
}

impl WelcomeHandler {
    /// Calls `welcome` `delay` after each install, timing it with
    /// `follow_ups` and recording it in `effects`.
    pub fn new(
        effects: Effects,
        welcome: Destination,
        follow_ups: FollowUps,
        delay: Duration,
    ) -> Self {
        Self {
            effects,
            welcome,
            follow_ups,
            delay,
        }
    }
}

impl Handler for WelcomeHandler {
    async fn handle(&self, delivery: &Delivery<'_>) -> Outcome {
        if delivery.event_type() != INSTALL_TRACKED {
            return Outcome::give_up(format!(
                "{} on the welcome queue, which takes only {INSTALL_TRACKED}",
                delivery.event_type()
            ));
        }
        let event_id = delivery.event_id.to_hex();
        let body = match welcome_trigger(delivery.envelope, &event_id) {
            Ok(body) => body,
            Err(reason) => return Outcome::give_up(reason),
        };

        let message = delivery.message;
        if !is_follow_up(message) {
            let wait = remaining_delay(self.delay, message.sent_at, SystemTime::now());
            if !wait.is_zero() {
                return match self.follow_ups.send(message, wait).await {
                    Ok(()) => {
                        tracing::info!(
                            event_id,
                            delay_secs = wait.as_secs(),
                            "welcome workflow scheduled"
                        );
                        Outcome::Skipped
                    }
                    Err(reason) => Outcome::wait(reason),
                };
            }
        }

        let effect = Effect {
            key: effect_key(&event_id),
            idempotency_key: &event_id,
            body,
        };
        self.effects.perform(&self.welcome, &effect).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_follow_up_keeps_the_bus_attributes_and_is_marked() {
        let original = map(&[
            ("event_type", "install.tracked"),
            ("event_id", "abc"),
            ("received_at", "2026-12-03T10:15:30Z"),
        ]);
        let expected = map(&[
            ("event_type", "install.tracked"),
            ("event_id", "abc"),
            ("received_at", "2026-12-03T10:15:30Z"),
            ("follow_up", "welcome"),
        ]);
        assert_eq!(follow_up_attributes(&original), expected);
    }

    #[test]
    fn a_redriven_original_loses_its_failure_attributes_and_the_limit_holds() {
        let mut pairs = vec![
            ("error", "HTTP 503"),
            ("worker", "hookfleet-crm"),
            ("failed_at", "x"),
            ("receive_count", "3"),
            ("event_id", "abc"),
            ("event_type", "install.tracked"),
        ];
        let extra: Vec<String> = (0..12).map(|i| format!("a{i:02}")).collect();
        pairs.extend(extra.iter().map(|name| (name.as_str(), "v")));
        let attributes = follow_up_attributes(&map(&pairs));
        assert_eq!(attributes.len(), SQS_MAX_MESSAGE_ATTRIBUTES);
        assert_eq!(attributes["follow_up"], "welcome");
        assert_eq!(attributes["event_id"], "abc");
        assert_eq!(attributes["event_type"], "install.tracked");
        assert!(!attributes.contains_key("error") && !attributes.contains_key("worker"));
    }

    #[test]
    fn only_marked_messages_are_follow_ups() {
        let mut message = Message {
            id: "m".into(),
            receipt: "r".into(),
            body: "{}".into(),
            attributes: map(&[("event_type", "install.tracked")]),
            receive_count: 1,
            sent_at: None,
            first_received_at: None,
        };
        assert!(!is_follow_up(&message));
        message.attributes = map(&[("follow_up", "welcome")]);
        assert!(is_follow_up(&message));
        message.attributes = map(&[("follow_up", "other")]);
        assert!(!is_follow_up(&message));
    }
}
