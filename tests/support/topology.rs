//! A test's own topology: random topic and queue names, written to a
//! temporary `topology.toml` and applied with the real `hookfleet` binary.
//!
//! The routing is the shipped one (`infra/topology.toml`, SPEC §4); only
//! the names and, when a test asks, the redelivery settings differ. Also
//! here: finding a queue's URL and draining what a queue received.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use crate::Aws;
use crate::process::Output;

/// The alerts queue's event types, as in `infra/topology.toml`.
pub const ALERT_TYPES: [&str; 5] = [
    "link.clicked",
    "install.tracked",
    "deferred_link.claimed",
    "referral.created",
    "referral.completed",
];

/// A topology under random names, written to a temporary file (removed on
/// drop; the AWS resources stay, under names nobody else uses).
#[derive(Debug)]
pub struct TestTopology {
    /// The written `topology.toml`; `HOOKFLEET_TOPOLOGY` in [`Self::env`].
    pub path: PathBuf,
    /// The topic's name.
    pub topic: String,
    /// Every type except `test`.
    pub analytics: String,
    /// [`ALERT_TYPES`].
    pub alerts: String,
    /// `referral.completed`.
    pub crm: String,
    /// `install.tracked`.
    pub welcome: String,
    /// `max_receive_count` of every queue.
    pub max_receive_count: u32,
    /// `visibility_timeout_secs` of every queue.
    pub visibility_timeout_secs: u32,
    /// `admin` per queue name, for `hookfleet status`.
    pub admin: BTreeMap<String, String>,
}

/// Settings of a [`TestTopology`] before it is written.
#[derive(Debug)]
pub struct TestTopologyBuilder {
    max_receive_count: u32,
    visibility_timeout_secs: u32,
    admin: Vec<(Queue, String)>,
}

/// The four queues, for naming one before the names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The analytics queue.
    Analytics,
    /// The alerts queue.
    Alerts,
    /// The CRM queue.
    Crm,
    /// The welcome queue.
    Welcome,
}

impl TestTopologyBuilder {
    /// Receives before a message goes to the DLQ (default 3).
    pub fn max_receive_count(mut self, count: u32) -> Self {
        self.max_receive_count = count;
        self
    }

    /// The queues' visibility timeout (default 5 s, so redeliveries come
    /// quickly).
    pub fn visibility_timeout_secs(mut self, secs: u32) -> Self {
        self.visibility_timeout_secs = secs;
        self
    }

    /// The admin address of the worker draining `queue`.
    pub fn admin(mut self, queue: Queue, address: &str) -> Self {
        self.admin.push((queue, address.to_owned()));
        self
    }

    /// Picks the names and writes the file.
    pub fn build(self) -> TestTopology {
        let topic = crate::unique("hf-events");
        let mut topology = TestTopology {
            path: std::env::temp_dir().join(format!("{topic}.toml")),
            analytics: crate::unique("hf-analytics"),
            alerts: crate::unique("hf-alerts"),
            crm: crate::unique("hf-crm"),
            welcome: crate::unique("hf-welcome"),
            topic,
            max_receive_count: self.max_receive_count,
            visibility_timeout_secs: self.visibility_timeout_secs,
            admin: BTreeMap::new(),
        };
        for (queue, address) in self.admin {
            let name = topology.name(queue).to_owned();
            topology.admin.insert(name, address);
        }
        topology.write();
        topology
    }
}

impl TestTopology {
    /// Settings to change before the file is written.
    pub fn builder() -> TestTopologyBuilder {
        TestTopologyBuilder {
            max_receive_count: 3,
            visibility_timeout_secs: 5,
            admin: Vec::new(),
        }
    }

    /// A topology with the defaults of [`Self::builder`], written.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// The name of one of the four queues.
    pub fn name(&self, queue: Queue) -> &str {
        match queue {
            Queue::Analytics => &self.analytics,
            Queue::Alerts => &self.alerts,
            Queue::Crm => &self.crm,
            Queue::Welcome => &self.welcome,
        }
    }

    /// The dead-letter queue of `queue` (a name).
    pub fn dlq(&self, queue: &str) -> String {
        format!("{queue}-dlq")
    }

    /// The file's text for the current fields.
    pub fn render(&self) -> String {
        let list = |types: &[&str]| {
            let quoted: Vec<String> = types.iter().map(|t| format!("{t:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let queues = [
            (&self.analytics, "except_event_types", list(&["test"])),
            (&self.alerts, "event_types", list(&ALERT_TYPES)),
            (&self.crm, "event_types", list(&["referral.completed"])),
            (&self.welcome, "event_types", list(&["install.tracked"])),
        ];

        let mut text = format!(
            "[topic]\nname = {:?}\n\n[defaults]\nmax_receive_count = {}\n\
             visibility_timeout_secs = {}\n",
            self.topic, self.max_receive_count, self.visibility_timeout_secs
        );
        for (name, key, types) in queues {
            text.push_str(&format!("\n[[queues]]\nname = {name:?}\n{key} = {types}\n"));
            if let Some(address) = self.admin.get(name) {
                text.push_str(&format!("admin = {address:?}\n"));
            }
        }
        text
    }

    /// Writes [`Self::render`] to [`Self::path`].
    pub fn write(&self) {
        self.write_text(&self.render());
    }

    /// Writes `text` to [`Self::path`], e.g. an edited [`Self::render`].
    pub fn write_text(&self, text: &str) {
        std::fs::write(&self.path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.path.display()));
    }

    /// The environment for a binary using this topology: LocalStack's
    /// variables and `HOOKFLEET_TOPOLOGY`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = crate::aws_env();
        env.push(("HOOKFLEET_TOPOLOGY".into(), self.path.display().to_string()));
        env
    }

    /// Runs `hookfleet infra apply`, asserts it succeeded and returns what
    /// it printed.
    pub async fn apply(&self) -> Output {
        let output =
            crate::process::run(&crate::bin("hookfleet"), &["infra", "apply"], &self.env()).await;
        assert_eq!(output.code, Some(0), "hookfleet infra apply: {output:?}");
        output
    }

    /// The URL of a queue by name (see [`queue_url`]).
    pub async fn queue_url(&self, aws: &Aws, name: &str) -> String {
        queue_url(aws, name).await
    }
}

impl Default for TestTopology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestTopology {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The URL of the queue called `name`; panics when there is none.
pub async fn queue_url(aws: &Aws, name: &str) -> String {
    hookfleet_bus::resolve::queue_url(&aws.sqs, name)
        .await
        .unwrap_or_else(|e| panic!("queue url of {name}: {e}"))
}

/// A message as a queue delivered it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The body, as SQS returned it.
    pub body: String,
    /// String message attributes by name.
    pub attributes: HashMap<String, String>,
    /// `ApproximateReceiveCount` including this receive.
    pub receive_count: u32,
}

impl Received {
    /// The `event_type` attribute, or "" when there is none.
    pub fn event_type(&self) -> &str {
        self.attributes
            .get("event_type")
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// Receives from `queue_url` (long polls of 1 s, 10 at a time, every
/// attribute), deleting what arrives, until `expected` messages arrived or
/// `deadline` passed. Once `expected` is reached it polls once more, so a
/// message too many shows up in the result. Returns everything received.
pub async fn receive_all(
    aws: &Aws,
    queue_url: &str,
    expected: usize,
    deadline: Duration,
) -> Vec<Received> {
    let started = tokio::time::Instant::now();
    let mut received = Vec::new();
    loop {
        let enough = received.len() >= expected;
        received.extend(receive_batch(aws, queue_url).await);
        if enough || started.elapsed() > deadline {
            return received;
        }
    }
}

/// One receive (up to 10 messages, 1 s long poll), deleting what arrived.
async fn receive_batch(aws: &Aws, queue_url: &str) -> Vec<Received> {
    let output = aws
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap_or_else(|e| panic!("receive from {queue_url}: {e:?}"));

    let mut received = Vec::new();
    let mut deletes = Vec::new();
    for (i, message) in output.messages().iter().enumerate() {
        let attributes = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
            .collect();
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        received.push(Received {
            body: message.body().unwrap_or_default().to_owned(),
            attributes,
            receive_count,
        });
        if let Some(handle) = message.receipt_handle() {
            deletes.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .expect("delete entry"),
            );
        }
    }

    if !deletes.is_empty() {
        aws.sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete from {queue_url}: {e:?}"));
    }
    received
}
