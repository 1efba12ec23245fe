//! LocalStack access, per-test queues, a scriptable handler and a
//! call-counting queue wrapper.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use hookfleet_event::EventId;
use hookfleet_worker::queue::{EntryFailure, QueueError};
use hookfleet_worker::{
    Backoff, Delivery, Handler, Message, Outcome, Queue, QueueConfig, SqsQueue,
};
use rand::Rng;
use tokio::time::Instant;

const ENDPOINT_DEFAULT: &str = "http://127.0.0.1:4566";

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| ENDPOINT_DEFAULT.to_owned())
}

/// An SQS client for LocalStack, or `None` (test skipped, loudly) when it
/// is unreachable outside CI. Under `CI=true` an unreachable LocalStack
/// fails the test.
pub(crate) async fn localstack() -> Option<aws_sdk_sqs::Client> {
    let client = aws_sdk_sqs::Client::new(&aws_config().await);
    if let Err(error) = client.list_queues().max_results(1).send().await {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "LocalStack is not reachable at {} and CI=true: {error}",
                endpoint()
            );
        }
        eprintln!(
            "\n*** SKIPPED: LocalStack is not reachable at {}; run scripts/localstack start ***\n",
            endpoint()
        );
        return None;
    }
    Some(client)
}

/// The AWS configuration for LocalStack, with long-poll timeouts.
pub(crate) async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = hookfleet_bus::aws::AwsTimeouts::long_poll();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(hookfleet_bus::aws::http_client())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .timeout_config(timeouts.to_config())
        .load()
        .await
}

/// The project's own SQS client for LocalStack.
pub(crate) async fn wire() -> hookfleet_bus::wire::sqs::Sqs {
    let wire = hookfleet_bus::wire::AwsWire::new(
        &aws_config().await,
        "sqs",
        hookfleet_bus::aws::AwsTimeouts::long_poll(),
    )
    .expect("wire client");
    hookfleet_bus::wire::sqs::Sqs::new(wire)
}

/// A fresh `hf-w-<random>` queue and its `-dlq`, with a redrive policy.
pub(crate) struct TestQueue {
    pub(crate) client: aws_sdk_sqs::Client,
    pub(crate) queue: SqsQueue,
}

impl TestQueue {
    pub(crate) async fn create(
        client: &aws_sdk_sqs::Client,
        visibility_secs: u32,
        max_receive_count: u32,
    ) -> Self {
        let n: u64 = rand::rng().random();
        let name = format!("hf-w-{:012x}", n & 0xffff_ffff_ffff);
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create dlq");
        let dlq_arn = hookfleet_bus::resolve::queue_arn(client, dlq.queue_url().unwrap())
            .await
            .expect("dlq arn");
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#
        );
        client
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .expect("create queue");
        let queue = SqsQueue::resolve(client, wire().await, &name)
            .await
            .expect("resolve");
        Self {
            client: client.clone(),
            queue,
        }
    }

    /// Sends `count` distinct valid events; returns their event ids.
    pub(crate) async fn send_events(&self, count: usize) -> Vec<String> {
        let nonce: u64 = rand::rng().random();
        let bodies: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"event":"link.clicked","timestamp":"2026-12-03T10:00:00Z","data":{{"n":{i},"nonce":"{nonce:x}"}}}}"#
                )
            })
            .collect();
        for body in &bodies {
            self.send_raw(body).await;
        }
        bodies
            .iter()
            .map(|b| EventId::of_body(b.as_bytes()).to_hex())
            .collect()
    }

    /// Sends one body with the §5 attributes.
    pub(crate) async fn send_raw(&self, body: &str) {
        let string = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        self.client
            .send_message()
            .queue_url(self.queue.url())
            .message_body(body)
            .message_attributes("event_type", string("link.clicked"))
            .message_attributes(
                "event_id",
                string(&EventId::of_body(body.as_bytes()).to_hex()),
            )
            .message_attributes("received_at", string("2026-12-03T10:00:01Z"))
            .send()
            .await
            .expect("send");
    }

    /// Visible plus in-flight messages of the source queue.
    ///
    /// Not a completion signal on its own: LocalStack reads 0 for a moment
    /// while a receive has taken messages off the visible list and not yet
    /// marked them in flight. Wait for the handlers' outcome first.
    pub(crate) async fn depth(&self) -> u64 {
        depth(&self.client, self.queue.url()).await
    }

    /// Receives everything in the DLQ (waiting up to `wait` for the first).
    pub(crate) async fn dead_letters(&self, wait: Duration) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        let deadline = Instant::now() + wait;
        loop {
            let answer = self
                .client
                .receive_message()
                .queue_url(self.queue.dead_letter_url())
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive dlq");
            let batch = answer.messages.unwrap_or_default();
            let empty = batch.is_empty();
            all.extend(batch);
            if (empty && !all.is_empty()) || Instant::now() > deadline {
                return all;
            }
        }
    }
}

pub(crate) async fn depth(client: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let answer = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let attributes = answer.attributes.unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .filter_map(|name| attributes.get(name)?.parse::<u64>().ok())
    .sum()
}

/// A config for tests: short long polls so timings are sharp.
pub(crate) fn config(concurrency: usize, visibility_secs: u64) -> QueueConfig {
    QueueConfig {
        concurrency,
        receivers: 2,
        visibility_timeout: Duration::from_secs(visibility_secs),
        receive_wait: Duration::from_secs(1),
        backoff: Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(8),
        },
        shutdown_grace: Duration::from_secs(10),
        ..QueueConfig::new("hookfleet-test")
    }
}

/// One handler run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) at: Instant,
    pub(crate) receive_count: u32,
    pub(crate) finished: bool,
    pub(crate) done: bool,
}

/// What the scripted handler does on one run.
pub(crate) type Script = dyn Fn(&Delivery<'_>) -> Step + Send + Sync;

/// One step of a script.
pub(crate) enum Step {
    /// Wait, then return the outcome.
    After(Duration, Outcome),
    /// Never return.
    Hang,
    /// Panic.
    Panic,
}

/// A handler that records every run by event id and follows a script.
pub(crate) struct Recorder {
    runs: Mutex<HashMap<String, Vec<Run>>>,
    done: AtomicU64,
    script: Box<Script>,
}

impl Recorder {
    pub(crate) fn new(script: impl Fn(&Delivery<'_>) -> Step + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            runs: Mutex::new(HashMap::new()),
            done: AtomicU64::new(0),
            script: Box::new(script),
        })
    }

    /// Runs that returned `Done`.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    pub(crate) fn runs(&self) -> HashMap<String, Vec<Run>> {
        self.runs.lock().unwrap().clone()
    }

    pub(crate) fn started(&self) -> usize {
        self.runs.lock().unwrap().values().map(Vec::len).sum()
    }
}

impl Handler for Recorder {
    async fn handle(&self, delivery: &Delivery<'_>) -> Outcome {
        let key = delivery.event_id.to_hex();
        let index = {
            let mut runs = self.runs.lock().unwrap();
            let list = runs.entry(key.clone()).or_default();
            list.push(Run {
                at: Instant::now(),
                receive_count: delivery.message.receive_count,
                finished: false,
                done: false,
            });
            list.len() - 1
        };
        let step = (self.script)(delivery);
        let outcome = match step {
            Step::After(wait, outcome) => {
                tokio::time::sleep(wait).await;
                outcome
            }
            Step::Hang => std::future::pending().await,
            Step::Panic => panic!("scripted panic"),
        };
        if outcome == Outcome::Done {
            self.done.fetch_add(1, Ordering::SeqCst);
        }
        let mut runs = self.runs.lock().unwrap();
        let run = &mut runs.get_mut(&key).unwrap()[index];
        run.finished = true;
        run.done = outcome == Outcome::Done;
        drop(runs);
        outcome
    }
}

/// Wraps a queue and records when each `ReceiveMessage` call started.
pub(crate) struct Counting<Q> {
    pub(crate) inner: Q,
    pub(crate) receives: Mutex<Vec<Instant>>,
}

impl<Q> Counting<Q> {
    pub(crate) fn new(inner: Q) -> Arc<Self> {
        Arc::new(Self {
            inner,
            receives: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn receives_between(&self, from: Instant, to: Instant) -> usize {
        let calls = self.receives.lock().unwrap();
        calls.iter().filter(|&&at| at >= from && at <= to).count()
    }
}

impl<Q: Queue> Queue for Counting<Q> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        self.receives.lock().unwrap().push(Instant::now());
        self.inner.receive(max, wait, visibility).await
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<Vec<EntryFailure>, QueueError> {
        self.inner.delete_batch(receipts).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt, visibility).await
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        self.inner.change_visibility_batch(entries).await
    }

    async fn send_to_dead_letter(
        &self,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        self.inner.send_to_dead_letter(body, attributes).await
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.inner.check().await
    }
}

/// Polls `check` every 50 ms until it is true, or panics naming `what`.
pub(crate) async fn eventually(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same with an async check.
pub(crate) async fn eventually_async<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
