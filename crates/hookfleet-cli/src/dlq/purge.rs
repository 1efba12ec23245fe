//! `hookfleet dlq purge QUEUE`: delete every message of a dead-letter
//! queue with `PurgeQueue`. Asks first unless `--yes`, and suggests an
//! export, since nothing brings the messages back.
//!
//! SQS allows one purge per queue every 60 seconds and may take up to 60
//! seconds to finish one; the count printed is the queue's depth just
//! before the purge (visible, in flight and delayed), which is what the
//! purge removes.

use clap::Args;

use crate::context::{Failure, Global, print};
use crate::dlq::confirm::{Answer, confirm};
use crate::dlq::sqs::aws_line;
use crate::dlq::{Opened, open, sqs};

/// Flags of `hookfleet dlq purge`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct PurgeArgs {
    /// The dead-letter queue: a name (hookfleet-crm-dlq) or a URL.
    queue: String,

    /// Print how many messages would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,

    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

const EXAMPLE: &str = "\
Nothing brings purged messages back: export them first. SQS allows one
purge per queue every 60 seconds.

Example:
  hookfleet dlq export hookfleet-crm-dlq --out crm-dlq.jsonl
  hookfleet dlq purge hookfleet-crm-dlq --yes";

/// Runs `hookfleet dlq purge`.
pub(crate) async fn run(args: PurgeArgs, global: &Global) -> Result<(), Failure> {
    let Opened { aws, dlq } = open(global, &args.queue).await?;
    let name = &dlq.queue.name;

    let depth = sqs::existing_depth(&aws.sqs, &dlq.queue.url).await?;
    let count = depth.visible + depth.in_flight + depth.delayed;
    if args.dry_run {
        return print(&format!(
            "dry run: would delete ~{count} message(s) from {name}; nothing was deleted\n"
        ));
    }

    let question = format!(
        "Delete all ~{count} message(s) of {name}? This cannot be undone; \
         `hookfleet dlq export {name} --out FILE` keeps a copy."
    );
    if confirm(args.yes, "dlq purge", &question)? == Answer::No {
        return print("nothing deleted\n");
    }

    let purged = aws.sqs.purge_queue().queue_url(&dlq.queue.url).send().await;
    match purged {
        Ok(_) => print(&format!("purged ~{count} message(s) from {name}\n")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_purge_queue_in_progress()) =>
        {
            Err(anyhow::anyhow!(
                "{name} was purged less than 60 seconds ago and SQS allows one purge per \
                 minute: try again in a minute"
            )
            .into())
        }
        Err(e) => Err(anyhow::anyhow!("PurgeQueue on {name} failed: {}", aws_line(&e)).into()),
    }
}
