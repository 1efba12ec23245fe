//! Storage errors, classified for the caller's retry-or-dead-letter choice.
//!
//! The rule: only an error that is about the data itself is
//! [`StoreError::Invalid`] (a constraint or a value the database refuses);
//! retrying the same data would fail the same way, so the message belongs
//! in the dead-letter queue. Everything else that happens at run time
//! (connection lost, pool exhausted, I/O, a deadlock, a database shutting
//! down, and errors nobody anticipated) is [`StoreError::Unavailable`]:
//! the message is retried, and if the cause never goes away it still
//! reaches the dead-letter queue through the queue's `maxReceiveCount`.
//! Guessing "retryable" when unsure loses nothing; guessing "permanent"
//! would dead-letter a whole outage's worth of events.

use sqlx::error::ErrorKind;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not do the work now (connection, pool, I/O,
    /// lock contention, shutdown). Retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the data (constraint, bad value). Retrying the
    /// same data fails the same way.
    #[error("database refused the data: {0}")]
    Invalid(String),
    /// `DATABASE_URL` or the data directory is unusable. Fix the setting.
    #[error("{0}")]
    Config(String),
    /// The schema migrations could not be applied (a changed or missing
    /// migration, or a failing statement).
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A short label for metrics: `unavailable`, `invalid`, `config` or
    /// `migration`.
    pub fn as_label(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Invalid(_) => "invalid",
            Self::Config(_) => "config",
            Self::Migration(_) => "migration",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let text = one_line(&error);
        match &error {
            sqlx::Error::Database(db) if refuses_data(db.as_ref()) => Self::Invalid(text),
            sqlx::Error::Encode(_) | sqlx::Error::InvalidArgument(_) => Self::Invalid(text),
            sqlx::Error::Configuration(_) => Self::Config(text),
            _ => Self::Unavailable(text),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(inner) => match Self::from(inner) {
                Self::Unavailable(text) => Self::Unavailable(text),
                other => Self::Migration(other.to_string()),
            },
            other => Self::Migration(one_line(&other)),
        }
    }
}

/// Whether a database error is about the data rather than the database's
/// state.
fn refuses_data(error: &dyn sqlx::error::DatabaseError) -> bool {
    if !matches!(error.kind(), ErrorKind::Other) {
        // Unique, foreign-key, not-null, check and exclusion violations.
        return true;
    }
    let Some(code) = error.code() else {
        return false;
    };
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // SQLite reports extended result codes; the primary code is the
        // low byte. TOOBIG, CONSTRAINT, MISMATCH, RANGE.
        let primary = code.parse::<i32>().map_or(0, |c| c & 0xff);
        return matches!(primary, 18 | 19 | 20 | 25);
    }
    // PostgreSQL SQLSTATE classes 22 (data exception, e.g. a NUL byte in
    // text or a bad JSON escape) and 23 (integrity constraint violation).
    code.starts_with("22") || code.starts_with("23")
}

/// The error and its causes on one line, for logs and DLQ reasons.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_errors_are_retryable() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_retryable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(StoreError::from(sqlx::Error::Io(io)).is_retryable());
    }

    #[test]
    fn encode_errors_are_permanent() {
        let error = StoreError::from(sqlx::Error::Encode("bad value".into()));
        assert!(matches!(error, StoreError::Invalid(_)));
        assert!(!error.is_retryable());
    }

    #[test]
    fn messages_are_one_line() {
        let io = std::io::Error::other("first\nsecond");
        let text = StoreError::from(sqlx::Error::Io(io)).to_string();
        assert!(!text.contains('\n'), "{text}");
    }
}
