//! The rows the store reads and writes.

use serde_json::value::RawValue;
use time::OffsetDateTime;

/// One event to store: a row of `events` (SPEC §8).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The deduplication key: lowercase hex SHA-256 of the raw body.
    pub event_id: String,
    /// The envelope's `event`, e.g. `link.clicked`.
    pub event_type: String,
    /// The envelope's `timestamp`. Its minute is the event's window.
    pub occurred_at: OffsetDateTime,
    /// When ingest received the webhook.
    pub received_at: OffsetDateTime,
    /// The campaign id, if the event names one.
    pub campaign: Option<String>,
    /// ISO 3166-1 country code.
    pub country: Option<String>,
    /// ISO code of the first subdivision (state, region).
    pub region: Option<String>,
    /// City name in English.
    pub city: Option<String>,
    /// The campaign's channel, from `campaigns`.
    pub channel: Option<String>,
    /// The referring user's id.
    pub referrer_id: Option<String>,
    /// The enriched event as JSON text.
    pub payload: Box<RawValue>,
}

/// What one [`insert_events`](crate::Store::insert_events) call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Events stored by this call (and counted in `campaign_minute_counts`).
    pub inserted: usize,
    /// Events skipped because their `event_id` was already stored, earlier
    /// or in the same call.
    pub duplicates: usize,
}

/// A row of `campaigns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// The id events carry in `data.campaign`.
    pub campaign_id: String,
    /// Where the campaign runs (`email`, `social`, …).
    pub channel: Option<String>,
    /// The campaign's budget, in its own currency. Read as a float, which
    /// is fine for enrichment and display, not for accounting.
    pub budget: Option<f64>,
    /// Free text describing the audience.
    pub target_audience: Option<String>,
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id, as events carry it in `referrer_id`.
    pub id: String,
    /// The user's email address.
    pub email: Option<String>,
    /// The user's display name.
    pub name: Option<String>,
    /// The token in the user's referral links (`data.referrer_token`).
    pub referral_token: Option<String>,
}

/// A stored event, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// See [`NewEvent::event_id`].
    pub event_id: String,
    /// See [`NewEvent::event_type`].
    pub event_type: String,
    /// See [`NewEvent::occurred_at`].
    pub occurred_at: OffsetDateTime,
    /// See [`NewEvent::received_at`].
    pub received_at: OffsetDateTime,
    /// See [`NewEvent::campaign`].
    pub campaign: Option<String>,
    /// See [`NewEvent::country`].
    pub country: Option<String>,
    /// See [`NewEvent::region`].
    pub region: Option<String>,
    /// See [`NewEvent::city`].
    pub city: Option<String>,
    /// See [`NewEvent::channel`].
    pub channel: Option<String>,
    /// See [`NewEvent::referrer_id`].
    pub referrer_id: Option<String>,
    /// The stored payload.
    pub payload: serde_json::Value,
}

/// A row of `campaign_minute_counts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The campaign, or [`UNKNOWN_CAMPAIGN`](crate::UNKNOWN_CAMPAIGN).
    pub campaign: String,
    /// The event type.
    pub event_type: String,
    /// The event time truncated to the minute, UTC.
    pub window_start: OffsetDateTime,
    /// Events stored in that minute.
    pub count: i64,
}
