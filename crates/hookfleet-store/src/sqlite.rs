//! The embedded SQLite backend.
//!
//! One file, in WAL mode so readers never wait for the writer, with a busy
//! timeout so that writers from several tasks queue instead of failing.
//! Write transactions start with `BEGIN IMMEDIATE`: they take the write
//! lock up front (waiting under the busy timeout) rather than failing
//! halfway when a read lock cannot be upgraded. `synchronous` is `FULL`
//! (not WAL's common `NORMAL`): a committed batch survives a power cut,
//! which matters because the queue message is deleted right after the
//! commit.
//!
//! A batch is one transaction of multi-row `INSERT`s, at most
//! [`ROWS_PER_STATEMENT`] rows each.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::window::window_counts;
use crate::{
    Campaign, MinuteCount, NewEvent, StoreError, StoreOptions, StoredEvent, User, UserKey,
    migrations,
};

/// Rows per multi-row `INSERT`, well under SQLite's 32,766 bound
/// parameters (11 per event row).
const ROWS_PER_STATEMENT: usize = 500;

/// How timestamps are stored: UTC, microseconds, fixed width, so that text
/// order is time order.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Opens (creating if needed) the database file at `path`.
pub(crate) async fn connect_file(
    path: &Path,
    options: &StoreOptions,
) -> Result<SqlitePool, StoreError> {
    open(SqliteConnectOptions::new().filename(path), options).await
}

/// Opens the database a `sqlite://` URL names. An in-memory database is
/// refused: each pooled connection would have its own, and every event
/// would be lost at exit.
pub(crate) async fn connect_url(
    url: &str,
    options: &StoreOptions,
) -> Result<SqlitePool, StoreError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config(
            "DATABASE_URL: an in-memory SQLite database would lose every event; name a file".into(),
        ));
    }
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?;
    open(connect, options).await
}

async fn open(
    connect: SqliteConnectOptions,
    options: &StoreOptions,
) -> Result<SqlitePool, StoreError> {
    let connect = connect
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(options.sqlite_busy_timeout)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await?;
    migrations::sqlite().run(&pool).await?;
    Ok(pool)
}

/// Inserts `events` (unique ids, sorted by id) and adds the inserted ones
/// to their windows, in one transaction. Returns how many were inserted.
pub(crate) async fn store_batch(
    pool: &SqlitePool,
    events: &[&NewEvent],
) -> Result<usize, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;

    let mut inserted: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (event_id, event_type, occurred_at, received_at, campaign, \
             country, region, city, channel, referrer_id, payload) ",
        );
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(e.event_id.as_str())
                .push_bind(e.event_type.as_str())
                .push_bind(time_text(e.occurred_at))
                .push_bind(time_text(e.received_at))
                .push_bind(e.campaign.as_deref())
                .push_bind(e.country.as_deref())
                .push_bind(e.region.as_deref())
                .push_bind(e.city.as_deref())
                .push_bind(e.channel.as_deref())
                .push_bind(e.referrer_id.as_deref())
                .push_bind(e.payload.get());
        });
        insert.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
        let ids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
        inserted.extend(ids);
    }

    let counts = window_counts(
        events
            .iter()
            .copied()
            .filter(|e| inserted.contains(&e.event_id)),
    );
    let counts: Vec<_> = counts.into_iter().collect();
    for chunk in counts.chunks(ROWS_PER_STATEMENT) {
        let mut upsert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO campaign_minute_counts (campaign, event_type, window_start, count) ",
        );
        upsert.push_values(chunk, |mut row, (key, increment)| {
            row.push_bind(key.campaign)
                .push_bind(key.event_type)
                .push_bind(time_text(key.window_start))
                .push_bind(*increment);
        });
        upsert.push(
            " ON CONFLICT (campaign, event_type, window_start) \
             DO UPDATE SET count = count + excluded.count",
        );
        upsert.build().execute(&mut *tx).await?;
    }

    tx.commit().await?;
    Ok(inserted.len())
}

pub(crate) async fn campaign(pool: &SqlitePool, id: &str) -> Result<Option<Campaign>, StoreError> {
    let row = sqlx::query(
        "SELECT campaign_id, channel, budget, target_audience
         FROM campaigns WHERE campaign_id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| campaign_from(&r)).transpose()
}

pub(crate) async fn upsert_campaign(pool: &SqlitePool, c: &Campaign) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, channel, budget, target_audience)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (campaign_id) DO UPDATE SET channel = excluded.channel,
             budget = excluded.budget, target_audience = excluded.target_audience",
    )
    .bind(&c.campaign_id)
    .bind(&c.channel)
    .bind(c.budget)
    .bind(&c.target_audience)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn user_where(
    pool: &SqlitePool,
    column: UserKey,
    value: &str,
) -> Result<Option<User>, StoreError> {
    let sql = match column {
        UserKey::Id => "SELECT id, email, name, referral_token FROM users WHERE id = ?",
        UserKey::ReferralToken => {
            "SELECT id, email, name, referral_token FROM users WHERE referral_token = ?"
        }
    };
    let row = sqlx::query(sql).bind(value).fetch_optional(pool).await?;
    row.map(|r| user_from(&r)).transpose()
}

pub(crate) async fn upsert_user(pool: &SqlitePool, u: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, name, referral_token) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name,
             referral_token = excluded.referral_token",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(&u.referral_token)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn event(pool: &SqlitePool, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let row = sqlx::query(
        "SELECT event_id, event_type, occurred_at, received_at, campaign, country, region,
                city, channel, referrer_id, payload
         FROM events WHERE event_id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let payload: String = r.try_get("payload")?;
    Ok(Some(StoredEvent {
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        occurred_at: parse_time(&r.try_get::<String, _>("occurred_at")?)?,
        received_at: parse_time(&r.try_get::<String, _>("received_at")?)?,
        campaign: r.try_get("campaign")?,
        country: r.try_get("country")?,
        region: r.try_get("region")?,
        city: r.try_get("city")?,
        channel: r.try_get("channel")?,
        referrer_id: r.try_get("referrer_id")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Invalid(format!("stored payload is not JSON: {e}")))?,
    }))
}

pub(crate) async fn count_events(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?)
}

pub(crate) async fn minute_counts(
    pool: &SqlitePool,
    campaign: &str,
) -> Result<Vec<MinuteCount>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign, event_type, window_start, count FROM campaign_minute_counts
         WHERE campaign = ? ORDER BY window_start, event_type",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MinuteCount {
                campaign: r.try_get("campaign")?,
                event_type: r.try_get("event_type")?,
                window_start: parse_time(&r.try_get::<String, _>("window_start")?)?,
                count: r.try_get("count")?,
            })
        })
        .collect()
}

pub(crate) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

fn campaign_from(r: &SqliteRow) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        campaign_id: r.try_get("campaign_id")?,
        channel: r.try_get("channel")?,
        budget: r.try_get("budget")?,
        target_audience: r.try_get("target_audience")?,
    })
}

fn user_from(r: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        referral_token: r.try_get("referral_token")?,
    })
}

/// `at` as stored: `2026-03-01T10:15:00.000000Z`.
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn times_are_fixed_width_utc_and_round_trip() {
        let at = datetime!(2026-03-01 12:15:07.25 +02:00);
        let text = time_text(at);
        assert_eq!(text, "2026-03-01T10:15:07.250000Z");
        assert_eq!(parse_time(&text).unwrap(), at);
    }

    #[test]
    fn text_order_is_time_order() {
        let earlier = time_text(datetime!(2026-03-01 10:15:00 UTC));
        let later = time_text(datetime!(2026-03-01 10:15:00.000001 UTC));
        assert!(earlier < later);
    }
}
