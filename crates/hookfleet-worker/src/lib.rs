//! The worker runtime: everything a hookfleet worker does except its own
//! processing, so that each worker binary is a [`Handler`] and a few lines
//! of wiring (SPEC §7).
//!
//! - [`app`]: [`Worker`], the wiring of a worker binary (admin endpoint,
//!   queue resolution, breakers, signals), and
//!   [`start_logging_and_metrics`].
//! - [`queue`]: the [`Queue`] trait (SQS's contract and limits) and
//!   [`SqsQueue`].
//! - [`handler`]: what a worker writes — [`Handler`] and [`Outcome`].
//! - [`runtime`]: [`Consumer`] / [`run_queue`], the processing loop of one
//!   queue: long-polling receivers, a bound on messages in flight, handlers
//!   run concurrently with a visibility heartbeat, deletes and releases
//!   batched by the settler, and a shutdown that joins every task.
//! - [`breaker`]: [`CircuitBreaker`], one per outbound destination; while
//!   it is open the queue feeding it is not received from.
//! - [`backoff`]: the retry delay from a message's receive count.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, `/status`.
//! - [`config`]: [`WorkerArgs`], the settings every worker shares.
//! - [`metrics`]: metric names, declared once.
//!
//! # Retried or dead-lettered
//!
//! The question is whether another attempt could succeed:
//!
//! | case | becomes | why |
//! |---|---|---|
//! | body is not a valid envelope | dead letter at once, before the handler | poison: every attempt fails the same way |
//! | handler `Retry` (5xx, 429, timeout, database down) | visible again after exponential backoff with jitter, or the handler's `Retry-After` | transient |
//! | handler `Wait` (another worker holds the claim, a local dependency is down) | as `Retry`, but the breaker is not told | not the destination's fault |
//! | handler `Skipped` (done before, or scheduled for later) | deleted; the breaker is not told | the destination was not called |
//! | handler `GiveUp` (the destination refused the content, e.g. 4xx) | dead letter with the reason | permanent |
//! | breaker open | visible again after the rest of the cooldown; not a failure | the destination is down, not the message |
//! | handler panics | retry with backoff | may be transient; never lost |
//! | dead-letter send fails | retry with backoff | never deleted without a copy |
//! | worker killed mid-handler | reappears after the visibility timeout | at-least-once |
//!
//! A dead-lettered copy carries the original attributes plus `error`,
//! `worker`, `failed_at` and `receive_count` (SPEC §5). Messages that keep
//! failing reach the DLQ through the queue's redrive policy once they
//! exceed `maxReceiveCount`, without those attributes.
//!
//! Processing is at-least-once: handlers must be idempotent (keyed on
//! [`Delivery::event_id`]).

pub mod admin;
pub mod app;
pub mod backoff;
pub mod breaker;
pub mod config;
pub mod handler;
pub mod metrics;
mod process;
pub mod queue;
pub mod runtime;
mod settle;

pub use app::{Worker, WorkerError, start_logging_and_metrics};
pub use backoff::Backoff;
pub use breaker::{BreakerConfig, BreakerPermit, BreakerState, CircuitBreaker};
pub use config::{WorkerArgs, WorkerSettings};
pub use handler::{Delivery, Handler, Outcome};
pub use process::dead_letter_attributes;
pub use queue::{Message, Queue, QueueError, SqsQueue};
pub use runtime::{Consumer, QueueConfig, RunSummary, run_queue};
