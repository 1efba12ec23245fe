//! `hookfleet dlq ...`: inspect, explain and redrive dead-letter queues
//! (SPEC §5, §11). One file per subcommand; what they share:
//!
//! - [`target`]: which queue `QUEUE` names, refusing anything but a DLQ;
//! - [`peek`]: looking at messages without removing them;
//! - [`mover`]: moving messages (send, then delete; never the other way);
//! - [`message`], [`filter`], [`sqs`], [`text`], [`confirm`],
//!   [`interrupt`]: the pieces those are made of.
//!
//! Exit codes as everywhere in the CLI: 0 done, 1 an operation failed
//! (an AWS call, a message that could not be moved), 2 bad usage (a
//! queue that does not exist or is not a DLQ, a missing `--yes` without a
//! terminal, an unreadable file).

mod confirm;
mod export;
mod filter;
mod interrupt;
mod list;
mod message;
mod move_task;
mod mover;
mod peek;
mod purge;
mod record;
mod redrive;
mod replay;
mod show;
mod sqs;
mod target;
pub(crate) mod text;

use clap::Subcommand;

use crate::context::{AwsClients, Failure, Global};
use crate::dlq::target::DeadLetterQueue;

pub(crate) use sqs::{Depth, depth};

/// `hookfleet dlq --help`'s closing words: the usual on-call sequence.
pub(crate) const EXAMPLES: &str = "\
QUEUE is a DLQ's name (hookfleet-crm-dlq) or URL; any other queue is
refused. Exit codes: 0 done, 1 an operation failed, 2 bad usage.

Example (the CRM was down for an hour):
  hookfleet dlq list
  hookfleet dlq show hookfleet-crm-dlq --group-by error
  hookfleet dlq export hookfleet-crm-dlq --out crm-dlq.jsonl
  hookfleet dlq redrive hookfleet-crm-dlq --error-contains 'answered 503' --rate 10/s";

/// Commands on dead-letter queues.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Every DLQ of the topology: depth, age of the oldest message (approximate),
    /// source queue.
    List(list::ListArgs),
    /// The messages in a DLQ and why each failed, without removing any.
    Show(show::ShowArgs),
    /// Move messages back to their source queue, failure attributes removed.
    Redrive(redrive::RedriveArgs),
    /// Write every message of a DLQ to a file as JSON lines, removing none.
    Export(export::ExportArgs),
    /// Delete every message of a DLQ.
    Purge(purge::PurgeArgs),
    /// Send the messages of an export file to a queue.
    Replay(replay::ReplayArgs),
}

/// Runs a `dlq` command.
pub(crate) async fn run(command: DlqCommand, global: &Global) -> Result<(), Failure> {
    match command {
        DlqCommand::List(args) => list::run(args, global).await,
        DlqCommand::Show(args) => show::run(args, global).await,
        DlqCommand::Redrive(args) => redrive::run(args, global).await,
        DlqCommand::Export(args) => export::run(args, global).await,
        DlqCommand::Purge(args) => purge::run(args, global).await,
        DlqCommand::Replay(args) => replay::run(args).await,
    }
}

/// What a command on one DLQ starts from.
struct Opened {
    /// The clients.
    aws: AwsClients,
    /// The queue, checked to be a DLQ.
    dlq: DeadLetterQueue,
}

/// Loads the topology and the AWS clients, and finds the DLQ `queue`.
async fn open(global: &Global, queue: &str) -> Result<Opened, Failure> {
    let topology = global.load_topology()?;
    let aws = AwsClients::from_env().await?;
    let dlq = target::find_dead_letter_queue(&aws.sqs, &topology, queue).await?;
    Ok(Opened { aws, dlq })
}
