//! From a received event to the row analytics stores (SPEC §8).
//!
//! The rules, in the order they are applied:
//!
//! - `campaign` is `data.campaign` (a string, or a number written as one).
//! - `country` is the event's own `data.country` when it carries one; only
//!   otherwise does the GeoIP answer for `data.ip` fill it. `region` and
//!   `city` come from GeoIP, and only when GeoIP's country agrees with the
//!   row's country: a region of one country next to another country would
//!   be a made-up place.
//! - `channel` is the campaign's, from `campaigns`; null when the campaign
//!   is not there.
//! - `referrer_id` is `data.referrer_id`; without one, the id of the user
//!   whose `referral_token` is `data.referrer_token`.
//! - The payload is the original envelope with one more top-level key,
//!   `enrichment`: what GeoIP said about `data.ip` (`geo`), the campaign
//!   row (`campaign`) and the referrer's identity (`referrer`: id, email,
//!   name), each `null` when unknown.
//!
//! A failed lookup (database unavailable) fails the event, to be retried;
//! a body that is not an envelope fails it for good.

use std::net::IpAddr;
use std::sync::Arc;

use hookfleet_store::{Campaign, NewEvent, Store, StoreError, User};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::geo::{GeoFix, GeoIp};
use crate::lookups::{LookupSource, Lookups};

/// One received event, as the worker has it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The deduplication key (SPEC §5).
    pub event_id: &'a str,
    /// The envelope's `event`.
    pub event_type: &'a str,
    /// The envelope's `timestamp`.
    pub occurred_at: OffsetDateTime,
    /// When ingest received it (the `received_at` attribute).
    pub received_at: OffsetDateTime,
    /// The raw envelope: `{"event", "timestamp", "data"}`.
    pub body: &'a [u8],
}

/// Why an event could not be enriched.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// A campaign or user lookup failed; see [`StoreError::is_retryable`].
    #[error("lookup failed: {0}")]
    Lookup(#[from] StoreError),
    /// The body is not an envelope with an object `data`. Permanent.
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl EnrichError {
    /// Whether enriching the same event later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lookup(error) => error.is_retryable(),
            Self::Malformed(_) => false,
        }
    }
}

/// Turns received events into [`NewEvent`] rows. Cheap to clone.
pub struct Enricher<S = Store> {
    geo: Option<GeoIp>,
    lookups: Arc<Lookups<S>>,
}

impl<S> Clone for Enricher<S> {
    fn clone(&self) -> Self {
        Self {
            geo: self.geo.clone(),
            lookups: self.lookups.clone(),
        }
    }
}

impl<S: LookupSource> Enricher<S> {
    /// An enricher using `geo` (none: geo enrichment is off) and `lookups`.
    pub fn new(geo: Option<GeoIp>, lookups: Arc<Lookups<S>>) -> Self {
        Self { geo, lookups }
    }

    /// The GeoIP database, if geo enrichment is on.
    pub fn geo(&self) -> Option<&GeoIp> {
        self.geo.as_ref()
    }

    /// The cached lookups.
    pub fn lookups(&self) -> &Lookups<S> {
        &self.lookups
    }

    /// The row to store for `incoming`; see the module docs for the rules.
    pub async fn enrich(&self, incoming: &Incoming<'_>) -> Result<NewEvent, EnrichError> {
        let envelope = parse_envelope(incoming.body)?;
        let facts = Facts::read(data_of(&envelope)?);

        let geo = match (&self.geo, facts.ip) {
            (Some(geo), Some(ip)) => geo.lookup(ip),
            _ => None,
        };
        let campaign = match &facts.campaign {
            Some(id) => self.lookups.campaign(id).await?,
            None => None,
        };
        let referrer = match (&facts.referrer_id, &facts.referrer_token) {
            (Some(id), _) => self.lookups.user_by_id(id).await?,
            (None, Some(token)) => self.lookups.user_by_referral_token(token).await?,
            (None, None) => None,
        };

        compose(
            incoming,
            envelope,
            facts,
            Resolved {
                geo,
                campaign,
                referrer,
            },
        )
    }
}

/// What the event says about itself, read from `data`.
#[derive(Debug, Default, PartialEq)]
struct Facts {
    campaign: Option<String>,
    country: Option<String>,
    ip: Option<IpAddr>,
    referrer_id: Option<String>,
    referrer_token: Option<String>,
}

impl Facts {
    fn read(data: &Map<String, Value>) -> Self {
        Self {
            campaign: text(data, "campaign"),
            country: text(data, "country"),
            ip: text(data, "ip").and_then(|ip| ip.parse().ok()),
            referrer_id: text(data, "referrer_id"),
            referrer_token: text(data, "referrer_token"),
        }
    }
}

/// What the database and GeoIP said.
#[derive(Debug, Default)]
struct Resolved {
    geo: Option<GeoFix>,
    campaign: Option<Arc<Campaign>>,
    referrer: Option<Arc<User>>,
}

/// The row's `country`, `region` and `city`.
#[derive(Debug, Default, PartialEq)]
struct Place {
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
}

/// The event's own country wins; GeoIP fills what the event leaves open,
/// and adds region and city only where it agrees on the country.
fn place(event_country: Option<&str>, geo: Option<&GeoFix>) -> Place {
    let Some(geo) = geo else {
        return Place {
            country: event_country.map(str::to_owned),
            ..Place::default()
        };
    };
    let Some(country) = event_country else {
        return Place {
            country: geo.country.clone(),
            region: geo.region.clone(),
            city: geo.city.clone(),
        };
    };
    let agrees = geo
        .country
        .as_deref()
        .is_some_and(|g| g.eq_ignore_ascii_case(country));
    Place {
        country: Some(country.to_owned()),
        region: geo.region.clone().filter(|_| agrees),
        city: geo.city.clone().filter(|_| agrees),
    }
}

fn compose(
    incoming: &Incoming<'_>,
    mut envelope: Map<String, Value>,
    facts: Facts,
    resolved: Resolved,
) -> Result<NewEvent, EnrichError> {
    let place = place(facts.country.as_deref(), resolved.geo.as_ref());
    let referrer_id = facts
        .referrer_id
        .or_else(|| resolved.referrer.as_ref().map(|u| u.id.clone()));

    let enrichment = json!({
        "geo": resolved.geo,
        "campaign": resolved.campaign.as_deref().map(|c| json!({
            "campaign_id": c.campaign_id,
            "channel": c.channel,
            "budget": c.budget,
            "target_audience": c.target_audience,
        })),
        "referrer": resolved.referrer.as_deref().map(|u| json!({
            "id": u.id,
            "email": u.email,
            "name": u.name,
        })),
    });
    envelope.insert("enrichment".to_owned(), enrichment);
    let payload = serde_json::to_string(&envelope)
        .and_then(RawValue::from_string)
        .map_err(|e| EnrichError::Malformed(format!("payload does not serialise: {e}")))?;

    Ok(NewEvent {
        event_id: incoming.event_id.to_owned(),
        event_type: incoming.event_type.to_owned(),
        occurred_at: incoming.occurred_at,
        received_at: incoming.received_at,
        campaign: facts.campaign,
        country: place.country,
        region: place.region,
        city: place.city,
        channel: resolved.campaign.and_then(|c| c.channel.clone()),
        referrer_id,
        payload,
    })
}

fn parse_envelope(body: &[u8]) -> Result<Map<String, Value>, EnrichError> {
    serde_json::from_slice(body)
        .map_err(|e| EnrichError::Malformed(format!("body is not a JSON object: {e}")))
}

fn data_of(envelope: &Map<String, Value>) -> Result<&Map<String, Value>, EnrichError> {
    envelope
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| EnrichError::Malformed("field `data` must be an object".into()))
}

/// A non-empty string field, trimmed; a number counts as its decimal text.
fn text(data: &Map<String, Value>, key: &str) -> Option<String> {
    match data.get(key)? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
