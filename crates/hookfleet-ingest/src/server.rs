//! Start-up and shutdown.
//!
//! SIGTERM (or Ctrl-C) stops accepting connections; requests already in
//! progress still get SNS's verdict; the publisher then drains what is
//! queued and the process exits 0.

use std::sync::Arc;

use anyhow::Context;
use axum::http::HeaderValue;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::publisher::Publisher;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::metrics::IngestMetrics;
use crate::routes::{App, router};

/// Runs the service until SIGTERM or Ctrl-C, then drains.
pub async fn run(settings: Settings, prometheus: PrometheusHandle) -> anyhow::Result<()> {
    let metrics = IngestMetrics::register(settings.verifier.len());
    let sdk = aws::load_checked(ingest_timeouts(&settings))
        .await
        .unwrap_or_else(|e| hookfleet_telemetry::exit_config_error(e.setting, e.reason));
    let (publisher, batcher) = Publisher::start(&sdk, settings.publisher.clone())
        .unwrap_or_else(|e| hookfleet_telemetry::exit_config_error("AWS configuration", e));

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        topic = %settings.publisher.topic_name,
        secrets = settings.verifier.len(),
        "ingest listening"
    );

    let app = Arc::new(App {
        verifier: settings.verifier,
        publisher,
        metrics,
        prometheus,
        retry_after: HeaderValue::from(settings.retry_after_secs),
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;

    tracing::info!("stopped accepting; draining the publisher");
    // The router and its `App` (the last publisher handle) are gone once
    // `serve` returns, so the batcher sees its queue close.
    let drained = tokio::time::timeout(settings.shutdown_grace, batcher).await;
    match drained {
        Ok(Ok(())) => tracing::info!("drained; exiting"),
        Ok(Err(panic)) => anyhow::bail!("the publisher task failed: {panic}"),
        Err(_) => tracing::warn!("drain exceeded the shutdown grace; exiting"),
    }
    Ok(())
}

/// SNS call timeouts under the publish deadline, so a hung call frees its
/// slot soon after its callers were answered 503.
fn ingest_timeouts(settings: &Settings) -> AwsTimeouts {
    let deadline = settings.publisher.deadline;
    AwsTimeouts {
        connect: deadline.min(std::time::Duration::from_secs(1)),
        attempt: deadline.mul_f32(0.6),
        operation: deadline,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
