//! `hookfleet-analytics`'s settings: the worker runtime's ([`WorkerArgs`])
//! and its own, each a flag with an environment variable of the same
//! meaning (SPEC §3). [`AnalyticsArgs::check`] validates them without
//! touching the network or the file system, so `--check-config` can run
//! anywhere (the compose-file test runs it with the production
//! environment).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::TypedValueParser;
use hookfleet_enrich::CacheConfig;
use hookfleet_store::{DatabaseArgs, DatabaseSettings};
use hookfleet_telemetry::exit_config_error;
use hookfleet_worker::WorkerArgs;
use hookfleet_worker::config::{ConfigError, range};

use crate::batcher::BatchConfig;

/// Enriches events from the analytics queue and stores each once, with
/// exactly-once per-minute counts.
///
/// Analytics raises the runtime's default `HOOKFLEET_CONCURRENCY` from 32
/// to [`DEFAULT_CONCURRENCY`]: its handlers spend their time waiting for a
/// shared transaction, and more messages in flight mean larger batches
/// (fewer transactions per event) without slowing the receivers.
#[derive(Debug, Parser)]
#[command(
    name = "hookfleet-analytics",
    version,
    after_help = EXAMPLE,
    mut_arg("concurrency", |arg| arg.default_value(DEFAULT_CONCURRENCY)),
)]
pub struct Config {
    /// The settings every worker shares.
    #[command(flatten)]
    pub worker: WorkerArgs,

    /// Analytics' own settings.
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
}

/// Analytics' default for `HOOKFLEET_CONCURRENCY` (messages in flight).
pub const DEFAULT_CONCURRENCY: &str = "128";

const EXAMPLE: &str = "Example:
  DATABASE_URL=postgres://hookfleet@127.0.0.1:5432/hookfleet \\
  HOOKFLEET_GEOIP_DB=/var/lib/geoip/GeoLite2-City.mmdb \\
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 hookfleet-analytics";

/// Analytics' own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyticsArgs {
    /// The database (DATABASE_URL, HOOKFLEET_DATA_DIR, …).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// MaxMind GeoIP2/GeoLite2 City database (.mmdb); unset means no geo
    /// enrichment. Replace the file by renaming a new one over it.
    #[arg(long, env = "HOOKFLEET_GEOIP_DB", value_parser = any_path())]
    pub geoip_db: Option<PathBuf>,

    /// How often the GeoIP file is checked for a new version, seconds.
    #[arg(long, env = "HOOKFLEET_GEOIP_RELOAD_SECS", default_value_t = 60)]
    pub geoip_reload_secs: u64,

    /// Entries per lookup cache (campaigns, users by id, users by
    /// referral token), at most.
    #[arg(
        long,
        env = "HOOKFLEET_LOOKUP_CACHE_CAPACITY",
        default_value_t = 10_000
    )]
    pub lookup_cache_capacity: usize,

    /// How long a campaign or user row found in the database is reused,
    /// seconds.
    #[arg(long, env = "HOOKFLEET_LOOKUP_CACHE_TTL_SECS", default_value_t = 60)]
    pub lookup_cache_ttl_secs: u64,

    /// How long "no such campaign or user" is reused, seconds.
    #[arg(
        long,
        env = "HOOKFLEET_LOOKUP_CACHE_NEGATIVE_TTL_SECS",
        default_value_t = 10
    )]
    pub lookup_cache_negative_ttl_secs: u64,

    /// Events stored per transaction, at most (also bounded by
    /// HOOKFLEET_CONCURRENCY, the messages that can be in flight).
    #[arg(long, env = "HOOKFLEET_BATCH_SIZE", default_value_t = 100)]
    pub batch_size: usize,

    /// How long a batch waits for more events before it is written, ms.
    #[arg(long, env = "HOOKFLEET_BATCH_LINGER_MS", default_value_t = 5)]
    pub batch_linger_ms: u64,

    /// How long one batch insert may take before its events are retried,
    /// seconds.
    #[arg(long, env = "HOOKFLEET_INSERT_TIMEOUT_SECS", default_value_t = 10)]
    pub insert_timeout_secs: u64,

    /// Insert transactions running at once, at most (SQLite: always 1, it
    /// has one writer). At most HOOKFLEET_DATABASE_MAX_CONNECTIONS.
    #[arg(long, env = "HOOKFLEET_INSERT_CONCURRENCY", default_value_t = 2)]
    pub insert_concurrency: usize,
}

/// Analytics' settings, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database, its pool and how long to wait for it at start.
    pub database: DatabaseSettings,
    /// The GeoIP database file, if geo enrichment is on.
    pub geoip_db: Option<PathBuf>,
    /// How often the GeoIP file is checked.
    pub geoip_reload: Duration,
    /// The lookup caches.
    pub cache: CacheConfig,
    /// Batching of inserts (before the concurrency bound is applied).
    pub batch: BatchConfig,
}

impl Settings {
    /// One line for `--check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let geo = match &self.geoip_db {
            Some(path) => format!(
                "geo {} (checked every {} s)",
                path.display(),
                self.geoip_reload.as_secs()
            ),
            None => "geo off".to_owned(),
        };
        format!(
            "database {}, {geo}, lookup cache {} entries for {} s ({} s when missing), \
             batches of up to {} events after {} ms, {} at once",
            self.database.database.describe(),
            self.cache.capacity,
            self.cache.ttl.as_secs(),
            self.cache.negative_ttl.as_secs(),
            self.batch.max_events,
            self.batch.linger.as_millis(),
            self.batch.max_in_flight,
        )
    }
}

impl AnalyticsArgs {
    /// Checks the settings, or exits 2 with one line naming the bad one.
    pub fn validate(&self) -> Settings {
        self.check()
            .unwrap_or_else(|e| exit_config_error(e.setting, e.reason))
    }

    /// [`Self::validate`] without exiting. Reads no file and opens no
    /// connection: a GeoIP file is opened by the caller
    /// ([`hookfleet_enrich::GeoIp::open`]).
    pub fn check(&self) -> Result<Settings, ConfigError> {
        let database = self.database.check().map_err(|e| ConfigError {
            setting: e.setting,
            reason: e.reason,
        })?;
        range(
            "HOOKFLEET_GEOIP_RELOAD_SECS",
            self.geoip_reload_secs,
            1,
            86_400,
        )?;
        range(
            "HOOKFLEET_LOOKUP_CACHE_CAPACITY",
            self.lookup_cache_capacity as u64,
            1,
            10_000_000,
        )?;
        range(
            "HOOKFLEET_LOOKUP_CACHE_TTL_SECS",
            self.lookup_cache_ttl_secs,
            1,
            86_400,
        )?;
        range(
            "HOOKFLEET_LOOKUP_CACHE_NEGATIVE_TTL_SECS",
            self.lookup_cache_negative_ttl_secs,
            0,
            86_400,
        )?;
        range("HOOKFLEET_BATCH_SIZE", self.batch_size as u64, 1, 1000)?;
        range("HOOKFLEET_BATCH_LINGER_MS", self.batch_linger_ms, 0, 1000)?;
        range(
            "HOOKFLEET_INSERT_TIMEOUT_SECS",
            self.insert_timeout_secs,
            1,
            300,
        )?;
        range(
            "HOOKFLEET_INSERT_CONCURRENCY",
            self.insert_concurrency as u64,
            1,
            u64::from(self.database.database_max_connections),
        )?;
        let geoip_db = self
            .geoip_db
            .clone()
            .filter(|path| !path.as_os_str().is_empty());

        Ok(Settings {
            database,
            geoip_db,
            geoip_reload: Duration::from_secs(self.geoip_reload_secs),
            cache: CacheConfig {
                capacity: self.lookup_cache_capacity,
                ttl: Duration::from_secs(self.lookup_cache_ttl_secs),
                negative_ttl: Duration::from_secs(self.lookup_cache_negative_ttl_secs),
            },
            batch: BatchConfig {
                max_events: self.batch_size,
                linger: Duration::from_millis(self.batch_linger_ms),
                insert_timeout: Duration::from_secs(self.insert_timeout_secs),
                max_in_flight: self.insert_concurrency,
            },
        })
    }
}

/// A path that may be empty (clap's own path parser refuses that): an
/// empty `HOOKFLEET_GEOIP_DB` means geo enrichment is off, like an unset
/// one.
fn any_path() -> impl TypedValueParser<Value = PathBuf> {
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> AnalyticsArgs {
        let mut argv = vec!["hookfleet-analytics"];
        argv.extend_from_slice(extra);
        Config::try_parse_from(argv).expect("parses").analytics
    }

    #[test]
    fn unset_database_url_means_the_embedded_file() {
        let settings = args(&["--data-dir", "/tmp/hf"]).check().unwrap();
        assert!(settings.database.database.url().is_none());
        assert_eq!(
            settings.database.database.describe(),
            "embedded sqlite /tmp/hf/hookfleet.sqlite3"
        );
        let blank = args(&["--database-url", "  "]).check().unwrap();
        assert!(blank.database.database.url().is_none());
    }

    #[test]
    fn database_urls_are_checked_without_showing_them() {
        let ok = args(&["--database-url", "postgres://app:secret@db:5432/hf"])
            .check()
            .unwrap();
        assert_eq!(
            ok.database.database.url(),
            Some("postgres://app:secret@db:5432/hf")
        );
        assert!(!ok.summary().contains("secret"), "{}", ok.summary());

        for bad in ["mysql://app:secret@db/hf", "sqlite::memory:", "db.sqlite"] {
            let error = args(&["--database-url", bad]).check().unwrap_err();
            assert_eq!(error.setting, "DATABASE_URL");
            assert!(!error.to_string().contains("secret"), "{error}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(&[&str], &str); 5] = [
            (&["--batch-size", "0"], "HOOKFLEET_BATCH_SIZE"),
            (&["--batch-linger-ms", "5000"], "HOOKFLEET_BATCH_LINGER_MS"),
            (&["--geoip-reload-secs", "0"], "HOOKFLEET_GEOIP_RELOAD_SECS"),
            (
                &["--lookup-cache-capacity", "0"],
                "HOOKFLEET_LOOKUP_CACHE_CAPACITY",
            ),
            (
                &["--insert-timeout-secs", "0"],
                "HOOKFLEET_INSERT_TIMEOUT_SECS",
            ),
        ];
        for (extra, setting) in cases {
            let error = args(extra).check().unwrap_err();
            assert_eq!(error.setting, setting, "{extra:?}");
        }
    }

    #[test]
    fn more_messages_are_in_flight_by_default() {
        let config = Config::try_parse_from(["hookfleet-analytics"]).unwrap();
        assert_eq!(config.worker.concurrency, 128);
        let set = Config::try_parse_from(["hookfleet-analytics", "--concurrency", "8"]).unwrap();
        assert_eq!(set.worker.concurrency, 8);
    }

    #[test]
    fn an_empty_geoip_path_means_geo_off() {
        let settings = args(&["--geoip-db", ""]).check().unwrap();
        assert!(settings.geoip_db.is_none());
        assert!(settings.summary().contains("geo off"));
    }
}
