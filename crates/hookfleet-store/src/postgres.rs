//! The PostgreSQL backend.
//!
//! A batch is one statement whatever its size (one round trip, one
//! prepared statement): the events go in as parallel arrays through
//! `UNNEST`, and the count increments are derived from the rows inserted.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Row};
use time::OffsetDateTime;

use crate::window::WindowKey;
use crate::{
    Campaign, MinuteCount, NewEvent, StoreError, StoreOptions, StoredEvent, User, UserKey,
    migrations,
};

/// A whole batch in one statement, so one round trip: the events go in as
/// parallel arrays through `UNNEST`, each with its count key (campaign or
/// `unknown`, and minute, computed in Rust so both backends agree); only
/// the rows actually inserted (`RETURNING`) are counted, grouped per key
/// and upserted in key order, which keeps concurrent writers from
/// deadlocking on count rows. A statement is its own transaction: both
/// tables change, or neither.
const STORE_BATCH: &str = "
    WITH batch AS (
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[]::jsonb[], $12::text[], $13::timestamptz[])
            AS b(event_id, event_type, occurred_at, received_at, campaign, country, region,
                 city, channel, referrer_id, payload, count_campaign, window_start)
    ),
    inserted AS (
        INSERT INTO events (event_id, event_type, occurred_at, received_at, campaign,
                            country, region, city, channel, referrer_id, payload)
        SELECT event_id, event_type, occurred_at, received_at, campaign,
               country, region, city, channel, referrer_id, payload
        FROM batch
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    ),
    counted AS (
        INSERT INTO campaign_minute_counts (campaign, event_type, window_start, count)
        SELECT b.count_campaign, b.event_type, b.window_start, count(*)
        FROM batch b JOIN inserted i ON i.event_id = b.event_id
        GROUP BY b.count_campaign, b.event_type, b.window_start
        ORDER BY b.count_campaign, b.event_type, b.window_start
        ON CONFLICT (campaign, event_type, window_start)
        DO UPDATE SET count = campaign_minute_counts.count + EXCLUDED.count
    )
    SELECT count(*) FROM inserted";

/// Connects a pool to `url` and applies the migrations.
pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<PgPool, StoreError> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?;
    open(connect, options).await
}

/// Creates `schema` if needed, then connects a pool whose connections all
/// use it as their `search_path`, and applies the migrations there.
pub(crate) async fn connect_schema(
    url: &str,
    schema: &str,
    options: &StoreOptions,
) -> Result<PgPool, StoreError> {
    check_schema_name(schema)?;
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("database url: {e}")))?;

    let mut admin = connect.connect().await?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await?;
    admin.close().await?;

    let search_path = format!("\"{schema}\"");
    open(connect.options([("search_path", search_path)]), options).await
}

/// Drops `schema` and everything in it.
pub(crate) async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema_name(schema)?;
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("database url: {e}")))?;
    let mut admin = connect.connect().await?;
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "schema name {schema:?}: use 1 to 63 of a-z, 0-9 and _, not starting with a digit"
        )))
    }
}

async fn open(connect: PgConnectOptions, options: &StoreOptions) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await?;
    migrations::postgres().run(&pool).await?;
    Ok(pool)
}

/// Inserts `events` (unique ids, sorted by id) and adds the inserted ones
/// to their windows, in one statement. Returns how many were inserted.
pub(crate) async fn store_batch(pool: &PgPool, events: &[&NewEvent]) -> Result<usize, StoreError> {
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let occurred: Vec<OffsetDateTime> = events.iter().map(|e| e.occurred_at).collect();
    let received: Vec<OffsetDateTime> = events.iter().map(|e| e.received_at).collect();
    let column = |f: fn(&NewEvent) -> &Option<String>| -> Vec<Option<&str>> {
        events.iter().map(|e| f(e).as_deref()).collect()
    };
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.get()).collect();
    let keys: Vec<WindowKey<'_>> = events.iter().map(|e| WindowKey::of(e)).collect();
    let count_campaigns: Vec<&str> = keys.iter().map(|k| k.campaign).collect();
    let windows: Vec<OffsetDateTime> = keys.iter().map(|k| k.window_start).collect();

    let inserted: i64 = sqlx::query_scalar(STORE_BATCH)
        .bind(&ids)
        .bind(&types)
        .bind(&occurred)
        .bind(&received)
        .bind(column(|e| &e.campaign))
        .bind(column(|e| &e.country))
        .bind(column(|e| &e.region))
        .bind(column(|e| &e.city))
        .bind(column(|e| &e.channel))
        .bind(column(|e| &e.referrer_id))
        .bind(&payloads)
        .bind(&count_campaigns)
        .bind(&windows)
        .fetch_one(pool)
        .await?;
    Ok(usize::try_from(inserted).unwrap_or(0))
}

pub(crate) async fn campaign(pool: &PgPool, id: &str) -> Result<Option<Campaign>, StoreError> {
    let row = sqlx::query(
        "SELECT campaign_id, channel, budget::float8 AS budget, target_audience
         FROM campaigns WHERE campaign_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| campaign_from(&r)).transpose()
}

pub(crate) async fn upsert_campaign(pool: &PgPool, c: &Campaign) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO campaigns (campaign_id, channel, budget, target_audience)
         VALUES ($1, $2, $3::float8, $4)
         ON CONFLICT (campaign_id) DO UPDATE SET channel = EXCLUDED.channel,
             budget = EXCLUDED.budget, target_audience = EXCLUDED.target_audience",
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
    pool: &PgPool,
    column: UserKey,
    value: &str,
) -> Result<Option<User>, StoreError> {
    let sql = match column {
        UserKey::Id => "SELECT id, email, name, referral_token FROM users WHERE id = $1",
        UserKey::ReferralToken => {
            "SELECT id, email, name, referral_token FROM users WHERE referral_token = $1"
        }
    };
    let row = sqlx::query(sql).bind(value).fetch_optional(pool).await?;
    row.map(|r| user_from(&r)).transpose()
}

pub(crate) async fn upsert_user(pool: &PgPool, u: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, name, referral_token) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name,
             referral_token = EXCLUDED.referral_token",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(&u.referral_token)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn event(pool: &PgPool, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let row = sqlx::query(
        "SELECT event_id, event_type, occurred_at, received_at, campaign, country, region,
                city, channel, referrer_id, payload
         FROM events WHERE event_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(StoredEvent {
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        occurred_at: r.try_get("occurred_at")?,
        received_at: r.try_get("received_at")?,
        campaign: r.try_get("campaign")?,
        country: r.try_get("country")?,
        region: r.try_get("region")?,
        city: r.try_get("city")?,
        channel: r.try_get("channel")?,
        referrer_id: r.try_get("referrer_id")?,
        payload: r.try_get("payload")?,
    }))
}

pub(crate) async fn count_events(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?)
}

pub(crate) async fn minute_counts(
    pool: &PgPool,
    campaign: &str,
) -> Result<Vec<MinuteCount>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign, event_type, window_start, count FROM campaign_minute_counts
         WHERE campaign = $1 ORDER BY window_start, event_type",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MinuteCount {
                campaign: r.try_get("campaign")?,
                event_type: r.try_get("event_type")?,
                window_start: r.try_get("window_start")?,
                count: r.try_get("count")?,
            })
        })
        .collect()
}

pub(crate) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

fn campaign_from(r: &PgRow) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        campaign_id: r.try_get("campaign_id")?,
        channel: r.try_get("channel")?,
        budget: r.try_get("budget")?,
        target_audience: r.try_get("target_audience")?,
    })
}

fn user_from(r: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        referral_token: r.try_get("referral_token")?,
    })
}
