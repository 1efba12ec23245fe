//! What every hookfleet binary does the same way at start: logging,
//! the Prometheus recorder, and refusing bad configuration.
//!
//! Conventions, written down once:
//!
//! - Logs go to stderr through `tracing`. `HOOKFLEET_LOG_FORMAT=json` (the
//!   default when stderr is not a terminal, as in a container) or `text`.
//!   Messages are lowercase; identifiers (`event_id`, `event_type`,
//!   `queue`) are fields, never interpolated. No secret and no whole
//!   payload is ever logged.
//! - Errors: `thiserror` enums at library boundaries, `anyhow` with
//!   `.context(..)` inside binaries.
//! - Invalid configuration stops the binary at start with exit code 2 and
//!   one line naming the setting ([`exit_config_error`]).

use std::io::IsTerminal;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Exit code for bad usage or configuration (SPEC §3, §11).
pub const EXIT_CONFIG: i32 = 2;

/// Exit code for an operation that failed (SPEC §11).
pub const EXIT_FAILURE: i32 = 1;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, text otherwise.
    Auto,
    /// One JSON object per line (containers, log shippers).
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the global `tracing` subscriber. `RUST_LOG` filters, with
/// `default_filter` when it is unset.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

/// Installs the Prometheus recorder for the `metrics` facade and returns
/// the handle that renders `/metrics`. The binaries serve it from their own
/// router (no exporter HTTP server).
pub fn install_metrics() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .unwrap_or_else(|e| {
            eprintln!("error: cannot install the metrics recorder: {e}");
            std::process::exit(EXIT_FAILURE)
        })
}

/// Prints one line naming the bad setting and exits with code 2.
pub fn exit_config_error(setting: &str, reason: impl std::fmt::Display) -> ! {
    eprintln!("error: invalid {setting}: {reason}");
    std::process::exit(EXIT_CONFIG)
}

/// Parses the command line (and the environment variables behind each
/// flag). `--help` and `--version` print and exit 0; any other error prints
/// clap's first line, which names the flag, and exits 2.
pub fn parse_args<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                error.exit()
            }
            let rendered = error.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{line}");
            std::process::exit(EXIT_CONFIG)
        }
    }
}
