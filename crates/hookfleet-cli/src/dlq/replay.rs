//! `hookfleet dlq replay FILE --to QUEUE`: send the messages of an export
//! file ([`crate::dlq::record`]) to a queue: each body unchanged, with its
//! attributes minus the failure attributes (unless
//! `--keep-failure-attributes`, to restore a DLQ as it was).
//!
//! The whole file is read and checked before anything is sent, so a bad
//! line stops the replay at the start (exit 2) rather than halfway.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;

use crate::context::{AwsClients, Failure, print};
use crate::dlq::confirm::{Answer, confirm};
use crate::dlq::message::without_failure_attributes;
use crate::dlq::record::Record;
use crate::dlq::sqs::{self, Outgoing};
use crate::dlq::target;

/// At most this many failed messages are listed one by one.
const LISTED_FAILURES: usize = 20;

/// Flags of `hookfleet dlq replay`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct ReplayArgs {
    /// An export file (`hookfleet dlq export --out FILE`).
    file: PathBuf,

    /// The queue to send to: a name (hookfleet-crm) or a URL.
    #[arg(long, value_name = "QUEUE")]
    to: String,

    /// Keep the failure attributes (error, worker, failed_at,
    /// receive_count), e.g. to put messages back into a DLQ as they were.
    #[arg(long)]
    keep_failure_attributes: bool,

    /// Print how many messages would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,

    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

const EXAMPLE: &str = "\
Each line's body is sent unchanged with its attributes; the failure
attributes are removed unless --keep-failure-attributes. The last line is
`sent N, failed N`; the exit code is 1 when any failed.

Examples:
  hookfleet dlq replay crm-dlq.jsonl --to hookfleet-crm
  hookfleet dlq replay crm-dlq.jsonl --to hookfleet-crm-dlq --keep-failure-attributes --yes";

/// Runs `hookfleet dlq replay`.
pub(crate) async fn run(args: ReplayArgs) -> Result<(), Failure> {
    let records = read(&args.file)?;
    let aws = AwsClients::from_env().await?;
    let queue = target::find(&aws.sqs, &args.to).await?;

    let messages = records
        .iter()
        .map(|record| outgoing(record, args.keep_failure_attributes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Usage)?;
    if args.dry_run {
        return print(&format!(
            "dry run: would send {} message(s) from {} to {}; nothing was sent\n",
            messages.len(),
            args.file.display(),
            queue.name
        ));
    }

    let question = format!(
        "Send {} message(s) from {} to {}?",
        messages.len(),
        args.file.display(),
        queue.name
    );
    if confirm(args.yes, "dlq replay", &question)? == Answer::No {
        return print("nothing sent\n");
    }

    let results = sqs::send(&aws.sqs, &queue.url, &messages).await;
    let failures: Vec<(&Record, &String)> = records
        .iter()
        .zip(&results)
        .filter_map(|(record, result)| result.as_ref().err().map(|reason| (record, reason)))
        .collect();
    for (record, reason) in failures.iter().take(LISTED_FAILURES) {
        eprintln!("failed {}: {reason}", record.message_id);
    }
    print(&format!(
        "sent {}, failed {}\n",
        results.len() - failures.len(),
        failures.len()
    ))?;
    if !failures.is_empty() {
        return Err(anyhow::anyhow!("{} message(s) were not sent", failures.len()).into());
    }
    Ok(())
}

/// Every record of the file; a line that is not one is bad usage, named
/// by its number. Blank lines are skipped.
fn read(path: &std::path::Path) -> Result<Vec<Record>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            Record::parse(line).map_err(|reason| {
                Failure::Usage(format!(
                    "{} line {}: not an export line: {reason}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn outgoing(record: &Record, keep_failure_attributes: bool) -> Result<Outgoing, String> {
    let attributes = record.sqs_attributes()?;
    let attributes: HashMap<_, _> = if keep_failure_attributes {
        attributes.into_iter().collect()
    } else {
        without_failure_attributes(attributes)
    };
    Ok(Outgoing {
        body: record.body.clone(),
        attributes,
    })
}
