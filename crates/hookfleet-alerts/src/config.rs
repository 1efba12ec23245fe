//! `hookfleet-alerts`' settings: the worker runtime's ([`WorkerArgs`]),
//! storage, GeoIP, Slack, and each rule's thresholds — every one a flag
//! with an environment variable of the same meaning (SPEC §3). Checked
//! at start without touching the network; a bad one exits 2 naming it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookfleet_enrich::GeoIp;
use hookfleet_store::{Database, DatabaseArgs, DatabaseSettings};
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::{Backoff, WorkerArgs, WorkerSettings};

use crate::deliver::DeliveryConfig;
use crate::rules::{BrokenLink, ClickSpike, ReferralFraud, Rule, Rules, SuspiciousCountry};

/// The queue the worker drains (SPEC §4).
pub const QUEUE: &str = "hookfleet-alerts";

/// The worker's name (dead-letter `worker` attribute, `/status`).
pub const WORKER: &str = "hookfleet-alerts";

/// The breaker's destination name (metrics label, logs).
pub const SLACK_DESTINATION: &str = "slack";

/// Evaluates fraud and broken-link rules on the alerts queue and posts
/// each alert to Slack.
#[derive(Debug, Parser)]
#[command(
    name = "hookfleet-alerts",
    version,
    after_help = EXAMPLE,
    mut_arg("database_url", |arg| arg.help(DATABASE_URL_HELP)),
    mut_arg("database_max_connections", |arg| arg.default_value("10")),
    // One attempt: alerts does not wait for the database at start.
    mut_arg("database_wait_secs", |arg| arg.default_value("0")),
)]
pub struct Config {
    /// The worker runtime's settings.
    #[command(flatten)]
    pub worker: WorkerArgs,

    /// The database (DATABASE_URL, HOOKFLEET_DATA_DIR, …).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// MaxMind GeoIP2/GeoLite2 City database for the country of clicks that
    /// carry none (from data.ip); unset means no geo lookup.
    #[arg(long, env = "HOOKFLEET_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,

    /// Slack incoming-webhook URL; unset means alerts are only logged and
    /// stored.
    #[arg(long, env = "HOOKFLEET_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,

    /// How long one Slack request may take, seconds.
    #[arg(long, env = "HOOKFLEET_SLACK_TIMEOUT_SECS", default_value_t = 10)]
    pub slack_timeout_secs: u64,

    /// First delay before a failed Slack delivery is tried again (no
    /// Retry-After given), milliseconds; doubles per attempt.
    #[arg(long, env = "HOOKFLEET_SLACK_RETRY_MIN_MS", default_value_t = 1000)]
    pub slack_retry_min_ms: u64,

    /// Longest delay between attempts of one Slack delivery, seconds.
    #[arg(long, env = "HOOKFLEET_SLACK_RETRY_MAX_SECS", default_value_t = 60)]
    pub slack_retry_max_secs: u64,

    /// How often to look for alerts to deliver that this process was not
    /// told about (other replicas', retries coming due), milliseconds.
    #[arg(long, env = "HOOKFLEET_ALERTS_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub outbox_poll_ms: u64,

    /// Rules to run, comma-separated.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_RULES",
        value_enum,
        value_delimiter = ',',
        default_value = "suspicious_country,referral_fraud,broken_link,click_spike"
    )]
    pub rules: Vec<Rule>,

    /// suspicious_country: countries (ISO 3166-1 alpha-2, comma-separated)
    /// whose clicks raise an alert.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES",
        value_delimiter = ',',
        default_value = "XX"
    )]
    pub suspicious_countries: Vec<String>,

    /// referral_fraud: alert when more than this many referral events
    /// (created or completed) come from one IP, or for one referrer_id,
    /// within the window.
    #[arg(long, env = "HOOKFLEET_ALERTS_REFERRAL_MAX", default_value_t = 10)]
    pub referral_max: u64,

    /// referral_fraud: the sliding window, minutes.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_REFERRAL_WINDOW_MINS",
        default_value_t = 60
    )]
    pub referral_window_mins: u32,

    /// broken_link: alert when a campaign has at least this many clicks in
    /// the window and no install.tracked or deferred_link.claimed.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_BROKEN_LINK_CLICKS",
        default_value_t = 50
    )]
    pub broken_link_clicks: u64,

    /// broken_link: the sliding window, minutes.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_BROKEN_LINK_WINDOW_MINS",
        default_value_t = 15
    )]
    pub broken_link_window_mins: u32,

    /// click_spike: alert when a campaign's clicks in one minute are more
    /// than this many times its baseline per minute...
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_CLICK_SPIKE_FACTOR",
        default_value_t = 5.0
    )]
    pub click_spike_factor: f64,

    /// click_spike: ...and at least this many.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_CLICK_SPIKE_MIN_CLICKS",
        default_value_t = 100
    )]
    pub click_spike_min_clicks: u64,

    /// click_spike: the baseline is the mean over this many minutes before
    /// the minute evaluated.
    #[arg(
        long,
        env = "HOOKFLEET_ALERTS_CLICK_SPIKE_BASELINE_MINS",
        default_value_t = 15
    )]
    pub click_spike_baseline_mins: u32,

    /// How long an alert key stays quiet after it fired, minutes of event
    /// time: one incident, one message.
    #[arg(long, env = "HOOKFLEET_ALERTS_COOLDOWN_MINS", default_value_t = 30)]
    pub cooldown_mins: u32,

    /// Events whose time is further than this from now are not evaluated,
    /// and window state older than it is deleted, hours.
    #[arg(long, env = "HOOKFLEET_ALERTS_HORIZON_HOURS", default_value_t = 24)]
    pub horizon_hours: u32,
}

/// Alerts' help for `DATABASE_URL`: its SQLite file serves one replica.
const DATABASE_URL_HELP: &str = "PostgreSQL URL (postgres://…) of the shared state; unset means an \
     embedded SQLite file in the data directory (one replica only)";

const EXAMPLE: &str = "Example:
  DATABASE_URL=postgres://hookfleet@db/hookfleet \\
  HOOKFLEET_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/XXXX \\
  HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES=XX,KP HOOKFLEET_GEOIP_DB=/data/GeoLite2-City.mmdb \\
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 hookfleet-alerts";

/// The longest window or baseline accepted, minutes (a day).
const MAX_WINDOW_MINS: u64 = 24 * 60;

/// Settings checked and turned into what the worker runs with.
#[derive(Debug)]
pub struct Settings {
    /// The runtime's settings.
    pub worker: WorkerSettings,
    /// The database and its pool.
    pub database: DatabaseSettings,
    /// The GeoIP database, opened; `None` when off.
    pub geo: Option<GeoIp>,
    /// The Slack webhook; `None` when alerts are only stored.
    pub slack_url: Option<reqwest::Url>,
    /// One Slack request's timeout.
    pub slack_timeout: Duration,
    /// The deliverer's pacing.
    pub delivery: DeliveryConfig,
    /// The rules.
    pub rules: Rules,
    /// The horizon.
    pub horizon: Duration,
}

impl Settings {
    /// The settings on one line, no secret in it.
    pub fn summary(&self) -> String {
        let rules: Vec<&str> = self.rules.enabled().iter().map(|r| r.as_str()).collect();
        let database = match &self.database.database {
            Database::Url(_) => "DATABASE_URL".to_owned(),
            Database::Embedded(dir) => format!("sqlite in {}", dir.display()),
        };
        format!(
            "{}; rules {}; database {database}; slack {}; geoip {}",
            self.worker.summary(),
            if rules.is_empty() {
                "none".to_owned()
            } else {
                rules.join(", ")
            },
            self.slack_url
                .as_ref()
                .and_then(|u| u.host_str())
                .map_or_else(
                    || "off (alerts logged and stored)".to_owned(),
                    |host| { format!("on ({host})") }
                ),
            self.geo
                .as_ref()
                .map_or_else(|| "off".to_owned(), |g| g.path().display().to_string()),
        )
    }
}

/// A bad setting: the variable and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The environment variable.
    pub setting: &'static str,
    /// Why, one line.
    pub reason: String,
}

impl Config {
    /// Validates everything that can be checked without the network, or
    /// exits 2 with one line naming the bad setting.
    pub fn validate(&self) -> Settings {
        let worker = self.worker.validate(WORKER, &[QUEUE]);
        self.check(worker)
            .unwrap_or_else(|e| exit_config_error(e.setting, e.reason))
    }

    /// [`Self::validate`] past the runtime's settings, without exiting.
    pub fn check(&self, worker: WorkerSettings) -> Result<Settings, Invalid> {
        let database = self
            .database
            .check()
            .map_err(|e| invalid(e.setting, e.reason))?;

        let geo = match self
            .geoip_db
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            None => None,
            Some(path) => {
                Some(GeoIp::open(path).map_err(|e| invalid("HOOKFLEET_GEOIP_DB", e.to_string()))?)
            }
        };

        let slack_url = match self.slack_webhook_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(slack_url(url)?),
        };
        range(
            "HOOKFLEET_SLACK_TIMEOUT_SECS",
            self.slack_timeout_secs,
            1,
            300,
        )?;
        range(
            "HOOKFLEET_SLACK_RETRY_MIN_MS",
            self.slack_retry_min_ms,
            1,
            3_600_000,
        )?;
        range(
            "HOOKFLEET_SLACK_RETRY_MAX_SECS",
            self.slack_retry_max_secs,
            self.slack_retry_min_ms.div_ceil(1000),
            86_400,
        )?;
        range(
            "HOOKFLEET_ALERTS_OUTBOX_POLL_MS",
            self.outbox_poll_ms,
            10,
            3_600_000,
        )?;

        let rules = self.rules()?;
        range(
            "HOOKFLEET_ALERTS_HORIZON_HOURS",
            u64::from(self.horizon_hours),
            1,
            24 * 30,
        )?;
        let horizon = Duration::from_secs(3600 * u64::from(self.horizon_hours));
        let longest_window = [
            self.referral_window_mins,
            self.broken_link_window_mins,
            self.click_spike_baseline_mins + 1,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if Duration::from_secs(60 * u64::from(longest_window)) > horizon {
            return Err(invalid(
                "HOOKFLEET_ALERTS_HORIZON_HOURS",
                "must be at least as long as the longest window",
            ));
        }

        let slack_timeout = Duration::from_secs(self.slack_timeout_secs);
        Ok(Settings {
            worker,
            database,
            geo,
            slack_url,
            slack_timeout,
            delivery: DeliveryConfig {
                // Well past one attempt, so a live deliverer always settles
                // before anyone else may take the alert.
                lease: slack_timeout * 3 + Duration::from_secs(5),
                poll: Duration::from_millis(self.outbox_poll_ms),
                retry: Backoff {
                    min: Duration::from_millis(self.slack_retry_min_ms),
                    max: Duration::from_secs(self.slack_retry_max_secs),
                },
            },
            rules,
            horizon,
        })
    }

    fn rules(&self) -> Result<Rules, Invalid> {
        let on: BTreeSet<Rule> = self.rules.iter().copied().collect();

        let mut countries = BTreeSet::new();
        for country in self.suspicious_countries.iter().map(|c| c.trim()) {
            if country.is_empty() {
                continue;
            }
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid(
                    "HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES",
                    format!("{country:?} is not a two-letter country code"),
                ));
            }
            countries.insert(country.to_ascii_uppercase());
        }
        if on.contains(&Rule::SuspiciousCountry) && countries.is_empty() {
            return Err(invalid(
                "HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES",
                "empty; list a country or leave suspicious_country out of HOOKFLEET_ALERTS_RULES",
            ));
        }

        range(
            "HOOKFLEET_ALERTS_REFERRAL_MAX",
            self.referral_max,
            1,
            u64::from(u32::MAX),
        )?;
        let window = |setting, mins: u32| range(setting, u64::from(mins), 1, MAX_WINDOW_MINS);
        window(
            "HOOKFLEET_ALERTS_REFERRAL_WINDOW_MINS",
            self.referral_window_mins,
        )?;
        range(
            "HOOKFLEET_ALERTS_BROKEN_LINK_CLICKS",
            self.broken_link_clicks,
            1,
            u64::from(u32::MAX),
        )?;
        window(
            "HOOKFLEET_ALERTS_BROKEN_LINK_WINDOW_MINS",
            self.broken_link_window_mins,
        )?;
        if !self.click_spike_factor.is_finite() || self.click_spike_factor < 1.0 {
            return Err(invalid(
                "HOOKFLEET_ALERTS_CLICK_SPIKE_FACTOR",
                "must be a number of at least 1",
            ));
        }
        range(
            "HOOKFLEET_ALERTS_CLICK_SPIKE_MIN_CLICKS",
            self.click_spike_min_clicks,
            1,
            u64::from(u32::MAX),
        )?;
        window(
            "HOOKFLEET_ALERTS_CLICK_SPIKE_BASELINE_MINS",
            self.click_spike_baseline_mins,
        )?;
        range(
            "HOOKFLEET_ALERTS_COOLDOWN_MINS",
            u64::from(self.cooldown_mins),
            1,
            7 * MAX_WINDOW_MINS,
        )?;

        Ok(Rules {
            suspicious_country: on
                .contains(&Rule::SuspiciousCountry)
                .then_some(SuspiciousCountry { countries }),
            referral_fraud: on.contains(&Rule::ReferralFraud).then_some(ReferralFraud {
                max_events: self.referral_max,
                window_mins: self.referral_window_mins,
            }),
            broken_link: on.contains(&Rule::BrokenLink).then_some(BrokenLink {
                min_clicks: self.broken_link_clicks,
                window_mins: self.broken_link_window_mins,
            }),
            click_spike: on.contains(&Rule::ClickSpike).then_some(ClickSpike {
                factor: self.click_spike_factor,
                min_clicks: self.click_spike_min_clicks,
                baseline_mins: self.click_spike_baseline_mins,
            }),
            cooldown: Duration::from_secs(60 * u64::from(self.cooldown_mins)),
        })
    }
}

fn slack_url(url: &str) -> Result<reqwest::Url, Invalid> {
    // Never echo the URL: it is the webhook's credential.
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid("HOOKFLEET_SLACK_WEBHOOK_URL", format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            "HOOKFLEET_SLACK_WEBHOOK_URL",
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(parsed)
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        setting,
        reason: reason.into(),
    }
}

fn range(setting: &'static str, value: u64, min: u64, max: u64) -> Result<(), Invalid> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            setting,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Config {
        let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/topology.toml");
        let mut argv = vec!["hookfleet-alerts", "--topology", topology];
        argv.extend_from_slice(extra);
        Config::try_parse_from(argv).expect("parses")
    }

    fn check(extra: &[&str]) -> Result<Settings, Invalid> {
        let config = config(extra);
        let worker = config
            .worker
            .check(WORKER, &[QUEUE])
            .expect("worker settings");
        config.check(worker)
    }

    #[test]
    fn defaults_turn_every_rule_on_and_slack_off() {
        let settings = check(&[]).unwrap();
        assert_eq!(settings.rules.enabled(), Rule::ALL);
        let countries = &settings
            .rules
            .suspicious_country
            .as_ref()
            .unwrap()
            .countries;
        assert_eq!(countries.iter().collect::<Vec<_>>(), ["XX"]);
        assert_eq!(settings.rules.cooldown, Duration::from_secs(1800));
        assert!(settings.slack_url.is_none());
        assert_eq!(settings.worker.admin_listen.to_string(), "127.0.0.1:9102");
        let summary = settings.summary();
        assert!(summary.contains("slack off"), "{summary}");
        assert!(!summary.contains('\n'));
    }

    #[test]
    fn thresholds_and_rules_come_from_flags() {
        let settings = check(&[
            "--rules",
            "broken_link,click_spike",
            "--suspicious-countries",
            "kp, ru",
            "--broken-link-clicks",
            "3",
            "--slack-webhook-url",
            "https://hooks.slack.com/services/T/B/secret",
        ])
        .unwrap();
        assert_eq!(
            settings.rules.enabled(),
            [Rule::BrokenLink, Rule::ClickSpike]
        );
        assert_eq!(settings.rules.broken_link.unwrap().min_clicks, 3);
        let summary = settings.summary();
        assert!(summary.contains("slack on (hooks.slack.com)"), "{summary}");
        assert!(!summary.contains("secret"), "{summary}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(&[&str], &str); 7] = [
            (
                &["--slack-webhook-url", "hooks.slack.com/x"],
                "HOOKFLEET_SLACK_WEBHOOK_URL",
            ),
            (
                &["--slack-webhook-url", "ftp://x/y"],
                "HOOKFLEET_SLACK_WEBHOOK_URL",
            ),
            (
                &["--suspicious-countries", "GBR"],
                "HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES",
            ),
            (
                &["--referral-window-mins", "0"],
                "HOOKFLEET_ALERTS_REFERRAL_WINDOW_MINS",
            ),
            (
                &["--click-spike-factor", "0.5"],
                "HOOKFLEET_ALERTS_CLICK_SPIKE_FACTOR",
            ),
            (&["--database-url", "mysql://x"], "DATABASE_URL"),
            (&["--geoip-db", "/nonexistent.mmdb"], "HOOKFLEET_GEOIP_DB"),
        ];
        for (extra, setting) in cases {
            let error = check(extra)
                .err()
                .unwrap_or_else(|| panic!("{extra:?} passed"));
            assert_eq!(error.setting, setting, "{extra:?}");
            assert!(!error.reason.contains('\n'));
        }
        let secret = check(&["--slack-webhook-url", "https://"]).err().unwrap();
        assert_eq!(secret.setting, "HOOKFLEET_SLACK_WEBHOOK_URL");
    }

    #[test]
    fn an_empty_country_list_is_refused_only_when_the_rule_is_on() {
        let error = check(&["--suspicious-countries", ""]).err().unwrap();
        assert_eq!(error.setting, "HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES");
        let settings = check(&["--suspicious-countries", "", "--rules", "broken_link"]).unwrap();
        assert!(settings.rules.suspicious_country.is_none());
    }
}
