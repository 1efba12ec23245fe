//! A worker whose handler does nothing: every valid envelope is `Done`
//! (deleted), every invalid body dead-lettered. It exists to prove the
//! wiring end to end and to measure the runtime alone (`hookfleet-bench
//! drain`); it is not a product binary.
//!
//! It drains no queue of the topology by default, so it cannot empty a
//! real one by accident: name the queue with `HOOKFLEET_QUEUE`. With
//! `--handler-delay-ms` each delivery waits that long before `Done`, a
//! stand-in for a handler that calls something slow.
//!
//! ```text
//! cargo build --release -p hookfleet-worker --examples
//! HOOKFLEET_QUEUE=my-scratch-queue target/release/examples/noop_worker
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hookfleet_worker::{Delivery, Handler, Outcome, Worker, WorkerArgs};

/// The queue's default name: deliberately not in the topology.
const QUEUE: &str = "hookfleet-noop";

/// Drains a queue, deleting every message unprocessed.
#[derive(Debug, Parser)]
#[command(name = "noop_worker")]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,

    /// How long each delivery waits before it is done, milliseconds.
    #[arg(long, env = "HOOKFLEET_NOOP_DELAY_MS", default_value_t = 0)]
    handler_delay_ms: u64,
}

/// Returns `Done` for every delivery, after `delay` if it is not zero.
struct Noop {
    delay: Duration,
}

impl Handler for Noop {
    async fn handle(&self, _delivery: &Delivery<'_>) -> Outcome {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Outcome::Done
    }
}

#[tokio::main]
async fn main() {
    let cli: Cli = hookfleet_telemetry::parse_args();
    let settings = cli.worker.validate("hookfleet-noop", &[QUEUE]);
    if cli.worker.check_config {
        println!(
            "configuration ok: {}, handler delay {} ms",
            settings.summary(),
            cli.handler_delay_ms
        );
        return;
    }
    let prometheus = hookfleet_worker::start_logging_and_metrics(&cli.worker);

    let handler = Noop {
        delay: Duration::from_millis(cli.handler_delay_ms),
    };
    let worker = Worker::new(settings, prometheus).queue(QUEUE, Arc::new(handler), None);
    if let Err(error) = worker.run().await {
        tracing::error!(
            error = format!("{:#}", anyhow::Error::from(error)),
            "worker failed"
        );
        std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
    }
}
