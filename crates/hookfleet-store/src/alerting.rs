//! The alerts worker's shared state (SPEC §9): exact event-time windows,
//! cooldowns, and the outbox of alerts still to deliver to Slack.
//!
//! Every replica of `hookfleet-alerts` uses these tables (migration
//! 0002), so they all see the same totals and fire the same alerts as one
//! worker would.
//!
//! # One event, one transaction
//!
//! The worker handles an event inside one [`AlertingTx`]
//! ([`Store::begin_alerting`]):
//!
//! 1. [`AlertingTx::record_event`] inserts the `event_id` into
//!    `alert_events` (`ON CONFLICT DO NOTHING`). `false` means the event
//!    was counted before (an SQS redelivery, a Tolinku retry): the worker
//!    stops there, so a redelivered event never counts twice and never
//!    fires twice.
//! 2. [`AlertingTx::lock_subjects`] serialises the transactions that touch
//!    the same subject (a campaign, an IP, a referrer): on PostgreSQL a
//!    transaction-scoped advisory lock per subject, taken in one global
//!    order so two transactions cannot deadlock; on SQLite the
//!    transaction already holds the single write lock (`BEGIN IMMEDIATE`).
//!    Without it, two events of one campaign committed at the same moment
//!    in different minutes could each miss the other's count and neither
//!    cross a threshold they cross together.
//! 3. [`AlertingTx::add_to_windows`] adds one to the per-minute count of
//!    each scope the event counts in (`alert_window_counts`), keyed by the
//!    event time truncated to the minute.
//! 4. [`AlertingTx::window_counts`] reads the minutes a rule looks at.
//! 5. [`AlertingTx::fire`] stores an alert unless its key is cooling down
//!    (below), and, when the alert is to be delivered, its outbox row
//!    (`alert_deliveries`).
//! 6. [`AlertingTx::commit`]: the event is counted, and its alerts stored
//!    and queued for delivery, all or nothing.
//!
//! # Cooldowns
//!
//! `alert_cooldowns` holds one row per alert key with the event time
//! until which that key stays quiet. [`AlertingTx::fire`] takes it with
//! one conditional upsert (`INSERT … ON CONFLICT DO UPDATE … WHERE until
//! <= the event time`): PostgreSQL re-checks the condition on the latest
//! row version under the row lock, so of several transactions firing one
//! key exactly one wins, whatever the replicas. Cooldowns are measured in
//! event time, like the windows, so the same events fire the same alerts
//! however fast or in how many processes they are handled.
//!
//! # The outbox
//!
//! An alert to deliver has a row in `alert_deliveries` until it is
//! delivered or abandoned. A deliverer claims due rows for a lease
//! ([`Store::claim_alert_deliveries`]; `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so replicas claim disjoint rows), posts them, then marks
//! each [completed](Store::complete_alert_delivery),
//! [to retry](Store::retry_alert_delivery) after a delay,
//! [released](Store::release_alert_delivery) untried, or
//! [abandoned](Store::abandon_alert_delivery). A row whose deliverer died
//! is claimed again when its lease runs out. Lease and retry times use
//! the database's clock on PostgreSQL and the local clock on SQLite.
//!
//! # Retention
//!
//! [`Store::prune_alerting`] deletes counted event ids, window counts and
//! cooldowns older than a horizon; the worker ignores events older than
//! that horizon, so pruning cannot let an old event count twice.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Sqlite, Transaction};
use time::OffsetDateTime;

use crate::{Backend, Store, StoreError, minute_of};

/// The longest scope, subject or alert key accepted, in bytes.
pub const MAX_ALERT_KEY_LEN: usize = 512;

/// The longest lease accepted for an outbox claim: an hour.
pub const MAX_DELIVERY_LEASE: Duration = Duration::from_secs(3600);

/// One per-minute count of a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCount {
    /// What is counted, e.g. `click:spring`.
    pub scope: String,
    /// The minute, UTC.
    pub window_start: OffsetDateTime,
    /// Events counted in it.
    pub count: i64,
}

/// An alert to fire, if its key is not cooling down.
#[derive(Debug, Clone, Copy)]
pub struct NewAlert<'a> {
    /// What identifies the incident, e.g. `broken_link:spring`. One alert
    /// per key per cooldown.
    pub alert_key: &'a str,
    /// The rule's name, e.g. `broken_link`.
    pub rule: &'a str,
    /// What the alert is about (stored as JSON in `alerts.details`).
    pub details: &'a Value,
    /// The event time the alert fires at; the cooldown runs from it.
    pub at: OffsetDateTime,
    /// How long, in event time, the key stays quiet after firing.
    pub cooldown: Duration,
    /// Whether to queue the alert for delivery (an outbox row); without
    /// it the alert is only stored.
    pub deliver: bool,
}

/// Where an alert's delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored only: no delivery was asked for.
    NotRequested,
    /// Waiting for a (first or next) attempt.
    Pending {
        /// Attempts that failed so far.
        attempts: u32,
        /// Why the last attempt failed, if one did.
        last_error: Option<String>,
    },
    /// Delivered.
    Delivered {
        /// When.
        at: OffsetDateTime,
        /// Attempts it took, the successful one included.
        attempts: u32,
    },
    /// Given up on: the destination refused it for good.
    Abandoned {
        /// When.
        at: OffsetDateTime,
        /// Why.
        error: String,
    },
}

/// A stored alert and its delivery, as read back (tests, operators).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    /// The row's id.
    pub id: i64,
    /// See [`NewAlert::alert_key`].
    pub alert_key: String,
    /// See [`NewAlert::rule`].
    pub rule: String,
    /// When the alert was stored (wall clock).
    pub fired_at: OffsetDateTime,
    /// See [`NewAlert::details`].
    pub details: Value,
    /// Where its delivery stands.
    pub delivery: Delivery,
}

/// An alert claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAlert {
    /// The alert's id: pass it back to complete, retry, release or
    /// abandon the claim.
    pub id: i64,
    /// See [`NewAlert::alert_key`].
    pub alert_key: String,
    /// See [`NewAlert::rule`].
    pub rule: String,
    /// When the alert was stored.
    pub fired_at: OffsetDateTime,
    /// See [`NewAlert::details`].
    pub details: Value,
    /// Attempts that failed before this one.
    pub attempts: u32,
}

/// What [`Store::prune_alerting`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Counted event ids.
    pub events: u64,
    /// Per-minute counts.
    pub window_counts: u64,
    /// Cooldowns that ended.
    pub cooldowns: u64,
}

/// The transaction one event is handled in; see the
/// [module documentation](self). Dropped without [`AlertingTx::commit`],
/// it rolls back.
pub struct AlertingTx {
    inner: TxInner,
}

enum TxInner {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl std::fmt::Debug for AlertingTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.inner {
            TxInner::Postgres(_) => "postgres",
            TxInner::Sqlite(_) => "sqlite",
        };
        f.debug_struct("AlertingTx")
            .field("backend", &backend)
            .finish()
    }
}

impl AlertingTx {
    /// Marks `event_id` counted. `false`: it was counted before (by an
    /// earlier, committed transaction), and the caller should commit
    /// nothing else for it.
    pub async fn record_event(
        &mut self,
        event_id: &str,
        occurred_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        check_key("event id", event_id)?;
        match &mut self.inner {
            TxInner::Postgres(tx) => postgres::record_event(tx, event_id, occurred_at).await,
            TxInner::Sqlite(tx) => sqlite::record_event(tx, event_id, occurred_at).await,
        }
    }

    /// Holds `subjects` (e.g. `campaign:spring`) until the transaction
    /// ends: other transactions locking any of them wait. Call it once
    /// per transaction, before reading or writing windows.
    pub async fn lock_subjects(&mut self, subjects: &[&str]) -> Result<(), StoreError> {
        for subject in subjects {
            check_key("subject", subject)?;
        }
        match &mut self.inner {
            TxInner::Postgres(tx) => {
                // Sorted by the lock key itself, so that every transaction
                // takes its locks in one global order.
                let mut keys: Vec<i32> = subjects.iter().map(|s| subject_lock_key(s)).collect();
                keys.sort_unstable();
                keys.dedup();
                postgres::lock_subjects(tx, &keys).await
            }
            // BEGIN IMMEDIATE took the database's single write lock.
            TxInner::Sqlite(_) => Ok(()),
        }
    }

    /// Adds one to the count of each `(scope, event time)`'s minute.
    pub async fn add_to_windows(
        &mut self,
        increments: &[(&str, OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut counts: BTreeMap<(&str, OffsetDateTime), i64> = BTreeMap::new();
        for &(scope, at) in increments {
            check_key("scope", scope)?;
            *counts.entry((scope, minute_of(at))).or_insert(0) += 1;
        }
        if counts.is_empty() {
            return Ok(());
        }
        match &mut self.inner {
            TxInner::Postgres(tx) => postgres::add_to_windows(tx, &counts).await,
            TxInner::Sqlite(tx) => sqlite::add_to_windows(tx, &counts).await,
        }
    }

    /// The non-zero per-minute counts of `scopes` whose minute lies in
    /// `from..=to` (both truncated to the minute), by scope then minute.
    pub async fn window_counts(
        &mut self,
        scopes: &[&str],
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<WindowCount>, StoreError> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let (from, to) = (minute_of(from), minute_of(to));
        match &mut self.inner {
            TxInner::Postgres(tx) => postgres::window_counts(tx, scopes, from, to).await,
            TxInner::Sqlite(tx) => sqlite::window_counts(tx, scopes, from, to).await,
        }
    }

    /// Stores `alert` unless its key is cooling down at `alert.at`; starts
    /// a new cooldown when it fires. Returns the new alert's id, or `None`
    /// when the cooldown suppressed it.
    pub async fn fire(&mut self, alert: &NewAlert<'_>) -> Result<Option<i64>, StoreError> {
        check_key("alert key", alert.alert_key)?;
        let until = alert.at + alert.cooldown;
        match &mut self.inner {
            TxInner::Postgres(tx) => postgres::fire(tx, alert, until).await,
            TxInner::Sqlite(tx) => sqlite::fire(tx, alert, until).await,
        }
    }

    /// Commits everything the transaction did.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Postgres(tx) => tx.commit().await?,
            TxInner::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Undoes everything the transaction did (as dropping it does, but
    /// waiting for the database).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Postgres(tx) => tx.rollback().await?,
            TxInner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

impl Store {
    /// Starts the transaction one event is handled in; see the
    /// [module documentation](self).
    pub async fn begin_alerting(&self) -> Result<AlertingTx, StoreError> {
        let inner = match &self.backend {
            Backend::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
            Backend::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(AlertingTx { inner })
    }

    /// Claims up to `limit` alerts due for delivery, oldest first, for
    /// `lease` (at most [`MAX_DELIVERY_LEASE`]): no other claim gets them
    /// until the lease runs out or the claim is settled.
    pub async fn claim_alert_deliveries(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<PendingAlert>, StoreError> {
        if lease.is_zero() || lease > MAX_DELIVERY_LEASE {
            return Err(StoreError::Invalid(format!(
                "delivery lease {lease:?} is outside 1 ms..=1 h"
            )));
        }
        let limit = limit.clamp(1, 1000) as i64;
        match &self.backend {
            Backend::Postgres(pool) => postgres::claim_deliveries(pool, limit, lease).await,
            Backend::Sqlite(pool) => sqlite::claim_deliveries(pool, limit, lease).await,
        }
    }

    /// The claimed alert was delivered: it is never claimed again.
    pub async fn complete_alert_delivery(&self, alert_id: i64) -> Result<(), StoreError> {
        self.settle_delivery(alert_id, Settle::Complete).await
    }

    /// The attempt failed (`error`, one line): the alert is due again
    /// after `after`.
    pub async fn retry_alert_delivery(
        &self,
        alert_id: i64,
        after: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        self.settle_delivery(alert_id, Settle::Retry { after, error })
            .await
    }

    /// The claim is given back untried (e.g. the breaker is open): the
    /// alert is due again at once, its attempts unchanged.
    pub async fn release_alert_delivery(&self, alert_id: i64) -> Result<(), StoreError> {
        self.settle_delivery(alert_id, Settle::Release).await
    }

    /// The destination refused the alert for good (`error`): it is never
    /// claimed again.
    pub async fn abandon_alert_delivery(
        &self,
        alert_id: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.settle_delivery(alert_id, Settle::Abandon { error })
            .await
    }

    async fn settle_delivery(&self, alert_id: i64, settle: Settle<'_>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::settle_delivery(pool, alert_id, settle).await,
            Backend::Sqlite(pool) => sqlite::settle_delivery(pool, alert_id, settle).await,
        }
    }

    /// How many alerts wait for delivery (due or not, claimed or not).
    pub async fn pending_alert_deliveries(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::pending_deliveries(pool).await,
            Backend::Sqlite(pool) => sqlite::pending_deliveries(pool).await,
        }
    }

    /// Every stored alert with its delivery, oldest first. A full read:
    /// for tests and operators, not for a hot path.
    pub async fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::alerts(pool).await,
            Backend::Sqlite(pool) => sqlite::alerts(pool).await,
        }
    }

    /// Every per-minute count of `scope`, oldest first (tests, operators).
    pub async fn alert_window_counts(&self, scope: &str) -> Result<Vec<WindowCount>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::scope_counts(pool, scope).await,
            Backend::Sqlite(pool) => sqlite::scope_counts(pool, scope).await,
        }
    }

    /// Deletes counted event ids with an event time before `before`,
    /// minute counts of minutes before it, and cooldowns that ended
    /// before it. Alerts and their deliveries are kept.
    pub async fn prune_alerting(&self, before: OffsetDateTime) -> Result<PruneReport, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::prune(pool, before).await,
            Backend::Sqlite(pool) => sqlite::prune(pool, before).await,
        }
    }
}

/// How a claimed delivery ends.
#[derive(Debug, Clone, Copy)]
enum Settle<'a> {
    Complete,
    Retry { after: Duration, error: &'a str },
    Release,
    Abandon { error: &'a str },
}

/// The advisory lock key of a subject: 32-bit FNV-1a of its bytes. Stable
/// across builds and versions (every replica must compute the same key),
/// which `std`'s hasher is not.
fn subject_lock_key(subject: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in subject.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

fn check_key(what: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_ALERT_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {MAX_ALERT_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

/// An error text as stored: one line, at most 1,000 bytes.
fn error_text(error: &str) -> String {
    let mut line = error.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 1000 {
        let mut end = 1000;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}
