//! `hookfleet-bench`: benchmarks that need LocalStack and the real
//! binaries. Each prints its figures next to LocalStack's own ceiling,
//! measured in the same run, because on these machines LocalStack, not
//! hookfleet, is the limit.
//!
//! Run with release binaries: `cargo build --release --workspace --bins`
//! then `target/release/hookfleet-bench ingest`. `drain` also needs the
//! no-op worker: `cargo build --release -p hookfleet-worker --examples`.

mod alerts;
mod analytics;
mod crm;
mod database;
mod drain;
mod http_floor;
mod ingest;
mod proc_stats;
mod scratch;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hookfleet-bench", about = "Benchmarks against LocalStack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest under load: throughput, latency, CPU and memory, next to
    /// LocalStack's own PublishBatch ceiling.
    Ingest(ingest::Args),
    /// The worker runtime draining a pre-filled queue with a no-op
    /// handler: rate and CPU per message, next to LocalStack's own
    /// receive-and-delete-batch ceiling.
    Drain(drain::Args),
    /// hookfleet-analytics storing a pre-filled queue into PostgreSQL:
    /// events per second and CPU per event, next to the no-op drain.
    Analytics(analytics::Args),
    /// hookfleet-alerts evaluating a pre-filled queue with every rule on:
    /// events per second and CPU per event, next to the no-op drain.
    Alerts(alerts::Args),
    /// hookfleet-crm sending a pre-filled queue of referrals to a local
    /// CRM answering in 20 ms: events per second next to the no-op drain.
    Crm(crm::Args),
    /// A bare HTTP server answering webhooks after a fixed delay (started
    /// by `ingest` as its floor; not run by hand).
    #[command(hide = true)]
    HttpFloor(http_floor::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Ingest(args) => ingest::run(args).await,
        Command::Drain(args) => drain::run(args).await,
        Command::Analytics(args) => analytics::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Crm(args) => crm::run(args).await,
        Command::HttpFloor(args) => http_floor::run(args).await,
    }
}
