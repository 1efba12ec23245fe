//! The processing loop of one queue: receivers, a bound on messages in
//! flight, concurrent handlers, the settler, and shutdown.
//!
//! ```text
//!  receivers (N) ──Received──▶ supervisor ──spawn──▶ handler tasks (JoinSet)
//!   │ hold a slot per message      │ joins them; a panic → retry   │
//!   │ breaker gate before receive  │                               ▼
//!   └──────────── SQS ◀──────────── settler (DeleteMessageBatch,
//!                                   ChangeMessageVisibilityBatch)
//! ```
//!
//! A receiver waits until it can take a batch of slots of the in-flight
//! semaphore (10, or the concurrency when lower; 1 for a breaker's probe)
//! and asks SQS for exactly that many messages: a saturated worker asks
//! for nothing, which is the backpressure. A receive that brings fewer
//! messages frees the rest at once. A message's slot is released when it
//! is settled — the settler's delete or release call has returned — so
//! messages waiting to be deleted count as in flight too, and slots come
//! back in the settler's batches of 10: the size receivers wait for, so
//! receives stay full under load. With fewer than `receivers × 10` slots,
//! not every receiver can poll at once.
//!
//! Shutdown (the token is cancelled): receivers stop — an interrupted long
//! poll may have taken messages that then reappear after the visibility
//! timeout, so nothing is lost — handlers in flight get
//! `shutdown_grace` to finish, those still running after it are aborted
//! (their messages reappear after their visibility timeout), the settler
//! flushes, and every task is joined before [`Consumer::run`] returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::{self, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::breaker::{Admission, BreakerPermit, CircuitBreaker};
use crate::handler::Handler;
use crate::metrics::{Processed, QueueStats};
use crate::process::{Received, Shared};
use crate::queue::{Queue, SQS_MAX_BATCH, SQS_MAX_WAIT};
use crate::settle::run_settler;

/// How one queue is consumed.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The worker's name, written as `worker` on dead-lettered messages.
    pub worker: String,
    /// Messages in flight at most: received and not yet settled (deleted
    /// or released by the settler's batch call). At least `receivers × 10`
    /// lets every receiver poll at once.
    pub concurrency: usize,
    /// Concurrent long-polling receivers.
    pub receivers: usize,
    /// Visibility timeout set at receive and renewed by the heartbeat
    /// (every half of it) while a handler runs.
    pub visibility_timeout: Duration,
    /// Long-poll wait (`WaitTimeSeconds`), at most 20 s.
    pub receive_wait: Duration,
    /// Delay bounds for retried messages.
    pub backoff: Backoff,
    /// How long in-flight handlers may run on after shutdown is asked.
    pub shutdown_grace: Duration,
    /// How long a settled message waits for company in a delete batch.
    pub delete_linger: Duration,
}

impl QueueConfig {
    /// Defaults for a worker called `worker`: 32 in flight, 2 receivers,
    /// 60 s visibility, 20 s long polls, backoff 1 s to 15 min, 25 s grace.
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            concurrency: 32,
            receivers: 2,
            visibility_timeout: Duration::from_secs(60),
            receive_wait: SQS_MAX_WAIT,
            backoff: Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(900),
            },
            shutdown_grace: Duration::from_secs(25),
            delete_linger: Duration::from_millis(50),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Handlers cut off when the shutdown grace ran out.
    pub abandoned: u64,
    /// Receiver or settler tasks that panicked (a bug; logged).
    pub internal_panics: u64,
}

/// One queue's consumer: a queue, a handler, optionally a breaker.
pub struct Consumer<Q, H> {
    config: QueueConfig,
    queue: Arc<Q>,
    handler: Arc<H>,
    breaker: Option<Arc<CircuitBreaker>>,
    stats: Arc<QueueStats>,
}

impl<Q: Queue, H: Handler> Consumer<Q, H> {
    /// A consumer without a breaker.
    pub fn new(config: QueueConfig, queue: Arc<Q>, handler: Arc<H>) -> Self {
        let stats = Arc::new(QueueStats::new(queue.name()));
        Self {
            config,
            queue,
            handler,
            breaker: None,
            stats,
        }
    }

    /// Gates the queue on the breaker of the destination it feeds.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The queue's counters (for `/status`); live while it runs.
    pub fn stats(&self) -> Arc<QueueStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes until `shutdown` is cancelled, then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) -> RunSummary {
        let config = self.config;
        let concurrency = config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let batch = concurrency.min(SQS_MAX_BATCH);
        let (settle, settlements) = mpsc::unbounded_channel();
        let settler = tokio::spawn(run_settler(
            Arc::clone(&self.queue),
            settlements,
            batch,
            config.delete_linger,
            Arc::clone(&slots),
        ));

        let shared = Arc::new(Shared {
            queue: Arc::clone(&self.queue),
            handler: self.handler,
            breaker: self.breaker.clone(),
            settle,
            worker: config.worker.clone(),
            visibility: config.visibility_timeout,
            backoff: config.backoff,
        });
        let (work, mut arrivals) = mpsc::channel::<Vec<Received>>(config.receivers.max(1));
        let mut receivers = JoinSet::new();
        for _ in 0..config.receivers.max(1) {
            let receiver = Receiver {
                queue: Arc::clone(&self.queue),
                breaker: self.breaker.clone(),
                slots: Arc::clone(&slots),
                batch: batch as u32,
                stats: Arc::clone(&self.stats),
                work: work.clone(),
                shutdown: shutdown.clone(),
                wait: config.receive_wait,
                visibility: config.visibility_timeout,
            };
            receivers.spawn(receiver.run());
        }
        drop(work);
        tracing::info!(
            queue = self.queue.name(),
            concurrency,
            receivers = receivers.len(),
            breaker = self.breaker.as_ref().map(|b| b.destination()),
            "consuming"
        );

        let mut handlers = Handlers {
            tasks: JoinSet::new(),
            in_hand: HashMap::new(),
            shared: Arc::clone(&shared),
            stats: Arc::clone(&self.stats),
            abandoned: 0,
        };
        loop {
            tokio::select! {
                arrival = arrivals.recv() => match arrival {
                    Some(batch) => batch.into_iter().for_each(|received| handlers.spawn(received)),
                    None => break,
                },
                Some(joined) = handlers.tasks.join_next_with_id() => handlers.joined(joined),
            }
        }

        tracing::info!(
            queue = self.queue.name(),
            in_flight = handlers.tasks.len(),
            "stopped receiving; finishing in-flight messages"
        );
        handlers.drain(config.shutdown_grace).await;

        let mut summary = RunSummary {
            abandoned: handlers.abandoned,
            internal_panics: 0,
        };
        while let Some(joined) = receivers.join_next().await {
            if let Err(error) = joined {
                tracing::error!(queue = self.queue.name(), %error, "receiver task failed");
                summary.internal_panics += 1;
            }
        }
        drop(handlers);
        drop(shared);
        match settler.await {
            Ok(panics) => summary.internal_panics += panics,
            Err(error) => {
                tracing::error!(queue = self.queue.name(), %error, "settler task failed");
                summary.internal_panics += 1;
            }
        }
        tracing::info!(queue = self.queue.name(), "drained");
        summary
    }
}

/// Runs one queue until `shutdown` is cancelled: [`Consumer`] in one call.
pub async fn run_queue<Q: Queue, H: Handler>(
    config: QueueConfig,
    queue: Arc<Q>,
    handler: Arc<H>,
    breaker: Option<Arc<CircuitBreaker>>,
    shutdown: CancellationToken,
) -> RunSummary {
    let mut consumer = Consumer::new(config, queue, handler);
    if let Some(breaker) = breaker {
        consumer = consumer.with_breaker(breaker);
    }
    consumer.run(shutdown).await
}

/// What the supervisor knows of a running task, to put its message back
/// if the task panics.
struct InHand {
    receipt: String,
    receive_count: u32,
}

/// The handler tasks of one queue.
struct Handlers<Q, H> {
    tasks: JoinSet<(Processed, Option<Duration>)>,
    in_hand: HashMap<task::Id, InHand>,
    shared: Arc<Shared<Q, H>>,
    stats: Arc<QueueStats>,
    abandoned: u64,
}

impl<Q: Queue, H: Handler> Handlers<Q, H> {
    fn spawn(&mut self, received: Received) {
        let message = &received.message;
        let span = tracing::info_span!(
            "message",
            queue = self.shared.queue.name(),
            message_id = %message.id,
            receive_count = message.receive_count,
        );
        let in_hand = InHand {
            receipt: message.receipt.clone(),
            receive_count: message.receive_count,
        };
        self.stats.started();
        let shared = Arc::clone(&self.shared);
        let task = self
            .tasks
            .spawn(async move { shared.process(received).await }.instrument(span));
        self.in_hand.insert(task.id(), in_hand);
    }

    fn joined(&mut self, joined: Result<(task::Id, (Processed, Option<Duration>)), JoinError>) {
        match joined {
            Ok((id, (processed, handler_time))) => {
                self.in_hand.remove(&id);
                self.stats.finished(processed, handler_time);
            }
            Err(error) => {
                let in_hand = self.in_hand.remove(&error.id());
                if error.is_panic() {
                    tracing::error!(queue = self.shared.queue.name(), %error, "handler panicked; retrying the message later");
                    if let Some(in_hand) = in_hand {
                        self.shared
                            .release_after_panic(&in_hand.receipt, in_hand.receive_count);
                    }
                    self.stats.finished(Processed::Panicked, None);
                } else {
                    self.abandoned += 1;
                    self.stats.finished(Processed::Abandoned, None);
                }
            }
        }
    }

    /// Waits up to `grace` for the running handlers, then aborts the rest.
    async fn drain(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(joined)) => self.joined(joined),
                Ok(None) => return,
                Err(_elapsed) => break,
            }
        }
        tracing::warn!(
            queue = self.shared.queue.name(),
            handlers = self.tasks.len(),
            "shutdown grace over; abandoning handlers (their messages reappear)"
        );
        self.tasks.abort_all();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.joined(joined);
        }
    }
}

/// One long-polling receiver.
struct Receiver<Q> {
    queue: Arc<Q>,
    breaker: Option<Arc<CircuitBreaker>>,
    slots: Arc<Semaphore>,
    /// Slots taken before each receive, and messages asked for.
    batch: u32,
    stats: Arc<QueueStats>,
    /// Each receive's messages, to the supervisor in one send.
    work: mpsc::Sender<Vec<Received>>,
    shutdown: CancellationToken,
    wait: Duration,
    visibility: Duration,
}

/// Pauses between failed receives: 1 s doubling to 30 s.
const RECEIVE_ERROR_PAUSE: Backoff = Backoff {
    min: Duration::from_secs(1),
    max: Duration::from_secs(30),
};

impl<Q: Queue> Receiver<Q> {
    async fn run(self) {
        let mut failures = 0u32;
        while !self.shutdown.is_cancelled() {
            let Some(probe) = self.admission().await else {
                continue;
            };

            let want = if probe.is_some() { 1 } else { self.batch };
            let mut slots = tokio::select! {
                () = self.shutdown.cancelled() => return,
                slots = Arc::clone(&self.slots).acquire_many_owned(want) => match slots {
                    Ok(slots) => slots,
                    Err(_closed) => return,
                },
            };
            // The breaker may have opened while this receiver waited for
            // room; look again before spending a receive.
            if probe.is_none()
                && self
                    .breaker
                    .as_ref()
                    .is_some_and(|b| !b.state().is_closed())
            {
                continue;
            }

            let answer = tokio::select! {
                () = self.shutdown.cancelled() => return,
                answer = self.queue.receive(slots.num_permits(), self.wait, self.visibility) => answer,
            };
            let messages = match answer {
                Ok(messages) => messages,
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(queue = self.queue.name(), %error, failures, "receive failed");
                    }
                    let pause = RECEIVE_ERROR_PAUSE.delay(failures);
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            failures = 0;

            self.stats.received(&messages, SystemTime::now());
            // Slots beyond the messages received are freed with `slots`.
            let mut probe = probe;
            let batch: Vec<Received> = messages
                .into_iter()
                .map_while(|message| {
                    Some(Received {
                        message,
                        slot: slots.split(1)?,
                        probe: probe.take(),
                    })
                })
                .collect();
            if !batch.is_empty() && self.work.send(batch).await.is_err() {
                return;
            }
        }
    }

    /// Waits until the breaker lets this receiver receive: `Some(None)` to
    /// receive normally, `Some(Some(probe))` to receive the probe, `None`
    /// to look again (after a wait, or because shutdown began).
    async fn admission(&self) -> Option<Option<BreakerPermit>> {
        let Some(breaker) = &self.breaker else {
            return Some(None);
        };
        let changed = breaker.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();

        let pause = match breaker.admit() {
            Admission::Receive => return Some(None),
            Admission::Probe(permit) => return Some(Some(permit)),
            Admission::Open { remaining } => remaining,
            Admission::ProbeInFlight => Duration::from_secs(1),
        };
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
            () = changed => {}
        }
        None
    }
}
