//! Running `hookfleet-analytics` against a test's own database: a fresh
//! PostgreSQL schema or an SQLite file in a temporary directory, read back
//! through `hookfleet-store`.

use std::path::PathBuf;

use hookfleet_store::Store;
use hookfleet_store::testing::TestSchema;
use serde_json::Value;

use crate::process::{Running, free_port};

/// A test's own database and a store reading it.
pub enum TestDatabase {
    /// A fresh schema in the tests' PostgreSQL database.
    Postgres(TestSchema),
    /// `hookfleet.sqlite3` in a temporary data directory.
    Sqlite {
        /// The data directory (removed on drop).
        dir: tempfile::TempDir,
        /// A store on the file.
        store: Store,
    },
}

impl TestDatabase {
    /// A fresh, migrated PostgreSQL schema, or `None` (the test skips,
    /// saying so) when PostgreSQL is unreachable outside CI; see
    /// [`hookfleet_store::testing::postgres`].
    pub async fn postgres(prefix: &str) -> Option<Self> {
        hookfleet_store::testing::postgres(prefix)
            .await
            .map(Self::Postgres)
    }

    /// An embedded SQLite database in a new temporary data directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let store = Store::connect(None, dir.path())
            .await
            .expect("open the SQLite store");
        Self::Sqlite { dir, store }
    }

    /// The store, for seeding and reading back.
    pub fn store(&self) -> &Store {
        match self {
            Self::Postgres(schema) => schema.store(),
            Self::Sqlite { store, .. } => store,
        }
    }

    /// `postgres` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite { .. } => "sqlite",
        }
    }

    /// The environment that points a binary at this database:
    /// `DATABASE_URL` with the schema as its `search_path`, or
    /// `HOOKFLEET_DATA_DIR` (and no `DATABASE_URL`).
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::Postgres(schema) => vec![(
                "DATABASE_URL".into(),
                with_search_path(schema.url(), schema.schema()),
            )],
            Self::Sqlite { dir, .. } => {
                vec![(
                    "HOOKFLEET_DATA_DIR".into(),
                    dir.path().display().to_string(),
                )]
            }
        }
    }

    /// Closes the store and removes the schema or directory.
    pub async fn remove(self) {
        match self {
            Self::Postgres(schema) => schema.drop().await,
            Self::Sqlite { dir, store } => {
                store.close().await;
                drop(dir);
            }
        }
    }
}

/// `url` with every connection's `search_path` set to `schema`, through
/// libpq's `options` parameter (which sqlx reads): how a child process is
/// given a test's own schema.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The GeoIP fixture (`tests/fixtures/README.md` lists its records).
pub fn geoip_fixture() -> PathBuf {
    fixture("GeoIP2-City-Test.mmdb")
}

/// Settings that make retries quick: backoff 1–2 s, a breaker that opens
/// after 3 failures for 1 s, a 5 s shutdown grace, and a 10 s wait for the
/// database at start.
pub const FAST: [(&str, &str); 6] = [
    ("HOOKFLEET_BACKOFF_MIN_SECS", "1"),
    ("HOOKFLEET_BACKOFF_MAX_SECS", "2"),
    ("HOOKFLEET_BREAKER_FAILURES", "3"),
    ("HOOKFLEET_BREAKER_COOLDOWN_SECS", "1"),
    ("HOOKFLEET_SHUTDOWN_GRACE_SECS", "5"),
    ("HOOKFLEET_DATABASE_WAIT_SECS", "10"),
];

/// A running analytics worker and its admin endpoint.
pub struct Analytics {
    /// The process.
    pub process: Running,
    /// `http://127.0.0.1:<port>` of `/healthz`, `/status`, `/metrics`.
    pub admin: String,
}

impl Analytics {
    /// Starts the worker draining `queue` with `env` (the topology's and
    /// the database's), [`FAST`] and `extra` on top, and waits until its
    /// admin endpoint answers: by then the database is migrated and the
    /// queue resolved.
    pub async fn start(queue: &str, env: &[(String, String)], extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("HOOKFLEET_QUEUE".into(), queue.into()));
        env.push(("HOOKFLEET_ADMIN_LISTEN".into(), format!("127.0.0.1:{port}")));
        for (key, value) in FAST.iter().chain(extra) {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        let mut process = Running::start(&crate::bin("hookfleet-analytics"), &[], &env);
        let admin = format!("http://127.0.0.1:{port}");

        crate::process::wait_healthy(&mut process, &format!("{admin}/healthz")).await;
        Self { process, admin }
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> Value {
        crate::reqwest_client()
            .get(format!("{}/status", self.admin))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON")
    }

    /// Messages of the (one) queue processed with `outcome` (`done`,
    /// `retried`, `gave_up`, …) so far.
    pub async fn processed(&self, outcome: &str) -> u64 {
        self.status().await["queues"][0]["processed"][outcome]
            .as_u64()
            .unwrap_or(0)
    }

    /// The state of the database breaker: `closed`, `open` or `half_open`.
    pub async fn breaker_state(&self) -> String {
        self.status().await["breakers"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The value of the first `/metrics` sample line starting with
    /// `prefix` (0 when absent).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = crate::reqwest_client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}
