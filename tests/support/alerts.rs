//! Feeding `hookfleet-alerts`' queue directly (SendMessage with the §5
//! attributes) and waiting for the worker to get through it. The worker
//! runs as a [`WorkerProcess`] on a
//! [`TestDatabase`](crate::analytics::TestDatabase).

use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use hookfleet_event::EventId;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Aws;
use crate::worker::WorkerProcess;

/// Waits until `workers` together processed `count` messages to done
/// (deleted), or panics after `deadline` with their logs.
pub async fn wait_done(workers: &[&WorkerProcess], count: u64, deadline: Duration) {
    let started = tokio::time::Instant::now();
    loop {
        let mut done = 0;
        for worker in workers {
            done += worker.status().await["queues"][0]["processed"]["done"]
                .as_u64()
                .unwrap_or(0);
        }
        if done >= count {
            return;
        }
        if started.elapsed() > deadline {
            let logs: Vec<String> = workers.iter().map(|w| w.process.log()).collect();
            panic!(
                "only {done} of {count} messages done after {deadline:?}; logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One webhook body, as ingest would have put it on the bus.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: String,
    pub body: String,
}

impl Event {
    /// `event_type` at `at` with `data` (plus a unique `nonce`, so that
    /// every event has its own id).
    pub fn new(event_type: &str, at: OffsetDateTime, data: Value) -> Self {
        let mut data = data;
        data["nonce"] = Value::String(crate::unique("n"));
        let body = serde_json::json!({
            "event": event_type,
            "timestamp": at.format(&Rfc3339).expect("rfc 3339"),
            "data": data,
        })
        .to_string();
        Self {
            event_type: event_type.to_owned(),
            body,
        }
    }

    /// The §5 `event_id`.
    pub fn event_id(&self) -> String {
        EventId::of_body(self.body.as_bytes()).to_hex()
    }
}

/// Sends `events` to `queue_url`, ten per call, with the §5 attributes.
pub async fn send(aws: &Aws, queue_url: &str, events: &[Event]) {
    let string = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("attribute")
    };
    let received_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("rfc 3339");
    for chunk in events.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, event)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&event.body)
                    .message_attributes("event_type", string(&event.event_type))
                    .message_attributes("event_id", string(&event.event_id()))
                    .message_attributes("received_at", string(&received_at))
                    .build()
                    .expect("entry")
            })
            .collect();
        let output = aws
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("send to {queue_url}: {e:?}"));
        assert!(output.failed().is_empty(), "{:?}", output.failed());
    }
}
