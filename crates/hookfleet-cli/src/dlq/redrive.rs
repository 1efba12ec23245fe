//! `hookfleet dlq redrive QUEUE`: move dead-lettered messages back to
//! their source queue, without the failure attributes, so the worker tries
//! them again (after the outage is over, or the bug fixed).
//!
//! By default the CLI moves messages itself ([`crate::dlq::mover`]: send,
//! then delete), which is what strips the failure attributes and what the
//! filters, `--max` and `--rate` need. `--server-side` hands an unfiltered
//! redrive to SQS's message move task instead ([`crate::dlq::move_task`]),
//! falling back to moving the rest itself if the task fails.

use std::io::IsTerminal as _;

use clap::Args;

use crate::context::{Failure, Global, positive, print};
use crate::dlq::confirm::{Answer, confirm};
use crate::dlq::filter::Filter;
use crate::dlq::interrupt::Interrupt;
use crate::dlq::message::DlqMessage;
use crate::dlq::move_task::{TaskEnd, run_move_task};
use crate::dlq::mover::{Plan, Report, Tally, move_messages};
use crate::dlq::target::Queue;
use crate::dlq::{Opened, open, sqs};

/// At most this many failed messages are listed one by one.
const LISTED_FAILURES: usize = 20;

/// Flags of `hookfleet dlq redrive`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct RedriveArgs {
    /// The dead-letter queue: a name (hookfleet-crm-dlq) or a URL.
    queue: String,

    /// Move only messages of this event type (repeat for several).
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,

    /// Move only messages whose `error` contains TEXT (ignoring case).
    #[arg(long, value_name = "TEXT")]
    error_contains: Option<String>,

    /// Move at most N messages.
    #[arg(long, value_name = "N", value_parser = positive)]
    max: Option<usize>,

    /// Send at most N messages per second, e.g. 5/s (spares a destination
    /// that just recovered).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    rate: Option<f64>,

    /// Send to this queue instead of the source queue.
    #[arg(long, value_name = "QUEUE")]
    to: Option<String>,

    /// Let SQS move every message (StartMessageMoveTask). Faster, but the
    /// failure attributes stay on the messages; falls back to moving the
    /// rest itself if the task fails.
    #[arg(
        long,
        conflicts_with_all = ["event_types", "error_contains", "max", "rate", "dry_run"]
    )]
    server_side: bool,

    /// Print what would move; move nothing.
    #[arg(long)]
    dry_run: bool,

    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

const EXAMPLE: &str = "\
Each message is sent to the source queue (found in the topology, or by
ListDeadLetterSourceQueues) with its original attributes (event_type,
event_id, received_at) and without the failure attributes (error, worker,
failed_at, receive_count); only after SQS accepted the copy is the
original deleted from the DLQ. Interrupted at any point, nothing is lost:
a message is in the DLQ, in the source queue, or (rarely) in both.
Messages the filters do not select stay in the DLQ, untouched.

The last line is `moved N, skipped N, failed N`; the exit code is 1 when
any failed.

Examples:
  hookfleet dlq redrive hookfleet-crm-dlq --dry-run
  hookfleet dlq redrive hookfleet-crm-dlq --error-contains 'answered 503' --rate 5/s
  hookfleet dlq redrive hookfleet-crm-dlq --event-type referral.completed --max 10 --yes";

/// Runs `hookfleet dlq redrive`.
pub(crate) async fn run(args: RedriveArgs, global: &Global) -> Result<(), Failure> {
    let Opened { aws, dlq } = open(global, &args.queue).await?;
    let destination = dlq.destination(&aws.sqs, args.to.as_deref()).await?;
    if destination.url == dlq.queue.url {
        return Err(Failure::Usage(
            "--to names the dead-letter queue itself".to_owned(),
        ));
    }
    let plan = Plan {
        filter: Filter {
            event_types: args.event_types,
            error_contains: args.error_contains,
        },
        max: args.max,
        rate: args.rate,
        dry_run: args.dry_run,
    };

    let depth = sqs::existing_depth(&aws.sqs, &dlq.queue.url).await?;
    if depth.visible == 0 && depth.in_flight == 0 {
        return print(&format!(
            "{} is empty: nothing to move\nmoved 0, skipped 0, failed 0\n",
            dlq.queue.name
        ));
    }
    if !plan.dry_run {
        let question = format!(
            "Move {} of {} (~{} messages) to {}?",
            describe(&plan),
            dlq.queue.name,
            depth.visible,
            destination.name
        );
        if confirm(args.yes, "dlq redrive", &question)? == Answer::No {
            return print("nothing moved\n");
        }
    }

    let interrupt = Interrupt::listen();
    let mut progress = Progress::new();
    let report = if args.server_side {
        server_side(
            &aws.sqs,
            &dlq.queue,
            &destination,
            &interrupt,
            &mut progress,
        )
        .await?
    } else {
        move_messages(
            &aws.sqs,
            &dlq.queue,
            &destination,
            &plan,
            &interrupt,
            |tally| progress.show(tally),
        )
        .await
    };
    progress.clear();

    finish(&report, plan.dry_run)?;
    if let Ok(after) = sqs::existing_depth(&aws.sqs, &dlq.queue.url).await
        && after.in_flight > 0
    {
        eprintln!(
            "note: {} message(s) in {} were in flight (held by another reader) and were not \
             looked at; run the redrive again once they reappear",
            after.in_flight, dlq.queue.name
        );
    }

    if let Some(error) = &report.stopped_by {
        return Err(anyhow::anyhow!("the redrive stopped early: {error}").into());
    }
    if report.interrupted {
        return Err(anyhow::anyhow!("interrupted").into());
    }
    if report.tally.failed > 0 {
        return Err(anyhow::anyhow!("{} message(s) failed to move", report.tally.failed).into());
    }
    Ok(())
}

/// The move task, then the CLI's own move for whatever a failed task left.
async fn server_side(
    sqs_client: &aws_sdk_sqs::Client,
    from: &Queue,
    to: &Queue,
    interrupt: &Interrupt,
    progress: &mut Progress,
) -> Result<Report, Failure> {
    let end = run_move_task(sqs_client, from, to, interrupt, |moved, to_move| {
        progress.line(&format!("SQS move task: {moved} of ~{to_move} moved"));
    })
    .await?;

    if let TaskEnd::Completed { moved } | TaskEnd::Cancelled { moved } = end
        && moved > 0
    {
        progress.clear();
        eprintln!(
            "note: SQS's move task keeps the failure attributes (error, worker, failed_at, \
             receive_count) on the messages it moved"
        );
    }
    match end {
        TaskEnd::Completed { moved } => Ok(task_report(moved)),
        TaskEnd::Cancelled { moved } => Ok(Report {
            interrupted: true,
            ..task_report(moved)
        }),
        TaskEnd::Failed { moved, reason } => {
            progress.clear();
            eprintln!(
                "SQS's move task failed after moving ~{moved} ({reason}); moving the rest here"
            );
            let plan = Plan {
                filter: Filter::default(),
                max: None,
                rate: None,
                dry_run: false,
            };
            let mut rest = move_messages(sqs_client, from, to, &plan, interrupt, |tally| {
                progress.show(tally)
            })
            .await;
            rest.tally.moved += usize::try_from(moved).unwrap_or(0);
            Ok(rest)
        }
    }
}

fn task_report(moved: u64) -> Report {
    Report {
        tally: Tally {
            moved: usize::try_from(moved).unwrap_or(usize::MAX),
            ..Tally::default()
        },
        ..Report::default()
    }
}

/// Prints the outcome: failures on stderr, the counts last on stdout.
fn finish(report: &Report, dry_run: bool) -> Result<(), Failure> {
    let Tally {
        moved,
        skipped,
        failed,
    } = report.tally;
    if dry_run {
        let mut text = String::new();
        for message in &report.would_move {
            text.push_str(&would_move_line(message));
        }
        text.push_str(&format!(
            "dry run: would move {moved}, skip {skipped}; nothing was moved\n"
        ));
        return print(&text);
    }

    for (id, reason) in report.failures.iter().take(LISTED_FAILURES) {
        eprintln!("failed {id}: {reason}");
    }
    if report.failures.len() > LISTED_FAILURES {
        eprintln!(
            "... and {} more failed",
            report.failures.len() - LISTED_FAILURES
        );
    }
    print(&format!(
        "moved {moved}, skipped {skipped}, failed {failed}\n"
    ))
}

fn would_move_line(message: &DlqMessage) -> String {
    let error = message
        .give_up()
        .map_or("(redrive policy)", |give_up| give_up.error);
    format!(
        "would move  {}  {}  {}  {}\n",
        message.id,
        message.event_type().unwrap_or("-"),
        message.event_id().unwrap_or("-"),
        error
    )
}

/// The messages a plan selects, for the question.
fn describe(plan: &Plan) -> String {
    let mut what = match plan.max {
        Some(max) => format!("up to {max} messages"),
        None => "every message".to_owned(),
    };
    if !plan.filter.event_types.is_empty() {
        what.push_str(&format!(
            " of type {}",
            plan.filter.event_types.join(" or ")
        ));
    }
    if let Some(text) = &plan.filter.error_contains {
        what.push_str(&format!(" whose error contains {text:?}"));
    }
    what
}

/// `--rate`: `N/s` or `N`, N a positive number.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: write messages per second, e.g. 5/s"
        )),
    }
}

/// One updating line on stderr while it is a terminal; silent otherwise.
struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, tally: Tally) {
        self.line(&format!(
            "moved {}, skipped {}, failed {}",
            tally.moved, tally.skipped, tally.failed
        ));
    }

    fn line(&mut self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[K{text}");
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive_numbers_per_second() {
        assert_eq!(parse_rate("5/s"), Ok(5.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert_eq!(parse_rate("20"), Ok(20.0));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/m").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn questions_say_what_moves() {
        let mut plan = Plan {
            filter: Filter::default(),
            max: None,
            rate: None,
            dry_run: false,
        };
        assert_eq!(describe(&plan), "every message");
        plan.max = Some(10);
        plan.filter.event_types = vec!["a".into(), "b".into()];
        plan.filter.error_contains = Some("503".into());
        assert_eq!(
            describe(&plan),
            "up to 10 messages of type a or b whose error contains \"503\""
        );
    }
}
