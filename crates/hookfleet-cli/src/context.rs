//! What every command shares: the global flags, loading the topology,
//! building AWS clients, and the two ways a command fails.

use std::path::PathBuf;

use clap::Args;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::topology::{DEFAULT_TOPOLOGY_PATH, Topology};
use hookfleet_telemetry::LogFormat;

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Topology file declaring the topic and queues.
    #[arg(
        long,
        env = "HOOKFLEET_TOPOLOGY",
        default_value = DEFAULT_TOPOLOGY_PATH,
        global = true,
        help_heading = "Global options"
    )]
    pub(crate) topology: PathBuf,

    /// Log format (logs go to stderr; RUST_LOG filters, default warn).
    #[arg(
        long,
        env = "HOOKFLEET_LOG_FORMAT",
        value_enum,
        default_value = "auto",
        global = true,
        help_heading = "Global options"
    )]
    pub(crate) log_format: LogFormat,
}

impl Global {
    /// The topology, or a configuration failure with the file's one line.
    pub(crate) fn load_topology(&self) -> Result<Topology, Failure> {
        Topology::load(&self.topology).map_err(|e| Failure::config("HOOKFLEET_TOPOLOGY", e))
    }
}

/// SNS and SQS clients from the standard AWS variables.
pub(crate) struct AwsClients {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// Builds both clients. A missing region or a malformed endpoint is a
    /// configuration failure here rather than an obscure error (or, for an
    /// empty endpoint, a panic inside the SDK) on the first call.
    pub(crate) async fn from_env() -> Result<Self, Failure> {
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            check_endpoint(&endpoint).map_err(|e| Failure::config("AWS_ENDPOINT_URL", e))?;
        }
        let config = aws::load_config(AwsTimeouts::default()).await;
        if config
            .region()
            .is_none_or(|region| region.as_ref().is_empty())
        {
            return Err(Failure::config("AWS_REGION", "not set"));
        }
        Ok(Self {
            sns: aws::sns(&config),
            sqs: aws::sqs(&config),
        })
    }
}

/// An endpoint the SDK can use: an `http(s)://host[:port]` URL.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("{endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{endpoint:?}: not an http:// or https:// URL"));
    }
    Ok(())
}

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or configuration (exit 2): one line naming the setting.
    Config {
        /// The flag or variable, e.g. `HOOKFLEET_WEBHOOK_SECRET`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation failed (exit 1).
    Operation(anyhow::Error),
}

impl Failure {
    /// A configuration failure naming `setting`.
    pub(crate) fn config(setting: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Config {
            setting,
            reason: reason.to_string(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Operation(error)
    }
}
