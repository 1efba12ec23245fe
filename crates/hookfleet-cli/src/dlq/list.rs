//! `hookfleet dlq list`: every DLQ of the topology with its depth, the age
//! of its oldest message and its source queue.
//!
//! SQS has no "oldest message" attribute for a standard queue (CloudWatch's
//! `ApproximateAgeOfOldestMessage` is not an SQS call), so the age comes
//! from a look at up to [`AGE_SAMPLE`] messages (see [`crate::dlq::peek`]):
//! the oldest `SentTimestamp` among them. When the DLQ holds more than the
//! look saw, the true oldest may be older still, and the age is shown as a
//! lower bound (`>=`).

use clap::Args;
use hookfleet_bus::resolve::{self, ResolveError};
use serde::Serialize;
use time::OffsetDateTime;

use crate::context::{AwsClients, Failure, Global, print};
use crate::dlq::interrupt::Interrupt;
use crate::dlq::peek::peek;
use crate::dlq::sqs;
use crate::dlq::text::{Align, Table, age, rfc3339, since};

/// How many messages per DLQ the age is read from.
const AGE_SAMPLE: usize = 100;

/// Flags of `hookfleet dlq list`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

const EXAMPLE: &str = "\
DEPTH is ApproximateNumberOfMessages (IN FLIGHT: received, not yet
deleted). OLDEST is approximate: SQS has no such attribute for a standard
queue, so it is the oldest SentTimestamp among up to 100 messages looked
at (received and handed back at once; nothing is removed). `>=` marks a
lower bound when the DLQ holds more than were looked at.

Example:
  hookfleet dlq list
  hookfleet dlq list --json | jq '.dead_letter_queues[] | select(.depth > 0)'";

/// One DLQ in the listing.
#[derive(Debug, Serialize)]
struct Row {
    /// The DLQ's name.
    queue: String,
    /// The queue whose redrive policy names it.
    source_queue: String,
    /// Whether the DLQ exists (else `hookfleet infra apply` has not run).
    exists: bool,
    /// Visible messages.
    depth: u64,
    /// Received, not yet deleted or handed back.
    in_flight: u64,
    /// When the oldest message seen entered the DLQ.
    oldest_sent_at: Option<String>,
    /// Its age, seconds.
    oldest_message_age_secs: Option<u64>,
    /// Whether the DLQ holds messages the look did not see (the age is
    /// then a lower bound).
    age_is_lower_bound: bool,
}

/// Runs `hookfleet dlq list`.
pub(crate) async fn run(args: ListArgs, global: &Global) -> Result<(), Failure> {
    let topology = global.load_topology()?;
    let aws = AwsClients::from_env().await?;
    let interrupt = Interrupt::listen();

    let mut rows = Vec::with_capacity(topology.queues.len());
    for spec in &topology.queues {
        rows.push(row(&aws, &spec.dlq_name(), &spec.name, &interrupt).await?);
    }

    let text = if args.json {
        let value = serde_json::json!({ "dead_letter_queues": rows });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    } else {
        render(&rows)
    };
    print(&text)
}

async fn row(
    aws: &AwsClients,
    name: &str,
    source: &str,
    interrupt: &Interrupt,
) -> Result<Row, Failure> {
    let mut row = Row {
        queue: name.to_owned(),
        source_queue: source.to_owned(),
        exists: false,
        depth: 0,
        in_flight: 0,
        oldest_sent_at: None,
        oldest_message_age_secs: None,
        age_is_lower_bound: false,
    };
    let url = match resolve::queue_url(&aws.sqs, name).await {
        Ok(url) => url,
        Err(ResolveError::NotFound(_)) => return Ok(row),
        Err(error) => return Err(Failure::Operation(error.into())),
    };
    let Some(depth) = sqs::depth(&aws.sqs, &url).await? else {
        return Ok(row);
    };
    row.exists = true;
    row.depth = depth.visible;
    row.in_flight = depth.in_flight;
    if depth.visible == 0 {
        return Ok(row);
    }

    let peeked = peek(&aws.sqs, &url, AGE_SAMPLE, interrupt).await?;
    let oldest: Option<OffsetDateTime> = peeked.messages.iter().filter_map(|m| m.sent_at).min();
    row.oldest_sent_at = oldest.map(rfc3339);
    row.oldest_message_age_secs = oldest.map(|at| since(at).as_secs());
    row.age_is_lower_bound = !peeked.stop.saw_everything();
    Ok(row)
}

fn render(rows: &[Row]) -> String {
    let mut table = Table::new(&[
        ("DLQ", Align::Left),
        ("DEPTH", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("OLDEST", Align::Right),
        ("SOURCE", Align::Left),
    ]);
    for row in rows {
        if !row.exists {
            table.row(vec![
                row.queue.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!(
                    "{} (DLQ missing: run `hookfleet infra apply`)",
                    row.source_queue
                ),
            ]);
            continue;
        }
        let oldest = match row.oldest_message_age_secs {
            Some(secs) => {
                let bound = if row.age_is_lower_bound { ">=" } else { "" };
                format!("{bound}{}", age(std::time::Duration::from_secs(secs)))
            }
            None => "-".to_owned(),
        };
        table.row(vec![
            row.queue.clone(),
            row.depth.to_string(),
            row.in_flight.to_string(),
            oldest,
            row.source_queue.clone(),
        ]);
    }
    table.render()
}
