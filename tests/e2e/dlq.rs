//! `hookfleet dlq ...` against LocalStack. Each test applies its own
//! topology and fills the CRM queue's DLQ itself, the way a worker would
//! (the failure attributes of SPEC §5) and the way the redrive policy
//! would (no failure attributes). This file holds what the tests share.

mod export;
mod inspect;
mod redrive;
mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use hookfleet_e2e::process::{Output, run};
use hookfleet_e2e::topology::Received;
use hookfleet_e2e::{Aws, TestTopology, bin, localstack, unique};

/// The failure attributes a give-up adds (SPEC §5).
pub(crate) const FAILURE_ATTRIBUTES: [&str; 4] = ["error", "worker", "failed_at", "receive_count"];

/// A test's topology, applied, and the CRM queue's URLs.
pub(crate) struct Setup {
    pub(crate) aws: Aws,
    pub(crate) topology: TestTopology,
    /// The CRM DLQ's name.
    pub(crate) dlq: String,
    pub(crate) dlq_url: String,
    pub(crate) source_url: String,
}

/// LocalStack's clients and an applied topology, or `None` (skip) when
/// LocalStack is unreachable outside CI.
pub(crate) async fn setup() -> Option<Setup> {
    let aws = localstack().await?;
    let topology = TestTopology::new();
    topology.apply().await;
    let dlq = topology.dlq(&topology.crm);
    let dlq_url = topology.queue_url(&aws, &dlq).await;
    let source_url = topology.queue_url(&aws, &topology.crm).await;
    Some(Setup {
        aws,
        topology,
        dlq,
        dlq_url,
        source_url,
    })
}

impl Setup {
    /// Runs `hookfleet` with this topology.
    pub(crate) async fn hookfleet(&self, args: &[&str]) -> Output {
        run(&bin("hookfleet"), args, &self.topology.env()).await
    }
}

/// A message as the test put it into a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Put {
    pub(crate) body: String,
    pub(crate) attributes: BTreeMap<String, String>,
}

impl Put {
    /// The attributes minus the failure attributes.
    pub(crate) fn originals(&self) -> BTreeMap<String, String> {
        let mut originals = self.attributes.clone();
        originals.retain(|name, _| !FAILURE_ATTRIBUTES.contains(&name.as_str()));
        originals
    }
}

/// A body, unique per call, as Tolinku would send it.
fn body(event_type: &str, n: usize) -> String {
    format!(
        r#"{{"event":"{event_type}","timestamp":"2026-12-03T10:00:00Z","data":{{"n":{n},"tag":"{}"}}}}"#,
        unique("m")
    )
}

/// What ingest puts on every message.
fn original_attributes(body: &str, event_type: &str) -> BTreeMap<String, String> {
    [
        ("event_type", event_type.to_owned()),
        (
            "event_id",
            hookfleet_event::EventId::of_body(body.as_bytes()).to_hex(),
        ),
        ("received_at", "2026-12-03T10:00:00Z".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Sends a message to `url` with these string attributes.
pub(crate) async fn put(aws: &Aws, url: &str, message: &Put) {
    let attributes: HashMap<String, MessageAttributeValue> = message
        .attributes
        .iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("attribute");
            (name.clone(), value)
        })
        .collect();
    aws.sqs
        .send_message()
        .queue_url(url)
        .message_body(&message.body)
        .set_message_attributes(Some(attributes))
        .send()
        .await
        .unwrap_or_else(|e| panic!("send to {url}: {e:?}"));
}

/// Puts a message into the DLQ as a worker gives one up: the original
/// attributes plus the failure attributes.
pub(crate) async fn put_given_up(aws: &Aws, dlq_url: &str, event_type: &str, error: &str) -> Put {
    let body = body(event_type, 0);
    let mut attributes = original_attributes(&body, event_type);
    for (name, value) in [
        ("error", error),
        ("worker", "hookfleet-crm"),
        ("failed_at", "2026-12-03T10:05:00Z"),
        ("receive_count", "4"),
    ] {
        attributes.insert(name.to_owned(), value.to_owned());
    }
    let message = Put { body, attributes };
    put(aws, dlq_url, &message).await;
    message
}

/// Puts a message into the DLQ as the redrive policy moves one: the
/// original attributes only.
pub(crate) async fn put_by_policy(aws: &Aws, dlq_url: &str, event_type: &str) -> Put {
    let body = body(event_type, 1);
    let message = Put {
        attributes: original_attributes(&body, event_type),
        body,
    };
    put(aws, dlq_url, &message).await;
    message
}

/// (visible, in flight) of the queue at `url`.
pub(crate) async fn depth(aws: &Aws, url: &str) -> (u64, u64) {
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("get queue attributes")
        .attributes
        .unwrap_or_default();
    let count = |name| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// What was received, as comparable (body, attributes) pairs.
pub(crate) fn as_puts(received: &[Received]) -> BTreeSet<(String, BTreeMap<String, String>)> {
    received
        .iter()
        .map(|r| {
            let attributes = r.attributes.clone().into_iter().collect();
            (r.body.clone(), attributes)
        })
        .collect()
}

/// What was put, as comparable (body, attributes) pairs.
pub(crate) fn puts(messages: &[&Put]) -> BTreeSet<(String, BTreeMap<String, String>)> {
    messages
        .iter()
        .map(|m| (m.body.clone(), m.attributes.clone()))
        .collect()
}

/// The last line of a command's output.
pub(crate) fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}
