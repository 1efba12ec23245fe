//! The ledger on PostgreSQL: a claim is one atomic upsert, timed by the
//! database's clock.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use time::OffsetDateTime;

use super::{Claim, EffectClaim, EffectRecord, EffectState};
use crate::StoreError;

/// Inserts a new claim, or takes over an in-progress one whose lease has
/// run out. Under a concurrent claim PostgreSQL waits for the row lock and
/// re-checks the `WHERE` on the newest row version, so exactly one of two
/// racing claims updates it. No row back means the effect is done or held.
const CLAIM: &str = "
    INSERT INTO effect_ledger AS l
        (effect_key, state, attempt, lease_until, first_claimed_at, claimed_at)
    VALUES ($1, 'in_progress', 1, now() + make_interval(secs => $2), now(), now())
    ON CONFLICT (effect_key) DO UPDATE
        SET state = 'in_progress',
            attempt = l.attempt + 1,
            lease_until = EXCLUDED.lease_until,
            claimed_at = EXCLUDED.claimed_at
        WHERE l.state = 'in_progress' AND l.lease_until <= now()
    RETURNING attempt, lease_until";

/// Why a claim did not go through.
const STANDING: &str = "
    SELECT state, lease_until, lease_until > now() AS held
    FROM effect_ledger WHERE effect_key = $1";

const COMPLETE: &str = "
    INSERT INTO effect_ledger AS l
        (effect_key, state, attempt, lease_until, first_claimed_at, claimed_at, completed_at)
    VALUES ($1, 'done', 1, now(), now(), now(), now())
    ON CONFLICT (effect_key) DO UPDATE
        SET state = 'done', completed_at = COALESCE(l.completed_at, now())";

/// Ends the lease now, for this attempt only.
const RELEASE: &str = "
    UPDATE effect_ledger SET lease_until = now()
    WHERE effect_key = $1 AND attempt = $2 AND state = 'in_progress'";

const RECORD: &str = "
    SELECT effect_key, state, attempt, lease_until, first_claimed_at, claimed_at, completed_at
    FROM effect_ledger WHERE effect_key = $1";

/// One claim round: `None` when the row changed between the upsert and
/// the read (released, or its lease ran out), so the caller tries again.
pub(super) async fn claim(
    pool: &PgPool,
    effect_key: &str,
    lease: Duration,
) -> Result<Option<Claim>, StoreError> {
    let claimed: Option<(i32, OffsetDateTime)> = sqlx::query_as(CLAIM)
        .bind(effect_key)
        .bind(lease.as_secs_f64())
        .fetch_optional(pool)
        .await?;
    if let Some((attempt, lease_until)) = claimed {
        return Ok(Some(Claim::Claimed(EffectClaim {
            effect_key: effect_key.to_owned(),
            attempt,
            lease_until,
        })));
    }

    let standing: Option<(String, OffsetDateTime, bool)> = sqlx::query_as(STANDING)
        .bind(effect_key)
        .fetch_optional(pool)
        .await?;
    Ok(match standing {
        Some((state, _, _)) if EffectState::parse(&state)? == EffectState::Done => {
            Some(Claim::AlreadyDone)
        }
        Some((_, until, true)) => Some(Claim::HeldByOther { until }),
        Some((_, _, false)) | None => None,
    })
}

pub(super) async fn complete(pool: &PgPool, effect_key: &str) -> Result<(), StoreError> {
    sqlx::query(COMPLETE).bind(effect_key).execute(pool).await?;
    Ok(())
}

pub(super) async fn release(pool: &PgPool, claim: &EffectClaim) -> Result<(), StoreError> {
    sqlx::query(RELEASE)
        .bind(&claim.effect_key)
        .bind(claim.attempt)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn record(
    pool: &PgPool,
    effect_key: &str,
) -> Result<Option<EffectRecord>, StoreError> {
    let row = sqlx::query(RECORD)
        .bind(effect_key)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(record_from).transpose()
}

fn record_from(row: &PgRow) -> Result<EffectRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let attempt: i32 = row.try_get("attempt")?;
    Ok(EffectRecord {
        effect_key: row.try_get("effect_key")?,
        state: EffectState::parse(&state)?,
        attempt: attempt.max(0) as u32,
        lease_until: row.try_get("lease_until")?,
        first_claimed_at: row.try_get("first_claimed_at")?,
        claimed_at: row.try_get("claimed_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}
