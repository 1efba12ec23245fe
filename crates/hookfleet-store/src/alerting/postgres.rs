//! Alerting on PostgreSQL: advisory locks per subject, one conditional
//! upsert per cooldown, `SKIP LOCKED` claims, the database's clock.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use super::{
    Delivery, NewAlert, PendingAlert, PruneReport, Settle, StoredAlert, WindowCount, error_text,
};
use crate::StoreError;

/// The first key of every alerting advisory lock (`pg_advisory_xact_lock`
/// with two `int4` keys, a space apart from single-`bigint` locks such as
/// the migrator's): "alrt".
const LOCK_CLASS: i32 = 0x616c_7274;

const RECORD_EVENT: &str = "
    INSERT INTO alert_events (event_id, occurred_at) VALUES ($1, $2)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1";

const ADD_TO_WINDOWS: &str = "
    INSERT INTO alert_window_counts (scope, window_start, count)
    SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[])
    ON CONFLICT (scope, window_start)
    DO UPDATE SET count = alert_window_counts.count + EXCLUDED.count";

const WINDOW_COUNTS: &str = "
    SELECT scope, window_start, count FROM alert_window_counts
    WHERE scope = ANY($1) AND window_start BETWEEN $2 AND $3
    ORDER BY scope, window_start";

/// Takes the key's cooldown if it has ended (or never began) and stores
/// the alert; no row back means the cooldown suppressed it. Under a
/// concurrent firing of the same key PostgreSQL waits for the row lock and
/// re-checks the `WHERE` on the newest version, so one of them wins.
const FIRE: &str = "
    WITH won AS (
        INSERT INTO alert_cooldowns AS c (alert_key, until) VALUES ($1, $2)
        ON CONFLICT (alert_key) DO UPDATE SET until = EXCLUDED.until
        WHERE c.until <= $3
        RETURNING alert_key
    )
    INSERT INTO alerts (alert_key, rule, fired_at, details)
    SELECT alert_key, $4, now(), $5 FROM won
    RETURNING id";

const QUEUE_DELIVERY: &str = "
    INSERT INTO alert_deliveries (alert_id, next_attempt_at) VALUES ($1, now())";

const CLAIM_DELIVERIES: &str = "
    WITH claimed AS (
        UPDATE alert_deliveries SET lease_until = now() + make_interval(secs => $2)
        WHERE alert_id IN (
            SELECT alert_id FROM alert_deliveries
            WHERE delivered_at IS NULL AND abandoned_at IS NULL
              AND next_attempt_at <= now()
              AND (lease_until IS NULL OR lease_until <= now())
            ORDER BY alert_id
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING alert_id, attempts
    )
    SELECT a.id, a.alert_key, a.rule, a.fired_at, a.details, c.attempts
    FROM claimed c JOIN alerts a ON a.id = c.alert_id
    ORDER BY a.id";

const ALERTS: &str = "
    SELECT a.id, a.alert_key, a.rule, a.fired_at, a.details,
           d.alert_id IS NOT NULL AS queued, d.attempts, d.last_error,
           d.delivered_at, d.abandoned_at
    FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id
    ORDER BY a.id";

pub(super) async fn record_event(
    tx: &mut PgConnection,
    event_id: &str,
    occurred_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let inserted: Option<i32> = sqlx::query_scalar(RECORD_EVENT)
        .bind(event_id)
        .bind(occurred_at)
        .fetch_optional(tx)
        .await?;
    Ok(inserted.is_some())
}

/// Takes the advisory locks `keys`, already sorted and unique.
pub(super) async fn lock_subjects(tx: &mut PgConnection, keys: &[i32]) -> Result<(), StoreError> {
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn add_to_windows(
    tx: &mut PgConnection,
    counts: &BTreeMap<(&str, OffsetDateTime), i64>,
) -> Result<(), StoreError> {
    let scopes: Vec<&str> = counts.keys().map(|(scope, _)| *scope).collect();
    let minutes: Vec<OffsetDateTime> = counts.keys().map(|(_, minute)| *minute).collect();
    let increments: Vec<i64> = counts.values().copied().collect();
    sqlx::query(ADD_TO_WINDOWS)
        .bind(&scopes)
        .bind(&minutes)
        .bind(&increments)
        .execute(tx)
        .await?;
    Ok(())
}

pub(super) async fn window_counts(
    tx: &mut PgConnection,
    scopes: &[&str],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<WindowCount>, StoreError> {
    let rows = sqlx::query(WINDOW_COUNTS)
        .bind(scopes)
        .bind(from)
        .bind(to)
        .fetch_all(tx)
        .await?;
    rows.iter().map(window_count_from).collect()
}

pub(super) async fn fire(
    tx: &mut PgConnection,
    alert: &NewAlert<'_>,
    until: OffsetDateTime,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(FIRE)
        .bind(alert.alert_key)
        .bind(until)
        .bind(alert.at)
        .bind(alert.rule)
        .bind(Json(alert.details))
        .fetch_optional(&mut *tx)
        .await?;
    if let (Some(id), true) = (id, alert.deliver) {
        sqlx::query(QUEUE_DELIVERY).bind(id).execute(tx).await?;
    }
    Ok(id)
}

pub(super) async fn claim_deliveries(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<PendingAlert>, StoreError> {
    let rows = sqlx::query(CLAIM_DELIVERIES)
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingAlert {
                id: r.try_get("id")?,
                alert_key: r.try_get("alert_key")?,
                rule: r.try_get("rule")?,
                fired_at: r.try_get("fired_at")?,
                details: r.try_get("details")?,
                attempts: r.try_get::<i32, _>("attempts")?.max(0) as u32,
            })
        })
        .collect()
}

pub(super) async fn settle_delivery(
    pool: &PgPool,
    alert_id: i64,
    settle: Settle<'_>,
) -> Result<(), StoreError> {
    let query = match settle {
        Settle::Complete => sqlx::query(
            "UPDATE alert_deliveries
             SET delivered_at = now(), attempts = attempts + 1, lease_until = NULL,
                 last_error = NULL
             WHERE alert_id = $1 AND delivered_at IS NULL",
        )
        .bind(alert_id),
        Settle::Retry { after, error } => sqlx::query(
            "UPDATE alert_deliveries
             SET next_attempt_at = now() + make_interval(secs => $2),
                 attempts = attempts + 1, lease_until = NULL, last_error = $3
             WHERE alert_id = $1 AND delivered_at IS NULL",
        )
        .bind(alert_id)
        .bind(after.as_secs_f64())
        .bind(error_text(error)),
        Settle::Release => sqlx::query(
            "UPDATE alert_deliveries SET lease_until = NULL
             WHERE alert_id = $1 AND delivered_at IS NULL",
        )
        .bind(alert_id),
        Settle::Abandon { error } => sqlx::query(
            "UPDATE alert_deliveries
             SET abandoned_at = now(), attempts = attempts + 1, lease_until = NULL,
                 last_error = $2
             WHERE alert_id = $1 AND delivered_at IS NULL",
        )
        .bind(alert_id)
        .bind(error_text(error)),
    };
    query.execute(pool).await?;
    Ok(())
}

pub(super) async fn pending_deliveries(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM alert_deliveries
         WHERE delivered_at IS NULL AND abandoned_at IS NULL",
    )
    .fetch_one(pool)
    .await?)
}

pub(super) async fn alerts(pool: &PgPool) -> Result<Vec<StoredAlert>, StoreError> {
    let rows = sqlx::query(ALERTS).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let attempts = r.try_get::<Option<i32>, _>("attempts")?.unwrap_or(0).max(0) as u32;
            let delivered_at: Option<OffsetDateTime> = r.try_get("delivered_at")?;
            let abandoned_at: Option<OffsetDateTime> = r.try_get("abandoned_at")?;
            let last_error: Option<String> = r.try_get("last_error")?;
            let delivery = match (r.try_get::<bool, _>("queued")?, delivered_at, abandoned_at) {
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
                fired_at: r.try_get("fired_at")?,
                details: r.try_get("details")?,
                delivery,
            })
        })
        .collect()
}

pub(super) async fn scope_counts(
    pool: &PgPool,
    scope: &str,
) -> Result<Vec<WindowCount>, StoreError> {
    let rows = sqlx::query(
        "SELECT scope, window_start, count FROM alert_window_counts
         WHERE scope = $1 ORDER BY window_start",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    rows.iter().map(window_count_from).collect()
}

pub(super) async fn prune(
    pool: &PgPool,
    before: OffsetDateTime,
) -> Result<PruneReport, StoreError> {
    let deleted = |sql: &'static str| async move {
        let done = sqlx::query(sql).bind(before).execute(pool).await?;
        Ok::<_, StoreError>(done.rows_affected())
    };
    Ok(PruneReport {
        events: deleted("DELETE FROM alert_events WHERE occurred_at < $1").await?,
        window_counts: deleted("DELETE FROM alert_window_counts WHERE window_start < $1").await?,
        cooldowns: deleted("DELETE FROM alert_cooldowns WHERE until < $1").await?,
    })
}

fn window_count_from(r: &PgRow) -> Result<WindowCount, StoreError> {
    Ok(WindowCount {
        scope: r.try_get("scope")?,
        window_start: r.try_get("window_start")?,
        count: r.try_get("count")?,
    })
}
