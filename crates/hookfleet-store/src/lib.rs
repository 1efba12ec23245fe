//! Storage for the hookfleet workers: one API, two backends.
//!
//! `DATABASE_URL` chooses the backend (SPEC §3): `postgres://…` (or
//! `postgresql://…`) is PostgreSQL, the production choice; unset, it is an
//! embedded SQLite file, `hookfleet.sqlite3` in the data directory
//! (`HOOKFLEET_DATA_DIR`, default `./data`); a `sqlite://…` URL names
//! another SQLite file. [`Store::connect`] applies the embedded migrations
//! on both before returning.
//!
//! # Exactly-once effects
//!
//! [`Store::insert_events`] is the whole write path of analytics (SPEC §8).
//! Each call is one transaction (on PostgreSQL a single statement, so one
//! round trip) that
//!
//! 1. inserts the events with `ON CONFLICT (event_id) DO NOTHING`, and
//!    learns from `RETURNING event_id` which ones were new;
//! 2. adds only those to `campaign_minute_counts`, grouped by campaign
//!    (or [`UNKNOWN_CAMPAIGN`]), event type and the event time truncated to
//!    the minute, with an upsert that increments.
//!
//! So a duplicate (a Tolinku retry, an SQS redelivery, the same event
//! twice in one batch) changes neither table, and a late event lands in
//! its own minute. If the transaction fails, neither table changed and the
//! whole batch can be retried.
//!
//! # Errors
//!
//! [`StoreError`] tells the caller what to do: [`StoreError::Unavailable`]
//! is retryable, [`StoreError::Invalid`] is about the data and permanent.
//! See the [`error`] module for the rule.
//!
//! # Tests
//!
//! Tests get a PostgreSQL store of their own with
//! [`testing::postgres`], which creates a fresh schema per test (through
//! [`Store::connect_postgres_schema`]) and skips loudly when PostgreSQL is
//! unreachable outside CI.

#![warn(missing_docs)]

pub mod alerting;
pub mod error;
pub mod ledger;
mod migrations;
mod model;
mod postgres;
pub mod settings;
mod sqlite;
pub mod testing;
mod window;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use alerting::{AlertingTx, NewAlert, PendingAlert, StoredAlert, WindowCount};
pub use error::StoreError;
pub use ledger::{Claim, EffectClaim, EffectRecord, EffectState};
pub use model::{Campaign, InsertReport, MinuteCount, NewEvent, StoredEvent, User};
pub use settings::{Database, DatabaseArgs, DatabaseSettings, SettingError};
pub use window::{UNKNOWN_CAMPAIGN, minute_of};

/// Checks a `DATABASE_URL` before anything connects, and returns it
/// trimmed: `postgres://` or `postgresql://`, or `sqlite:` naming a file.
/// An in-memory SQLite database is refused: it would forget everything at
/// exit. The reason never quotes the URL (it may hold a password).
pub fn check_database_url(url: &str) -> Result<&str, String> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url);
    }
    if url.starts_with("sqlite:") {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(
                "an in-memory SQLite database would forget everything at exit; name a file"
                    .to_owned(),
            );
        }
        return Ok(url);
    }
    Err("must start with postgres://, postgresql:// or sqlite: (the URL is not shown: it may hold a password)".to_owned())
}

/// The SQLite file's name inside the data directory.
pub const SQLITE_FILE_NAME: &str = "hookfleet.sqlite3";

/// The default data directory (`HOOKFLEET_DATA_DIR`).
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Pool settings. The defaults suit one worker process.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool, at most.
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing
    /// with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// How long a SQLite writer waits for the write lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL.
    Postgres,
    /// An SQLite file.
    Sqlite,
}

impl BackendKind {
    /// `postgres` or `sqlite`, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Which column a user is looked up by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserKey {
    Id,
    ReferralToken,
}

/// A connection pool to the workers' database. Cheap to clone: clones
/// share the pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show only the kind.
        f.debug_struct("Store")
            .field("backend", &self.kind().as_str())
            .finish()
    }
}

impl Store {
    /// Connects to `database_url` (PostgreSQL or `sqlite://`), or, when it
    /// is `None` or empty, to `hookfleet.sqlite3` in `data_dir` (created if
    /// missing), and applies the migrations.
    ///
    /// A malformed URL or an unusable data directory is
    /// [`StoreError::Config`]; a database that does not answer is
    /// [`StoreError::Unavailable`] (the caller decides whether to wait).
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        Self::connect_with(database_url, data_dir, &StoreOptions::default()).await
    }

    /// [`Store::connect`] with pool settings.
    pub async fn connect_with(
        database_url: Option<&str>,
        data_dir: &Path,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let backend = match database_url.map(str::trim).filter(|u| !u.is_empty()) {
            None => {
                let path = sqlite_path(data_dir)?;
                Backend::Sqlite(sqlite::connect_file(&path, options).await?)
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Backend::Postgres(postgres::connect(url, options).await?)
            }
            Some(url) if url.starts_with("sqlite:") => {
                Backend::Sqlite(sqlite::connect_url(url, options).await?)
            }
            Some(_) => {
                return Err(StoreError::Config(
                    "DATABASE_URL: must start with postgres://, postgresql:// or sqlite://".into(),
                ));
            }
        };
        Ok(Self { backend })
    }

    /// Connects to PostgreSQL at `url` with every connection's
    /// `search_path` set to `schema`, creating the schema first and
    /// applying the migrations inside it.
    ///
    /// This is what tests use to get a database of their own (a fresh,
    /// random schema per test); [`testing::postgres`] wraps it.
    /// `schema` must be 1 to 63 characters of `a-z`, `0-9` and `_`.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let pool = postgres::connect_schema(url, schema, &StoreOptions::default()).await?;
        Ok(Self {
            backend: Backend::Postgres(pool),
        })
    }

    /// Drops `schema` and everything in it: the clean-up for
    /// [`Store::connect_postgres_schema`].
    pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        postgres::drop_schema(url, schema).await
    }

    /// Which database this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Postgres(_) => BackendKind::Postgres,
            Backend::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// Stores `events` and counts the new ones in their minutes, in one
    /// transaction; see the crate docs.
    ///
    /// Events whose `event_id` is already stored, or repeats an earlier
    /// entry of `events`, are skipped and reported as duplicates. On error
    /// nothing was stored. An [`StoreError::Invalid`] error fails the whole
    /// call: a caller holding several events may retry them one by one to
    /// find the one the database refuses.
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<InsertReport, StoreError> {
        // First occurrence of each id, in id order: a consistent lock order
        // across concurrent transactions, and no id twice in a statement.
        let mut unique: Vec<&NewEvent> = events.iter().collect();
        unique.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        unique.dedup_by(|a, b| a.event_id == b.event_id);
        if unique.is_empty() {
            return Ok(InsertReport::default());
        }

        let inserted = match &self.backend {
            Backend::Postgres(pool) => postgres::store_batch(pool, &unique).await?,
            Backend::Sqlite(pool) => sqlite::store_batch(pool, &unique).await?,
        };
        Ok(InsertReport {
            inserted,
            duplicates: events.len() - inserted,
        })
    }

    /// The campaign with this `campaign_id`, if any.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::campaign(pool, campaign_id).await,
            Backend::Sqlite(pool) => sqlite::campaign(pool, campaign_id).await,
        }
    }

    /// The user with this `id`, if any.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::user_where(pool, UserKey::Id, id).await,
            Backend::Sqlite(pool) => sqlite::user_where(pool, UserKey::Id, id).await,
        }
    }

    /// The user whose `referral_token` is `token`, if any.
    pub async fn user_by_referral_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                postgres::user_where(pool, UserKey::ReferralToken, token).await
            }
            Backend::Sqlite(pool) => sqlite::user_where(pool, UserKey::ReferralToken, token).await,
        }
    }

    /// Inserts or replaces a campaign (seeding, tests, operator tools).
    pub async fn upsert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::upsert_campaign(pool, campaign).await,
            Backend::Sqlite(pool) => sqlite::upsert_campaign(pool, campaign).await,
        }
    }

    /// Inserts or replaces a user (seeding, tests, operator tools).
    pub async fn upsert_user(&self, user: &User) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::upsert_user(pool, user).await,
            Backend::Sqlite(pool) => sqlite::upsert_user(pool, user).await,
        }
    }

    /// The stored event with this id, if any.
    pub async fn event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::event(pool, event_id).await,
            Backend::Sqlite(pool) => sqlite::event(pool, event_id).await,
        }
    }

    /// How many events are stored. A full count: for tests and operators,
    /// not for a hot path.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::count_events(pool).await,
            Backend::Sqlite(pool) => sqlite::count_events(pool).await,
        }
    }

    /// Every per-minute count of `campaign` (use [`UNKNOWN_CAMPAIGN`] for
    /// events without one), by window then event type.
    pub async fn minute_counts(&self, campaign: &str) -> Result<Vec<MinuteCount>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::minute_counts(pool, campaign).await,
            Backend::Sqlite(pool) => sqlite::minute_counts(pool, campaign).await,
        }
    }

    /// One trivial query: whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::ping(pool).await,
            Backend::Sqlite(pool) => sqlite::ping(pool).await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Creates `data_dir` if needed and returns the SQLite file's path in it.
fn sqlite_path(data_dir: &Path) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::Config(format!(
            "HOOKFLEET_DATA_DIR: cannot create {}: {e}",
            data_dir.display()
        ))
    })?;
    Ok(data_dir.join(SQLITE_FILE_NAME))
}
