//! The settings every worker shares (SPEC §3, §7): each a flag with an
//! environment variable. A worker binary flattens [`WorkerArgs`] into its
//! own `clap::Parser` and calls [`WorkerArgs::validate`]; with
//! `--check-config` it then prints [`WorkerSettings::summary`] and exits 0
//! instead of starting (see [`crate::app`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hookfleet_bus::topology::{DEFAULT_TOPOLOGY_PATH, Topology};
use hookfleet_telemetry::{LogFormat, exit_config_error};

use crate::backoff::Backoff;
use crate::breaker::BreakerConfig;
use crate::queue::SQS_MAX_VISIBILITY;
use crate::runtime::QueueConfig;

/// Where the admin endpoint listens when neither `HOOKFLEET_ADMIN_LISTEN`
/// nor the topology's `admin` for the worker's first queue says.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9100";

/// Settings shared by every worker.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Address of /healthz, /readyz, /metrics and /status [default: the
    /// topology's `admin` for the first queue, else 0.0.0.0:9100].
    #[arg(long, env = "HOOKFLEET_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Topology file naming the queues.
    #[arg(long, env = "HOOKFLEET_TOPOLOGY", default_value = DEFAULT_TOPOLOGY_PATH)]
    pub topology: PathBuf,

    /// Queue to drain instead of the topology's, by name or URL. For a
    /// worker draining several queues, `DEFAULT_NAME=NAME_OR_URL`;
    /// comma-separated or repeated.
    #[arg(long = "queue", env = "HOOKFLEET_QUEUE", value_delimiter = ',')]
    pub queues: Vec<String>,

    /// Messages in flight per queue, at most.
    #[arg(long, env = "HOOKFLEET_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,

    /// Long-polling receivers per queue.
    #[arg(long, env = "HOOKFLEET_RECEIVERS", default_value_t = 2)]
    pub receivers: usize,

    /// Visibility timeout while a message is processed, renewed by the
    /// heartbeat [default: the queue's `visibility_timeout_secs` in the
    /// topology, else 60].
    #[arg(long, env = "HOOKFLEET_VISIBILITY_TIMEOUT_SECS")]
    pub visibility_timeout_secs: Option<u64>,

    /// First retry delay, seconds.
    #[arg(long, env = "HOOKFLEET_BACKOFF_MIN_SECS", default_value_t = 1)]
    pub backoff_min_secs: u64,

    /// Longest retry delay, seconds (at most 43200, SQS's 12 hours).
    #[arg(long, env = "HOOKFLEET_BACKOFF_MAX_SECS", default_value_t = 900)]
    pub backoff_max_secs: u64,

    /// Consecutive failures that open a destination's breaker.
    #[arg(long, env = "HOOKFLEET_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How long an open breaker waits before its probe, seconds.
    #[arg(long, env = "HOOKFLEET_BREAKER_COOLDOWN_SECS", default_value_t = 30)]
    pub breaker_cooldown_secs: u64,

    /// How long in-flight handlers may finish after SIGTERM, seconds.
    #[arg(long, env = "HOOKFLEET_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,

    /// Log format.
    #[arg(long, env = "HOOKFLEET_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,

    /// Validate the settings, print a one-line summary and exit 0 (or exit
    /// 2 naming the bad setting), without touching the network.
    #[arg(long)]
    pub check_config: bool,
}

/// One queue a worker drains, checked.
#[derive(Debug, Clone)]
pub struct QueueSetting {
    /// The topology's name for it (what the binary asked for).
    pub default_name: String,
    /// Name or URL to resolve: the override, or the default name.
    pub location: String,
    /// How it is consumed.
    pub config: QueueConfig,
}

/// Settings checked and turned into what the runtime takes.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The worker's name.
    pub worker: String,
    /// The admin endpoint's address.
    pub admin_listen: SocketAddr,
    /// The queues, in the order the binary named them.
    pub queues: Vec<QueueSetting>,
    /// Thresholds for every destination's breaker.
    pub breaker: BreakerConfig,
}

impl WorkerSettings {
    /// The settings on one line, for `--check-config` and the start-up
    /// log: worker, queues (with their override when there is one), admin
    /// address, and the consumption and breaker settings of the first
    /// queue (every queue shares them; only the visibility may differ, and
    /// each is listed).
    pub fn summary(&self) -> String {
        let queues: Vec<String> = self
            .queues
            .iter()
            .map(|q| {
                let visibility = q.config.visibility_timeout.as_secs();
                if q.location == q.default_name {
                    format!("{} (visibility {visibility} s)", q.default_name)
                } else {
                    format!(
                        "{}={} (visibility {visibility} s)",
                        q.default_name, q.location
                    )
                }
            })
            .collect();
        let mut line = format!(
            "worker {}, admin {}, queues {}",
            self.worker,
            self.admin_listen,
            queues.join(", ")
        );
        if let Some(config) = self.queues.first().map(|q| &q.config) {
            line.push_str(&format!(
                ", {} in flight and {} receivers per queue, backoff {}-{} s, shutdown grace {} s",
                config.concurrency,
                config.receivers,
                config.backoff.min.as_secs(),
                config.backoff.max.as_secs(),
                config.shutdown_grace.as_secs(),
            ));
        }
        line.push_str(&format!(
            ", breakers open after {} failures for {} s",
            self.breaker.failure_threshold,
            self.breaker.cooldown.as_secs()
        ));
        line
    }
}

/// A bad setting: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable naming the setting.
    pub setting: &'static str,
    /// Why, one line.
    pub reason: String,
}

impl WorkerArgs {
    /// Checks the settings for worker `worker` draining `queues` (topology
    /// names), or exits 2 with one line naming the bad setting.
    pub fn validate(&self, worker: &str, queues: &[&str]) -> WorkerSettings {
        self.check(worker, queues)
            .unwrap_or_else(|e| exit_config_error(e.setting, e.reason))
    }

    /// [`Self::validate`] without exiting.
    pub fn check(&self, worker: &str, queues: &[&str]) -> Result<WorkerSettings, ConfigError> {
        let max_secs = SQS_MAX_VISIBILITY.as_secs();
        range("HOOKFLEET_CONCURRENCY", self.concurrency as u64, 1, 10_000)?;
        range("HOOKFLEET_RECEIVERS", self.receivers as u64, 1, 64)?;
        range(
            "HOOKFLEET_BACKOFF_MIN_SECS",
            self.backoff_min_secs,
            1,
            max_secs,
        )?;
        range(
            "HOOKFLEET_BACKOFF_MAX_SECS",
            self.backoff_max_secs,
            self.backoff_min_secs,
            max_secs,
        )?;
        range(
            "HOOKFLEET_BREAKER_FAILURES",
            u64::from(self.breaker_failures),
            1,
            1000,
        )?;
        range(
            "HOOKFLEET_BREAKER_COOLDOWN_SECS",
            self.breaker_cooldown_secs,
            1,
            max_secs,
        )?;
        if let Some(secs) = self.visibility_timeout_secs {
            range("HOOKFLEET_VISIBILITY_TIMEOUT_SECS", secs, 1, max_secs)?;
        }

        let topology = Topology::load(&self.topology).map_err(|e| ConfigError {
            setting: "HOOKFLEET_TOPOLOGY",
            reason: e.to_string(),
        })?;
        let overrides = self.overrides(queues)?;

        let mut settings = Vec::with_capacity(queues.len());
        for &name in queues {
            let spec = topology.queue(name);
            let location = match overrides.iter().find(|(key, _)| key == name) {
                Some((_, location)) => location.clone(),
                None if spec.is_some() => name.to_owned(),
                None => {
                    return Err(ConfigError {
                        setting: "HOOKFLEET_TOPOLOGY",
                        reason: format!(
                            "{}: no queue {name:?} (set HOOKFLEET_QUEUE or add it)",
                            self.topology.display()
                        ),
                    });
                }
            };
            let visibility_secs = self
                .visibility_timeout_secs
                .or(spec.map(|s| u64::from(s.visibility_timeout_secs)))
                .unwrap_or(60)
                .max(1);
            settings.push(QueueSetting {
                default_name: name.to_owned(),
                location,
                config: QueueConfig {
                    concurrency: self.concurrency,
                    receivers: self.receivers,
                    visibility_timeout: Duration::from_secs(visibility_secs),
                    backoff: Backoff {
                        min: Duration::from_secs(self.backoff_min_secs),
                        max: Duration::from_secs(self.backoff_max_secs),
                    },
                    shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
                    ..QueueConfig::new(worker)
                },
            });
        }

        let admin_listen = match self.admin_listen {
            Some(address) => address,
            None => queues
                .first()
                .and_then(|name| topology.queue(name)?.admin.as_deref()?.parse().ok())
                .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.parse().expect("valid default")),
        };

        Ok(WorkerSettings {
            worker: worker.to_owned(),
            admin_listen,
            queues: settings,
            breaker: BreakerConfig {
                failure_threshold: self.breaker_failures,
                cooldown: Duration::from_secs(self.breaker_cooldown_secs),
            },
        })
    }

    /// `--queue` values as (default name, name or URL) pairs.
    fn overrides(&self, queues: &[&str]) -> Result<Vec<(String, String)>, ConfigError> {
        let bad = |reason: String| ConfigError {
            setting: "HOOKFLEET_QUEUE",
            reason,
        };
        let mut pairs = Vec::new();
        for value in self
            .queues
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            let is_url = value.starts_with("http://") || value.starts_with("https://");
            let (key, location) = match value.split_once('=') {
                Some((key, location)) if !is_url => (key.trim().to_owned(), location.trim()),
                _ if queues.len() == 1 => (queues[0].to_owned(), value),
                _ => {
                    return Err(bad(format!(
                        "{value:?}: this worker drains {}; use DEFAULT_NAME=NAME_OR_URL",
                        queues.join(", ")
                    )));
                }
            };
            if !queues.contains(&key.as_str()) {
                return Err(bad(format!(
                    "{key:?} is not one of this worker's queues ({})",
                    queues.join(", ")
                )));
            }
            if location.is_empty() {
                return Err(bad(format!("{key:?} has an empty name or URL")));
            }
            pairs.push((key, location.to_owned()));
        }
        Ok(pairs)
    }
}

/// A trimmed value, `None` when unset or blank.
pub fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Checks that `value` is within `min..=max`, or names `setting`.
pub fn range(setting: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            reason: format!("{value} is outside {min}..={max}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn args(extra: &[&str]) -> WorkerArgs {
        let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/topology.toml");
        let mut argv = vec!["worker", "--topology", topology];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").worker
    }

    #[test]
    fn defaults_come_from_the_topology() {
        let settings = args(&[])
            .check("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"])
            .unwrap();
        assert_eq!(settings.admin_listen.to_string(), "127.0.0.1:9103");
        assert_eq!(settings.queues.len(), 2);
        assert_eq!(settings.queues[1].location, "hookfleet-welcome");
        let config = &settings.queues[0].config;
        assert_eq!(config.visibility_timeout, Duration::from_secs(60));
        assert_eq!(config.worker, "hookfleet-crm");
        assert_eq!(settings.breaker.failure_threshold, 5);
    }

    #[test]
    fn queue_overrides_name_their_queue_when_there_are_several() {
        let settings = args(&[
            "--queue",
            "hookfleet-welcome=http://x/q/w",
            "--visibility-timeout-secs",
            "5",
        ])
        .check("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"])
        .unwrap();
        assert_eq!(settings.queues[0].location, "hookfleet-crm");
        assert_eq!(settings.queues[1].location, "http://x/q/w");
        assert_eq!(
            settings.queues[1].config.visibility_timeout,
            Duration::from_secs(5)
        );

        let single = args(&["--queue", "http://x/q/a=b"])
            .check("hookfleet-analytics", &["hookfleet-analytics"])
            .unwrap();
        assert_eq!(single.queues[0].location, "http://x/q/a=b");

        let ambiguous = args(&["--queue", "other"])
            .check("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"])
            .unwrap_err();
        assert_eq!(ambiguous.setting, "HOOKFLEET_QUEUE");
        let unknown = args(&["--queue", "nope=x"])
            .check("hookfleet-crm", &["hookfleet-crm"])
            .unwrap_err();
        assert!(unknown.reason.contains("not one of"), "{unknown}");
    }

    #[test]
    fn the_summary_is_one_line_naming_every_queue() {
        let settings = args(&[
            "--queue",
            "hookfleet-welcome=http://x/q/w",
            "--check-config",
        ])
        .check("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"])
        .unwrap();
        let summary = settings.summary();
        assert!(!summary.contains('\n'), "{summary}");
        for part in [
            "worker hookfleet-crm",
            "admin 127.0.0.1:9103",
            "hookfleet-crm (visibility 60 s)",
            "hookfleet-welcome=http://x/q/w (visibility 60 s)",
            "32 in flight and 2 receivers per queue",
            "breakers open after 5 failures for 30 s",
        ] {
            assert!(summary.contains(part), "{part:?} missing from {summary}");
        }
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(&[&str], &str); 4] = [
            (&["--concurrency", "0"], "HOOKFLEET_CONCURRENCY"),
            (
                &["--backoff-min-secs", "10", "--backoff-max-secs", "5"],
                "HOOKFLEET_BACKOFF_MAX_SECS",
            ),
            (&["--breaker-failures", "0"], "HOOKFLEET_BREAKER_FAILURES"),
            (
                &["--visibility-timeout-secs", "50000"],
                "HOOKFLEET_VISIBILITY_TIMEOUT_SECS",
            ),
        ];
        for (extra, setting) in cases {
            let error = args(extra).check("w", &["hookfleet-crm"]).unwrap_err();
            assert_eq!(error.setting, setting, "{extra:?}");
            assert!(!error.to_string().contains('\n'));
        }
        let mut unreadable = args(&[]);
        unreadable.topology = PathBuf::from("/nonexistent.toml");
        let error = unreadable.check("w", &["hookfleet-crm"]).unwrap_err();
        assert_eq!(error.setting, "HOOKFLEET_TOPOLOGY");

        let missing = args(&[]).check("w", &["not-in-topology"]).unwrap_err();
        assert!(
            missing.reason.contains("no queue \"not-in-topology\""),
            "{missing}"
        );
    }
}
