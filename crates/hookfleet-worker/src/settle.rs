//! The settler: one task per queue that batches what becomes of finished
//! messages — deletes (`DeleteMessageBatch`) and releases for a later
//! attempt (`ChangeMessageVisibilityBatch`) — flushing a batch when it
//! holds 10 entries or when its first entry has waited `linger`.
//!
//! The channel into it is unbounded, but what it carries is bounded by the
//! messages in flight: each message is settled once. It stops when every
//! sender is gone, after flushing what it holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::queue::{EntryFailure, Queue, QueueError, SQS_MAX_BATCH};

/// What to do with a message whose processing is over.
#[derive(Debug)]
pub(crate) enum Settlement {
    /// Delete it: done, or copied to the dead-letter queue.
    Delete(String),
    /// Make it visible again after `after`.
    Release {
        /// The receipt handle.
        receipt: String,
        /// The new visibility timeout.
        after: Duration,
    },
}

/// Runs until every sender is dropped; flushes on the way out.
pub(crate) async fn run_settler<Q: Queue>(
    queue: Arc<Q>,
    mut settlements: mpsc::UnboundedReceiver<Settlement>,
    linger: Duration,
) {
    let mut deletes: Vec<String> = Vec::with_capacity(SQS_MAX_BATCH);
    let mut releases: Vec<(String, Duration)> = Vec::with_capacity(SQS_MAX_BATCH);
    let mut deadline = Instant::now();

    loop {
        let pending = !deletes.is_empty() || !releases.is_empty();
        let next = if pending {
            tokio::select! {
                next = settlements.recv() => next,
                () = tokio::time::sleep_until(deadline) => {
                    flush_deletes(&*queue, &mut deletes).await;
                    flush_releases(&*queue, &mut releases).await;
                    continue;
                }
            }
        } else {
            settlements.recv().await
        };

        let Some(settlement) = next else {
            flush_deletes(&*queue, &mut deletes).await;
            flush_releases(&*queue, &mut releases).await;
            return;
        };
        if !pending {
            deadline = Instant::now() + linger;
        }

        match settlement {
            Settlement::Delete(receipt) => {
                deletes.push(receipt);
                if deletes.len() == SQS_MAX_BATCH {
                    flush_deletes(&*queue, &mut deletes).await;
                }
            }
            Settlement::Release { receipt, after } => {
                releases.push((receipt, after));
                if releases.len() == SQS_MAX_BATCH {
                    flush_releases(&*queue, &mut releases).await;
                }
            }
        }
    }
}

/// A delete that fails leaves the message to reappear; processing is
/// idempotent, so the cost is a second, harmless run.
async fn flush_deletes<Q: Queue>(queue: &Q, deletes: &mut Vec<String>) {
    if deletes.is_empty() {
        return;
    }
    let result = queue.delete_batch(deletes).await;
    report(queue, "delete", deletes.len(), result);
    deletes.clear();
}

/// A release that fails leaves the message invisible for the rest of its
/// current visibility timeout, after which it is retried anyway.
async fn flush_releases<Q: Queue>(queue: &Q, releases: &mut Vec<(String, Duration)>) {
    if releases.is_empty() {
        return;
    }
    let result = queue.change_visibility_batch(releases).await;
    report(queue, "release", releases.len(), result);
    releases.clear();
}

fn report<Q: Queue>(
    queue: &Q,
    action: &'static str,
    entries: usize,
    result: Result<Vec<EntryFailure>, QueueError>,
) {
    match result {
        Ok(failures) => {
            for failure in failures {
                tracing::warn!(
                    queue = queue.name(),
                    action,
                    reason = %failure.reason,
                    "batch entry refused; the message will reappear"
                );
            }
        }
        Err(error) => tracing::warn!(
            queue = queue.name(),
            action,
            entries,
            %error,
            "batch call failed; its messages will reappear"
        ),
    }
}
