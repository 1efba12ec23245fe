//! A fresh database per benchmark round: a PostgreSQL schema or an
//! embedded SQLite file, the worker's environment pointing at it, a store
//! to check it through, and its removal.

use std::path::PathBuf;

use anyhow::Context;
use hookfleet_store::Store;

/// Which database a worker under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// A fresh schema in `--database-url`.
    Postgres,
    /// A fresh embedded SQLite file.
    Sqlite,
}

/// One round's database.
pub(crate) struct RoundDatabase {
    /// A store on it, for seeding and checking.
    pub(crate) store: Store,
    /// The variable that points a worker at it: `DATABASE_URL` (with the
    /// schema as its `search_path`) or `HOOKFLEET_DATA_DIR`.
    pub(crate) env: (String, String),
    cleanup: Cleanup,
}

enum Cleanup {
    Schema { url: String, schema: String },
    Directory(PathBuf),
}

impl RoundDatabase {
    /// A fresh schema `bench_<name>_<random>` in `database_url`, or a
    /// fresh SQLite file in a temporary directory, migrated.
    pub(crate) async fn create(
        backend: Backend,
        database_url: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        let id: u32 = rand::random();
        match backend {
            Backend::Postgres => {
                let schema = format!("bench_{name}_{id:08x}");
                let store = Store::connect_postgres_schema(database_url, &schema)
                    .await
                    .context("create the benchmark schema (is PostgreSQL running?)")?;
                let separator = if database_url.contains('?') { '&' } else { '?' };
                let url = format!("{database_url}{separator}options=-csearch_path%3D{schema}");
                Ok(Self {
                    store,
                    env: ("DATABASE_URL".into(), url),
                    cleanup: Cleanup::Schema {
                        url: database_url.to_owned(),
                        schema,
                    },
                })
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("hfb-{name}-{id:08x}"));
                let store = Store::connect(None, &dir)
                    .await
                    .context("create the benchmark SQLite file")?;
                Ok(Self {
                    store,
                    env: ("HOOKFLEET_DATA_DIR".into(), dir.display().to_string()),
                    cleanup: Cleanup::Directory(dir),
                })
            }
        }
    }

    /// Closes the store and drops the schema or removes the directory.
    pub(crate) async fn remove(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Schema { url, schema } => {
                let _ = Store::drop_postgres_schema(&url, &schema).await;
            }
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
