//! The wiring every worker binary shares, so that a binary is its
//! handler(s) and a dozen lines of `main`:
//!
//! 1. [`start_logging_and_metrics`]: the `tracing` subscriber, the
//!    Prometheus recorder and the runtime's metric descriptions.
//! 2. [`Worker`]: one [`Handler`] per queue (of different types if need
//!    be), then [`Worker::run`], which binds the admin endpoint, resolves
//!    every queue and its dead-letter queue, creates one
//!    [`CircuitBreaker`] per destination, consumes until SIGTERM or
//!    Ctrl-C, lets every consumer drain and returns.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use clap::Parser;
//! use hookfleet_worker::{Delivery, Handler, Outcome, Worker, WorkerArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     worker: WorkerArgs,
//! }
//!
//! struct Alerts;
//!
//! impl Handler for Alerts {
//!     async fn handle(&self, _delivery: &Delivery<'_>) -> Outcome {
//!         Outcome::Done
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let cli: Cli = hookfleet_telemetry::parse_args();
//!     let settings = cli.worker.validate("hookfleet-alerts", &["hookfleet-alerts"]);
//!     if cli.worker.check_config {
//!         println!("configuration ok: {}", settings.summary());
//!         return Ok(());
//!     }
//!     let prometheus = hookfleet_worker::start_logging_and_metrics(&cli.worker);
//!
//!     Worker::new(settings, prometheus)
//!         .queue("hookfleet-alerts", Arc::new(Alerts), Some("slack"))
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! Errors at start (a queue that does not exist, an admin address in use)
//! come back from [`Worker::run`] as a [`WorkerError`] before anything is
//! received; print them with `{:#}` (or through `anyhow`) to see the cause.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::resolve::ResolveError;
use hookfleet_bus::wire::sqs::Sqs;
use hookfleet_bus::wire::{AwsWire, WireError};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminQueue, AdminState};
use crate::breaker::CircuitBreaker;
use crate::config::{WorkerArgs, WorkerSettings};
use crate::handler::Handler;
use crate::metrics::QueueStats;
use crate::queue::{Queue, SqsQueue};
use crate::runtime::{Consumer, QueueConfig, RunSummary};

/// How long the admin endpoint may take to close once every consumer has
/// drained.
const ADMIN_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs logging (`HOOKFLEET_LOG_FORMAT`, `RUST_LOG`, default `info`)
/// and the Prometheus recorder, describes the runtime's metrics, and
/// returns the handle [`Worker::new`] serves on `/metrics`. Call it once,
/// after `--check-config` has had its say.
pub fn start_logging_and_metrics(args: &WorkerArgs) -> PrometheusHandle {
    hookfleet_telemetry::init_logging(args.log_format, "info");
    let prometheus = hookfleet_telemetry::install_metrics();
    crate::metrics::describe();
    prometheus
}

/// Why a worker could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// [`Worker::queue`] named a queue the settings do not have: the
    /// binary validated with other names than it wires.
    #[error("queue {0:?} was not among the queues given to WorkerArgs::validate")]
    UnknownQueue(String),
    /// A queue was given two handlers.
    #[error("queue {0:?} was given more than one handler")]
    DuplicateQueue(String),
    /// A queue in the settings has no handler.
    #[error("queue {0:?} has no handler (call Worker::queue for it)")]
    MissingHandler(String),
    /// The admin address cannot be bound (in use, not local, no
    /// permission).
    #[error("cannot listen on {address} (HOOKFLEET_ADMIN_LISTEN)")]
    AdminListen {
        /// The address asked for.
        address: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The AWS configuration cannot make SQS calls (no region, a bad
    /// endpoint, no TLS roots).
    #[error("cannot make SQS calls: {0}")]
    Aws(#[source] WireError),
    /// A queue or its `-dlq` could not be found or looked up.
    #[error(
        "cannot resolve queue {queue:?} and its dead-letter queue \
         (run `hookfleet infra apply`, or check HOOKFLEET_QUEUE and AWS_ENDPOINT_URL)"
    )]
    Resolve {
        /// The queue's name or URL as configured.
        queue: String,
        /// What SQS said.
        #[source]
        source: ResolveError,
    },
    /// Tasks of the runtime panicked (a bug): their messages reappear
    /// after the visibility timeout, but the worker should be restarted
    /// and the panic, logged with the queue, investigated.
    #[error("{tasks} task(s) of the consumer of {queue:?} panicked")]
    Panicked {
        /// The queue whose consumer was affected.
        queue: String,
        /// How many tasks panicked.
        tasks: u64,
    },
}

/// A queue's consumer before its queue is resolved: the handler's type is
/// erased here, so one worker can drain queues with different handlers
/// while each [`Consumer`] stays monomorphic.
type StartConsumer =
    Box<dyn FnOnce(QueueConfig, Arc<SqsQueue>, Option<Arc<CircuitBreaker>>) -> Started + Send>;

/// A consumer ready to run, and its counters.
struct Started {
    stats: Arc<QueueStats>,
    run: Box<dyn FnOnce(CancellationToken) -> ConsumerRun + Send>,
}

type ConsumerRun = Pin<Box<dyn Future<Output = RunSummary> + Send>>;

/// One [`Worker::queue`] call.
struct Binding {
    default_name: String,
    destination: Option<String>,
    start: StartConsumer,
}

/// A worker process: its settings, one handler per queue, and the run
/// loop around them. See the [module documentation](self) for a whole
/// `main`.
pub struct Worker {
    settings: WorkerSettings,
    prometheus: PrometheusHandle,
    bindings: Vec<Binding>,
    shutdown: CancellationToken,
    aws: Option<SdkConfig>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .field(
                "queues",
                &self
                    .bindings
                    .iter()
                    .map(|b| (&b.default_name, &b.destination))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker with checked settings ([`WorkerArgs::validate`]) that
    /// serves `prometheus` on `/metrics` (from
    /// [`start_logging_and_metrics`]; tests can pass
    /// `PrometheusBuilder::new().build_recorder().handle()`).
    pub fn new(settings: WorkerSettings, prometheus: PrometheusHandle) -> Self {
        Self {
            settings,
            prometheus,
            bindings: Vec::new(),
            shutdown: CancellationToken::new(),
            aws: None,
        }
    }

    /// Uses `config` for SQS instead of one loaded from the standard AWS
    /// variables with long-poll timeouts (tests point it at LocalStack
    /// without touching the process environment). Its attempt timeout
    /// must outlive a 20 s long poll.
    pub fn aws_config(mut self, config: SdkConfig) -> Self {
        self.aws = Some(config);
        self
    }

    /// Drains the queue the binary called `default_name` (one of the names
    /// it passed to [`WorkerArgs::validate`]; `HOOKFLEET_QUEUE` may point
    /// it elsewhere) with `handler`. With `breaker`, the queue is gated on
    /// that destination's [`CircuitBreaker`]; queues naming the same
    /// destination share one breaker.
    pub fn queue<H: Handler>(
        mut self,
        default_name: &str,
        handler: Arc<H>,
        breaker: Option<&str>,
    ) -> Self {
        let start: StartConsumer = Box::new(move |config, queue, breaker| {
            let mut consumer = Consumer::new(config, queue, handler);
            if let Some(breaker) = breaker {
                consumer = consumer.with_breaker(breaker);
            }
            Started {
                stats: consumer.stats(),
                run: Box::new(move |shutdown| Box::pin(consumer.run(shutdown))),
            }
        });
        self.bindings.push(Binding {
            default_name: default_name.to_owned(),
            destination: breaker.map(str::to_owned),
            start,
        });
        self
    }

    /// The token whose cancellation stops the worker, as SIGTERM does.
    /// Cancel it to stop an in-process worker (tests), or hand it to a
    /// handler's background tasks: it is cancelled when receiving stops,
    /// while in-flight handlers may still run for the shutdown grace.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until SIGTERM, Ctrl-C or [`Self::shutdown_token`], then stops
    /// receiving, lets in-flight handlers finish (within the shutdown
    /// grace), flushes deletes, joins every consumer and returns.
    ///
    /// Start-up, in order: listen for signals; bind the admin address;
    /// resolve every queue and its `-dlq`; create the breakers; start the
    /// consumers and the admin endpoint. Any failure there returns at
    /// once, before a message is received.
    pub async fn run(self) -> Result<(), WorkerError> {
        let Self {
            settings,
            prometheus,
            bindings,
            shutdown,
            aws,
        } = self;
        let bindings = match_bindings(&settings, bindings)?;
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));

        let listener = tokio::net::TcpListener::bind(settings.admin_listen)
            .await
            .map_err(|source| WorkerError::AdminListen {
                address: settings.admin_listen,
                source,
            })?;

        let config = match aws {
            Some(config) => config,
            None => aws::load_config(AwsTimeouts::long_poll()).await,
        };
        let client = aws::sqs(&config);
        let wire =
            AwsWire::new(&config, "sqs", AwsTimeouts::long_poll()).map_err(WorkerError::Aws)?;
        let sqs = Sqs::new(wire);
        let mut resolved = Vec::with_capacity(bindings.len());
        for (setting, binding) in bindings {
            let queue = SqsQueue::resolve(&client, sqs.clone(), &setting.location)
                .await
                .map_err(|source| WorkerError::Resolve {
                    queue: setting.location.clone(),
                    source,
                })?;
            resolved.push((setting.config, Arc::new(queue), binding));
        }

        let mut breakers: HashMap<String, Arc<CircuitBreaker>> = HashMap::new();
        let mut admin_queues = Vec::with_capacity(resolved.len());
        let mut consumers = JoinSet::new();
        let mut names = HashMap::new();
        for (config, queue, binding) in resolved {
            let breaker = binding.destination.map(|destination| {
                Arc::clone(
                    breakers
                        .entry(destination.clone())
                        .or_insert_with(|| CircuitBreaker::new(destination, settings.breaker)),
                )
            });
            let started = (binding.start)(config, Arc::clone(&queue), breaker);
            admin_queues.push(AdminQueue::new(started.stats, Arc::clone(&queue)));
            let task = consumers.spawn((started.run)(shutdown.clone()));
            names.insert(task.id(), queue.name().to_owned());
        }

        let mut breakers: Vec<_> = breakers.into_values().collect();
        breakers.sort_by(|a, b| a.destination().cmp(b.destination()));
        let state = Arc::new(AdminState {
            worker: settings.worker.clone(),
            prometheus: Some(prometheus),
            queues: admin_queues,
            breakers,
        });
        let admin_address = listener.local_addr().unwrap_or(settings.admin_listen);
        let close_admin = CancellationToken::new();
        let admin = tokio::spawn(
            axum::serve(listener, admin::router(state))
                .with_graceful_shutdown(close_admin.clone().cancelled_owned())
                .into_future(),
        );
        tracing::info!(
            worker = %settings.worker,
            admin = %admin_address,
            queues = names.len(),
            "worker started"
        );

        let mut failures = Vec::new();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            Some(joined) = consumers.join_next_with_id() => {
                // A consumer returns on its own only if it panicked.
                if !shutdown.is_cancelled() {
                    tracing::error!("a consumer stopped on its own; stopping the worker");
                    shutdown.cancel();
                }
                failures.extend(consumer_failure(&names, joined));
            }
        }
        tracing::info!(worker = %settings.worker, "stopping: draining every queue");
        while let Some(joined) = consumers.join_next_with_id().await {
            failures.extend(consumer_failure(&names, joined));
        }

        close_admin.cancel();
        match tokio::time::timeout(ADMIN_CLOSE_TIMEOUT, admin).await {
            Ok(Ok(Ok(()))) | Err(_) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "admin endpoint failed"),
            Ok(Err(error)) => tracing::warn!(%error, "admin endpoint task failed"),
        }
        signals.abort();

        match failures.into_iter().next() {
            None => {
                tracing::info!(worker = %settings.worker, "stopped");
                Ok(())
            }
            Some(failure) => Err(failure),
        }
    }
}

/// Pairs each queue of the settings with its binding, in the settings'
/// order; every queue needs exactly one.
fn match_bindings(
    settings: &WorkerSettings,
    bindings: Vec<Binding>,
) -> Result<Vec<(crate::config::QueueSetting, Binding)>, WorkerError> {
    let mut by_name: HashMap<String, Binding> = HashMap::with_capacity(bindings.len());
    for binding in bindings {
        let name = binding.default_name.clone();
        if !settings.queues.iter().any(|q| q.default_name == name) {
            return Err(WorkerError::UnknownQueue(name));
        }
        if by_name.insert(name.clone(), binding).is_some() {
            return Err(WorkerError::DuplicateQueue(name));
        }
    }
    settings
        .queues
        .iter()
        .map(|setting| {
            by_name
                .remove(&setting.default_name)
                .map(|binding| (setting.clone(), binding))
                .ok_or_else(|| WorkerError::MissingHandler(setting.default_name.clone()))
        })
        .collect()
}

/// Logs how a consumer ended; a panic, inside it or of it, is a failure.
fn consumer_failure(
    names: &HashMap<tokio::task::Id, String>,
    joined: Result<(tokio::task::Id, RunSummary), tokio::task::JoinError>,
) -> Option<WorkerError> {
    let id = match &joined {
        Ok((id, _)) => *id,
        Err(error) => error.id(),
    };
    let queue = names.get(&id).cloned().unwrap_or_default();
    match joined {
        Ok((_, summary)) if summary.internal_panics == 0 => {
            tracing::info!(queue, abandoned = summary.abandoned, "consumer drained");
            None
        }
        Ok((_, summary)) => {
            tracing::error!(
                queue,
                panics = summary.internal_panics,
                "consumer drained after internal tasks panicked"
            );
            Some(WorkerError::Panicked {
                queue,
                tasks: summary.internal_panics,
            })
        }
        Err(error) => {
            tracing::error!(queue, %error, "consumer task failed");
            Some(WorkerError::Panicked { queue, tasks: 1 })
        }
    }
}

/// Listens for SIGTERM and SIGINT (Ctrl-C) from now on, and returns a
/// future that cancels `shutdown` on the first of them. The handlers are
/// installed before this returns, so a signal sent during start-up stops
/// the worker instead of killing it.
fn cancel_on_signal(shutdown: CancellationToken) -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};

    let signals = signal(SignalKind::terminate()).and_then(|term| {
        let interrupt = signal(SignalKind::interrupt())?;
        Ok((term, interrupt))
    });
    async move {
        let (mut term, mut interrupt) = match signals {
            Ok(signals) => signals,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM or SIGINT");
                return;
            }
        };
        let signal = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = term.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal, "shutdown requested");
        shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;
    use crate::config::QueueSetting;
    use crate::handler::{Delivery, Outcome};

    struct Nothing;

    impl Handler for Nothing {
        async fn handle(&self, _delivery: &Delivery<'_>) -> Outcome {
            Outcome::Done
        }
    }

    struct Other;

    impl Handler for Other {
        async fn handle(&self, _delivery: &Delivery<'_>) -> Outcome {
            Outcome::retry("never")
        }
    }

    fn worker(queues: &[&str]) -> Worker {
        let settings = WorkerSettings {
            worker: "w".into(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            queues: queues
                .iter()
                .map(|&name| QueueSetting {
                    default_name: name.into(),
                    location: name.into(),
                    config: QueueConfig::new("w"),
                })
                .collect(),
            breaker: BreakerConfig {
                failure_threshold: 1,
                cooldown: Duration::from_secs(1),
            },
        };
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        Worker::new(settings, prometheus)
    }

    fn matched(worker: Worker) -> Result<Vec<String>, WorkerError> {
        let pairs = match_bindings(&worker.settings, worker.bindings)?;
        Ok(pairs
            .into_iter()
            .map(|(setting, binding)| {
                assert_eq!(setting.default_name, binding.default_name);
                binding.default_name
            })
            .collect())
    }

    #[test]
    fn queues_of_different_handler_types_follow_the_settings_order() {
        let wired = worker(&["crm", "welcome"])
            .queue("welcome", Arc::new(Other), Some("welcome-endpoint"))
            .queue("crm", Arc::new(Nothing), Some("crm"));
        assert_eq!(matched(wired).unwrap(), ["crm", "welcome"]);
    }

    #[test]
    fn every_queue_needs_exactly_one_known_handler() {
        let missing = worker(&["crm", "welcome"]).queue("crm", Arc::new(Nothing), None);
        assert!(matches!(matched(missing), Err(WorkerError::MissingHandler(q)) if q == "welcome"));

        let twice = worker(&["crm"])
            .queue("crm", Arc::new(Nothing), None)
            .queue("crm", Arc::new(Other), None);
        assert!(matches!(matched(twice), Err(WorkerError::DuplicateQueue(q)) if q == "crm"));

        let unknown = worker(&["crm"]).queue("alerts", Arc::new(Nothing), None);
        assert!(matches!(matched(unknown), Err(WorkerError::UnknownQueue(q)) if q == "alerts"));
    }
}
