//! The database settings every worker shares ([`DatabaseArgs`], flattened
//! into each binary's command line) and the start-up connection that waits
//! for the database ([`DatabaseSettings::connect_waiting`]).

use std::path::PathBuf;
use std::time::Duration;

use hookfleet_telemetry::exit_config_error;
use tokio::time::Instant;

use crate::{DEFAULT_DATA_DIR, SQLITE_FILE_NAME, Store, StoreError, StoreOptions};

/// The database settings, each a flag with an environment variable of the
/// same meaning (SPEC §3). A binary changes a default with clap's
/// `mut_arg` (ids: `database_max_connections`, `database_wait_secs`).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Database: postgres://… (production) or sqlite://FILE; unset means
    /// an embedded SQLite file in HOOKFLEET_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the embedded SQLite file, used when DATABASE_URL is
    /// unset (created if missing).
    #[arg(long, env = "HOOKFLEET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Database connections, at most.
    #[arg(long, env = "HOOKFLEET_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// How long to keep trying to reach the database at start, seconds;
    /// then the worker exits 1.
    #[arg(long, env = "HOOKFLEET_DATABASE_WAIT_SECS", default_value_t = 60)]
    pub database_wait_secs: u64,
}

/// A bad database setting: the environment variable and why (one line,
/// never the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The environment variable naming the setting.
    pub setting: &'static str,
    /// Why, one line.
    pub reason: String,
}

/// Which database, checked.
#[derive(Debug, Clone)]
pub enum Database {
    /// `DATABASE_URL` names it (PostgreSQL or an SQLite file).
    Url(String),
    /// The embedded SQLite file in this data directory.
    Embedded(PathBuf),
}

impl Database {
    /// The URL to connect to, if any (`None`: the embedded file).
    pub fn url(&self) -> Option<&str> {
        match self {
            Self::Url(url) => Some(url),
            Self::Embedded(_) => None,
        }
    }

    /// For logs and summaries: the backend, never the URL (it may hold a
    /// password).
    pub fn describe(&self) -> String {
        match self {
            Self::Url(url) if url.starts_with("sqlite:") => "sqlite (DATABASE_URL)".to_owned(),
            Self::Url(_) => "postgres (DATABASE_URL)".to_owned(),
            Self::Embedded(dir) => {
                format!("embedded sqlite {}", dir.join(SQLITE_FILE_NAME).display())
            }
        }
    }
}

/// The database settings, checked.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The database.
    pub database: Database,
    /// The data directory (the embedded SQLite file's home).
    pub data_dir: PathBuf,
    /// Pool settings.
    pub store: StoreOptions,
    /// How long to wait for the database at start.
    pub wait: Duration,
}

impl DatabaseArgs {
    /// Checks the settings without touching the network or the file
    /// system.
    pub fn check(&self) -> Result<DatabaseSettings, SettingError> {
        let database = match non_empty(self.database_url.as_deref()) {
            Some(url) => Database::Url(
                crate::check_database_url(url)
                    .map_err(|reason| SettingError {
                        setting: "DATABASE_URL",
                        reason,
                    })?
                    .to_owned(),
            ),
            None => Database::Embedded(self.data_dir.clone()),
        };
        range(
            "HOOKFLEET_DATABASE_MAX_CONNECTIONS",
            u64::from(self.database_max_connections),
            1,
            1000,
        )?;
        range(
            "HOOKFLEET_DATABASE_WAIT_SECS",
            self.database_wait_secs,
            0,
            3600,
        )?;
        Ok(DatabaseSettings {
            database,
            data_dir: self.data_dir.clone(),
            store: StoreOptions {
                max_connections: self.database_max_connections,
                ..StoreOptions::default()
            },
            wait: Duration::from_secs(self.database_wait_secs),
        })
    }
}

impl DatabaseSettings {
    /// Connects and applies the migrations, retrying while the database is
    /// unavailable for up to [`Self::wait`] (one attempt when it is zero).
    /// An unusable `DATABASE_URL` or data directory exits 2 with one line
    /// naming the setting; other failures come back.
    pub async fn connect_waiting(&self) -> Result<Store, StoreError> {
        let database = self.database.describe();
        let deadline = Instant::now() + self.wait;
        let mut attempts = 0_u32;
        loop {
            attempts += 1;
            let connecting = Store::connect_with(self.database.url(), &self.data_dir, &self.store);
            let error = match connecting.await {
                Ok(store) => {
                    tracing::info!(
                        %database,
                        backend = store.kind().as_str(),
                        "database ready (migrations applied)"
                    );
                    return Ok(store);
                }
                Err(StoreError::Config(reason)) => exit_store_config_error(&reason),
                Err(error @ StoreError::Unavailable(_)) if Instant::now() < deadline => error,
                Err(error) => return Err(error),
            };
            if attempts == 1 || attempts.is_multiple_of(10) {
                tracing::warn!(%database, %error, attempts, "database not reachable yet; retrying");
            }
            let pause = Duration::from_secs(u64::from(attempts.min(5)));
            tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
        }
    }
}

/// Exits 2 for a store configuration error. The store names the setting
/// at the start of its reason (`DATABASE_URL: …`,
/// `HOOKFLEET_DATA_DIR: …`); otherwise it is about `DATABASE_URL`.
fn exit_store_config_error(reason: &str) -> ! {
    match reason.split_once(": ") {
        Some((setting @ ("DATABASE_URL" | "HOOKFLEET_DATA_DIR"), rest)) => {
            exit_config_error(setting, rest)
        }
        _ => exit_config_error("DATABASE_URL", reason),
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn range(setting: &'static str, value: u64, min: u64, max: u64) -> Result<(), SettingError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingError {
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
        database: DatabaseArgs,
    }

    fn check(extra: &[&str]) -> Result<DatabaseSettings, SettingError> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parses").database.check()
    }

    #[test]
    fn unset_or_blank_url_means_the_embedded_file() {
        let settings = check(&["--data-dir", "/tmp/hf", "--database-url", " "]).unwrap();
        assert!(settings.database.url().is_none());
        assert_eq!(
            settings.database.describe(),
            "embedded sqlite /tmp/hf/hookfleet.sqlite3"
        );
        assert_eq!(settings.store.max_connections, 8);
        assert_eq!(settings.wait, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(&[&str], &str); 3] = [
            (&["--database-url", "mysql://a:secret@db/x"], "DATABASE_URL"),
            (
                &["--database-max-connections", "0"],
                "HOOKFLEET_DATABASE_MAX_CONNECTIONS",
            ),
            (
                &["--database-wait-secs", "3601"],
                "HOOKFLEET_DATABASE_WAIT_SECS",
            ),
        ];
        for (extra, setting) in cases {
            let error = check(extra).unwrap_err();
            assert_eq!(error.setting, setting, "{extra:?}");
            assert!(!error.reason.contains("secret") && !error.reason.contains('\n'));
        }
    }
}
