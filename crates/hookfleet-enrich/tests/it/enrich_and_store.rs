//! Enrichment with the real pieces: the GeoIP fixture and a store on each
//! backend, down to the stored row.

use std::sync::Arc;

use hookfleet_enrich::{CacheConfig, Enricher, GeoIp, Incoming, Lookups};
use hookfleet_store::{Campaign, Store, User};
use time::macros::datetime;

use crate::base_fixture;

async fn seed(store: &Store) {
    store
        .upsert_campaign(&Campaign {
            campaign_id: "spring".into(),
            channel: Some("email".into()),
            budget: Some(500.0),
            target_audience: Some("students".into()),
        })
        .await
        .unwrap();
    store
        .upsert_user(&User {
            id: "usr_ada".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada".into()),
            referral_token: Some("ref_ada".into()),
        })
        .await
        .unwrap();
}

async fn enrich_and_store(store: &Store) {
    seed(store).await;
    let geo = GeoIp::open(base_fixture()).unwrap();
    let lookups = Arc::new(Lookups::new(store.clone(), CacheConfig::default()));
    let enricher = Enricher::new(Some(geo), lookups);

    let click = br#"{"event":"link.clicked","timestamp":"2026-03-01T10:15:20Z","data":{"campaign":"spring","ip":"2a02:ff0::7"}}"#;
    let referral = br#"{"event":"referral.completed","timestamp":"2026-03-01T10:16:02Z","data":{"campaign":"spring","ip":"81.2.69.142","country":"GB","referrer_token":"ref_ada"}}"#;
    let private = br#"{"event":"install.tracked","timestamp":"2026-03-01T10:16:30Z","data":{"ip":"10.0.0.5"}}"#;
    let mut rows = Vec::new();
    for (id, event_type, at, body) in [
        (
            "e-click",
            "link.clicked",
            datetime!(2026-03-01 10:15:20 UTC),
            &click[..],
        ),
        (
            "e-referral",
            "referral.completed",
            datetime!(2026-03-01 10:16:02 UTC),
            &referral[..],
        ),
        (
            "e-private",
            "install.tracked",
            datetime!(2026-03-01 10:16:30 UTC),
            &private[..],
        ),
    ] {
        let incoming = Incoming {
            event_id: id,
            event_type,
            occurred_at: at,
            received_at: at,
            body,
        };
        rows.push(enricher.enrich(&incoming).await.unwrap());
    }
    let report = store.insert_events(&rows).await.unwrap();
    assert_eq!(report.inserted, 3);

    let click = store.event("e-click").await.unwrap().unwrap();
    assert_eq!(
        (
            click.country.as_deref(),
            click.region.as_deref(),
            click.city.as_deref()
        ),
        (Some("SE"), Some("AB"), Some("Stockholm"))
    );
    assert_eq!(click.channel.as_deref(), Some("email"));
    assert_eq!(click.payload["enrichment"]["campaign"]["budget"], 500.0);

    let referral = store.event("e-referral").await.unwrap().unwrap();
    assert_eq!(referral.referrer_id.as_deref(), Some("usr_ada"));
    assert_eq!(referral.city.as_deref(), Some("London"));
    assert_eq!(referral.payload["enrichment"]["referrer"]["name"], "Ada");

    let private = store.event("e-private").await.unwrap().unwrap();
    assert_eq!(
        (
            private.country,
            private.region,
            private.city,
            private.campaign
        ),
        (None, None, None, None)
    );
    assert_eq!(
        store.minute_counts("spring").await.unwrap().len(),
        2,
        "one click in :15, one referral in :16"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enriched_events_are_stored_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(None, dir.path()).await.unwrap();
    enrich_and_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enriched_events_are_stored_on_postgres() {
    let Some(db) = hookfleet_store::testing::postgres("enrich").await else {
        return;
    };
    enrich_and_store(db.store()).await;
    db.drop().await;
}
