//! The HTTP surface: `POST /webhooks/tolinku` and the health, readiness
//! and metrics endpoints.
//!
//! The webhook handler checks in order of cost: size (`413`), signature
//! (`401`), envelope (`400`), then publishes and answers `200` only once
//! SNS has accepted the event; anything that keeps it from SNS is `503`
//! with `Retry-After`, so Tolinku retries and nothing accepted is lost.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hookfleet_bus::publisher::{Outgoing, PublishError, Publisher};
use hookfleet_event::{Envelope, EventId, MAX_BODY_BYTES, SignatureError, Verifier};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::metrics::{IngestMetrics, Outcome};

/// The signature header (SPEC §2).
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
/// The event type header (SPEC §2).
pub const EVENT_HEADER: &str = "x-webhook-event";

/// An oversized body up to this size is read (and dropped) before the
/// `413`, so that the sender reads the answer; a larger declared length is
/// refused before reading anything.
const DRAIN_LIMIT: usize = 4 * MAX_BODY_BYTES;

/// What the handlers share.
pub struct App {
    pub verifier: Verifier,
    pub publisher: Publisher,
    pub metrics: IngestMetrics,
    pub prometheus: PrometheusHandle,
    pub retry_after: HeaderValue,
}

/// The service's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/webhooks/tolinku", post(receive_webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(app)
}

async fn receive_webhook(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (outcome, response) = handle(&app, &headers, body).await;
    app.metrics
        .request(outcome, started.elapsed().as_secs_f64());
    response
}

async fn handle(app: &App, headers: &HeaderMap, body: Body) -> (Outcome, Response) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT) {
        return (Outcome::TooLarge, too_large());
    }
    // Reading a modestly oversized body to its end lets the sender see the
    // 413 instead of a reset connection.
    let body = match axum::body::to_bytes(body, DRAIN_LIMIT).await {
        Ok(body) if body.len() <= MAX_BODY_BYTES => body,
        // Over the limit, or a read error (only the limit can cause one on
        // a complete request; a broken connection gets no answer anyway).
        Ok(_) | Err(_) => return (Outcome::TooLarge, too_large()),
    };

    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    match app.verifier.verify(&body, signature) {
        Ok(position) => app.metrics.secret_matched(position),
        Err(error) => {
            let outcome = match error {
                SignatureError::Missing => Outcome::SignatureMissing,
                SignatureError::Malformed => Outcome::SignatureMalformed,
                SignatureError::Mismatch => Outcome::SignatureMismatch,
                SignatureError::TooLarge => return (Outcome::TooLarge, too_large()),
            };
            return (
                outcome,
                error_answer(StatusCode::UNAUTHORIZED, "unauthorized"),
            );
        }
    }

    let (event_type, is_test) = match parse(&body, headers) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::debug!(%reason, "webhook refused");
            return (
                Outcome::BadRequest,
                error_answer(StatusCode::BAD_REQUEST, &reason),
            );
        }
    };
    let event_id = EventId::of_body(&body).to_hex();
    if is_test {
        tracing::info!(%event_id, "test webhook acknowledged");
        return (Outcome::Test, accepted(&event_id, false));
    }

    let outgoing = Outgoing {
        body,
        event_type,
        event_id,
        received_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("the current time formats as RFC 3339"),
    };
    let event_id = outgoing.event_id.clone();
    match app.publisher.publish(outgoing).await {
        Ok(_) => (Outcome::Published, accepted(&event_id, true)),
        Err(error) => {
            tracing::warn!(%event_id, error = %error, "webhook not published");
            let outcome = match error {
                PublishError::QueueFull => Outcome::QueueFull,
                PublishError::Timeout => Outcome::PublishTimeout,
                PublishError::TooLarge => return (Outcome::TooLarge, too_large()),
                _ => Outcome::PublishFailed,
            };
            (outcome, unavailable(app, &error))
        }
    }
}

/// Validates the envelope and the event header; returns the event type and
/// whether it is the dashboard's test event.
fn parse(body: &Bytes, headers: &HeaderMap) -> Result<(String, bool), String> {
    let envelope = Envelope::parse(body).map_err(|e| e.to_string())?;
    if let Some(header_event) = headers.get(EVENT_HEADER) {
        let header_event = header_event.to_str().unwrap_or("");
        envelope
            .check_header(header_event)
            .map_err(|e| e.to_string())?;
    }
    Ok((envelope.event_type().to_owned(), envelope.is_test()))
}

/// The `200` answer, written directly: the event id is lowercase hex, so
/// it needs no JSON escaping.
fn accepted(event_id: &str, published: bool) -> Response {
    debug_assert!(event_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let body = format!(r#"{{"event_id":"{event_id}","published":{published}}}"#);
    (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn too_large() -> Response {
    let reason = format!("body larger than {MAX_BODY_BYTES} bytes");
    error_answer(StatusCode::PAYLOAD_TOO_LARGE, &reason)
}

fn unavailable(app: &App, error: &PublishError) -> Response {
    let reason = match error {
        PublishError::QueueFull => "overloaded, retry later",
        PublishError::Timeout => "the event bus did not answer in time, retry later",
        _ => "the event bus is unavailable, retry later",
    };
    let mut response = error_answer(StatusCode::SERVICE_UNAVAILABLE, reason);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, app.retry_after.clone());
    response
}

fn error_answer(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.publisher.check_topic().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {error}\n"),
            )
                .into_response()
        }
    }
}

async fn render_metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
        .into_response()
}
