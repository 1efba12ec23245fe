//! `hookfleet infra apply`: make SNS and SQS match the topology.
//!
//! For each queue of the [`Topology`], in this order:
//!
//! 1. the queue exists (created with its visibility timeout and retention),
//!    because the dead-letter queue's redrive-allow policy names its ARN;
//! 2. its dead-letter queue `<queue>-dlq` has the DLQ retention and a
//!    `RedriveAllowPolicy` that admits only that queue;
//! 3. the queue has its `RedrivePolicy` (the DLQ, `maxReceiveCount`) and a
//!    `Policy` letting the topic, and only it, send to it;
//! 4. its subscription to the topic delivers raw messages, filtered on the
//!    `event_type` message attribute.
//!
//! Every step reads before it writes, so a second run changes nothing and
//! says so. Attributes are compared by meaning: JSON is parsed on both
//! sides, numbers and numeric strings are equal (SQS returns
//! `maxReceiveCount` either way), and array order is ignored (every array
//! here is a set).
//!
//! Known limit: apply creates and updates, it never deletes. A queue
//! removed from the file keeps its queue, DLQ and subscription until an
//! operator deletes them. On AWS, attribute and filter-policy changes take
//! up to a minute (retention: 15 minutes) to be fully in effect.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use crate::resolve::{self, ResolveError, error_line};
use crate::topology::{QueueSpec, Topology};

/// Subscription attribute names (SNS has no enum for them).
const RAW_MESSAGE_DELIVERY: &str = "RawMessageDelivery";
const FILTER_POLICY: &str = "FilterPolicy";
const FILTER_POLICY_SCOPE: &str = "FilterPolicyScope";
const MESSAGE_ATTRIBUTES_SCOPE: &str = "MessageAttributes";

/// What `apply` did, one entry per resource, in the order handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every resource of the topology and what happened to it.
    pub resources: Vec<ResourceChange>,
}

impl ApplyReport {
    /// Whether anything was created or updated.
    pub fn changed(&self) -> bool {
        self.resources
            .iter()
            .any(|resource| resource.action != Action::Unchanged)
    }
}

/// One printed line per resource: `created   queue hookfleet-crm-dlq`.
impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, resource) in self.resources.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{resource}")?;
        }
        Ok(())
    }
}

/// One resource and what `apply` did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    /// Topic, queue (dead-letter queues too) or subscription.
    pub kind: ResourceKind,
    /// Its name; a subscription is named after its queue.
    pub name: String,
    /// Created, updated or left alone.
    pub action: Action,
}

impl fmt::Display for ResourceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.action {
            Action::Created => "created",
            Action::Updated(_) => "updated",
            Action::Unchanged => "unchanged",
        };
        write!(f, "{verb:<9} {} {}", self.kind, self.name)?;
        if let Action::Updated(what) = &self.action {
            write!(f, " ({})", what.join(", "))?;
        }
        Ok(())
    }
}

/// The kinds of resource a topology holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// The SNS topic.
    Topic,
    /// An SQS queue or dead-letter queue.
    Queue,
    /// A queue's subscription to the topic.
    Subscription,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Topic => "topic",
            Self::Queue => "queue",
            Self::Subscription => "subscription",
        })
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It did not exist and was created with the desired attributes.
    Created,
    /// It existed; these attributes differed and were set.
    Updated(Vec<String>),
    /// It existed as desired.
    Unchanged,
}

/// Why `apply` stopped. What it had already done stays done and is in
/// `completed`, so the operator can see where it got to.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step}: {message}")]
pub struct ApplyError {
    /// What was being done, e.g. `create queue hookfleet-crm-dlq`.
    pub step: String,
    /// The AWS error with its causes, on one line.
    pub message: String,
    /// The resources handled before the failure.
    pub completed: ApplyReport,
}

/// Creates or updates everything `topology` declares, idempotently.
pub async fn apply(
    topology: &Topology,
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
) -> Result<ApplyReport, ApplyError> {
    let mut applier = Applier {
        sns,
        sqs,
        report: ApplyReport::default(),
    };
    match applier.run(topology).await {
        Ok(()) => Ok(applier.report),
        Err(mut error) => {
            error.completed = applier.report;
            Err(error)
        }
    }
}

struct Applier<'a> {
    sns: &'a aws_sdk_sns::Client,
    sqs: &'a aws_sdk_sqs::Client,
    report: ApplyReport,
}

/// A queue as it is now.
struct QueueState {
    url: String,
    arn: String,
    attributes: HashMap<QueueAttributeName, String>,
    created: bool,
}

/// A desired attribute value: plain text, or JSON compared by meaning.
enum Desired {
    Text(String),
    Json(Value),
}

impl Desired {
    fn is_met_by(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (Self::Text(desired), Some(current)) => desired == current,
            (Self::Json(desired), Some(current)) => same_json(current, desired),
            (_, None) => false,
        }
    }

    fn into_text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Json(value) => value.to_string(),
        }
    }
}

impl Applier<'_> {
    async fn run(&mut self, topology: &Topology) -> Result<(), ApplyError> {
        let topic_arn = self.topic(&topology.topic.name).await?;
        for queue in &topology.queues {
            self.queue_set(queue, &topic_arn).await?;
        }
        Ok(())
    }

    /// The topic's ARN, creating the topic when there is none.
    async fn topic(&mut self, name: &str) -> Result<String, ApplyError> {
        let existing = resolve::topic_arn(self.sns, name)
            .await
            .map_err(|e| resolve_failed(format!("find topic {name}"), e))?;
        if let Some(arn) = existing {
            self.record(ResourceKind::Topic, name, Action::Unchanged);
            return Ok(arn);
        }

        let created = self
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .map_err(|e| failed(format!("create topic {name}"), &e))?;
        let arn = created
            .topic_arn()
            .ok_or_else(|| missing(format!("create topic {name}"), "TopicArn"))?;
        self.record(ResourceKind::Topic, name, Action::Created);
        Ok(arn.to_owned())
    }

    /// One queue, its DLQ and its subscription (steps 1 to 4 above).
    async fn queue_set(&mut self, spec: &QueueSpec, topic_arn: &str) -> Result<(), ApplyError> {
        let queue = self.queue(&spec.name, basic_attributes(spec)).await?;

        let dlq_name = spec.dlq_name();
        let dlq_desired = || dlq_attributes(spec, &queue.arn);
        let dlq = self.queue(&dlq_name, dlq_desired()).await?;
        let dlq_changes = self.converge_queue(&dlq_name, &dlq, dlq_desired()).await?;
        self.record(
            ResourceKind::Queue,
            &dlq_name,
            action(dlq.created, dlq_changes),
        );

        let desired = queue_attributes(spec, &queue.arn, &dlq.arn, topic_arn);
        let changes = self.converge_queue(&spec.name, &queue, desired).await?;
        self.record(
            ResourceKind::Queue,
            &spec.name,
            action(queue.created, changes),
        );

        self.subscription(spec, topic_arn, &queue.arn).await
    }

    /// The queue called `name` as it is now, created with `on_create` when
    /// it does not exist.
    async fn queue(
        &self,
        name: &str,
        on_create: Vec<(QueueAttributeName, Desired)>,
    ) -> Result<QueueState, ApplyError> {
        let (url, created) = match resolve::queue_url(self.sqs, name).await {
            Ok(url) => (url, false),
            Err(ResolveError::NotFound(_)) => (self.create_queue(name, on_create).await?, true),
            Err(e) => return Err(resolve_failed(format!("find queue {name}"), e)),
        };

        let step = || format!("read the attributes of queue {name}");
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| failed(step(), &e))?;
        let attributes = answer.attributes.unwrap_or_default();
        let arn = attributes
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .ok_or_else(|| missing(step(), "QueueArn"))?;
        Ok(QueueState {
            url,
            arn,
            attributes,
            created,
        })
    }

    async fn create_queue(
        &self,
        name: &str,
        attributes: Vec<(QueueAttributeName, Desired)>,
    ) -> Result<String, ApplyError> {
        let step = || format!("create queue {name}");
        let attributes = attributes
            .into_iter()
            .map(|(key, value)| (key, value.into_text()))
            .collect();
        let created = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| failed(step(), &e))?;
        created
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| missing(step(), "QueueUrl"))
    }

    /// Sets the attributes that differ from `desired`, in one call, and
    /// returns their names.
    async fn converge_queue(
        &self,
        name: &str,
        queue: &QueueState,
        desired: Vec<(QueueAttributeName, Desired)>,
    ) -> Result<Vec<String>, ApplyError> {
        let differing: HashMap<QueueAttributeName, String> = desired
            .into_iter()
            .filter(|(key, value)| !value.is_met_by(queue.attributes.get(key).map(String::as_str)))
            .map(|(key, value)| (key, value.into_text()))
            .collect();
        if differing.is_empty() {
            return Ok(Vec::new());
        }

        let mut names: Vec<String> = differing.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        self.sqs
            .set_queue_attributes()
            .queue_url(&queue.url)
            .set_attributes(Some(differing))
            .send()
            .await
            .map_err(|e| failed(format!("set {} on queue {name}", names.join(", ")), &e))?;
        Ok(names)
    }

    /// The queue's subscription: raw delivery, filtered on `event_type`.
    async fn subscription(
        &mut self,
        spec: &QueueSpec,
        topic_arn: &str,
        queue_arn: &str,
    ) -> Result<(), ApplyError> {
        let desired = [
            (FILTER_POLICY, Desired::Json(spec.filter.filter_policy())),
            (
                FILTER_POLICY_SCOPE,
                Desired::Text(MESSAGE_ATTRIBUTES_SCOPE.to_owned()),
            ),
            (RAW_MESSAGE_DELIVERY, Desired::Text("true".to_owned())),
        ];

        let Some(arn) = self
            .find_subscription(&spec.name, topic_arn, queue_arn)
            .await?
        else {
            self.subscribe(&spec.name, topic_arn, queue_arn, desired)
                .await?;
            self.record(ResourceKind::Subscription, &spec.name, Action::Created);
            return Ok(());
        };

        let current = self
            .sns
            .get_subscription_attributes()
            .subscription_arn(&arn)
            .send()
            .await
            .map_err(|e| failed(format!("read subscription {}", spec.name), &e))?
            .attributes
            .unwrap_or_default();
        let mut changes = Vec::new();
        // In this order: SNS accepts a scope only next to a filter policy.
        for (key, value) in desired {
            let current_value = match current.get(key) {
                // An unset scope means the default, message attributes.
                None if key == FILTER_POLICY_SCOPE => Some(MESSAGE_ATTRIBUTES_SCOPE),
                other => other.map(String::as_str),
            };
            if value.is_met_by(current_value) {
                continue;
            }
            self.sns
                .set_subscription_attributes()
                .subscription_arn(&arn)
                .attribute_name(key)
                .attribute_value(value.into_text())
                .send()
                .await
                .map_err(|e| failed(format!("set {key} on subscription {}", spec.name), &e))?;
            changes.push(key.to_owned());
        }
        self.record(
            ResourceKind::Subscription,
            &spec.name,
            action(false, changes),
        );
        Ok(())
    }

    /// The ARN of the topic's confirmed `sqs` subscription to `queue_arn`.
    async fn find_subscription(
        &self,
        name: &str,
        topic_arn: &str,
        queue_arn: &str,
    ) -> Result<Option<String>, ApplyError> {
        let mut subscriptions = self
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .into_paginator()
            .items()
            .send();
        while let Some(subscription) = subscriptions
            .try_next()
            .await
            .map_err(|e| failed(format!("list the subscriptions of {name}"), &e))?
        {
            let confirmed = subscription
                .subscription_arn()
                .filter(|arn| arn.starts_with("arn:"));
            if subscription.protocol() == Some("sqs")
                && subscription.endpoint() == Some(queue_arn)
                && let Some(arn) = confirmed
            {
                return Ok(Some(arn.to_owned()));
            }
        }
        Ok(None)
    }

    async fn subscribe(
        &self,
        name: &str,
        topic_arn: &str,
        queue_arn: &str,
        attributes: [(&str, Desired); 3],
    ) -> Result<(), ApplyError> {
        let attributes = attributes
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.into_text()))
            .collect();
        self.sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .set_attributes(Some(attributes))
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| failed(format!("subscribe queue {name}"), &e))?;
        Ok(())
    }

    fn record(&mut self, kind: ResourceKind, name: &str, action: Action) {
        tracing::info!(resource = %kind, name, ?action, "topology resource applied");
        self.report.resources.push(ResourceChange {
            kind,
            name: name.to_owned(),
            action,
        });
    }
}

/// What a queue is created with: everything that needs no other ARN.
fn basic_attributes(spec: &QueueSpec) -> Vec<(QueueAttributeName, Desired)> {
    vec![
        (
            QueueAttributeName::VisibilityTimeout,
            Desired::Text(spec.visibility_timeout_secs.to_string()),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            Desired::Text(spec.message_retention_secs.to_string()),
        ),
    ]
}

/// Everything the queue should have once its DLQ and the topic exist.
fn queue_attributes(
    spec: &QueueSpec,
    queue_arn: &str,
    dlq_arn: &str,
    topic_arn: &str,
) -> Vec<(QueueAttributeName, Desired)> {
    let mut attributes = basic_attributes(spec);
    attributes.push((
        QueueAttributeName::RedrivePolicy,
        Desired::Json(json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": spec.max_receive_count,
        })),
    ));
    attributes.push((
        QueueAttributeName::Policy,
        Desired::Json(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "hookfleet-topic-sends",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
            }],
        })),
    ));
    attributes
}

/// The DLQ: long retention, and only its own queue may use it.
fn dlq_attributes(spec: &QueueSpec, source_arn: &str) -> Vec<(QueueAttributeName, Desired)> {
    vec![
        (
            QueueAttributeName::MessageRetentionPeriod,
            Desired::Text(spec.dlq_retention_secs.to_string()),
        ),
        (
            QueueAttributeName::RedriveAllowPolicy,
            Desired::Json(json!({
                "redrivePermission": "byQueue",
                "sourceQueueArns": [source_arn],
            })),
        ),
    ]
}

fn action(created: bool, changes: Vec<String>) -> Action {
    if created {
        Action::Created
    } else if changes.is_empty() {
        Action::Unchanged
    } else {
        Action::Updated(changes)
    }
}

/// Whether the JSON text `current` means the same as `desired`.
fn same_json(current: &str, desired: &Value) -> bool {
    serde_json::from_str::<Value>(current)
        .is_ok_and(|current| normalized(&current) == normalized(desired))
}

/// Numbers and booleans as strings, arrays sorted: the differences AWS
/// introduces that change nothing.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_cached_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect(),
        ),
        Value::Null | Value::String(_) => value.clone(),
    }
}

fn failed(step: String, error: &(dyn std::error::Error + 'static)) -> ApplyError {
    ApplyError {
        step,
        message: error_line(error),
        completed: ApplyReport::default(),
    }
}

fn resolve_failed(step: String, error: ResolveError) -> ApplyError {
    ApplyError {
        step,
        message: error.to_string(),
        completed: ApplyReport::default(),
    }
}

fn missing(step: String, field: &str) -> ApplyError {
    ApplyError {
        step,
        message: format!("the answer has no {field}"),
        completed: ApplyReport::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_compared_by_meaning() {
        let desired = json!({"deadLetterTargetArn": "arn:x", "maxReceiveCount": 5});
        assert!(same_json(
            r#"{"maxReceiveCount":"5","deadLetterTargetArn":"arn:x"}"#,
            &desired
        ));
        assert!(same_json(
            r#"{ "deadLetterTargetArn": "arn:x", "maxReceiveCount": 5 }"#,
            &desired
        ));
        assert!(!same_json(
            r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":6}"#,
            &desired
        ));
        assert!(!same_json("not json", &desired));

        let policy = json!({"event_type": ["a", "b"]});
        assert!(same_json(r#"{"event_type":["b","a"]}"#, &policy));
        assert!(!same_json(r#"{"event_type":["a"]}"#, &policy));
    }

    #[test]
    fn report_prints_one_aligned_line_per_resource() {
        let change = |kind, name: &str, action| ResourceChange {
            kind,
            name: name.to_owned(),
            action,
        };
        let report = ApplyReport {
            resources: vec![
                change(ResourceKind::Topic, "hookfleet-events", Action::Unchanged),
                change(ResourceKind::Queue, "hookfleet-crm-dlq", Action::Created),
                change(
                    ResourceKind::Subscription,
                    "hookfleet-crm",
                    Action::Updated(vec!["FilterPolicy".into(), "RawMessageDelivery".into()]),
                ),
            ],
        };
        assert_eq!(
            report.to_string(),
            "unchanged topic hookfleet-events\n\
             created   queue hookfleet-crm-dlq\n\
             updated   subscription hookfleet-crm (FilterPolicy, RawMessageDelivery)"
        );
        assert!(report.changed());
        assert!(!ApplyReport::default().changed());
    }
}
