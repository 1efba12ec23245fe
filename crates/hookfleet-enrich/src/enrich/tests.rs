use std::collections::HashMap;
use std::sync::Mutex;

use time::macros::datetime;

use super::*;
use crate::lookups::CacheConfig;

const OCCURRED: OffsetDateTime = datetime!(2026-03-01 10:15:20 UTC);
const RECEIVED: OffsetDateTime = datetime!(2026-03-01 10:15:21 UTC);

fn data(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn gb_london() -> GeoFix {
    GeoFix {
        country: Some("GB".into()),
        region: Some("ENG".into()),
        city: Some("London".into()),
    }
}

#[test]
fn facts_are_read_from_data() {
    let facts = Facts::read(&data(json!({
        "campaign": " spring ",
        "country": "DE",
        "ip": "81.2.69.142",
        "referrer_id": 42,
        "referrer_token": "ref_abc",
        "platform": "ios",
    })));
    assert_eq!(
        facts,
        Facts {
            campaign: Some("spring".into()),
            country: Some("DE".into()),
            ip: Some("81.2.69.142".parse().unwrap()),
            referrer_id: Some("42".into()),
            referrer_token: Some("ref_abc".into()),
        }
    );
}

#[test]
fn empty_null_and_odd_fields_are_absent() {
    let facts = Facts::read(&data(json!({
        "campaign": "",
        "country": null,
        "ip": "not an address",
        "referrer_id": {"nested": true},
        "referrer_token": "   ",
    })));
    assert_eq!(facts, Facts::default());
}

#[test]
fn ipv6_address_is_read() {
    let facts = Facts::read(&data(json!({"ip": "2a02:ff0::1"})));
    assert_eq!(facts.ip, Some("2a02:ff0::1".parse().unwrap()));
}

#[test]
fn geo_fills_a_place_the_event_leaves_open() {
    assert_eq!(
        place(None, Some(&gb_london())),
        Place {
            country: Some("GB".into()),
            region: Some("ENG".into()),
            city: Some("London".into()),
        }
    );
}

#[test]
fn event_country_is_kept_over_geo() {
    let kept = place(Some("FR"), Some(&gb_london()));
    assert_eq!(
        kept,
        Place {
            country: Some("FR".into()),
            region: None,
            city: None,
        },
        "a region and city of another country are not attached"
    );
}

#[test]
fn geo_adds_region_and_city_when_it_agrees_on_the_country() {
    assert_eq!(
        place(Some("gb"), Some(&gb_london())),
        Place {
            country: Some("gb".into()),
            region: Some("ENG".into()),
            city: Some("London".into()),
        }
    );
}

#[test]
fn without_geo_only_the_event_country_remains() {
    assert_eq!(place(Some("SE"), None).country.as_deref(), Some("SE"));
    assert_eq!(place(None, None), Place::default());
}

fn incoming(body: &[u8]) -> Incoming<'_> {
    Incoming {
        event_id: "abc123",
        event_type: "referral.completed",
        occurred_at: OCCURRED,
        received_at: RECEIVED,
        body,
    }
}

#[test]
fn compose_sets_every_column_and_the_enrichment() {
    let body = br#"{"event":"referral.completed","timestamp":"2026-03-01T10:15:20Z","data":{"campaign":"spring","ip":"81.2.69.142","referrer_token":"ref_ada"}}"#;
    let envelope = parse_envelope(body).unwrap();
    let facts = Facts::read(data_of(&envelope).unwrap());
    let resolved = Resolved {
        geo: Some(gb_london()),
        campaign: Some(Arc::new(Campaign {
            campaign_id: "spring".into(),
            channel: Some("email".into()),
            budget: Some(100.0),
            target_audience: Some("students".into()),
        })),
        referrer: Some(Arc::new(User {
            id: "usr_ada".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada".into()),
            referral_token: Some("ref_ada".into()),
        })),
    };

    let row = compose(&incoming(body), envelope, facts, resolved).unwrap();

    assert_eq!(row.event_id, "abc123");
    assert_eq!(row.event_type, "referral.completed");
    assert_eq!(row.occurred_at, OCCURRED);
    assert_eq!(row.received_at, RECEIVED);
    assert_eq!(row.campaign.as_deref(), Some("spring"));
    assert_eq!(row.country.as_deref(), Some("GB"));
    assert_eq!(row.region.as_deref(), Some("ENG"));
    assert_eq!(row.city.as_deref(), Some("London"));
    assert_eq!(row.channel.as_deref(), Some("email"));
    assert_eq!(row.referrer_id.as_deref(), Some("usr_ada"));

    let payload: Value = serde_json::from_str(row.payload.get()).unwrap();
    assert_eq!(payload["event"], "referral.completed");
    assert_eq!(
        payload["data"]["referrer_token"], "ref_ada",
        "original data kept"
    );
    assert_eq!(
        payload["enrichment"],
        json!({
            "geo": {"country": "GB", "region": "ENG", "city": "London"},
            "campaign": {
                "campaign_id": "spring",
                "channel": "email",
                "budget": 100.0,
                "target_audience": "students",
            },
            "referrer": {"id": "usr_ada", "email": "ada@example.com", "name": "Ada"},
        })
    );
}

#[test]
fn compose_with_nothing_known_leaves_nulls() {
    let body = br#"{"event":"brand.new","timestamp":"2026-03-01T10:15:20Z","data":{}}"#;
    let envelope = parse_envelope(body).unwrap();
    let facts = Facts::read(data_of(&envelope).unwrap());

    let row = compose(&incoming(body), envelope, facts, Resolved::default()).unwrap();

    assert_eq!(row.campaign, None);
    assert_eq!(row.country, None);
    assert_eq!(row.region, None);
    assert_eq!(row.city, None);
    assert_eq!(row.channel, None);
    assert_eq!(row.referrer_id, None);
    let payload: Value = serde_json::from_str(row.payload.get()).unwrap();
    assert_eq!(
        payload["enrichment"],
        json!({"geo": null, "campaign": null, "referrer": null})
    );
}

#[test]
fn referrer_id_in_the_event_wins_over_the_lookup() {
    let body = br#"{"event":"referral.created","timestamp":"2026-03-01T10:15:20Z","data":{"referrer_id":"usr_given"}}"#;
    let envelope = parse_envelope(body).unwrap();
    let facts = Facts::read(data_of(&envelope).unwrap());

    let row = compose(&incoming(body), envelope, facts, Resolved::default()).unwrap();

    assert_eq!(row.referrer_id.as_deref(), Some("usr_given"));
}

#[test]
fn body_without_object_data_is_malformed_and_permanent() {
    for body in [&b"[1,2]"[..], b"not json", br#"{"event":"x","data":[]}"#] {
        let error = parse_envelope(body)
            .and_then(|e| data_of(&e).map(|_| ()))
            .unwrap_err();
        assert!(matches!(error, EnrichError::Malformed(_)), "{error:?}");
        assert!(!error.is_retryable());
    }
}

/// A directory in memory that can be made to fail.
#[derive(Default)]
struct FakeDirectory {
    campaigns: HashMap<String, Campaign>,
    users: Vec<User>,
    down: Mutex<bool>,
}

impl FakeDirectory {
    fn check(&self) -> Result<(), StoreError> {
        if *self.down.lock().unwrap() {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

impl LookupSource for FakeDirectory {
    async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.check()?;
        Ok(self.campaigns.get(id).cloned())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        Ok(self.users.iter().find(|u| u.id == id).cloned())
    }

    async fn user_by_referral_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        self.check()?;
        Ok(self
            .users
            .iter()
            .find(|u| u.referral_token.as_deref() == Some(token))
            .cloned())
    }
}

fn enricher(directory: FakeDirectory) -> Enricher<FakeDirectory> {
    Enricher::new(
        None,
        Arc::new(Lookups::new(directory, CacheConfig::default())),
    )
}

#[tokio::test]
async fn enrich_resolves_channel_and_referrer_token() {
    let mut directory = FakeDirectory::default();
    directory.campaigns.insert(
        "spring".into(),
        Campaign {
            campaign_id: "spring".into(),
            channel: Some("social".into()),
            budget: None,
            target_audience: None,
        },
    );
    directory.users.push(User {
        id: "usr_ada".into(),
        email: None,
        name: Some("Ada".into()),
        referral_token: Some("ref_ada".into()),
    });
    let body = br#"{"event":"referral.completed","timestamp":"2026-03-01T10:15:20Z","data":{"campaign":"spring","country":"SE","ip":"81.2.69.142","referrer_token":"ref_ada"}}"#;

    let row = enricher(directory).enrich(&incoming(body)).await.unwrap();

    assert_eq!(row.channel.as_deref(), Some("social"));
    assert_eq!(row.referrer_id.as_deref(), Some("usr_ada"));
    assert_eq!(
        row.country.as_deref(),
        Some("SE"),
        "geo off: the event's own"
    );
    assert_eq!(row.city, None);
}

#[tokio::test]
async fn unknown_campaign_and_token_leave_nulls() {
    let body = br#"{"event":"link.clicked","timestamp":"2026-03-01T10:15:20Z","data":{"campaign":"nope","referrer_token":"ref_nobody"}}"#;

    let row = enricher(FakeDirectory::default())
        .enrich(&incoming(body))
        .await
        .unwrap();

    assert_eq!(
        row.campaign.as_deref(),
        Some("nope"),
        "kept: it is what the event says"
    );
    assert_eq!(row.channel, None);
    assert_eq!(row.referrer_id, None);
}

#[tokio::test]
async fn database_down_is_a_retryable_error_not_a_gap() {
    let directory = FakeDirectory::default();
    *directory.down.lock().unwrap() = true;
    let body = br#"{"event":"link.clicked","timestamp":"2026-03-01T10:15:20Z","data":{"campaign":"spring"}}"#;

    let error = enricher(directory)
        .enrich(&incoming(body))
        .await
        .unwrap_err();

    assert!(matches!(error, EnrichError::Lookup(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn events_without_lookups_need_no_database() {
    let directory = FakeDirectory::default();
    *directory.down.lock().unwrap() = true;
    let body = br#"{"event":"install.tracked","timestamp":"2026-03-01T10:15:20Z","data":{"platform":"ios"}}"#;

    let row = enricher(directory).enrich(&incoming(body)).await.unwrap();

    assert_eq!(row.campaign, None);
}
