//! What the rules need to know about one event, read from its envelope.

use std::net::IpAddr;

use hookfleet_enrich::GeoIp;
use hookfleet_event::Envelope;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The longest value taken from an event into a key (campaign, IP,
/// referrer), in characters. Longer values are cut: keys stay bounded
/// whatever a sender puts in `data`.
pub const MAX_VALUE_CHARS: usize = 200;

/// What kind of event this is, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `link.clicked`.
    Click,
    /// `install.tracked` or `deferred_link.claimed`: proof a link works.
    Conversion,
    /// `referral.created` or `referral.completed`.
    Referral,
    /// Anything else: no rule looks at it.
    Other,
}

impl Kind {
    /// The kind of an event type.
    pub fn of(event_type: &str) -> Self {
        match event_type {
            "link.clicked" => Self::Click,
            "install.tracked" | "deferred_link.claimed" => Self::Conversion,
            "referral.created" | "referral.completed" => Self::Referral,
            _ => Self::Other,
        }
    }
}

/// Where a click's country came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountrySource {
    /// The event's own `data.country`.
    Event,
    /// GeoIP of `data.ip`.
    GeoIp,
}

impl CountrySource {
    /// `event` or `geoip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::GeoIp => "geoip",
        }
    }
}

/// One event, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The deduplication key (SPEC §5).
    pub event_id: String,
    /// The envelope's `event`.
    pub event_type: String,
    /// What the rules make of the type.
    pub kind: Kind,
    /// The envelope's `timestamp`, UTC: windows and cooldowns run on it.
    pub occurred_at: OffsetDateTime,
    /// `data.campaign` (a string, or a number written as one).
    pub campaign: Option<String>,
    /// `data.ip`, normalised when it parses as an address.
    pub ip: Option<String>,
    /// `data.referrer_id`.
    pub referrer_id: Option<String>,
    /// `data.url`, for the alert's details.
    pub url: Option<String>,
    /// The country (ISO 3166-1 alpha-2, upper case) and where it came
    /// from: `data.country`, else GeoIP (see [`Facts::resolve_country`]).
    pub country: Option<(String, CountrySource)>,
}

impl Facts {
    /// Reads the facts of `envelope`. `data` is an object (the envelope
    /// checked it); fields of the wrong type count as absent.
    pub fn read(event_id: String, envelope: &Envelope<'_>) -> Result<Self, serde_json::Error> {
        let data: Map<String, Value> = serde_json::from_str(envelope.data().get())?;
        let country = text(&data, "country")
            .map(|c| c.to_ascii_uppercase())
            .map(|c| (c, CountrySource::Event));
        let ip = text(&data, "ip").map(|raw| match raw.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => raw,
        });
        Ok(Self {
            event_id,
            event_type: envelope.event_type().to_owned(),
            kind: Kind::of(envelope.event_type()),
            occurred_at: envelope.occurred_at(),
            campaign: text(&data, "campaign"),
            ip,
            referrer_id: text(&data, "referrer_id"),
            url: text(&data, "url"),
            country,
        })
    }

    /// Fills the country from GeoIP of `data.ip` when the event carries
    /// none (never overriding the event's own).
    pub fn resolve_country(&mut self, geo: Option<&GeoIp>) {
        if self.country.is_some() {
            return;
        }
        let (Some(geo), Some(ip)) = (geo, &self.ip) else {
            return;
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return;
        };
        self.country = geo
            .lookup(ip)
            .and_then(|fix| fix.country)
            .map(|c| (c.to_ascii_uppercase(), CountrySource::GeoIp));
    }
}

/// A non-empty string field (or a number, written as text), trimmed and
/// cut to [`MAX_VALUE_CHARS`].
fn text(data: &Map<String, Value>, field: &str) -> Option<String> {
    let value = match data.get(field)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if value.is_empty() {
        return None;
    }
    Some(value.chars().take(MAX_VALUE_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str) -> Facts {
        let envelope = Envelope::parse(body.as_bytes()).unwrap();
        Facts::read("e1".into(), &envelope).unwrap()
    }

    #[test]
    fn reads_the_fields_the_rules_use() {
        let f = facts(
            r#"{"event":"link.clicked","timestamp":"2026-12-03T12:15:30+02:00",
                "data":{"campaign":42,"ip":" 2001:DB8::1 ","country":"gb","url":"https://x/y",
                        "referrer_id":""}}"#,
        );
        assert_eq!(f.kind, Kind::Click);
        assert_eq!(f.campaign.as_deref(), Some("42"));
        assert_eq!(f.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(f.country, Some(("GB".into(), CountrySource::Event)));
        assert_eq!(f.referrer_id, None, "empty is absent");
        assert_eq!(
            f.occurred_at,
            time::macros::datetime!(2026-12-03 10:15:30 UTC)
        );
    }

    #[test]
    fn odd_values_are_absent_or_bounded() {
        let long = "c".repeat(500);
        let f = facts(&format!(
            r#"{{"event":"referral.created","timestamp":"2026-12-03T10:15:30Z",
                "data":{{"campaign":"{long}","ip":"not-an-ip","referrer_id":["x"]}}}}"#
        ));
        assert_eq!(f.kind, Kind::Referral);
        assert_eq!(f.campaign.unwrap().len(), MAX_VALUE_CHARS);
        assert_eq!(f.ip.as_deref(), Some("not-an-ip"));
        assert_eq!(f.referrer_id, None);
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("deferred_link.claimed"), Kind::Conversion);
        assert_eq!(Kind::of("install.tracked"), Kind::Conversion);
        assert_eq!(Kind::of("referral.completed"), Kind::Referral);
        assert_eq!(Kind::of("ecommerce.purchase"), Kind::Other);
    }

    #[test]
    fn geoip_fills_only_a_missing_country() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/GeoIP2-City-Test.mmdb"
        );
        let geo = GeoIp::open(path).unwrap();
        let mut f = facts(
            r#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z",
                "data":{"ip":"81.2.69.142"}}"#,
        );
        f.resolve_country(Some(&geo));
        assert_eq!(f.country, Some(("GB".into(), CountrySource::GeoIp)));

        let mut own = facts(
            r#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z",
                "data":{"ip":"81.2.69.142","country":"XX"}}"#,
        );
        own.resolve_country(Some(&geo));
        assert_eq!(own.country, Some(("XX".into(), CountrySource::Event)));
    }
}
