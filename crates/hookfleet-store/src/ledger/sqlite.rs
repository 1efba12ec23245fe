//! The ledger on SQLite: a claim is one `BEGIN IMMEDIATE` transaction, so
//! it holds the database's single write lock from its read to its write
//! and no other claim (from this process or another) interleaves.

use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{Claim, EffectClaim, EffectRecord, EffectState};
use crate::StoreError;

/// The store's fixed-width UTC form for SQLite timestamps (the same as
/// the backend's in `crate::sqlite`), so that text order is time order.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const RECORD: &str = "
    SELECT effect_key, state, attempt, lease_until, first_claimed_at, claimed_at, completed_at
    FROM effect_ledger WHERE effect_key = ?";

pub(super) async fn claim(
    pool: &SqlitePool,
    effect_key: &str,
    lease: Duration,
) -> Result<Claim, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let now = OffsetDateTime::now_utc();
    let lease_until = now + lease;

    let row = sqlx::query(RECORD)
        .bind(effect_key)
        .fetch_optional(&mut *tx)
        .await?;
    let attempt = match row.as_ref().map(record_from).transpose()? {
        None => {
            sqlx::query(
                "INSERT INTO effect_ledger \
                 (effect_key, state, attempt, lease_until, first_claimed_at, claimed_at) \
                 VALUES (?, 'in_progress', 1, ?, ?, ?)",
            )
            .bind(effect_key)
            .bind(time_text(lease_until))
            .bind(time_text(now))
            .bind(time_text(now))
            .execute(&mut *tx)
            .await?;
            1
        }
        Some(record) if record.state == EffectState::Done => return Ok(Claim::AlreadyDone),
        Some(record) if record.lease_until > now => {
            return Ok(Claim::HeldByOther {
                until: record.lease_until,
            });
        }
        Some(record) => {
            let attempt = record.attempt as i32 + 1;
            sqlx::query(
                "UPDATE effect_ledger SET attempt = ?, lease_until = ?, claimed_at = ? \
                 WHERE effect_key = ?",
            )
            .bind(attempt)
            .bind(time_text(lease_until))
            .bind(time_text(now))
            .bind(effect_key)
            .execute(&mut *tx)
            .await?;
            attempt
        }
    };
    tx.commit().await?;

    Ok(Claim::Claimed(EffectClaim {
        effect_key: effect_key.to_owned(),
        attempt,
        lease_until,
    }))
}

pub(super) async fn complete(pool: &SqlitePool, effect_key: &str) -> Result<(), StoreError> {
    let now = time_text(OffsetDateTime::now_utc());
    sqlx::query(
        "INSERT INTO effect_ledger \
         (effect_key, state, attempt, lease_until, first_claimed_at, claimed_at, completed_at) \
         VALUES (?1, 'done', 1, ?2, ?2, ?2, ?2) \
         ON CONFLICT (effect_key) DO UPDATE \
         SET state = 'done', completed_at = COALESCE(completed_at, excluded.completed_at)",
    )
    .bind(effect_key)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn release(pool: &SqlitePool, claim: &EffectClaim) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE effect_ledger SET lease_until = ? \
         WHERE effect_key = ? AND attempt = ? AND state = 'in_progress'",
    )
    .bind(time_text(OffsetDateTime::now_utc()))
    .bind(&claim.effect_key)
    .bind(claim.attempt)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn record(
    pool: &SqlitePool,
    effect_key: &str,
) -> Result<Option<EffectRecord>, StoreError> {
    let row = sqlx::query(RECORD)
        .bind(effect_key)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(record_from).transpose()
}

fn record_from(row: &SqliteRow) -> Result<EffectRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let attempt: i64 = row.try_get("attempt")?;
    let completed_at: Option<String> = row.try_get("completed_at")?;
    Ok(EffectRecord {
        effect_key: row.try_get("effect_key")?,
        state: EffectState::parse(&state)?,
        attempt: attempt.clamp(0, i64::from(i32::MAX)) as u32,
        lease_until: parse_time(row.try_get("lease_until")?)?,
        first_claimed_at: parse_time(row.try_get("first_claimed_at")?)?,
        claimed_at: parse_time(row.try_get("claimed_at")?)?,
        completed_at: completed_at.as_deref().map(parse_time).transpose()?,
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
