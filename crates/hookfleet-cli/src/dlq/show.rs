//! `hookfleet dlq show QUEUE`: the messages in a dead-letter queue and why
//! each is there, without removing any (see [`crate::dlq::peek`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::context::{Failure, Global, positive, print};
use crate::dlq::interrupt::Interrupt;
use crate::dlq::message::{BY_REDRIVE_POLICY, DlqMessage};
use crate::dlq::peek::{Peeked, peek};
use crate::dlq::text::{Align, Table, age, indented, pretty_json, rfc3339, since};
use crate::dlq::{Opened, open, sqs};

/// How many messages `show` lists unless `--limit` says otherwise.
const DEFAULT_LIMIT: usize = 20;

/// Flags of `hookfleet dlq show`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct ShowArgs {
    /// The dead-letter queue: a name (hookfleet-crm-dlq) or a URL.
    queue: String,

    /// Look at N messages at most [default: 20; with --group-by, all].
    #[arg(long, value_name = "N", value_parser = positive)]
    limit: Option<usize>,

    /// Print each body byte for byte instead of as indented JSON.
    #[arg(long, conflicts_with = "group_by")]
    raw: bool,

    /// Summarise instead: per error, event type or worker, the count and
    /// when the first and last of them failed.
    #[arg(long, value_enum, value_name = "FIELD")]
    group_by: Option<GroupBy>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

const EXAMPLE: &str = "\
Messages are received with a visibility timeout and all handed back at
once (ChangeMessageVisibility 0): the queue is unchanged afterwards. Each
look adds one to SQS's ApproximateReceiveCount in the DLQ; receive_count
shown is the worker's count when it gave up.

Examples:
  hookfleet dlq show hookfleet-crm-dlq --limit 5
  hookfleet dlq show hookfleet-crm-dlq --group-by error
  hookfleet dlq show hookfleet-crm-dlq --json | jq '.messages[].error'";

/// What `--group-by` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GroupBy {
    /// The `error` attribute.
    Error,
    /// The `event_type` attribute.
    #[value(name = "event_type", alias = "event-type")]
    EventType,
    /// The `worker` attribute.
    Worker,
}

impl GroupBy {
    fn header(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::EventType => "EVENT TYPE",
            Self::Worker => "WORKER",
        }
    }

    fn key(self, message: &DlqMessage) -> Option<&str> {
        match self {
            Self::Error => message.give_up().map(|g| g.error),
            Self::EventType => message.event_type(),
            Self::Worker => message.give_up().and_then(|g| g.worker),
        }
    }
}

/// One line of a `--group-by` summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Group {
    /// The error, event type or worker; `None` when the messages have none
    /// (for error and worker: they came by the redrive policy).
    key: Option<String>,
    /// How many messages.
    count: usize,
    /// When the earliest failed (`failed_at`, else when it entered the
    /// DLQ), RFC 3339.
    first_seen: Option<String>,
    /// When the latest failed.
    last_seen: Option<String>,
}

/// Runs `hookfleet dlq show`.
pub(crate) async fn run(args: ShowArgs, global: &Global) -> Result<(), Failure> {
    let Opened { aws, dlq, .. } = open(global, &args.queue).await?;
    let limit = match (args.limit, args.group_by) {
        (Some(limit), _) => limit,
        (None, Some(_)) => usize::MAX,
        (None, None) => DEFAULT_LIMIT,
    };

    let depth = sqs::existing_depth(&aws.sqs, &dlq.queue.url).await?;
    let interrupt = Interrupt::listen();
    let peeked = peek(&aws.sqs, &dlq.queue.url, limit, &interrupt).await?;
    let sources = dlq.source_names();

    let text = match (args.group_by, args.json) {
        (Some(by), true) => {
            let value = json!({
                "queue": dlq.queue.name,
                "source_queues": sources,
                "approximate_depth": depth.visible,
                "group_by": by,
                "scanned": peeked.messages.len(),
                "complete": peeked.stop.saw_everything(),
                "groups": groups(&peeked.messages, by),
            });
            json_line(&value)
        }
        (Some(by), false) => render_groups(&dlq.queue.name, depth.visible, &peeked, by),
        (None, true) => {
            let value = json!({
                "queue": dlq.queue.name,
                "source_queues": sources,
                "approximate_depth": depth.visible,
                "complete": peeked.stop.saw_everything(),
                "messages": peeked.messages.iter().map(message_json).collect::<Vec<_>>(),
            });
            json_line(&value)
        }
        (None, false) => {
            render_messages(&dlq.queue.name, &sources, depth.visible, &peeked, args.raw)
        }
    };
    print(&text)?;

    if let Some(why) = peeked.stop.shortfall() {
        eprintln!("note: not every message was looked at: {why}");
    }
    Ok(())
}

/// Messages grouped by `by`, the largest group first.
pub(crate) fn groups(messages: &[DlqMessage], by: GroupBy) -> Vec<Group> {
    type Span = (usize, Option<OffsetDateTime>, Option<OffsetDateTime>);
    let mut spans: BTreeMap<Option<&str>, Span> = BTreeMap::new();
    for message in messages {
        let (count, first, last) = spans.entry(by.key(message)).or_default();
        *count += 1;
        if let Some(at) = message.failed_at() {
            *first = Some(first.map_or(at, |first| first.min(at)));
            *last = Some(last.map_or(at, |last| last.max(at)));
        }
    }

    let mut groups: Vec<Group> = spans
        .into_iter()
        .map(|(key, (count, first, last))| Group {
            key: key.map(str::to_owned),
            count,
            first_seen: first.map(rfc3339),
            last_seen: last.map(rfc3339),
        })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    groups
}

fn render_groups(queue: &str, depth: u64, peeked: &Peeked, by: GroupBy) -> String {
    let mut out = format!(
        "{queue}: {} message(s) looked at, by {} (~{depth} in the queue); none removed\n",
        peeked.messages.len(),
        by.header().to_lowercase()
    );
    let mut table = Table::new(&[
        ("COUNT", Align::Right),
        ("FIRST SEEN", Align::Left),
        ("LAST SEEN", Align::Left),
        (by.header(), Align::Left),
    ]);
    for group in groups(&peeked.messages, by) {
        let key = group.key.unwrap_or_else(|| match by {
            GroupBy::EventType => "(no event_type)".to_owned(),
            GroupBy::Error | GroupBy::Worker => {
                "(none: moved by the redrive policy, maxReceiveCount exhausted)".to_owned()
            }
        });
        table.row(vec![
            group.count.to_string(),
            group.first_seen.unwrap_or_else(|| "-".into()),
            group.last_seen.unwrap_or_else(|| "-".into()),
            key,
        ]);
    }
    out.push_str(&table.render());
    out
}

fn render_messages(
    queue: &str,
    sources: &[String],
    depth: u64,
    peeked: &Peeked,
    raw: bool,
) -> String {
    let mut out = format!(
        "{queue} (source {}): {} message(s) shown of ~{depth}; none removed\n",
        sources.join(", "),
        peeked.messages.len()
    );
    let total = peeked.messages.len();
    for (i, message) in peeked.messages.iter().enumerate() {
        let field = |name: &str, value: &str| format!("    {name:<14} {value}\n");
        let _ = write!(out, "\n[{}/{total}] message {}\n", i + 1, message.id);
        out.push_str(&field("event_type", message.event_type().unwrap_or("-")));
        out.push_str(&field("event_id", message.event_id().unwrap_or("-")));
        if let Some(received_at) = message.attribute(hookfleet_bus::attributes::RECEIVED_AT) {
            out.push_str(&field("received_at", received_at));
        }
        match message.give_up() {
            Some(give_up) => {
                out.push_str(&field("error", give_up.error));
                out.push_str(&field("worker", give_up.worker.unwrap_or("-")));
                out.push_str(&field("failed_at", &with_age(give_up.failed_at)));
                out.push_str(&field(
                    "receive_count",
                    give_up.receive_count.unwrap_or("-"),
                ));
            }
            None => {
                out.push_str(&field("error", BY_REDRIVE_POLICY));
                let sent = message.sent_at.map(rfc3339);
                out.push_str(&field("in DLQ since", &with_age(sent.as_deref())));
            }
        }
        out.push_str("    body\n");
        let body = if raw {
            None
        } else {
            pretty_json(&message.body)
        };
        match body {
            Some(pretty) => out.push_str(&indented(&pretty, "      ")),
            None if raw => {
                out.push_str(&message.body);
                out.push('\n');
            }
            None => out.push_str(&indented(&message.body, "      ")),
        }
    }
    out
}

/// `2026-12-03T10:05:00Z (2h 3m ago)`, or the text alone when it is not
/// RFC 3339.
fn with_age(at: Option<&str>) -> String {
    let Some(at) = at else {
        return "-".to_owned();
    };
    match time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339) {
        Ok(time) => format!("{at} ({} ago)", age(since(time))),
        Err(_) => at.to_owned(),
    }
}

/// A message for `--json`.
fn message_json(message: &DlqMessage) -> Value {
    let give_up = message.give_up();
    let attributes: BTreeMap<&str, Option<&str>> = message
        .attributes
        .iter()
        .map(|(name, value)| (name.as_str(), value.string_value()))
        .collect();
    json!({
        "message_id": message.id,
        "event_type": message.event_type(),
        "event_id": message.event_id(),
        "error": give_up.as_ref().map(|g| g.error),
        "worker": give_up.as_ref().and_then(|g| g.worker),
        "failed_at": give_up.as_ref().and_then(|g| g.failed_at),
        "receive_count": give_up.as_ref().and_then(|g| g.receive_count),
        "by_redrive_policy": give_up.is_none(),
        "sent_at": message.sent_at.map(rfc3339),
        "dlq_receive_count": message.dlq_receive_count,
        "attributes": attributes,
        "body": message.body,
    })
}

fn json_line(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::message::tests::message;

    #[test]
    fn groups_count_and_span_their_messages() {
        let failed = |id: &str, error: &str, at: &str| {
            message(
                id,
                &[
                    ("event_type", "referral.completed"),
                    ("error", error),
                    ("worker", "hookfleet-crm"),
                    ("failed_at", at),
                ],
            )
        };
        let messages = vec![
            failed("a", "crm answered 503", "2026-12-03T10:05:00Z"),
            failed("b", "bad field", "2026-12-03T09:00:00Z"),
            failed("c", "crm answered 503", "2026-12-03T09:30:00Z"),
            failed("d", "crm answered 503", "2026-12-03T11:00:00Z"),
            message("e", &[("event_type", "link.clicked")]),
        ];

        let by_error = groups(&messages, GroupBy::Error);
        assert_eq!(by_error.len(), 3);
        assert_eq!(by_error[0].key.as_deref(), Some("crm answered 503"));
        assert_eq!(by_error[0].count, 3);
        assert_eq!(
            by_error[0].first_seen.as_deref(),
            Some("2026-12-03T09:30:00.000Z")
        );
        assert_eq!(
            by_error[0].last_seen.as_deref(),
            Some("2026-12-03T11:00:00.000Z")
        );
        assert!(by_error.iter().any(|g| g.key.is_none() && g.count == 1));

        let by_type = groups(&messages, GroupBy::EventType);
        assert_eq!(
            by_type
                .iter()
                .map(|g| (g.key.as_deref(), g.count))
                .collect::<Vec<_>>(),
            [(Some("referral.completed"), 4), (Some("link.clicked"), 1)]
        );

        let by_worker = groups(&messages, GroupBy::Worker);
        assert_eq!(by_worker[0].key.as_deref(), Some("hookfleet-crm"));
        assert_eq!(by_worker[1].key, None);
    }
}
