//! The batching SNS publisher behind ingest.
//!
//! Callers hand over one event each and wait for SNS's verdict on that
//! event alone. A single batcher task groups waiting events into
//! `PublishBatch` calls:
//!
//! - at most [`SNS_MAX_BATCH_ENTRIES`] entries and [`SNS_MAX_BATCH_BYTES`]
//!   bytes per call (SNS's limits);
//! - a batch leaves when it is full or when its first entry has waited
//!   `linger`, so a quiet system adds at most `linger` of latency;
//! - at most `max_in_flight` calls run at once; while all are busy the
//!   batcher stops taking entries, the bounded queue fills, and further
//!   callers get [`PublishError::QueueFull`] at once. Overload becomes a
//!   fast refusal, never unbounded memory.
//!
//! Each entry is answered by its own result in the batch response, so a
//! partial failure fails only the entries SNS refused. A caller that gave
//! up waiting (its deadline passed) is skipped if its entry has not been
//! sent yet.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attributes;
use crate::aws::AwsTimeouts;
use crate::wire::sns::{PublishEntry, Sns};
use crate::wire::{AwsWire, WireError};

/// SNS accepts at most 10 entries per `PublishBatch`.
pub const SNS_MAX_BATCH_ENTRIES: usize = 10;

/// SNS accepts at most 256 KiB per message and per `PublishBatch` call,
/// message attributes (names, types and values) included.
pub const SNS_MAX_BATCH_BYTES: usize = 256 * 1024;

/// How the publisher batches and bounds its work.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The topic's name, resolved to an ARN on first use when `topic_arn`
    /// is not given.
    pub topic_name: String,
    /// The topic's ARN, if known (skips the `ListTopics` lookup).
    pub topic_arn: Option<String>,
    /// Events waiting for a batch, at most.
    pub queue_capacity: usize,
    /// `PublishBatch` calls in flight, at most.
    pub max_in_flight: usize,
    /// How long a batch's first entry waits for company.
    pub linger: Duration,
    /// How long a caller waits for SNS's verdict, queueing included.
    pub deadline: Duration,
}

/// One event to publish: the raw body and its attributes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The webhook's raw bytes. Must be UTF-8 (a validated envelope is).
    pub body: Bytes,
    pub event_type: String,
    pub event_id: String,
    /// RFC 3339.
    pub received_at: String,
}

impl Outgoing {
    /// The size SNS counts for this message: body plus attributes.
    pub fn sns_size(&self) -> usize {
        const STRING_TYPE: usize = "String".len();
        self.body.len()
            + attributes::EVENT_TYPE.len()
            + self.event_type.len()
            + attributes::EVENT_ID.len()
            + self.event_id.len()
            + attributes::RECEIVED_AT.len()
            + self.received_at.len()
            + 3 * STRING_TYPE
    }
}

/// Why an event was not published. Every variant means "not accepted":
/// ingest answers `503` and the sender retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("the publish queue is full")]
    QueueFull,
    #[error("SNS did not answer within the deadline")]
    Timeout,
    #[error("the publisher is shutting down")]
    Closed,
    #[error("the message is larger than SNS accepts")]
    TooLarge,
    #[error("SNS is unavailable: {0}")]
    Unavailable(String),
    #[error("SNS refused the entry: {code}: {message}")]
    Refused { code: String, message: String },
}

impl PublishError {
    /// A short label for metrics.
    pub fn as_label(&self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::TooLarge => "too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Refused { .. } => "refused",
        }
    }
}

struct Pending {
    outgoing: Outgoing,
    answer: oneshot::Sender<Result<String, PublishError>>,
}

/// The handle callers publish through. Cheap to clone; the batcher stops
/// once every clone is dropped and what was queued has been sent.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Pending>,
    topic: Arc<Topic>,
    deadline: Duration,
    /// Registered once at start, so publishing never looks it up by name.
    queue_depth: metrics::Gauge,
}

impl Publisher {
    /// Starts the batcher task, publishing with hookfleet's own SNS client
    /// ([`crate::wire`]) configured from `sdk` (its timeouts bound each
    /// call). Await the returned handle after dropping every `Publisher`
    /// clone to drain. Install the metrics recorder first: the publisher
    /// registers its gauge here.
    pub fn start(
        sdk: &SdkConfig,
        config: PublisherConfig,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), WireError> {
        let publish = Sns::new(AwsWire::new(sdk, "sns", AwsTimeouts::default())?);
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let topic = Arc::new(Topic {
            sns: crate::aws::sns(sdk),
            publish,
            name: config.topic_name.clone(),
            arn: OnceCell::new_with(config.topic_arn.clone()),
        });
        let batcher = Batcher {
            receiver,
            topic: topic.clone(),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            linger: config.linger,
        };
        let task = tokio::spawn(batcher.run());
        let publisher = Self {
            queue,
            topic,
            deadline: config.deadline,
            queue_depth: metrics::gauge!(crate::metrics::PUBLISH_QUEUE_DEPTH),
        };
        Ok((publisher, task))
    }

    /// Publishes one event and returns SNS's message id, or why not.
    pub async fn publish(&self, outgoing: Outgoing) -> Result<String, PublishError> {
        if outgoing.sns_size() > SNS_MAX_BATCH_BYTES {
            return Err(PublishError::TooLarge);
        }
        let (answer, verdict) = oneshot::channel();
        let pending = Pending { outgoing, answer };
        self.queue.try_send(pending).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PublishError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => PublishError::Closed,
        })?;
        self.queue_depth.set(self.queue_depth() as f64);

        match tokio::time::timeout(self.deadline, verdict).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PublishError::Closed),
            Err(_) => Err(PublishError::Timeout),
        }
    }

    /// Events waiting for a batch now.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Checks that the topic exists and answers (`GetTopicAttributes`).
    pub async fn check_topic(&self) -> Result<(), PublishError> {
        let arn = self.topic.arn().await?;
        self.topic
            .sns
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError::Unavailable(one_line(&e)))
    }
}

struct Topic {
    /// The SDK, for the ARN lookup and the readiness check.
    sns: aws_sdk_sns::Client,
    /// Our own client, for `PublishBatch`.
    publish: Sns,
    name: String,
    arn: OnceCell<String>,
}

impl Topic {
    /// The topic's ARN, looked up once by name. A failed lookup is retried
    /// on the next call (SNS may come back).
    async fn arn(&self) -> Result<&str, PublishError> {
        self.arn
            .get_or_try_init(|| async {
                match crate::resolve::topic_arn(&self.sns, &self.name).await {
                    Ok(Some(arn)) => Ok(arn),
                    Ok(None) => Err(PublishError::Unavailable(format!(
                        "topic {} does not exist (run `hookfleet infra apply`)",
                        self.name
                    ))),
                    Err(e) => Err(PublishError::Unavailable(e.to_string())),
                }
            })
            .await
            .map(String::as_str)
    }
}

struct Batcher {
    receiver: mpsc::Receiver<Pending>,
    topic: Arc<Topic>,
    in_flight: Arc<Semaphore>,
    linger: Duration,
}

impl Batcher {
    async fn run(mut self) {
        let mut calls = JoinSet::new();
        let mut carried: Option<Pending> = None;
        loop {
            // Take a call slot before taking entries: while every slot is
            // busy, entries stay in the bounded queue, which is what makes
            // callers see `QueueFull`.
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");

            let first = match carried.take() {
                Some(pending) => pending,
                None => match self.receiver.recv().await {
                    Some(pending) => pending,
                    None => break,
                },
            };
            let (batch, overflow) = self.fill(first).await;
            carried = overflow;

            let topic = self.topic.clone();
            calls.spawn(async move {
                publish_batch(&topic, batch).await;
                drop(permit);
            });
            while calls.try_join_next().is_some() {}
        }
        while calls.join_next().await.is_some() {}
    }

    /// Collects entries after `first` until the batch is full or the linger
    /// has passed. Returns the batch and an entry that did not fit by size.
    async fn fill(&mut self, first: Pending) -> (Vec<Pending>, Option<Pending>) {
        let until = Instant::now() + self.linger;
        let mut bytes = first.outgoing.sns_size();
        let mut batch = Vec::with_capacity(SNS_MAX_BATCH_ENTRIES);
        batch.push(first);
        while batch.len() < SNS_MAX_BATCH_ENTRIES {
            let next = match self.receiver.try_recv() {
                Ok(pending) => pending,
                Err(_) => match tokio::time::timeout_at(until, self.receiver.recv()).await {
                    Ok(Some(pending)) => pending,
                    Ok(None) | Err(_) => break,
                },
            };
            let size = next.outgoing.sns_size();
            if bytes + size > SNS_MAX_BATCH_BYTES {
                return (batch, Some(next));
            }
            bytes += size;
            batch.push(next);
        }
        (batch, None)
    }
}

/// Sends one `PublishBatch` and answers every entry by its own result.
async fn publish_batch(topic: &Topic, batch: Vec<Pending>) {
    // Callers that stopped waiting were already answered 503; don't send
    // what they were told was refused.
    let batch: Vec<Pending> = batch
        .into_iter()
        .filter(|p| !p.answer.is_closed())
        .collect();
    if batch.is_empty() {
        return;
    }
    let size = batch.len();
    metrics::histogram!(crate::metrics::PUBLISH_BATCH_SIZE).record(size as f64);
    let started = Instant::now();

    let arn = match topic.arn().await {
        Ok(arn) => arn,
        Err(error) => return answer_all(batch, &error),
    };
    let attributes: Vec<[(&str, &str); 3]> = batch
        .iter()
        .map(|pending| {
            let outgoing = &pending.outgoing;
            [
                (attributes::EVENT_TYPE, outgoing.event_type.as_str()),
                (attributes::EVENT_ID, outgoing.event_id.as_str()),
                (attributes::RECEIVED_AT, outgoing.received_at.as_str()),
            ]
        })
        .collect();
    let entries = batch
        .iter()
        .zip(&attributes)
        .map(|(pending, attributes)| {
            let message =
                std::str::from_utf8(&pending.outgoing.body).map_err(|_| PublishError::Refused {
                    code: "InvalidBody".to_owned(),
                    message: "body is not UTF-8".to_owned(),
                })?;
            Ok(PublishEntry {
                message,
                attributes: attributes.as_slice(),
            })
        })
        .collect::<Result<Vec<_>, PublishError>>();
    let entries = match entries {
        Ok(entries) => entries,
        Err(error) => return answer_all(batch, &error),
    };

    let result = topic.publish.publish_batch(arn, &entries).await;
    metrics::histogram!(crate::metrics::PUBLISH_CALL_DURATION).record(started.elapsed());

    let output = match result {
        Ok(output) => output,
        Err(error) => {
            let error = PublishError::Unavailable(error.to_string());
            tracing::warn!(entries = size, error = %error, "publish batch failed");
            metrics::counter!(crate::metrics::PUBLISH_BATCHES, "result" => "failed").increment(1);
            return answer_all(batch, &error);
        }
    };

    let mut answers: Vec<Option<Result<String, PublishError>>> = vec![None; size];
    for (index, message_id) in output.successful {
        answers[index] = Some(Ok(message_id));
    }
    for failure in output.failed {
        let error = PublishError::Refused {
            code: failure.code,
            message: failure.message,
        };
        tracing::warn!(error = %error, sender_fault = failure.sender_fault, "publish entry refused");
        answers[failure.index] = Some(Err(error));
    }
    let partial = answers.iter().any(|a| !matches!(a, Some(Ok(_))));
    let label = if partial { "partial" } else { "ok" };
    metrics::counter!(crate::metrics::PUBLISH_BATCHES, "result" => label).increment(1);

    for (pending, answer) in batch.into_iter().zip(answers) {
        let answer = answer.unwrap_or_else(|| {
            Err(PublishError::Unavailable(
                "SNS's answer did not mention this entry".to_owned(),
            ))
        });
        let _ = pending.answer.send(answer);
    }
}

fn answer_all(batch: Vec<Pending>, error: &PublishError) {
    for pending in batch {
        let _ = pending.answer.send(Err(error.clone()));
    }
}

/// An SDK error as one line, with its cause chain.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line.replace(['\n', '\r'], " ")
}
