//! Schema migrations, embedded in the binary, one directory per backend.
//!
//! `migrations/postgres/NNNN_name.sql` and `migrations/sqlite/NNNN_name.sql`
//! hold the same versions: a change to the schema adds a file to both,
//! with the same number. They run through sqlx's migrator, which records
//! applied versions and their checksums in `_sqlx_migrations`, takes an
//! advisory lock on PostgreSQL so that replicas starting together migrate
//! once, and refuses to start if an applied migration was edited.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, PostgreSQL text, SQLite text.
struct Step {
    version: i64,
    description: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const STEPS: &[Step] = &[
    Step {
        version: 1,
        description: "initial",
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Step {
        version: 2,
        description: "alerting",
        postgres: include_str!("../migrations/postgres/0002_alerting.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_alerting.sql"),
    },
    Step {
        version: 3,
        description: "effect ledger",
        postgres: include_str!("../migrations/postgres/0003_effect_ledger.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_effect_ledger.sql"),
    },
];

/// The PostgreSQL migrations.
pub(crate) fn postgres() -> Migrator {
    migrator(|step| step.postgres)
}

/// The SQLite migrations.
pub(crate) fn sqlite() -> Migrator {
    migrator(|step| step.sqlite)
}

fn migrator(sql: impl Fn(&Step) -> &'static str) -> Migrator {
    let migrations = STEPS
        .iter()
        .map(|step| {
            Migration::new(
                step.version,
                Cow::Borrowed(step.description),
                MigrationType::Simple,
                sql(step).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        let versions: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }
}
