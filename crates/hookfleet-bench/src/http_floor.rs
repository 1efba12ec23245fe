//! The cost of serving the webhook requests with no webhook work at all:
//! a bare axum server (the same HTTP stack as ingest, in a process of its
//! own) that reads each body and answers `200` after a fixed delay.
//!
//! With the delay set to ingest's median answer latency, the closed-loop
//! generator drives it at about ingest's rate, so its CPU per request is
//! what accepting, reading and answering these requests costs on this
//! machine before any verification, parsing or publishing.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// How long each answer waits, milliseconds.
    #[arg(long)]
    answer_after_ms: u64,
}

/// Serves until killed.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let delay = Duration::from_millis(args.answer_after_ms);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/webhooks/tolinku",
            post(move |body: Bytes| async move {
                tokio::time::sleep(delay).await;
                let answer = format!(r#"{{"bytes":{},"published":true}}"#, body.len());
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    answer,
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    axum::serve(listener, app).await?;
    Ok(())
}
