//! The settler: one task per queue that batches what becomes of finished
//! messages — deletes (`DeleteMessageBatch`) and releases for a later
//! attempt (`ChangeMessageVisibilityBatch`).
//!
//! A batch is sent when it holds `full` entries (10, or the concurrency
//! when lower: the receivers' batch, so a worker with few slots does not
//! wait for company that cannot come), when its oldest entry has waited
//! `linger`, or at once when the receivers are starved: fewer than `full`
//! slots are free, no batch call is out to free more, and flushing what
//! waits would free enough (a receive that returned fewer than 10 must not
//! cost the pipeline a linger). Up to [`MAX_CALLS_IN_FLIGHT`] batch calls run at the same
//! time, so deletes keep up with the receivers instead of queueing behind
//! one round trip each.
//!
//! Each settlement carries its message's in-flight slot, released when
//! the batch call returns: the bound on messages in flight covers messages
//! waiting to be deleted too, so a settler that falls behind (SQS slow or
//! throttling) slows the receivers down rather than letting receipts pile
//! up past their visibility timeout. What the channel carries is bounded
//! the same way. The settler stops when every sender is gone, after
//! flushing what it holds and joining its calls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::queue::{EntryFailure, Queue, QueueError, SQS_MAX_BATCH};

/// Batch calls in flight at most, per queue.
pub(crate) const MAX_CALLS_IN_FLIGHT: usize = 4;

/// What to do with a message whose processing is over.
#[derive(Debug)]
pub(crate) struct Settlement {
    /// The receipt handle of this delivery.
    pub(crate) receipt: String,
    /// Delete it, or make it visible again later.
    pub(crate) action: Action,
    /// The message's in-flight slot, released once the batch call has
    /// returned; `None` when it is already free (the task panicked).
    pub(crate) slot: Option<OwnedSemaphorePermit>,
}

/// The two ways a message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Delete it: done, or copied to the dead-letter queue.
    Delete,
    /// Make it visible again after `after`.
    Release {
        /// The new visibility timeout.
        after: Duration,
    },
}

/// Runs until every sender is dropped; flushes on the way out. Returns
/// how many batch-call tasks panicked (their messages reappear).
pub(crate) async fn run_settler<Q: Queue>(
    queue: Arc<Q>,
    mut settlements: mpsc::UnboundedReceiver<Settlement>,
    full: usize,
    linger: Duration,
    slots: Arc<Semaphore>,
) -> u64 {
    let full = full.clamp(1, SQS_MAX_BATCH);
    let mut deletes: Pending<String> = Pending::default();
    let mut releases: Pending<(String, Duration)> = Pending::default();
    let mut calls = JoinSet::new();
    let mut panics = 0;
    let mut open = true;

    while open || !deletes.is_empty() || !releases.is_empty() {
        while calls.len() < MAX_CALLS_IN_FLIGHT {
            let now = Instant::now();
            let free = slots.available_permits();
            let waiting = deletes.len() + releases.len();
            let starved = calls.is_empty() && free < full && free + waiting >= full;
            let force = !open || starved;
            if let Some(batch) = deletes.take_due(now, full, linger, force) {
                calls.spawn(flush_deletes(Arc::clone(&queue), batch));
            } else if let Some(batch) = releases.take_due(now, full, linger, force) {
                calls.spawn(flush_releases(Arc::clone(&queue), batch));
            } else {
                break;
            }
        }

        let room = calls.len() < MAX_CALLS_IN_FLIGHT;
        let due = [deletes.due_at(linger), releases.due_at(linger)]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            Some(joined) = calls.join_next() => panics += u64::from(failed(&*queue, joined)),
            next = settlements.recv(), if open => match next {
                Some(settlement) => {
                    let Settlement { receipt, action, slot } = settlement;
                    match action {
                        Action::Delete => deletes.push(receipt, slot),
                        Action::Release { after } => releases.push((receipt, after), slot),
                    }
                }
                None => open = false,
            },
            () = sleep_until_some(due), if room && due.is_some() => {}
        }
    }

    while let Some(joined) = calls.join_next().await {
        panics += u64::from(failed(&*queue, joined));
    }
    panics
}

/// Entries waiting for a batch call, each with its slot.
struct Pending<T> {
    entries: Vec<(T, Option<OwnedSemaphorePermit>)>,
    oldest: Instant,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            entries: Vec::with_capacity(SQS_MAX_BATCH),
            oldest: Instant::now(),
        }
    }
}

impl<T> Pending<T> {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn push(&mut self, entry: T, slot: Option<OwnedSemaphorePermit>) {
        if self.entries.is_empty() {
            self.oldest = Instant::now();
        }
        self.entries.push((entry, slot));
    }

    /// When the oldest entry has waited long enough.
    fn due_at(&self, linger: Duration) -> Option<Instant> {
        (!self.entries.is_empty()).then(|| self.oldest + linger)
    }

    /// Up to 10 entries, if `full` are waiting, the oldest has lingered,
    /// or `force`.
    fn take_due(
        &mut self,
        now: Instant,
        full: usize,
        linger: Duration,
        force: bool,
    ) -> Option<Batch<T>> {
        let due = self.due_at(linger)?;
        if self.entries.len() < full && !force && now < due {
            return None;
        }
        let count = self.entries.len().min(SQS_MAX_BATCH);
        let (entries, slots) = self.entries.drain(..count).unzip();
        Some(Batch { entries, slots })
    }
}

/// One batch call's entries, and the slots it frees when it returns.
struct Batch<T> {
    entries: Vec<T>,
    slots: Vec<Option<OwnedSemaphorePermit>>,
}

/// A delete that fails leaves the message to reappear; processing is
/// idempotent, so the cost is a second, harmless run.
async fn flush_deletes<Q: Queue>(queue: Arc<Q>, batch: Batch<String>) {
    let result = queue.delete_batch(&batch.entries).await;
    report(&*queue, "delete", batch.entries.len(), result);
    drop(batch.slots);
}

/// A release that fails leaves the message invisible for the rest of its
/// current visibility timeout, after which it is retried anyway.
async fn flush_releases<Q: Queue>(queue: Arc<Q>, batch: Batch<(String, Duration)>) {
    let result = queue.change_visibility_batch(&batch.entries).await;
    report(&*queue, "release", batch.entries.len(), result);
    drop(batch.slots);
}

/// Sleeps until `deadline`; never returns without one (the caller
/// disables the branch then).
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Logs a batch-call task that panicked; true if it did.
fn failed<Q: Queue>(queue: &Q, joined: Result<(), tokio::task::JoinError>) -> bool {
    match joined {
        Ok(()) => false,
        Err(error) => {
            tracing::error!(queue = queue.name(), %error, "batch call task failed; its messages will reappear");
            true
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(count: usize) -> Pending<String> {
        let mut pending = Pending::default();
        for i in 0..count {
            pending.push(i.to_string(), None);
        }
        pending
    }

    #[test]
    fn a_batch_goes_when_full_lingered_or_forced() {
        let linger = Duration::from_millis(50);
        let now = Instant::now();

        let mut partial = pending(3);
        assert!(partial.take_due(now, 10, linger, false).is_none());
        let forced = partial.take_due(now, 10, linger, true).expect("forced");
        assert_eq!(forced.entries, ["0", "1", "2"]);
        assert!(partial.is_empty());

        let mut lingered = pending(2);
        let later = lingered.oldest + linger;
        let batch = lingered.take_due(later, 10, linger, false).unwrap();
        assert_eq!(batch.entries.len(), 2);

        let mut small_worker = pending(4);
        let batch = small_worker.take_due(now, 4, linger, false).unwrap();
        assert_eq!(batch.entries.len(), 4, "4 slots: 4 is a full batch");

        let mut many = pending(23);
        let sizes: Vec<usize> = std::iter::from_fn(|| many.take_due(now, 10, linger, false))
            .map(|batch| batch.entries.len())
            .collect();
        assert_eq!(sizes, [10, 10], "the last 3 wait for company");
        assert_eq!(many.entries.len(), 3);
    }
}
