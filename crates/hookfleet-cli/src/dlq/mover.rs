//! Moving messages out of a dead-letter queue ourselves: receive, send a
//! copy to the destination, and only once SQS accepted the copy, delete
//! the original from the DLQ.
//!
//! The order is the whole safety argument. A crash (or `kill -9`) at any
//! point leaves every message in the DLQ, in the destination, or, between
//! the send and the delete, in both: a duplicate, which the workers'
//! idempotent processing absorbs (SPEC §7). A message is never deleted
//! before its copy exists, so nothing is lost.
//!
//! Messages the filter does not select are held (left invisible) until the
//! end of the run, so the receive loop does not see them again and again,
//! and then handed back all at once with visibility 0; the same for
//! messages whose send failed. If the run outlasts [`MOVE_VISIBILITY`],
//! held messages reappear, are received again and are held again, without
//! being counted twice (the count is per message id).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use tokio::time::Instant;

use crate::dlq::filter::Filter;
use crate::dlq::interrupt::Interrupt;
use crate::dlq::message::DlqMessage;
use crate::dlq::peek::hand_back_all;
use crate::dlq::sqs::{self, Outgoing, SQS_MAX_BATCH};
use crate::dlq::target::Queue;

/// How long a received message stays hidden: enough for one send and one
/// delete with the SDK's retries (8 s each at most), and short, so the
/// messages a killed redrive held reappear soon.
pub(crate) const MOVE_VISIBILITY: Duration = Duration::from_secs(30);

/// After this many batches in a row whose every send failed, the run
/// stops: the destination is unreachable or refuses everything.
const MAX_FAILED_BATCHES: usize = 3;

/// What to move and how fast.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Which messages.
    pub(crate) filter: Filter,
    /// Move at most this many.
    pub(crate) max: Option<usize>,
    /// At most this many sends per second.
    pub(crate) rate: Option<f64>,
    /// Only say what would move.
    pub(crate) dry_run: bool,
}

/// Counts so far, per message (not per delivery).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Sent to the destination and deleted from the DLQ (dry run: would
    /// be).
    pub(crate) moved: usize,
    /// Not selected by the filter; left in the DLQ.
    pub(crate) skipped: usize,
    /// Not sent (still only in the DLQ), or sent but not deleted (in both).
    pub(crate) failed: usize,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Moved,
    Skipped,
    /// Dry run: selected.
    WouldMove,
    /// The send failed; the message is only in the DLQ.
    NotSent(String),
    /// Sent, but the delete failed: the message is in both queues.
    NotDeleted(String),
}

/// The result of a run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The counts.
    pub(crate) tally: Tally,
    /// Dry run: the messages that would move, in the order seen.
    pub(crate) would_move: Vec<DlqMessage>,
    /// Each failed message's id and why.
    pub(crate) failures: Vec<(String, String)>,
    /// Whether Ctrl-C ended the run early.
    pub(crate) interrupted: bool,
    /// What stopped the run early, if anything failed outright (a
    /// receive, or send after send): the counts are still right.
    pub(crate) stopped_by: Option<String>,
}

/// Moves the messages of `from` that `plan` selects to `to`. Calls
/// `progress` after each batch. A call that fails outright ends the run
/// early ([`Report::stopped_by`]) after handing back what it held.
pub(crate) async fn move_messages(
    sqs_client: &aws_sdk_sqs::Client,
    from: &Queue,
    to: &Queue,
    plan: &Plan,
    interrupt: &Interrupt,
    mut progress: impl FnMut(Tally),
) -> Report {
    let mut run = Run {
        outcomes: HashMap::new(),
        order: Vec::new(),
        held: HashMap::new(),
        would_move: Vec::new(),
    };
    let batch_size = plan.rate.map_or(SQS_MAX_BATCH, |rate| {
        (rate.floor() as usize).clamp(1, SQS_MAX_BATCH)
    });
    let started = Instant::now();
    let mut attempted = 0usize;
    let mut failed_batches = 0usize;
    let mut interrupted = false;

    let result: anyhow::Result<()> = loop {
        let selected = run.count(|o| matches!(o, Outcome::Moved | Outcome::WouldMove));
        let room = plan
            .max
            .map_or(usize::MAX, |max| max.saturating_sub(selected));
        if room == 0 {
            break Ok(());
        }
        if interrupt.pressed() {
            interrupted = true;
            break Ok(());
        }
        if let (Some(rate), false) = (plan.rate, plan.dry_run) {
            let due = started + Duration::from_secs_f64(attempted as f64 / rate);
            tokio::time::sleep_until(due).await;
        }

        let want = batch_size.min(room);
        let batch = match sqs::receive(sqs_client, &from.url, want, MOVE_VISIBILITY).await {
            Ok(batch) if batch.is_empty() => break Ok(()),
            Ok(batch) => batch,
            Err(error) => break Err(error),
        };

        let to_move = run
            .sort(batch, &plan.filter, plan.dry_run, sqs_client, from)
            .await;
        if to_move.is_empty() {
            progress(run.tally());
            continue;
        }
        attempted += to_move.len();

        let all_failed = run.send_then_delete(sqs_client, from, to, to_move).await;
        progress(run.tally());
        failed_batches = if all_failed { failed_batches + 1 } else { 0 };
        if failed_batches >= MAX_FAILED_BATCHES {
            let reason = run.last_failure().unwrap_or_default();
            break Err(anyhow!(
                "stopped after {MAX_FAILED_BATCHES} batches in a row failed to send: {reason}"
            ));
        }
    };

    let held: Vec<String> = run.held.values().cloned().collect();
    hand_back_all(sqs_client, &from.url, &held, MOVE_VISIBILITY).await;

    Report {
        tally: run.tally(),
        failures: run.failures(),
        would_move: run.would_move,
        interrupted,
        stopped_by: result.err().map(|error| format!("{error:#}")),
    }
}

/// The state of one run.
struct Run {
    /// Per message id.
    outcomes: HashMap<String, Outcome>,
    /// Message ids in the order first seen.
    order: Vec<String>,
    /// Receipts of messages kept invisible until the end, by message id.
    held: HashMap<String, String>,
    /// Dry run: what would move.
    would_move: Vec<DlqMessage>,
}

impl Run {
    /// Decides each received message; returns those to move now. A copy
    /// of a message already sent is deleted at once.
    async fn sort(
        &mut self,
        batch: Vec<DlqMessage>,
        filter: &Filter,
        dry_run: bool,
        sqs_client: &aws_sdk_sqs::Client,
        from: &Queue,
    ) -> Vec<DlqMessage> {
        let mut to_move = Vec::new();
        let mut copies = Vec::new();
        for message in batch {
            let previous = self.outcomes.get(&message.id).cloned();
            if previous.is_none() {
                self.order.push(message.id.clone());
            }
            match previous {
                Some(Outcome::Moved | Outcome::NotDeleted(_)) => copies.push(message),
                Some(Outcome::Skipped | Outcome::WouldMove) => {
                    self.held.insert(message.id, message.receipt);
                }
                None | Some(Outcome::NotSent(_)) if !filter.matches(&message) => {
                    self.held.insert(message.id.clone(), message.receipt);
                    self.outcomes.insert(message.id, Outcome::Skipped);
                }
                None | Some(Outcome::NotSent(_)) if dry_run => {
                    self.held
                        .insert(message.id.clone(), message.receipt.clone());
                    self.outcomes.insert(message.id.clone(), Outcome::WouldMove);
                    self.would_move.push(message);
                }
                None | Some(Outcome::NotSent(_)) => to_move.push(message),
            }
        }

        // A message already in the destination: this copy can go.
        if !copies.is_empty() {
            let receipts: Vec<&str> = copies.iter().map(|m| m.receipt.as_str()).collect();
            let refused = sqs::delete(sqs_client, &from.url, &receipts)
                .await
                .unwrap_or_default();
            for copy in &copies {
                if !refused.iter().any(|(receipt, _)| *receipt == copy.receipt) {
                    self.outcomes.insert(copy.id.clone(), Outcome::Moved);
                }
            }
        }
        to_move
    }

    /// Sends `messages` to `to` without their failure attributes, then
    /// deletes from `from` exactly those whose send succeeded. Returns
    /// whether every send failed.
    async fn send_then_delete(
        &mut self,
        sqs_client: &aws_sdk_sqs::Client,
        from: &Queue,
        to: &Queue,
        messages: Vec<DlqMessage>,
    ) -> bool {
        let outgoing: Vec<Outgoing> = messages
            .iter()
            .map(|m| Outgoing {
                body: m.body.clone(),
                attributes: m.original_attributes(),
            })
            .collect();
        let sent = sqs::send(sqs_client, &to.url, &outgoing).await;

        let mut delivered = Vec::new();
        for (message, result) in messages.into_iter().zip(&sent) {
            match result {
                Ok(()) => delivered.push(message),
                Err(reason) => {
                    self.held.insert(message.id.clone(), message.receipt);
                    self.outcomes
                        .insert(message.id, Outcome::NotSent(reason.clone()));
                }
            }
        }
        if delivered.is_empty() {
            return true;
        }

        let receipts: Vec<&str> = delivered.iter().map(|m| m.receipt.as_str()).collect();
        let refused = match sqs::delete(sqs_client, &from.url, &receipts).await {
            Ok(refused) => refused,
            Err(error) => receipts
                .iter()
                .map(|r| ((*r).to_owned(), format!("{error:#}")))
                .collect(),
        };
        for message in delivered {
            let outcome = match refused
                .iter()
                .find(|(receipt, _)| *receipt == message.receipt)
            {
                Some((_, reason)) => Outcome::NotDeleted(reason.clone()),
                None => Outcome::Moved,
            };
            self.held.remove(&message.id);
            self.outcomes.insert(message.id, outcome);
        }
        false
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.values().filter(|o| which(o)).count()
    }

    fn tally(&self) -> Tally {
        Tally {
            moved: self.count(|o| matches!(o, Outcome::Moved | Outcome::WouldMove)),
            skipped: self.count(|o| matches!(o, Outcome::Skipped)),
            failed: self.count(|o| matches!(o, Outcome::NotSent(_) | Outcome::NotDeleted(_))),
        }
    }

    fn failures(&self) -> Vec<(String, String)> {
        self.order
            .iter()
            .filter_map(|id| match self.outcomes.get(id)? {
                Outcome::NotSent(reason) => Some((id.clone(), format!("not sent: {reason}"))),
                Outcome::NotDeleted(reason) => Some((
                    id.clone(),
                    format!(
                        "sent, but not deleted from the DLQ, so it is now in both queues: {reason}"
                    ),
                )),
                _ => None,
            })
            .collect()
    }

    fn last_failure(&self) -> Option<String> {
        self.failures().pop().map(|(_, reason)| reason)
    }
}
