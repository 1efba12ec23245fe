//! `hookfleet-bench`: benchmarks that need LocalStack and the real
//! binaries. Each prints its figures next to LocalStack's own ceiling,
//! measured in the same run, because on these machines LocalStack, not
//! hookfleet, is the limit.
//!
//! Run with release binaries: `cargo build --release --workspace --bins`
//! then `target/release/hookfleet-bench ingest`.

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Ingest(args) => ingest::run(args).await,
    }
}
