//! Looking at a dead-letter queue without removing anything.
//!
//! SQS has no "peek": the only way to read a message is to receive it,
//! which hides it from other receivers for a visibility timeout. So a
//! look receives with [`PEEK_VISIBILITY`], long enough to page through
//! many messages without seeing the first ones again, remembers each
//! message once (by message id: a standard queue may deliver a copy
//! twice), and then hands every receipt back at once with
//! `ChangeMessageVisibility` 0. Afterwards the DLQ holds exactly what it
//! held before.
//!
//! Side effects, and why they are harmless: each look adds one to the
//! messages' `ApproximateReceiveCount` in the DLQ (a DLQ has no redrive
//! policy of its own, so nothing moves because of it; the receive count
//! shown is the worker's `receive_count` attribute instead), and for the
//! length of the look the messages are invisible to anyone else. If the
//! process dies mid-look they reappear on their own after
//! [`PEEK_VISIBILITY`].
//!
//! Known limit: a look stops after [`PEEK_VISIBILITY`] minus a margin,
//! before the first messages would reappear; at SQS's speed that is tens
//! of thousands of messages, and the commands say so when it happens.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::dlq::interrupt::Interrupt;
use crate::dlq::message::DlqMessage;
use crate::dlq::sqs::{self, SQS_MAX_BATCH};

/// How long looked-at messages stay hidden at most.
pub(crate) const PEEK_VISIBILITY: Duration = Duration::from_secs(120);

/// A look stops this long before the first held messages would reappear.
const PEEK_MARGIN: Duration = Duration::from_secs(20);

/// What a look saw.
#[derive(Debug)]
pub(crate) struct Peeked {
    /// Each message once, in the order received (SQS's order: roughly,
    /// not strictly, oldest first).
    pub(crate) messages: Vec<DlqMessage>,
    /// Why the look ended.
    pub(crate) stop: Stop,
}

/// Why a look ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A receive came back empty: every visible message was seen.
    Exhausted,
    /// The limit asked for was reached.
    Limit,
    /// Going on would have let the first messages reappear.
    TimeBudget,
    /// Ctrl-C.
    Interrupted,
}

impl Stop {
    /// Whether every visible message was seen.
    pub(crate) fn saw_everything(self) -> bool {
        self == Self::Exhausted
    }

    /// Why the look is incomplete, for a note; `None` when it is complete
    /// or stopped at the limit asked for.
    pub(crate) fn shortfall(self) -> Option<&'static str> {
        match self {
            Self::Exhausted | Self::Limit => None,
            Self::TimeBudget => Some(
                "stopped before the first messages looked at would become visible again \
                 (PEEK_VISIBILITY, 120 s)",
            ),
            Self::Interrupted => Some("interrupted"),
        }
    }
}

/// Receives up to `limit` distinct messages from the queue at `url` and
/// hands every one back. The queue is unchanged afterwards, except that
/// receipts SQS refused to hand back reappear after [`PEEK_VISIBILITY`]
/// (a warning says so).
pub(crate) async fn peek(
    sqs_client: &aws_sdk_sqs::Client,
    url: &str,
    limit: usize,
    interrupt: &Interrupt,
) -> anyhow::Result<Peeked> {
    let started = Instant::now();
    let mut seen = HashSet::new();
    let mut messages = Vec::new();
    let mut held = Vec::new();

    let outcome = loop {
        if messages.len() >= limit {
            break Ok(Stop::Limit);
        }
        if interrupt.pressed() {
            break Ok(Stop::Interrupted);
        }
        if started.elapsed() + PEEK_MARGIN > PEEK_VISIBILITY {
            break Ok(Stop::TimeBudget);
        }

        let want = (limit - messages.len()).min(SQS_MAX_BATCH);
        match sqs::receive(sqs_client, url, want, PEEK_VISIBILITY).await {
            Err(error) => break Err(error),
            Ok(batch) if batch.is_empty() => break Ok(Stop::Exhausted),
            Ok(batch) => {
                for message in batch {
                    held.push(message.receipt.clone());
                    if seen.insert(message.id.clone()) {
                        messages.push(message);
                    }
                }
            }
        }
    };

    hand_back_all(sqs_client, url, &held, PEEK_VISIBILITY).await;
    Ok(Peeked {
        messages,
        stop: outcome?,
    })
}

/// Hands back every receipt; a failure is a warning, not an error: the
/// messages reappear on their own after `visibility` (the receive's).
pub(crate) async fn hand_back_all(
    sqs_client: &aws_sdk_sqs::Client,
    url: &str,
    receipts: &[String],
    visibility: Duration,
) {
    let receipts: Vec<&str> = receipts.iter().map(String::as_str).collect();
    let warning = match sqs::hand_back(sqs_client, url, &receipts).await {
        Ok(0) => return,
        Ok(refused) => format!("SQS refused to hand back {refused} message(s)"),
        Err(error) => format!("{error:#}"),
    };
    eprintln!(
        "warning: {warning}; they stay invisible until their visibility timeout runs out \
         (at most {} s)",
        visibility.as_secs()
    );
}
