//! `hookfleet-crm`'s settings: the worker runtime's ([`WorkerArgs`]) and
//! its own, each a flag with an environment variable of the same meaning
//! (SPEC §3). [`CrmArgs::check`] reads no file and opens no connection, so
//! `--check-config` runs anywhere.

use std::time::Duration;

use clap::Parser;
use hookfleet_store::{DatabaseArgs, DatabaseSettings};
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::WorkerArgs;
use hookfleet_worker::config::{ConfigError, non_empty, range};
use reqwest::Url;

use crate::delay::{MAX_WELCOME_DELAY, parse_delay};

/// Sends referral updates to the CRM and triggers the welcome workflow,
/// each once per event.
#[derive(Debug, Parser)]
#[command(
    name = "hookfleet-crm",
    version,
    after_help = EXAMPLE,
    mut_arg("database_max_connections", |arg| arg.default_value("16")),
)]
pub struct Config {
    /// The settings every worker shares.
    #[command(flatten)]
    pub worker: WorkerArgs,

    /// The CRM worker's own settings.
    #[command(flatten)]
    pub crm: CrmArgs,
}

const EXAMPLE: &str = "Example:
  HOOKFLEET_CRM_URL=https://crm.example.com/api \\
  HOOKFLEET_WELCOME_URL=https://workflows.example.com/welcome \\
  HOOKFLEET_WELCOME_DELAY=5m DATABASE_URL=postgres://hookfleet@127.0.0.1:5432/hookfleet \\
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 hookfleet-crm";

/// The CRM worker's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct CrmArgs {
    /// Base URL of the CRM API: referral updates are POSTed to
    /// <URL>/referrals. Unset: calls are only logged (and recorded).
    #[arg(long, env = "HOOKFLEET_CRM_URL", hide_env_values = true)]
    pub crm_url: Option<String>,

    /// URL of the welcome-workflow trigger. Unset: calls are only logged
    /// (and recorded).
    #[arg(long, env = "HOOKFLEET_WELCOME_URL", hide_env_values = true)]
    pub welcome_url: Option<String>,

    /// How long after an install the welcome workflow starts: whole
    /// seconds written like `5m`, `90s`, `1m30s` or `2000ms`; at most 15m
    /// (SQS's longest message timer).
    #[arg(long, env = "HOOKFLEET_WELCOME_DELAY", default_value = "5m")]
    pub welcome_delay: String,

    /// How long one call to the CRM or the workflow may take, seconds;
    /// a call that takes longer is retried.
    #[arg(long, env = "HOOKFLEET_HTTP_TIMEOUT_SECS", default_value_t = 10)]
    pub http_timeout_secs: u64,

    /// How long a claim in the effect ledger excludes other workers,
    /// seconds. At least the HTTP timeout plus 5 s, so a live worker always
    /// finishes its call first; a crashed worker's claim is taken over
    /// after it.
    #[arg(long, env = "HOOKFLEET_EFFECT_LEASE_SECS", default_value_t = 60)]
    pub effect_lease_secs: u64,

    /// The database (DATABASE_URL, HOOKFLEET_DATA_DIR, …).
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The extra margin of the effect lease over the HTTP timeout: time for
/// the ledger writes around the call.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The CRM worker's settings, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<HOOKFLEET_CRM_URL>/referrals`, or `None`: only logged.
    pub referrals_url: Option<Url>,
    /// `HOOKFLEET_WELCOME_URL`, or `None`: only logged.
    pub welcome_url: Option<Url>,
    /// The welcome workflow's delay after the install (whole seconds).
    pub welcome_delay: Duration,
    /// One call's timeout.
    pub http_timeout: Duration,
    /// A ledger claim's lease.
    pub effect_lease: Duration,
    /// The database, its pool and how long to wait for it at start.
    pub database: DatabaseSettings,
}

impl Settings {
    /// One line for `--check-config` and the start-up log. URLs show only
    /// their scheme, host and path: a query or user part may hold a key.
    pub fn summary(&self) -> String {
        let database = self.database.database.describe();
        format!(
            "crm {}, welcome {} after {} s, http timeout {} s, effect lease {} s, database {database}",
            shown(self.referrals_url.as_ref()),
            shown(self.welcome_url.as_ref()),
            self.welcome_delay.as_secs(),
            self.http_timeout.as_secs(),
            self.effect_lease.as_secs(),
        )
    }
}

/// A URL without its user part and query, or `off (only logged)`.
fn shown(url: Option<&Url>) -> String {
    let Some(url) = url else {
        return "off (only logged)".to_owned();
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.path()
    )
}

impl CrmArgs {
    /// Checks the settings, or exits 2 with one line naming the bad one.
    pub fn validate(&self) -> Settings {
        self.check()
            .unwrap_or_else(|e| exit_config_error(e.setting, e.reason))
    }

    /// [`Self::validate`] without exiting.
    pub fn check(&self) -> Result<Settings, ConfigError> {
        let referrals_url = non_empty(self.crm_url.as_deref())
            .map(|base| check_url("HOOKFLEET_CRM_URL", base))
            .transpose()?
            .map(|base| referrals_url(&base));
        let welcome_url = non_empty(self.welcome_url.as_deref())
            .map(|url| check_url("HOOKFLEET_WELCOME_URL", url))
            .transpose()?;

        let welcome_delay = parse_delay(&self.welcome_delay).map_err(|reason| ConfigError {
            setting: "HOOKFLEET_WELCOME_DELAY",
            reason,
        })?;
        if welcome_delay > MAX_WELCOME_DELAY {
            return Err(ConfigError {
                setting: "HOOKFLEET_WELCOME_DELAY",
                reason: format!(
                    "{} s is longer than 15m, SQS's longest message timer",
                    welcome_delay.as_secs()
                ),
            });
        }

        range(
            "HOOKFLEET_HTTP_TIMEOUT_SECS",
            self.http_timeout_secs,
            1,
            300,
        )?;
        let http_timeout = Duration::from_secs(self.http_timeout_secs);
        let min_lease = (http_timeout + LEASE_MARGIN).as_secs();
        range(
            "HOOKFLEET_EFFECT_LEASE_SECS",
            self.effect_lease_secs,
            min_lease,
            3600,
        )?;

        let database = self.database.check().map_err(|e| ConfigError {
            setting: e.setting,
            reason: e.reason,
        })?;

        Ok(Settings {
            referrals_url,
            welcome_url,
            welcome_delay,
            http_timeout,
            effect_lease: Duration::from_secs(self.effect_lease_secs),
            database,
        })
    }
}

/// An absolute `http(s)://` URL with a host.
fn check_url(setting: &'static str, text: &str) -> Result<Url, ConfigError> {
    let bad = |reason: String| ConfigError { setting, reason };
    let url = Url::parse(text).map_err(|e| bad(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".to_owned()));
    }
    Ok(url)
}

/// `<base>/referrals`, keeping the base's path (`…/api` → `…/api/referrals`)
/// and query.
fn referrals_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/referrals", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> CrmArgs {
        let mut argv = vec!["hookfleet-crm"];
        argv.extend_from_slice(extra);
        Config::try_parse_from(argv).expect("parses").crm
    }

    #[test]
    fn defaults_log_instead_of_calling() {
        let settings = args(&["--data-dir", "/tmp/hf"]).check().unwrap();
        assert_eq!(settings.referrals_url, None);
        assert_eq!(settings.welcome_url, None);
        assert_eq!(settings.welcome_delay, Duration::from_secs(300));
        assert_eq!(settings.http_timeout, Duration::from_secs(10));
        assert_eq!(settings.effect_lease, Duration::from_secs(60));
        assert_eq!(
            settings.summary(),
            "crm off (only logged), welcome off (only logged) after 300 s, http timeout 10 s, \
             effect lease 60 s, database embedded sqlite /tmp/hf/hookfleet.sqlite3"
        );
        let blank = args(&["--crm-url", " ", "--welcome-url", ""])
            .check()
            .unwrap();
        assert_eq!(blank.referrals_url, None);
        assert_eq!(blank.welcome_url, None);
    }

    #[test]
    fn the_referrals_endpoint_extends_the_base_path() {
        let cases = [
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000/referrals"),
            (
                "https://crm.example.com/api/",
                "https://crm.example.com/api/referrals",
            ),
            (
                "https://crm.example.com/v2?key=k",
                "https://crm.example.com/v2/referrals?key=k",
            ),
        ];
        for (base, expected) in cases {
            let settings = args(&["--crm-url", base]).check().unwrap();
            assert_eq!(settings.referrals_url.unwrap().as_str(), expected);
        }
    }

    #[test]
    fn the_summary_hides_keys_and_passwords() {
        let settings = args(&[
            "--crm-url",
            "https://user:pw@crm.example.com/api?key=secret",
            "--welcome-url",
            "http://127.0.0.1:8090/hooks/welcome?token=secret",
            "--database-url",
            "postgres://app:secret@db/hf",
        ])
        .check()
        .unwrap();
        let summary = settings.summary();
        assert!(
            !summary.contains("secret") && !summary.contains("pw"),
            "{summary}"
        );
        assert!(summary.contains("crm https://crm.example.com/api/referrals"));
        assert!(summary.contains("welcome http://127.0.0.1:8090/hooks/welcome after"));
        assert!(summary.contains("database postgres (DATABASE_URL)"));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(&[&str], &str); 9] = [
            (&["--crm-url", "crm.example.com"], "HOOKFLEET_CRM_URL"),
            (&["--crm-url", "ftp://crm.example.com"], "HOOKFLEET_CRM_URL"),
            (&["--welcome-url", "http://"], "HOOKFLEET_WELCOME_URL"),
            (&["--welcome-delay", "16m"], "HOOKFLEET_WELCOME_DELAY"),
            (&["--welcome-delay", "300ms"], "HOOKFLEET_WELCOME_DELAY"),
            (&["--welcome-delay", "soon"], "HOOKFLEET_WELCOME_DELAY"),
            (&["--http-timeout-secs", "0"], "HOOKFLEET_HTTP_TIMEOUT_SECS"),
            (
                &["--http-timeout-secs", "30", "--effect-lease-secs", "34"],
                "HOOKFLEET_EFFECT_LEASE_SECS",
            ),
            (&["--database-url", "sqlite::memory:"], "DATABASE_URL"),
        ];
        for (extra, setting) in cases {
            let error = args(extra).check().unwrap_err();
            assert_eq!(error.setting, setting, "{extra:?}");
            assert!(!error.to_string().contains('\n'), "{error}");
        }
        let ok = args(&["--http-timeout-secs", "30", "--effect-lease-secs", "35"]).check();
        assert!(ok.is_ok());
    }
}
