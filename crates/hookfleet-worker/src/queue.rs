//! The queue a worker drains, behind a small trait so the runtime can be
//! tested without a full application and wrapped (to count calls, say).
//!
//! [`SqsQueue`] is the only production implementation. Its calls are
//! retried like the SDK's standard retry mode (3 attempts, see
//! [`hookfleet_bus::wire`]); what fails after that comes back
//! as a [`QueueError`] whose [`ErrorKind`] tells the caller whether trying
//! again later makes sense.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use hookfleet_bus::wire::sqs::{Receive, ReceivedMessage, Sqs};
use hookfleet_bus::wire::{BatchFailure, WireError};

/// SQS accepts at most 10 entries per batch call and returns at most 10
/// messages per receive.
pub const SQS_MAX_BATCH: usize = 10;

/// The longest visibility timeout SQS accepts, counted from the receive:
/// 12 hours.
pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The largest message SQS accepts, body and attributes together: 256 KiB.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SQS accepts at most 10 message attributes per message.
pub const SQS_MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The longest long poll SQS accepts (`WaitTimeSeconds`).
pub const SQS_MAX_WAIT: Duration = Duration::from_secs(20);

/// The system attributes a receive asks for: what [`Message`] keeps, and
/// no more (asking for `All` roughly doubles the attributes to parse).
const SYSTEM_ATTRIBUTES: [&str; 3] = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
];

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS's message id: the same on every delivery of this message.
    pub id: String,
    /// The handle of this delivery; every later call about the message
    /// (delete, change visibility) needs it. Changes on each receive.
    pub receipt: String,
    /// The body: the webhook's raw bytes (SPEC §5).
    pub body: String,
    /// Message attributes with a string value (`String` and `Number`
    /// types); binary attributes are not kept.
    pub attributes: BTreeMap<String, String>,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// `SentTimestamp`: when the message entered the queue.
    pub sent_at: Option<SystemTime>,
    /// `ApproximateFirstReceiveTimestamp`.
    pub first_received_at: Option<SystemTime>,
}

impl Message {
    /// How long the message has been in the queue, zero when unknown.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.sent_at
            .and_then(|sent| now.duration_since(sent).ok())
            .unwrap_or_default()
    }
}

/// A batch entry SQS refused, by its receipt handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The receipt handle of the refused entry.
    pub receipt: String,
    /// SQS's error code and message, on one line.
    pub reason: String,
}

/// What kind of failure a [`QueueError`] is, for the caller's retry
/// decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// SQS asked us to slow down; retry after a pause.
    Throttled,
    /// The endpoint was unreachable, timed out or answered 5xx; retry.
    Transient,
    /// The queue does not exist; retrying will not help until someone
    /// creates it (`hookfleet infra apply`).
    NotFound,
    /// SQS refused the request itself (bad receipt handle, message too
    /// large, access denied); retrying the same call will not help.
    Permanent,
}

/// An SQS call that failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {queue} failed: {message}")]
pub struct QueueError {
    /// The SQS operation, e.g. `ReceiveMessage`.
    pub operation: &'static str,
    /// The queue's name or URL.
    pub queue: String,
    /// Retryable, throttled or permanent.
    pub kind: ErrorKind,
    /// What went wrong, on one line.
    pub message: String,
}

/// The queue a worker drains and the dead-letter queue it gives up to.
///
/// The contract, and SQS's limits behind it:
///
/// - [`receive`](Queue::receive) returns at most `max` messages, and `max`
///   is at most [`SQS_MAX_BATCH`] (10); it long-polls for up to `wait`
///   ([`SQS_MAX_WAIT`], 20 s, at most). Each message received is invisible
///   to other consumers for `visibility`, and **the caller owns that
///   visibility**: it must delete the message, change its visibility, or
///   let it reappear when the timeout runs out.
/// - Visibility can be set up to [`SQS_MAX_VISIBILITY`] (12 h) counted
///   from the receive, not from the call.
/// - Batch calls take at most 10 entries; they can fail per entry, which
///   is reported as [`EntryFailure`]s rather than as an error.
/// - A message, body and attributes together, is at most
///   [`SQS_MAX_MESSAGE_BYTES`] (256 KiB), with at most
///   [`SQS_MAX_MESSAGE_ATTRIBUTES`] attributes.
pub trait Queue: Send + Sync + 'static {
    /// The queue's name, used as the `queue` label in logs and metrics.
    fn name(&self) -> &str;

    /// Receives up to `max` messages (1 to 10), waiting up to `wait` for
    /// the first, and makes them invisible for `visibility`.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, QueueError>> + Send;

    /// Deletes up to 10 messages by receipt handle.
    fn delete_batch(
        &self,
        receipts: &[String],
    ) -> impl Future<Output = Result<Vec<EntryFailure>, QueueError>> + Send;

    /// Sets one message's visibility timeout, counted from now.
    fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sets the visibility timeout of up to 10 messages, counted from now.
    fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> impl Future<Output = Result<Vec<EntryFailure>, QueueError>> + Send;

    /// Sends a copy of `body` with `attributes` (all `String`) to the
    /// queue's dead-letter queue. The caller deletes the original after.
    fn send_to_dead_letter(
        &self,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Whether the queue is reachable (for `/readyz`).
    fn check(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A queue on SQS (or LocalStack) and its dead-letter queue, both by URL.
///
/// Its calls go through [`hookfleet_bus::wire`], hookfleet's own SQS
/// client, not the AWS SDK: they are the per-message cost of every
/// worker. Resolving names to URLs at start uses the SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    sqs: Sqs,
    name: String,
    url: String,
    dead_letter_url: String,
}

impl SqsQueue {
    /// A queue whose URLs are already known.
    pub fn new(
        sqs: Sqs,
        name: impl Into<String>,
        url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            name: name.into(),
            url: url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    /// Resolves a queue given by name or URL, and its dead-letter queue
    /// `<name>-dlq`, to URLs with the SDK's `client`; `sqs` then makes the
    /// calls. The name is the URL's last path segment when a URL is given.
    pub async fn resolve(
        client: &aws_sdk_sqs::Client,
        sqs: Sqs,
        name_or_url: &str,
    ) -> Result<Self, hookfleet_bus::resolve::ResolveError> {
        let url = hookfleet_bus::resolve::queue_url(client, name_or_url).await?;
        let name = url.rsplit('/').next().unwrap_or(name_or_url).to_owned();
        let dead_letter_name = format!("{name}{}", hookfleet_bus::topology::DLQ_SUFFIX);
        let dead_letter_url = hookfleet_bus::resolve::queue_url(client, &dead_letter_name).await?;
        Ok(Self::new(sqs, name, url, dead_letter_url))
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The dead-letter queue's URL.
    pub fn dead_letter_url(&self) -> &str {
        &self.dead_letter_url
    }

    fn error(&self, operation: &'static str, error: WireError) -> QueueError {
        QueueError {
            operation,
            queue: self.name.clone(),
            kind: classify(&error),
            message: error.to_string(),
        }
    }
}

impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let messages = self
            .sqs
            .receive(Receive {
                queue_url: &self.url,
                max_messages: max.clamp(1, SQS_MAX_BATCH) as u32,
                wait_seconds: wait.min(SQS_MAX_WAIT).as_secs() as u32,
                visibility_seconds: whole_seconds(visibility),
                system_attributes: &SYSTEM_ATTRIBUTES,
            })
            .await
            .map_err(|e| self.error("ReceiveMessage", e))?;
        Ok(messages.into_iter().map(Message::from).collect())
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<Vec<EntryFailure>, QueueError> {
        let failed = self
            .sqs
            .delete_batch(&self.url, receipts)
            .await
            .map_err(|e| self.error("DeleteMessageBatch", e))?;
        Ok(entry_failures(failed, |i| receipts[i].clone()))
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.sqs
            .change_visibility(&self.url, receipt, whole_seconds(visibility))
            .await
            .map_err(|e| self.error("ChangeMessageVisibility", e))
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        let requests: Vec<(&str, u32)> = entries
            .iter()
            .map(|(receipt, visibility)| (receipt.as_str(), whole_seconds(*visibility)))
            .collect();
        let failed = self
            .sqs
            .change_visibility_batch(&self.url, &requests)
            .await
            .map_err(|e| self.error("ChangeMessageVisibilityBatch", e))?;
        Ok(entry_failures(failed, |i| entries[i].0.clone()))
    }

    async fn send_to_dead_letter(
        &self,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        self.sqs
            .send(&self.dead_letter_url, body, attributes)
            .await
            .map(|_| ())
            .map_err(|e| self.error("SendMessage", e))
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.sqs
            .queue_attributes(&self.url, &["ApproximateNumberOfMessages"])
            .await
            .map(|_| ())
            .map_err(|e| self.error("GetQueueAttributes", e))
    }
}

/// SQS takes whole seconds; a fraction rounds up so a message is never
/// released early, and the result stays within SQS's 12 hours.
pub(crate) fn whole_seconds(duration: Duration) -> u32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.min(SQS_MAX_VISIBILITY.as_secs()) as u32
}

fn classify(error: &WireError) -> ErrorKind {
    match error {
        WireError::Service { .. } if error.is_throttling() => ErrorKind::Throttled,
        WireError::Service { code, status, .. } => {
            if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
                ErrorKind::NotFound
            } else if *status >= 500
                || code.contains("ServiceUnavailable")
                || code.contains("InternalError")
            {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            }
        }
        WireError::Transport(_) | WireError::Decode(_) => ErrorKind::Transient,
        WireError::Config(_) => ErrorKind::Permanent,
    }
}

impl From<ReceivedMessage> for Message {
    fn from(message: ReceivedMessage) -> Self {
        let timestamp =
            |ms: Option<u64>| ms.map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        Self {
            id: message.message_id,
            receipt: message.receipt_handle,
            body: message.body,
            attributes: message.attributes,
            receive_count: message.receive_count.unwrap_or(1),
            sent_at: timestamp(message.sent_timestamp_ms),
            first_received_at: timestamp(message.first_receive_timestamp_ms),
        }
    }
}

fn entry_failures(
    failed: Vec<BatchFailure>,
    receipt: impl Fn(usize) -> String,
) -> Vec<EntryFailure> {
    failed
        .into_iter()
        .map(|failure| EntryFailure {
            receipt: receipt(failure.index),
            reason: format!("{}: {}", failure.code, failure.message),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_rounds_up_to_whole_seconds_within_12_hours() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_secs(100_000)), 43_200);
    }

    #[test]
    fn age_is_zero_when_unknown_or_in_the_future() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut message = Message {
            id: "m".into(),
            receipt: "r".into(),
            body: String::new(),
            attributes: BTreeMap::new(),
            receive_count: 1,
            sent_at: None,
            first_received_at: None,
        };
        assert_eq!(message.age(now), Duration::ZERO);
        message.sent_at = Some(now - Duration::from_secs(7));
        assert_eq!(message.age(now), Duration::from_secs(7));
        message.sent_at = Some(now + Duration::from_secs(7));
        assert_eq!(message.age(now), Duration::ZERO);
    }
}
