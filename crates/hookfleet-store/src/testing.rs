//! Test support: a PostgreSQL database of one's own, per test.
//!
//! ```no_run
//! # async fn example() {
//! let Some(db) = hookfleet_store::testing::postgres("analytics").await else {
//!     return; // PostgreSQL unreachable outside CI: skipped, and said so.
//! };
//! let store = db.store();
//! // … the test …
//! db.drop().await;
//! # }
//! ```
//!
//! Each call creates a fresh schema with a unique name, so tests run in
//! parallel against one database without seeing each other's rows. The
//! database is `HOOKFLEET_TEST_DATABASE_URL`, by default
//! [`DEFAULT_TEST_DATABASE_URL`]. When it is unreachable the helper returns
//! `None` after printing a loud `SKIPPED` line, or panics under `CI=true`,
//! the same rule as the end-to-end suite's LocalStack helper.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Store, StoreError};

/// The database tests use when `HOOKFLEET_TEST_DATABASE_URL` is unset.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The variable naming the tests' PostgreSQL database.
pub const TEST_DATABASE_URL_VAR: &str = "HOOKFLEET_TEST_DATABASE_URL";

/// How long a test waits for PostgreSQL before deciding it is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A test's own schema and a store using it.
pub struct TestSchema {
    url: String,
    schema: String,
    store: Store,
}

impl TestSchema {
    /// The store, its `search_path` set to this schema.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The database URL (without the schema).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the store and drops the schema. A test that panics before
    /// this leaves its schema behind; its unique name keeps it harmless.
    pub async fn drop(self) {
        self.store.close().await;
        if let Err(e) = Store::drop_postgres_schema(&self.url, &self.schema).await {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// The tests' database URL: `HOOKFLEET_TEST_DATABASE_URL` or the default.
pub fn database_url() -> String {
    std::env::var(TEST_DATABASE_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// A fresh, migrated schema named after `prefix`, or `None` (skip) when
/// PostgreSQL is unreachable outside CI. Panics under `CI=true` when it is
/// unreachable, and on any other error.
pub async fn postgres(prefix: &str) -> Option<TestSchema> {
    let url = database_url();
    let schema = unique_schema_name(prefix);
    let connecting = Store::connect_postgres_schema(&url, &schema);
    let result = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {CONNECT_TIMEOUT:?}"
        ))),
    };
    match result {
        Ok(store) => Some(TestSchema { url, schema, store }),
        Err(e @ StoreError::Unavailable(_)) => {
            let shown = without_password(&url);
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is not reachable at {shown} and CI=true: {e}");
            }
            eprintln!(
                "\n*** SKIPPED: PostgreSQL is not reachable at {shown} ({e}); \
                 set {TEST_DATABASE_URL_VAR} or start it ***\n"
            );
            None
        }
        Err(e) => panic!(
            "cannot set up test schema {schema} at {}: {e}",
            without_password(&url)
        ),
    }
}

/// `url` with the password, if any, replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// `prefix_<pid>_<time>_<n>`: unique across processes and calls, a valid
/// unquoted PostgreSQL identifier.
pub fn unique_schema_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let clean: String = prefix
        .chars()
        .take(20)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "t_{clean}_{:x}_{:x}_{n}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

/// Runs each scenario (an `async fn(&Store)`) on SQLite and on PostgreSQL,
/// for the crate's own unit tests.
#[cfg(test)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = crate::Store::connect(None, dir.path()).await.expect("sqlite");
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::testing::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(db.store()).await;
                    db.drop().await;
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use on_both_backends;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/test"),
            "postgres://app:***@db:5432/test"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }

    #[test]
    fn schema_names_are_unique_and_valid() {
        let a = unique_schema_name("Store Tests!");
        let b = unique_schema_name("Store Tests!");
        assert_ne!(a, b);
        assert!(a.starts_with("t_store_tests__"), "{a}");
        assert!(a.len() <= 63);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
    }
}
