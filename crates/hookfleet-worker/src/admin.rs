//! The admin endpoint on `HOOKFLEET_ADMIN_LISTEN` (SPEC §7):
//!
//! - `GET /healthz`: 200 while the process runs.
//! - `GET /readyz`: 200 when every queue answers `GetQueueAttributes`,
//!   else 503 with one line per unreachable queue.
//! - `GET /metrics`: Prometheus text.
//! - `GET /status`: JSON — per queue its in-flight count, counts by
//!   outcome and oldest message age; per breaker its state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::time::Instant;

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::metrics::{QueueSnapshot, QueueStats};
use crate::queue::{Queue, QueueError};

/// How long `/readyz` waits for each queue.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

type Check<'a> = Pin<Box<dyn Future<Output = Result<(), QueueError>> + Send + 'a>>;

/// A queue as `/readyz` sees it: something that can be checked.
trait Reachable: Send + Sync {
    fn reachable(&self) -> Check<'_>;
}

impl<Q: Queue> Reachable for Q {
    fn reachable(&self) -> Check<'_> {
        Box::pin(self.check())
    }
}

/// One queue on the admin endpoint.
pub struct AdminQueue {
    stats: Arc<QueueStats>,
    queue: Arc<dyn Reachable>,
}

impl AdminQueue {
    /// A queue's counters (from [`crate::Consumer::stats`]) and the queue
    /// itself, for readiness.
    pub fn new<Q: Queue>(stats: Arc<QueueStats>, queue: Arc<Q>) -> Self {
        Self { stats, queue }
    }
}

/// What the admin endpoint serves.
pub struct AdminState {
    /// The worker's name.
    pub worker: String,
    /// Renders `/metrics`; `None` serves an empty page.
    pub prometheus: Option<PrometheusHandle>,
    /// The queues the worker drains.
    pub queues: Vec<AdminQueue>,
    /// The breakers of its destinations.
    pub breakers: Vec<Arc<CircuitBreaker>>,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let mut problems = Vec::new();
    for queue in &state.queues {
        let name = queue.stats.name();
        match tokio::time::timeout(READY_TIMEOUT, queue.queue.reachable()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => problems.push(error.to_string()),
            Err(_) => problems.push(format!("{name}: no answer within {READY_TIMEOUT:?}")),
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = problems.join("\n") + "\n";
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let body = state
        .prometheus
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `/status`'s body.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The worker's name.
    pub worker: String,
    /// One entry per queue.
    pub queues: Vec<QueueSnapshot>,
    /// One entry per breaker.
    pub breakers: Vec<BreakerStatus>,
}

/// A breaker on `/status`.
#[derive(Debug, Serialize)]
pub struct BreakerStatus {
    /// The destination it guards.
    pub destination: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// For an open breaker, seconds until its probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_for_secs: Option<f64>,
}

/// The status of every queue and breaker, as `/status` serves it.
pub fn status_of(state: &AdminState) -> Status {
    let now = Instant::now();
    Status {
        worker: state.worker.clone(),
        queues: state.queues.iter().map(|q| q.stats.snapshot()).collect(),
        breakers: state
            .breakers
            .iter()
            .map(|breaker| {
                let current = breaker.state();
                BreakerStatus {
                    destination: breaker.destination().to_owned(),
                    state: current.label(),
                    open_for_secs: match current {
                        BreakerState::Open { until } => {
                            Some(until.saturating_duration_since(now).as_secs_f64())
                        }
                        _ => None,
                    },
                }
            })
            .collect(),
    }
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<Status> {
    Json(status_of(&state))
}
