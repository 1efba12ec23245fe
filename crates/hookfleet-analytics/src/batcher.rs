//! One transaction per batch of events, although the runtime hands the
//! handler one message at a time.
//!
//! Each handler call sends its enriched event to the batcher task over a
//! bounded channel and waits for the result of the transaction the event
//! ends up in. The batcher takes what is waiting, lingers briefly for
//! more, and calls [`Store::insert_events`] once for the lot:
//!
//! ```text
//!  handle() ─┐                      ┌─▶ reply: stored
//!  handle() ─┼─ mpsc (bounded) ─▶ batcher ── insert_events(batch) ── one transaction
//!  handle() ─┘                      └─▶ reply: retry / refused
//! ```
//!
//! # Deciding each event's fate
//!
//! - The transaction commits: every event of the batch is stored (or was
//!   already, a duplicate) and its message can be deleted.
//! - The database is unavailable, or the insert outlives
//!   [`BatchConfig::insert_timeout`]: nothing was stored (or, after a
//!   timeout, perhaps everything was); every event is retried, which is
//!   safe because storing is idempotent.
//! - The database refuses the data ([`StoreError::Invalid`]): one event
//!   poisons the whole transaction, so each event is inserted again on its
//!   own; the one the database still refuses is refused (its message goes
//!   to the dead-letter queue with the reason), the others are stored.
//!
//! # Size and linger
//!
//! A batch closes when it holds [`BatchConfig::max_events`] events or
//! [`BatchConfig::linger`] after its first one. The runtime never has
//! more than `HOOKFLEET_CONCURRENCY` messages in flight, so the app caps
//! `max_events` at that: waiting for more events than can exist would only
//! add the linger to every batch.
//!
//! # Transactions in flight
//!
//! Up to [`BatchConfig::max_in_flight`] transactions run at once (the
//! app uses 1 on SQLite, which has one writer anyway). A new batch starts
//! only when one of them is done, so under load every transaction takes
//! everything that queued up meanwhile: the batches grow with the load,
//! and a lone event at a quiet time is written at once. Concurrent
//! transactions of one worker (and of its replicas) stay deadlock-free
//! because the store writes event rows and count rows in key order; two
//! that add to the same minute's count wait for each other on that row,
//! the second one's event inserts still overlapping the first one's
//! commit.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use hookfleet_store::{InsertReport, NewEvent, Store, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::{AnalyticsMetrics, InsertFailure};

/// Where batches go: the [`Store`] in production, a fake in tests.
pub trait EventSink: Send + Sync + 'static {
    /// Stores `events` in one transaction; see [`Store::insert_events`].
    fn insert_events(
        &self,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<InsertReport, StoreError>> + Send;
}

impl EventSink for Store {
    async fn insert_events(&self, events: &[NewEvent]) -> Result<InsertReport, StoreError> {
        Store::insert_events(self, events).await
    }
}

/// How events are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Events per transaction, at most.
    pub max_events: usize,
    /// How long a batch waits for more events after its first one.
    pub linger: Duration,
    /// How long one transaction may take; after it, its events are
    /// retried.
    pub insert_timeout: Duration,
    /// Transactions running at once, at most (at least 1).
    pub max_in_flight: usize,
}

/// Why an event was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    /// Storing may succeed later (database unavailable, insert timed out,
    /// batcher stopped): retry the message.
    #[error("{0}")]
    Retry(String),
    /// The database refuses this event: retrying cannot help.
    #[error("{0}")]
    Refused(String),
}

/// An event waiting for its batch, and where its result goes.
struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<(), StoreFailure>>,
}

/// The handlers' side of the batcher. Cheap to clone; the batcher task
/// ends once every clone is dropped and the last batch is written.
#[derive(Debug, Clone)]
pub struct Batcher {
    events: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("event_id", &self.event.event_id)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batcher task writing to `sink`. Await the handle, after
    /// dropping every [`Batcher`] clone, to know the last batch is written.
    pub fn start<S: EventSink>(
        sink: S,
        config: BatchConfig,
        metrics: Arc<AnalyticsMetrics>,
    ) -> (Self, JoinHandle<()>) {
        let config = BatchConfig {
            max_events: config.max_events.max(1),
            max_in_flight: config.max_in_flight.max(1),
            ..config
        };
        // Room for the batches being written and one forming.
        let (events, waiting) = mpsc::channel((config.max_in_flight + 1) * config.max_events);
        let task = tokio::spawn(run(sink, waiting, config, metrics));
        (Self { events }, task)
    }

    /// Stores `event` in the next batch and returns once that batch's
    /// transaction has decided.
    pub async fn store(&self, event: NewEvent) -> Result<(), StoreFailure> {
        let (reply, result) = oneshot::channel();
        let stopped = || StoreFailure::Retry("the batcher has stopped".into());
        self.events
            .send(Pending { event, reply })
            .await
            .map_err(|_| stopped())?;
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The batcher task: forms batches until the channel closes, with at most
/// [`BatchConfig::max_in_flight`] transactions running, then waits for
/// the last ones.
async fn run<S: EventSink>(
    sink: S,
    mut waiting: mpsc::Receiver<Pending>,
    config: BatchConfig,
    metrics: Arc<AnalyticsMetrics>,
) {
    let sink = Arc::new(sink);
    let room = Arc::new(Semaphore::new(config.max_in_flight));
    let mut writes = JoinSet::new();
    loop {
        // Room first: while every transaction slot is busy, events pile up
        // in the channel, and the next batch takes them all.
        let Ok(slot) = Arc::clone(&room).acquire_owned().await else {
            break;
        };
        let Some(first) = waiting.recv().await else {
            break;
        };
        let mut batch = Vec::with_capacity(config.max_events);
        batch.push(first);
        collect(&mut waiting, &mut batch, &config).await;

        let (sink, metrics) = (Arc::clone(&sink), Arc::clone(&metrics));
        writes.spawn(async move {
            write(sink.as_ref(), batch, &config, &metrics).await;
            drop(slot);
        });
        while let Some(joined) = writes.try_join_next() {
            report_panic(joined);
        }
    }
    while let Some(joined) = writes.join_next().await {
        report_panic(joined);
    }
    tracing::debug!("batcher stopped");
}

/// A write that panicked dropped its replies: its handlers saw "the
/// batcher has stopped" and retry. Say so in the log.
fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "a batch write failed; its events will be retried");
    }
}

/// Adds to `batch` what is already waiting, then what arrives within the
/// linger, up to the size bound.
async fn collect(
    waiting: &mut mpsc::Receiver<Pending>,
    batch: &mut Vec<Pending>,
    config: &BatchConfig,
) {
    while batch.len() < config.max_events {
        match waiting.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }

    let deadline = Instant::now() + config.linger;
    while batch.len() < config.max_events {
        tokio::select! {
            pending = waiting.recv() => match pending {
                Some(pending) => batch.push(pending),
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Writes one batch and answers every event in it.
async fn write<S: EventSink>(
    sink: &S,
    batch: Vec<Pending>,
    config: &BatchConfig,
    metrics: &AnalyticsMetrics,
) {
    let (events, replies): (Vec<NewEvent>, Vec<_>) =
        batch.into_iter().map(|p| (p.event, p.reply)).unzip();

    match insert(sink, &events, config, metrics).await {
        Ok(()) => answer_all(replies, &Ok(())),
        Err(Attempt::Refused(reason)) if events.len() > 1 => {
            tracing::warn!(
                events = events.len(),
                %reason,
                "database refused a batch; storing its events one by one"
            );
            for (event, reply) in events.iter().zip(replies) {
                let result = insert(sink, std::slice::from_ref(event), config, metrics)
                    .await
                    .map_err(Attempt::into_failure);
                let _ = reply.send(result);
            }
        }
        Err(attempt) => answer_all(replies, &Err(attempt.into_failure())),
    }
}

/// How one insert call ended, when it did not succeed.
enum Attempt {
    Retry(String),
    Refused(String),
}

impl Attempt {
    fn into_failure(self) -> StoreFailure {
        match self {
            Self::Retry(reason) => StoreFailure::Retry(reason),
            Self::Refused(reason) => StoreFailure::Refused(reason),
        }
    }
}

/// One transaction, timed, counted and bounded by the insert timeout.
async fn insert<S: EventSink>(
    sink: &S,
    events: &[NewEvent],
    config: &BatchConfig,
    metrics: &AnalyticsMetrics,
) -> Result<(), Attempt> {
    let started = Instant::now();
    let result = tokio::time::timeout(config.insert_timeout, sink.insert_events(events)).await;
    let seconds = started.elapsed().as_secs_f64();

    match result {
        Ok(Ok(report)) => {
            metrics.inserted(events.len(), seconds, report);
            tracing::debug!(
                events = events.len(),
                inserted = report.inserted,
                duplicates = report.duplicates,
                "batch stored"
            );
            Ok(())
        }
        Ok(Err(error)) => {
            metrics.insert_failed(events.len(), seconds, InsertFailure::of(&error));
            match error {
                StoreError::Invalid(_) => Err(Attempt::Refused(error.to_string())),
                // Unavailable, and errors that cannot happen after start
                // (configuration, migration): retrying loses nothing.
                _ => Err(Attempt::Retry(error.to_string())),
            }
        }
        Err(_elapsed) => {
            metrics.insert_failed(events.len(), seconds, InsertFailure::Timeout);
            Err(Attempt::Retry(format!(
                "insert did not finish within {} s",
                config.insert_timeout.as_secs_f64()
            )))
        }
    }
}

fn answer_all(
    replies: Vec<oneshot::Sender<Result<(), StoreFailure>>>,
    result: &Result<(), StoreFailure>,
) {
    for reply in replies {
        // A handler that stopped waiting (shutdown) needs no answer.
        let _ = reply.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::value::RawValue;
    use time::OffsetDateTime;

    use super::*;

    /// Records every call; refuses batches holding an event whose id
    /// starts with `bad`, and fails every call while `down`.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<Vec<String>>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl EventSink for Arc<Fake> {
        async fn insert_events(&self, events: &[NewEvent]) -> Result<InsertReport, StoreError> {
            let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
            self.calls.lock().unwrap().push(ids.clone());
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            if ids.iter().any(|id| id.starts_with("bad")) {
                return Err(StoreError::Invalid("invalid byte sequence".into()));
            }
            Ok(InsertReport {
                inserted: ids.len(),
                duplicates: 0,
            })
        }
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            event_type: "link.clicked".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            received_at: OffsetDateTime::UNIX_EPOCH,
            campaign: None,
            country: None,
            region: None,
            city: None,
            channel: None,
            referrer_id: None,
            payload: RawValue::from_string("{}".into()).unwrap(),
        }
    }

    fn config(max_events: usize) -> BatchConfig {
        BatchConfig {
            max_events,
            linger: Duration::from_millis(20),
            insert_timeout: Duration::from_secs(5),
            max_in_flight: 1,
        }
    }

    fn start(fake: &Arc<Fake>, config: BatchConfig) -> (Batcher, JoinHandle<()>) {
        Batcher::start(
            Arc::clone(fake),
            config,
            Arc::new(AnalyticsMetrics::register()),
        )
    }

    /// Stores each of `ids` from its own task, all at once, and returns
    /// the results in order.
    async fn store_all(batcher: &Batcher, ids: &[&str]) -> Vec<Result<(), StoreFailure>> {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let batcher = batcher.clone();
                let event = event(id);
                tokio::spawn(async move { batcher.store(event).await })
            })
            .collect();
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_events_share_one_transaction() {
        let fake = Arc::new(Fake::default());
        let (batcher, task) = start(&fake, config(10));

        let results = store_all(&batcher, &["a", "b", "c"]).await;

        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(*fake.calls.lock().unwrap(), [vec!["a", "b", "c"]]);
        drop(batcher);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_does_not_wait_for_the_linger() {
        let fake = Arc::new(Fake::default());
        let (batcher, _task) = start(
            &fake,
            BatchConfig {
                linger: Duration::from_secs(3600),
                ..config(2)
            },
        );
        let started = Instant::now();

        let results = store_all(&batcher, &["a", "b"]).await;

        assert!(results.iter().all(Result::is_ok));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(fake.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_bounded_in_size() {
        let fake = Arc::new(Fake::default());
        let (batcher, _task) = start(&fake, config(2));

        let results = store_all(&batcher, &["a", "b", "c", "d", "e"]).await;

        assert!(results.iter().all(Result::is_ok));
        let calls = fake.calls.lock().unwrap();
        assert!(calls.iter().all(|c| c.len() <= 2), "{calls:?}");
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_batch_is_split_to_find_the_bad_event() {
        let fake = Arc::new(Fake::default());
        let (batcher, _task) = start(&fake, config(10));

        let results = store_all(&batcher, &["a", "bad-1", "c"]).await;

        assert_eq!(results[0], Ok(()));
        assert!(matches!(&results[1], Err(StoreFailure::Refused(r)) if r.contains("invalid byte")));
        assert_eq!(results[2], Ok(()));
        let calls = fake.calls.lock().unwrap();
        assert_eq!(
            *calls,
            [vec!["a", "bad-1", "c"], vec!["a"], vec!["bad-1"], vec!["c"]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_database_retries_every_event() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let (batcher, _task) = start(&fake, config(10));

        let results = store_all(&batcher, &["a", "b"]).await;

        for result in results {
            assert!(
                matches!(result, Err(StoreFailure::Retry(r)) if r.contains("connection refused"))
            );
        }
        assert_eq!(
            fake.calls.lock().unwrap().len(),
            1,
            "no split for an outage"
        );
    }

    /// Never answers.
    struct Hanging;

    impl EventSink for Hanging {
        async fn insert_events(&self, _events: &[NewEvent]) -> Result<InsertReport, StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_insert_times_out_into_a_retry() {
        let (batcher, _task) =
            Batcher::start(Hanging, config(10), Arc::new(AnalyticsMetrics::register()));

        let result = batcher.store(event("a")).await;

        assert!(matches!(result, Err(StoreFailure::Retry(r)) if r.contains("within 5 s")));
    }

    /// Takes 100 ms per call and records how many calls overlapped.
    #[derive(Default)]
    struct Slow {
        calls: Mutex<Vec<Vec<String>>>,
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl EventSink for Arc<Slow> {
        async fn insert_events(&self, events: &[NewEvent]) -> Result<InsertReport, StoreError> {
            use std::sync::atomic::Ordering::SeqCst;
            let ids = events.iter().map(|e| e.event_id.clone()).collect();
            self.calls.lock().unwrap().push(ids);
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.running.fetch_sub(1, SeqCst);
            Ok(InsertReport {
                inserted: events.len(),
                duplicates: 0,
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transactions_overlap_up_to_the_bound_and_then_batches_grow() {
        let slow = Arc::new(Slow::default());
        let (batcher, _task) = Batcher::start(
            Arc::clone(&slow),
            BatchConfig {
                linger: Duration::ZERO,
                max_in_flight: 2,
                ..config(10)
            },
            Arc::new(AnalyticsMetrics::register()),
        );

        let mut stores = Vec::new();
        for id in ["a", "b", "c", "d", "e"] {
            let (batcher, event) = (batcher.clone(), event(id));
            stores.push(tokio::spawn(async move { batcher.store(event).await }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for store in stores {
            assert_eq!(store.await.unwrap(), Ok(()));
        }

        assert_eq!(slow.most.load(std::sync::atomic::Ordering::SeqCst), 2);
        // a and b each start a transaction at once; c, d and e wait for
        // room and then share one.
        assert_eq!(
            *slow.calls.lock().unwrap(),
            [vec!["a"], vec!["b"], vec!["c", "d", "e"]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_ends_when_every_handle_is_dropped() {
        let fake = Arc::new(Fake::default());
        let (batcher, task) = start(&fake, config(10));
        let clone = batcher.clone();
        drop(batcher);
        assert!(clone.store(event("a")).await.is_ok());
        drop(clone);
        task.await.unwrap();
    }
}
