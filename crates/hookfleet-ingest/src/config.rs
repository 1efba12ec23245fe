//! `hookfleet-ingest`'s settings: each a flag with an environment variable
//! of the same meaning (SPEC §3).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookfleet_bus::publisher::PublisherConfig;
use hookfleet_bus::topology::Topology;
use hookfleet_event::Verifier;
use hookfleet_telemetry::{LogFormat, exit_config_error};

/// Receives signed Tolinku webhooks and publishes them to SNS.
#[derive(Debug, Parser)]
#[command(name = "hookfleet-ingest", version, after_help = EXAMPLE)]
pub struct Config {
    /// HTTP address to listen on.
    #[arg(long, env = "HOOKFLEET_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Webhook secret, or several separated by commas during a rotation.
    #[arg(long, env = "HOOKFLEET_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// File holding the webhook secret(s), instead of --webhook-secret.
    #[arg(long, env = "HOOKFLEET_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Topology file naming the SNS topic.
    #[arg(long, env = "HOOKFLEET_TOPOLOGY", default_value = hookfleet_bus::topology::DEFAULT_TOPOLOGY_PATH)]
    pub topology: PathBuf,

    /// The topic's ARN; when unset it is looked up by name (sns:ListTopics).
    #[arg(long, env = "HOOKFLEET_TOPIC_ARN")]
    pub topic_arn: Option<String>,

    /// Events waiting to be published, at most; beyond it requests get 503.
    #[arg(long, env = "HOOKFLEET_PUBLISH_QUEUE", default_value_t = 2048)]
    pub publish_queue: usize,

    /// PublishBatch calls in flight, at most.
    #[arg(long, env = "HOOKFLEET_PUBLISH_CONCURRENCY", default_value_t = 16)]
    pub publish_concurrency: usize,

    /// How long a batch waits for more events before it is sent, in ms.
    #[arg(long, env = "HOOKFLEET_PUBLISH_LINGER_MS", default_value_t = 2)]
    pub publish_linger_ms: u64,

    /// How long a request waits for SNS before answering 503, in ms.
    /// Keep it well under Tolinku's 10-second timeout.
    #[arg(long, env = "HOOKFLEET_PUBLISH_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=9000))]
    pub publish_timeout_ms: u64,

    /// The Retry-After sent with a 503, in seconds.
    #[arg(long, env = "HOOKFLEET_RETRY_AFTER_SECS", default_value_t = 30)]
    pub retry_after_secs: u64,

    /// How long to wait for in-flight requests after SIGTERM, in seconds.
    #[arg(long, env = "HOOKFLEET_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Log format.
    #[arg(long, env = "HOOKFLEET_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,

    /// Validate the settings, print them (secrets redacted) and exit.
    #[arg(long)]
    pub check_config: bool,
}

const EXAMPLE: &str = "Example:
  HOOKFLEET_WEBHOOK_SECRET=whsec_new,whsec_old \\
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 hookfleet-ingest --listen 127.0.0.1:8080";

/// Settings checked and turned into what the service runs with.
pub struct Settings {
    pub listen: SocketAddr,
    pub verifier: Verifier,
    pub publisher: PublisherConfig,
    pub retry_after_secs: u64,
    pub shutdown_grace: Duration,
}

impl Config {
    /// Validates everything that can be checked without the network, or
    /// exits 2 with one line naming the bad setting.
    pub fn validate(&self) -> Settings {
        let secrets = match (&self.webhook_secret, &self.webhook_secret_file) {
            (Some(_), Some(_)) => exit_config_error(
                "HOOKFLEET_WEBHOOK_SECRET",
                "set it or HOOKFLEET_WEBHOOK_SECRET_FILE, not both",
            ),
            (Some(list), None) => list.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).unwrap_or_else(|e| {
                exit_config_error(
                    "HOOKFLEET_WEBHOOK_SECRET_FILE",
                    format!("{}: {e}", path.display()),
                )
            }),
            (None, None) => exit_config_error(
                "HOOKFLEET_WEBHOOK_SECRET",
                "not set (nor HOOKFLEET_WEBHOOK_SECRET_FILE)",
            ),
        };
        let verifier = Verifier::from_list(&secrets)
            .unwrap_or_else(|e| exit_config_error("HOOKFLEET_WEBHOOK_SECRET", e));

        let topology = Topology::load(&self.topology)
            .unwrap_or_else(|e| exit_config_error("HOOKFLEET_TOPOLOGY", e));
        if let Some(arn) = &self.topic_arn
            && !arn.starts_with("arn:")
        {
            exit_config_error("HOOKFLEET_TOPIC_ARN", "not an ARN");
        }
        if self.publish_queue == 0 {
            exit_config_error("HOOKFLEET_PUBLISH_QUEUE", "must be at least 1");
        }
        if self.publish_concurrency == 0 {
            exit_config_error("HOOKFLEET_PUBLISH_CONCURRENCY", "must be at least 1");
        }

        Settings {
            listen: self.listen,
            verifier,
            publisher: PublisherConfig {
                topic_name: topology.topic.name,
                topic_arn: self.topic_arn.clone(),
                queue_capacity: self.publish_queue,
                max_in_flight: self.publish_concurrency,
                linger: Duration::from_millis(self.publish_linger_ms),
                deadline: Duration::from_millis(self.publish_timeout_ms),
            },
            retry_after_secs: self.retry_after_secs,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}
