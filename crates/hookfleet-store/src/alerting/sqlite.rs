//! Alerting on SQLite: every write transaction starts with `BEGIN
//! IMMEDIATE`, so it holds the database's single write lock from its
//! first read to its commit and nothing interleaves; times are the local
//! clock, in the store's fixed-width UTC text.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{
    Delivery, NewAlert, PendingAlert, PruneReport, Settle, StoredAlert, WindowCount, error_text,
};
use crate::StoreError;

/// The store's fixed-width UTC form for SQLite timestamps (the same as
/// `crate::sqlite`'s), so that text order is time order.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const ALERTS: &str = "
    SELECT a.id, a.alert_key, a.rule, a.fired_at, a.details,
           d.alert_id IS NOT NULL AS queued, d.attempts, d.last_error,
           d.delivered_at, d.abandoned_at
    FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id
    ORDER BY a.id";

pub(super) async fn record_event(
    tx: &mut SqliteConnection,
    event_id: &str,
    occurred_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO alert_events (event_id, occurred_at) VALUES (?, ?)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(time_text(occurred_at))
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn add_to_windows(
    tx: &mut SqliteConnection,
    counts: &BTreeMap<(&str, OffsetDateTime), i64>,
) -> Result<(), StoreError> {
    let mut upsert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO alert_window_counts (scope, window_start, count) ",
    );
    upsert.push_values(counts, |mut row, ((scope, minute), increment)| {
        row.push_bind(*scope)
            .push_bind(time_text(*minute))
            .push_bind(*increment);
    });
    upsert.push(" ON CONFLICT (scope, window_start) DO UPDATE SET count = count + excluded.count");
    upsert.build().execute(tx).await?;
    Ok(())
}

pub(super) async fn window_counts(
    tx: &mut SqliteConnection,
    scopes: &[&str],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<WindowCount>, StoreError> {
    let mut select = QueryBuilder::<Sqlite>::new(
        "SELECT scope, window_start, count FROM alert_window_counts WHERE scope IN (",
    );
    let mut list = select.separated(", ");
    for scope in scopes {
        list.push_bind(*scope);
    }
    select
        .push(") AND window_start BETWEEN ")
        .push_bind(time_text(from))
        .push(" AND ")
        .push_bind(time_text(to))
        .push(" ORDER BY scope, window_start");
    let rows = select.build().fetch_all(tx).await?;
    rows.iter().map(window_count_from).collect()
}

pub(super) async fn fire(
    tx: &mut SqliteConnection,
    alert: &NewAlert<'_>,
    until: OffsetDateTime,
) -> Result<Option<i64>, StoreError> {
    let won = sqlx::query(
        "INSERT INTO alert_cooldowns (alert_key, until) VALUES (?, ?)
         ON CONFLICT (alert_key) DO UPDATE SET until = excluded.until
         WHERE alert_cooldowns.until <= ?",
    )
    .bind(alert.alert_key)
    .bind(time_text(until))
    .bind(time_text(alert.at))
    .execute(&mut *tx)
    .await?;
    if won.rows_affected() == 0 {
        return Ok(None);
    }

    let now = time_text(OffsetDateTime::now_utc());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alerts (alert_key, rule, fired_at, details) VALUES (?, ?, ?, ?)
         RETURNING id",
    )
    .bind(alert.alert_key)
    .bind(alert.rule)
    .bind(&now)
    .bind(alert.details.to_string())
    .fetch_one(&mut *tx)
    .await?;
    if alert.deliver {
        sqlx::query("INSERT INTO alert_deliveries (alert_id, next_attempt_at) VALUES (?, ?)")
            .bind(id)
            .bind(&now)
            .execute(tx)
            .await?;
    }
    Ok(Some(id))
}

pub(super) async fn claim_deliveries(
    pool: &SqlitePool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<PendingAlert>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let now = OffsetDateTime::now_utc();
    let now_text = time_text(now);

    let rows = sqlx::query(
        "SELECT a.id, a.alert_key, a.rule, a.fired_at, a.details, d.attempts
         FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
         WHERE d.delivered_at IS NULL AND d.abandoned_at IS NULL
           AND d.next_attempt_at <= ?1
           AND (d.lease_until IS NULL OR d.lease_until <= ?1)
         ORDER BY d.alert_id
         LIMIT ?2",
    )
    .bind(&now_text)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let claimed: Vec<PendingAlert> = rows
        .iter()
        .map(|r| {
            Ok(PendingAlert {
                id: r.try_get("id")?,
                alert_key: r.try_get("alert_key")?,
                rule: r.try_get("rule")?,
                fired_at: parse_time(&r.try_get::<String, _>("fired_at")?)?,
                details: parse_json(&r.try_get::<String, _>("details")?)?,
                attempts: r.try_get::<i64, _>("attempts")?.max(0) as u32,
            })
        })
        .collect::<Result<_, StoreError>>()?;

    let lease_until = time_text(now + lease);
    for alert in &claimed {
        sqlx::query("UPDATE alert_deliveries SET lease_until = ? WHERE alert_id = ?")
            .bind(&lease_until)
            .bind(alert.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

pub(super) async fn settle_delivery(
    pool: &SqlitePool,
    alert_id: i64,
    settle: Settle<'_>,
) -> Result<(), StoreError> {
    let now = OffsetDateTime::now_utc();
    let query = match settle {
        Settle::Complete => sqlx::query(
            "UPDATE alert_deliveries
             SET delivered_at = ?, attempts = attempts + 1, lease_until = NULL,
                 last_error = NULL
             WHERE alert_id = ? AND delivered_at IS NULL",
        )
        .bind(time_text(now))
        .bind(alert_id),
        Settle::Retry { after, error } => sqlx::query(
            "UPDATE alert_deliveries
             SET next_attempt_at = ?, attempts = attempts + 1, lease_until = NULL,
                 last_error = ?
             WHERE alert_id = ? AND delivered_at IS NULL",
        )
        .bind(time_text(now + after))
        .bind(error_text(error))
        .bind(alert_id),
        Settle::Release => sqlx::query(
            "UPDATE alert_deliveries SET lease_until = NULL
             WHERE alert_id = ? AND delivered_at IS NULL",
        )
        .bind(alert_id),
        Settle::Abandon { error } => sqlx::query(
            "UPDATE alert_deliveries
             SET abandoned_at = ?, attempts = attempts + 1, lease_until = NULL,
                 last_error = ?
             WHERE alert_id = ? AND delivered_at IS NULL",
        )
        .bind(time_text(now))
        .bind(error_text(error))
        .bind(alert_id),
    };
    query.execute(pool).await?;
    Ok(())
}

pub(super) async fn pending_deliveries(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM alert_deliveries
         WHERE delivered_at IS NULL AND abandoned_at IS NULL",
    )
    .fetch_one(pool)
    .await?)
}

pub(super) async fn alerts(pool: &SqlitePool) -> Result<Vec<StoredAlert>, StoreError> {
    let rows = sqlx::query(ALERTS).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let attempts = r.try_get::<Option<i64>, _>("attempts")?.unwrap_or(0).max(0) as u32;
            let time = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
                r.try_get::<Option<String>, _>(column)?
                    .as_deref()
                    .map(parse_time)
                    .transpose()
            };
            let last_error: Option<String> = r.try_get("last_error")?;
            let queued = r.try_get::<i64, _>("queued")? != 0;
            let delivery = match (queued, time("delivered_at")?, time("abandoned_at")?) {
                (false, _, _) => Delivery::NotRequested,
                (true, Some(at), _) => Delivery::Delivered { at, attempts },
                (true, None, Some(at)) => Delivery::Abandoned {
                    at,
                    error: last_error.unwrap_or_default(),
                },
                (true, None, None) => Delivery::Pending {
                    attempts,
                    last_error,
                },
            };
            Ok(StoredAlert {
                id: r.try_get("id")?,
                alert_key: r.try_get("alert_key")?,
                rule: r.try_get("rule")?,
                fired_at: parse_time(&r.try_get::<String, _>("fired_at")?)?,
                details: parse_json(&r.try_get::<String, _>("details")?)?,
                delivery,
            })
        })
        .collect()
}

pub(super) async fn scope_counts(
    pool: &SqlitePool,
    scope: &str,
) -> Result<Vec<WindowCount>, StoreError> {
    let rows = sqlx::query(
        "SELECT scope, window_start, count FROM alert_window_counts
         WHERE scope = ? ORDER BY window_start",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    rows.iter().map(window_count_from).collect()
}

pub(super) async fn prune(
    pool: &SqlitePool,
    before: OffsetDateTime,
) -> Result<PruneReport, StoreError> {
    let before = time_text(before);
    let deleted = |sql: &'static str| {
        let before = before.clone();
        async move {
            let done = sqlx::query(sql).bind(before).execute(pool).await?;
            Ok::<_, StoreError>(done.rows_affected())
        }
    };
    Ok(PruneReport {
        events: deleted("DELETE FROM alert_events WHERE occurred_at < ?").await?,
        window_counts: deleted("DELETE FROM alert_window_counts WHERE window_start < ?").await?,
        cooldowns: deleted("DELETE FROM alert_cooldowns WHERE until < ?").await?,
    })
}

fn window_count_from(r: &SqliteRow) -> Result<WindowCount, StoreError> {
    Ok(WindowCount {
        scope: r.try_get("scope")?,
        window_start: parse_time(&r.try_get::<String, _>("window_start")?)?,
        count: r.try_get("count")?,
    })
}

fn time_text(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(TIME_FORMAT)
        .expect("a UTC date-time within the year range formats")
}

fn parse_time(text: &str) -> Result<OffsetDateTime, StoreError> {
    PrimitiveDateTime::parse(text, TIME_FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|e| StoreError::Invalid(format!("stored time {text:?}: {e}")))
}

fn parse_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored details are not JSON: {e}")))
}
