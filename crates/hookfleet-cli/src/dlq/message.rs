//! A message as a dead-letter queue holds it, and what its attributes say
//! about why it is there (SPEC §5).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use hookfleet_bus::attributes;
use time::OffsetDateTime;

use time::format_description::well_known::Rfc3339;

/// One message received from a dead-letter queue.
#[derive(Debug, Clone)]
pub(crate) struct DlqMessage {
    /// SQS's message id: the same on every receive of this message.
    pub(crate) id: String,
    /// The handle of this receive, for deleting it or handing it back.
    pub(crate) receipt: String,
    /// The body: the webhook's raw bytes.
    pub(crate) body: String,
    /// Every message attribute, as SQS returned it.
    pub(crate) attributes: BTreeMap<String, MessageAttributeValue>,
    /// `SentTimestamp`: when the message entered the DLQ (for a message
    /// moved by the redrive policy, when it entered its source queue).
    pub(crate) sent_at: Option<OffsetDateTime>,
    /// `ApproximateReceiveCount` in the DLQ. Every look at the DLQ counts,
    /// this one included, so it says little about the failure.
    pub(crate) dlq_receive_count: u32,
}

/// What a worker wrote when it gave the message up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GiveUp<'a> {
    /// One line: why.
    pub(crate) error: &'a str,
    /// Which worker.
    pub(crate) worker: Option<&'a str>,
    /// When, RFC 3339 as written.
    pub(crate) failed_at: Option<&'a str>,
    /// Receives in the source queue when it gave up.
    pub(crate) receive_count: Option<&'a str>,
}

/// What [`DlqMessage::give_up`] says about a message that has none: it
/// reached the DLQ by the source queue's redrive policy.
pub(crate) const BY_REDRIVE_POLICY: &str =
    "no failure attributes: moved here by the redrive policy (maxReceiveCount exhausted)";

impl DlqMessage {
    /// Reads a received SQS message; `None` without id, receipt or body.
    pub(crate) fn from_sqs(message: aws_sdk_sqs::types::Message) -> Option<Self> {
        let system = message.attributes.unwrap_or_default();
        let number = |name: MessageSystemAttributeName| -> Option<i64> {
            system.get(&name).and_then(|value| value.parse().ok())
        };
        let sent_at = number(MessageSystemAttributeName::SentTimestamp).and_then(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        });
        let dlq_receive_count = number(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0);

        Some(Self {
            id: message.message_id?,
            receipt: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            attributes: message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .collect(),
            sent_at,
            dlq_receive_count,
        })
    }

    /// A string (or number) attribute's value.
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)?.string_value()
    }

    /// The `event_type` attribute.
    pub(crate) fn event_type(&self) -> Option<&str> {
        self.attribute(attributes::EVENT_TYPE)
    }

    /// The `event_id` attribute.
    pub(crate) fn event_id(&self) -> Option<&str> {
        self.attribute(attributes::EVENT_ID)
    }

    /// The failure attributes, or `None` when the message came by the
    /// redrive policy (no `error` attribute).
    pub(crate) fn give_up(&self) -> Option<GiveUp<'_>> {
        Some(GiveUp {
            error: self.attribute(attributes::ERROR)?,
            worker: self.attribute(attributes::WORKER),
            failed_at: self.attribute(attributes::FAILED_AT),
            receive_count: self.attribute(attributes::RECEIVE_COUNT),
        })
    }

    /// When it failed: `failed_at` when a worker wrote it (RFC 3339),
    /// else when it entered the DLQ.
    pub(crate) fn failed_at(&self) -> Option<OffsetDateTime> {
        self.attribute(attributes::FAILED_AT)
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            .or(self.sent_at)
    }

    /// The attributes to send it back with: every one but the failure
    /// attributes a give-up added.
    pub(crate) fn original_attributes(&self) -> HashMap<String, MessageAttributeValue> {
        without_failure_attributes(self.attributes.clone())
    }
}

/// `attributes` minus [`attributes::FAILURE_ATTRIBUTES`].
pub(crate) fn without_failure_attributes<M>(attributes: M) -> HashMap<String, MessageAttributeValue>
where
    M: IntoIterator<Item = (String, MessageAttributeValue)>,
{
    attributes
        .into_iter()
        .filter(|(name, _)| !attributes::FAILURE_ATTRIBUTES.contains(&name.as_str()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `String` message attribute.
    fn string_attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap_or_else(|_| unreachable!("data_type is set"))
    }

    /// A message with these string attributes.
    pub(crate) fn message(id: &str, pairs: &[(&str, &str)]) -> DlqMessage {
        DlqMessage {
            id: id.to_owned(),
            receipt: format!("receipt-{id}"),
            body: format!("{{\"id\":\"{id}\"}}"),
            attributes: pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), string_attribute(value)))
                .collect(),
            sent_at: Some(OffsetDateTime::UNIX_EPOCH),
            dlq_receive_count: 1,
        }
    }

    #[test]
    fn give_up_reads_the_failure_attributes() {
        let failed = message(
            "a",
            &[
                ("event_type", "referral.completed"),
                ("error", "crm answered 503"),
                ("worker", "hookfleet-crm"),
                ("failed_at", "2026-12-03T10:05:00Z"),
                ("receive_count", "4"),
            ],
        );
        let give_up = failed.give_up().unwrap();
        assert_eq!(give_up.error, "crm answered 503");
        assert_eq!(give_up.worker, Some("hookfleet-crm"));
        assert_eq!(give_up.receive_count, Some("4"));
        assert_eq!(
            failed.failed_at(),
            Some(time::macros::datetime!(2026-12-03 10:05:00 UTC))
        );

        let by_policy = message("b", &[("event_type", "x")]);
        assert!(by_policy.give_up().is_none());
        assert_eq!(by_policy.failed_at(), Some(OffsetDateTime::UNIX_EPOCH));
    }

    #[test]
    fn originals_keep_everything_but_the_failure_attributes() {
        let failed = message(
            "a",
            &[
                ("event_type", "link.clicked"),
                ("event_id", "abc"),
                ("received_at", "2026-12-03T10:00:00Z"),
                ("campaign", "spring"),
                ("error", "boom"),
                ("worker", "w"),
                ("failed_at", "2026-12-03T10:05:00Z"),
                ("receive_count", "4"),
            ],
        );
        let mut kept: Vec<_> = failed.original_attributes().into_keys().collect();
        kept.sort();
        assert_eq!(kept, ["campaign", "event_id", "event_type", "received_at"]);
    }
}
