//! Analytics' [`Handler`]: enrich the event, store it through the
//! [`Batcher`], and turn what happened into the runtime's [`Outcome`].
//!
//! The runtime has already dead-lettered bodies that are not envelopes
//! (not JSON, no RFC 3339 `timestamp`, `data` not an object) before this
//! handler runs. What is left to decide here:
//!
//! | case | outcome | why |
//! |---|---|---|
//! | stored, or already stored (a duplicate) | `Done` | storing is idempotent on `event_id` |
//! | unknown event type | `Done` (stored) | the sender adds types over time (SPEC §2) |
//! | the enricher finds the body malformed | `GiveUp` with the reason | poison: every attempt fails the same way |
//! | a campaign or user lookup fails (database down) | `Retry` | never stored with a silent gap in its enrichment |
//! | the insert fails (database down, timeout) | `Retry` | nothing is lost; a later attempt stores it once |
//! | the database refuses this event's data | `GiveUp` with the reason | found by retrying its batch one event at a time |
//!
//! The database is this worker's one destination, and the app gates the
//! queue on a circuit breaker for it: every `Retry` here is a database
//! failure, so after a few in a row the worker stops receiving and the
//! messages wait in SQS without spending their receive count (which would
//! otherwise send a long outage's worth of events to the dead-letter queue
//! through the redrive policy). A `GiveUp` means the database answered, so
//! it counts as a success for the breaker.

use std::sync::Arc;

use hookfleet_bus::attributes;
use hookfleet_enrich::{EnrichError, Enricher, Incoming, LookupSource};
use hookfleet_store::{Store, StoreError};
use hookfleet_worker::{Delivery, Handler, Message, Outcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::batcher::{Batcher, StoreFailure};
use crate::metrics::{AnalyticsMetrics, EnrichFailure};

/// Enriches and stores each delivered event.
pub struct AnalyticsHandler<S = Store> {
    enricher: Enricher<S>,
    batcher: Batcher,
    metrics: Arc<AnalyticsMetrics>,
}

impl<S: LookupSource> AnalyticsHandler<S> {
    /// A handler enriching with `enricher` and storing through `batcher`.
    pub fn new(enricher: Enricher<S>, batcher: Batcher, metrics: Arc<AnalyticsMetrics>) -> Self {
        Self {
            enricher,
            batcher,
            metrics,
        }
    }
}

impl<S: LookupSource> Handler for AnalyticsHandler<S> {
    async fn handle(&self, delivery: &Delivery<'_>) -> Outcome {
        let event_id = delivery.event_id.to_hex();
        let incoming = Incoming {
            event_id: &event_id,
            event_type: delivery.event_type(),
            occurred_at: delivery.envelope.occurred_at(),
            received_at: received_at(delivery.message),
            body: delivery.message.body.as_bytes(),
        };

        let event = match self.enricher.enrich(&incoming).await {
            Ok(event) => event,
            Err(error) => return self.enrich_failed(error),
        };

        match self.batcher.store(event).await {
            Ok(()) => {
                tracing::debug!(%event_id, event_type = incoming.event_type, "event stored");
                Outcome::Done
            }
            Err(StoreFailure::Retry(reason)) => Outcome::retry(format!("not stored: {reason}")),
            Err(StoreFailure::Refused(reason)) => Outcome::give_up(reason),
        }
    }
}

impl<S> AnalyticsHandler<S> {
    fn enrich_failed(&self, error: EnrichError) -> Outcome {
        match error {
            EnrichError::Malformed(_) => {
                self.metrics.enrich_failed(EnrichFailure::Malformed);
                Outcome::give_up(error.to_string())
            }
            // A lookup key the database refuses (say a NUL byte in a
            // campaign id on PostgreSQL) fails the same way every time.
            EnrichError::Lookup(StoreError::Invalid(_)) => {
                self.metrics.enrich_failed(EnrichFailure::Lookup);
                Outcome::give_up(error.to_string())
            }
            EnrichError::Lookup(_) => {
                self.metrics.enrich_failed(EnrichFailure::Lookup);
                Outcome::retry(format!("not enriched: {error}"))
            }
        }
    }
}

/// When ingest received the event: the `received_at` attribute; for a
/// message sent without it (by hand, say), when SQS got it; failing that,
/// now.
fn received_at(message: &Message) -> OffsetDateTime {
    message
        .attributes
        .get(attributes::RECEIVED_AT)
        .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
        .or_else(|| message.sent_at.map(OffsetDateTime::from))
        .unwrap_or_else(OffsetDateTime::now_utc)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use hookfleet_enrich::{CacheConfig, Lookups};
    use hookfleet_event::{Envelope, EventId};
    use hookfleet_store::Campaign;
    use time::macros::datetime;

    use super::*;
    use crate::batcher::BatchConfig;

    fn message(body: &str, attributes: &[(&str, &str)]) -> Message {
        Message {
            id: "m-1".into(),
            receipt: "r-1".into(),
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            receive_count: 1,
            sent_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)),
            first_received_at: None,
        }
    }

    async fn handle(handler: &AnalyticsHandler, message: &Message) -> Outcome {
        let envelope = Envelope::parse(message.body.as_bytes()).expect("an envelope");
        let delivery = Delivery {
            message,
            envelope: &envelope,
            event_id: EventId::of_body(message.body.as_bytes()),
        };
        handler.handle(&delivery).await
    }

    async fn sqlite_handler(dir: &std::path::Path) -> (AnalyticsHandler, Store) {
        let store = Store::connect(None, dir).await.unwrap();
        let metrics = Arc::new(AnalyticsMetrics::register());
        let lookups = Arc::new(Lookups::new(store.clone(), CacheConfig::default()));
        let (batcher, _task) = Batcher::start(
            store.clone(),
            BatchConfig {
                max_events: 10,
                linger: Duration::from_millis(1),
                insert_timeout: Duration::from_secs(5),
                max_in_flight: 1,
            },
            Arc::clone(&metrics),
        );
        let handler = AnalyticsHandler::new(Enricher::new(None, lookups), batcher, metrics);
        (handler, store)
    }

    const CLICK: &str = r#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{"campaign":"spring","country":"GB"}}"#;

    #[tokio::test]
    async fn stores_once_and_enriches_from_the_campaign() {
        let dir = tempfile::tempdir().unwrap();
        let (handler, store) = sqlite_handler(dir.path()).await;
        store
            .upsert_campaign(&Campaign {
                campaign_id: "spring".into(),
                channel: Some("email".into()),
                budget: None,
                target_audience: None,
            })
            .await
            .unwrap();
        let received = message(CLICK, &[("received_at", "2026-12-03T10:15:31Z")]);

        assert_eq!(handle(&handler, &received).await, Outcome::Done);
        assert_eq!(handle(&handler, &received).await, Outcome::Done);

        let id = EventId::of_body(CLICK.as_bytes()).to_hex();
        let stored = store.event(&id).await.unwrap().expect("stored");
        assert_eq!(stored.channel.as_deref(), Some("email"));
        assert_eq!(stored.country.as_deref(), Some("GB"));
        assert_eq!(stored.received_at, datetime!(2026-12-03 10:15:31 UTC));
        let counts = store.minute_counts("spring").await.unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].count, 1, "the duplicate is not counted");
    }

    #[tokio::test]
    async fn without_received_at_the_send_time_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let (handler, store) = sqlite_handler(dir.path()).await;

        assert_eq!(handle(&handler, &message(CLICK, &[])).await, Outcome::Done);

        let id = EventId::of_body(CLICK.as_bytes()).to_hex();
        let stored = store.event(&id).await.unwrap().expect("stored");
        assert_eq!(stored.received_at, datetime!(2001-09-09 01:46:40 UTC));
    }

    #[tokio::test]
    async fn a_database_that_is_gone_means_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (handler, store) = sqlite_handler(dir.path()).await;
        store.close().await;

        let outcome = handle(&handler, &message(CLICK, &[])).await;

        let Outcome::Retry {
            after: None,
            reason,
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains("not enriched"), "{reason}");
    }
}
