//! The SQS calls the `dlq` commands make, with SQS's limits: 10 messages
//! per receive and per batch call, 256 KiB per batch of sends, visibility
//! counted from the receive.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use crate::dlq::message::DlqMessage;

/// At most 10 messages per receive and 10 entries per batch call.
pub(crate) const SQS_MAX_BATCH: usize = 10;

/// A batch of sends may total at most 256 KiB (bodies and attributes).
const SQS_MAX_BATCH_BYTES: usize = 256 * 1024;

/// How long a receive waits for messages: long enough that an empty
/// answer means the queue has no visible message (a long poll asks every
/// SQS server), short enough to end a scan quickly.
const RECEIVE_WAIT_SECS: i32 = 1;

/// An SDK error with its causes, on one line.
pub(crate) fn aws_line(error: &(dyn std::error::Error + 'static)) -> String {
    let text = DisplayErrorContext(error).to_string();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A queue's message counts (`ApproximateNumberOf*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Depth {
    /// Ready to be received.
    pub(crate) visible: u64,
    /// Received and not yet deleted or handed back.
    pub(crate) in_flight: u64,
    /// Sent with a delay that has not run out.
    pub(crate) delayed: u64,
}

/// The counts of the queue at `url`; `None` when it does not exist.
pub(crate) async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<Option<Depth>> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await;
    let output = match answer {
        Ok(output) => output,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow!(
                "GetQueueAttributes on {url} failed: {}",
                aws_line(&e)
            ));
        }
    };
    let attributes = output.attributes.unwrap_or_default();
    let count = |name: QueueAttributeName| -> u64 {
        attributes
            .get(&name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Ok(Some(Depth {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    }))
}

/// The counts of a queue that must exist.
pub(crate) async fn existing_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<Depth> {
    depth(sqs, url)
        .await?
        .ok_or_else(|| anyhow!("queue {url} no longer exists"))
}

/// Receives up to `max` messages (at most 10), each hidden from other
/// receivers for `visibility`, with every attribute. Waits up to a second
/// for messages; an empty answer means none is visible.
pub(crate) async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: usize,
    visibility: Duration,
) -> anyhow::Result<Vec<DlqMessage>> {
    let output = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, SQS_MAX_BATCH) as i32)
        .visibility_timeout(visibility.as_secs() as i32)
        .wait_time_seconds(RECEIVE_WAIT_SECS)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| anyhow!("ReceiveMessage on {url} failed: {}", aws_line(&e)))?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(DlqMessage::from_sqs)
        .collect())
}

/// Makes the messages with these receipt handles visible again at once.
/// Returns how many SQS refused (they reappear when their visibility
/// timeout runs out instead).
pub(crate) async fn hand_back(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipts: &[&str],
) -> anyhow::Result<usize> {
    let mut refused = 0;
    for chunk in receipts.chunks(SQS_MAX_BATCH) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*receipt)
                    .visibility_timeout(0)
                    .build()
                    .context("cannot build a visibility entry")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let output = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "ChangeMessageVisibilityBatch on {url} failed: {}",
                    aws_line(&e)
                )
            })?;
        refused += output.failed.len();
    }
    Ok(refused)
}

/// Deletes messages by receipt handle, at most 10 per call. Returns the
/// receipt handles SQS refused, with its reason.
pub(crate) async fn delete(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipts: &[&str],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut refused = Vec::new();
    for chunk in receipts.chunks(SQS_MAX_BATCH) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*receipt)
                    .build()
                    .context("cannot build a delete entry")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let output = sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow!("DeleteMessageBatch on {url} failed: {}", aws_line(&e)))?;
        for failure in output.failed {
            let receipt = failure
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| chunk.get(i))
                .map(|r| (*r).to_owned())
                .unwrap_or_default();
            refused.push((receipt, entry_reason(&failure.code, failure.message)));
        }
    }
    Ok(refused)
}

/// A message to send.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The body, unchanged.
    pub(crate) body: String,
    /// Its message attributes.
    pub(crate) attributes: HashMap<String, MessageAttributeValue>,
}

impl Outgoing {
    /// Roughly what SQS counts against its size limits.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| {
                    name.len()
                        + value.data_type().len()
                        + value.string_value().map_or(0, str::len)
                        + value.binary_value().map_or(0, |b| b.as_ref().len())
                })
                .sum::<usize>()
    }
}

/// Sends `messages` in batches (10 entries and 256 KiB at most). Returns,
/// in the same order, `Ok` or SQS's reason for each message. A batch call
/// that fails as a whole fails all of its messages.
pub(crate) async fn send(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Outgoing],
) -> Vec<Result<(), String>> {
    let mut results = vec![Ok(()); messages.len()];
    for range in batches(messages) {
        let batch = &messages[range.clone()];
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body)
                    .set_message_attributes(Some(message.attributes.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>();
        let answer = match entries {
            Ok(entries) => sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| format!("SendMessageBatch on {url} failed: {}", aws_line(&e))),
            Err(e) => Err(format!("cannot build a send entry: {e}")),
        };
        match answer {
            Ok(output) => {
                for failure in output.failed {
                    if let Some(i) = failure
                        .id
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < batch.len())
                    {
                        results[range.start + i] =
                            Err(entry_reason(&failure.code, failure.message));
                    }
                }
            }
            Err(reason) => {
                for result in &mut results[range] {
                    *result = Err(reason.clone());
                }
            }
        }
    }
    results
}

/// Index ranges of `messages` that fit one `SendMessageBatch` each.
fn batches(messages: &[Outgoing]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, message) in messages.iter().enumerate() {
        let size = message.size();
        let full = i - start == SQS_MAX_BATCH || (i > start && bytes + size > SQS_MAX_BATCH_BYTES);
        if full {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        ranges.push(start..messages.len());
    }
    ranges
}

fn entry_reason(code: &str, message: Option<String>) -> String {
    match message {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(body_len: usize) -> Outgoing {
        Outgoing {
            body: "x".repeat(body_len),
            attributes: HashMap::new(),
        }
    }

    #[test]
    fn batches_hold_ten_messages_and_256_kib_at_most() {
        let small: Vec<_> = (0..23).map(|_| outgoing(10)).collect();
        assert_eq!(batches(&small), [0..10, 10..20, 20..23]);

        let big: Vec<_> = (0..5).map(|_| outgoing(100 * 1024)).collect();
        assert_eq!(batches(&big), [0..2, 2..4, 4..5]);

        assert!(batches(&[]).is_empty());
        assert_eq!(batches(&[outgoing(300 * 1024)]), vec![0..1]);
    }
}
