//! `hookfleet`, the operator CLI (SPEC §11).
//!
//! This file only parses and dispatches; each command lives in its own
//! module and returns a [`Failure`] that decides the exit code: 0 success,
//! 1 the operation failed, 2 bad usage or configuration (a bad flag too:
//! one line, exit 2, see [`context::parse_cli`]).

mod context;
mod dlq;
mod infra;
mod send;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hookfleet_telemetry::{EXIT_CONFIG, EXIT_FAILURE, exit_config_error, init_logging};

use crate::context::{Failure, Global, parse_cli};

/// Quiet unless `RUST_LOG` says otherwise: the CLI's output is its
/// report. The SDK's region-chain warnings (IMDS) are noise here; a
/// missing region is reported as a configuration error instead.
const DEFAULT_LOG_FILTER: &str = "warn,aws_config=error";

/// Operate the hookfleet bus: create the topology, inspect and redrive
/// dead-letter queues, send test webhooks, see the fleet's status.
#[derive(Debug, Parser)]
#[command(name = "hookfleet", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update the SNS topic, SQS queues, DLQs and subscriptions.
    #[command(subcommand)]
    Infra(infra::InfraCommand),
    /// Inspect, explain, redrive, export and purge dead-letter queues.
    #[command(subcommand, after_help = dlq::EXAMPLES)]
    Dlq(dlq::DlqCommand),
    /// Sign a webhook like Tolinku does and send it to ingest.
    Send(send::SendArgs),
    /// Queue and DLQ depths, and each worker's health and /status.
    Status(status::StatusArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli: Cli = parse_cli();
    init_logging(cli.global.log_format, DEFAULT_LOG_FILTER);
    // reqwest uses rustls without a built-in provider: pick ring, once.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let result = match cli.command {
        _ if cli.global.check_config => cli.global.check_config(),
        Command::Infra(command) => infra::run(command, &cli.global).await,
        Command::Dlq(command) => dlq::run(command, &cli.global).await,
        Command::Send(args) => send::run(args).await,
        Command::Status(args) => status::run(args, &cli.global).await,
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config { setting, reason }) => exit_config_error(setting, reason),
        Err(Failure::Usage(line)) => {
            eprintln!("error: {line}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
        Err(Failure::Operation(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE as u8)
        }
    }
}
