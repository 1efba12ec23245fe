//! What the store promises, written once and run on both backends.

use hookfleet_store::{Campaign, InsertReport, MinuteCount, Store, UNKNOWN_CAMPAIGN, User};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::support::event;

const T0: OffsetDateTime = datetime!(2026-03-01 10:15:20.5 UTC);

fn counts(rows: &[MinuteCount]) -> Vec<(String, String, u8, i64)> {
    rows.iter()
        .map(|r| {
            (
                r.campaign.clone(),
                r.event_type.clone(),
                r.window_start.minute(),
                r.count,
            )
        })
        .collect()
}

fn row(campaign: &str, event_type: &str, minute: u8, count: i64) -> (String, String, u8, i64) {
    (campaign.into(), event_type.into(), minute, count)
}

pub(crate) async fn stores_event_with_its_columns(store: &Store) {
    let mut e = event("e1", Some("spring"), "link.clicked", T0);
    e.country = Some("GB".into());
    e.region = Some("ENG".into());
    e.city = Some("London".into());
    e.channel = Some("email".into());
    e.referrer_id = Some("usr_1".into());

    let report = store.insert_events(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 0
        }
    );

    let stored = store.event("e1").await.unwrap().expect("stored");
    assert_eq!(stored.event_type, "link.clicked");
    assert_eq!(stored.occurred_at, T0);
    assert_eq!(stored.received_at, T0 + time::Duration::seconds(1));
    assert_eq!(stored.campaign.as_deref(), Some("spring"));
    assert_eq!(stored.country.as_deref(), Some("GB"));
    assert_eq!(stored.region.as_deref(), Some("ENG"));
    assert_eq!(stored.city.as_deref(), Some("London"));
    assert_eq!(stored.channel.as_deref(), Some("email"));
    assert_eq!(stored.referrer_id.as_deref(), Some("usr_1"));
    let payload: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
    assert_eq!(stored.payload, payload);
    assert!(store.event("nope").await.unwrap().is_none());
}

pub(crate) async fn duplicate_in_same_batch_counted_once(store: &Store) {
    let batch = [
        event("a", Some("spring"), "link.clicked", T0),
        event("b", Some("spring"), "link.clicked", T0),
        event("a", Some("spring"), "link.clicked", T0),
    ];

    let report = store.insert_events(&batch).await.unwrap();

    assert_eq!(
        report,
        InsertReport {
            inserted: 2,
            duplicates: 1
        }
    );
    assert_eq!(store.count_events().await.unwrap(), 2);
    assert_eq!(
        counts(&store.minute_counts("spring").await.unwrap()),
        [row("spring", "link.clicked", 15, 2)]
    );
}

pub(crate) async fn duplicate_across_batches_changes_nothing(store: &Store) {
    let first = [
        event("a", Some("spring"), "link.clicked", T0),
        event("b", Some("spring"), "install.tracked", T0),
    ];
    store.insert_events(&first).await.unwrap();
    let before = store.minute_counts("spring").await.unwrap();

    // A redelivery of both, and of one next to a new event.
    let again = store.insert_events(&first).await.unwrap();
    let mixed = store
        .insert_events(&[
            event("b", Some("spring"), "install.tracked", T0),
            event("c", Some("spring"), "link.clicked", T0),
        ])
        .await
        .unwrap();

    assert_eq!(
        again,
        InsertReport {
            inserted: 0,
            duplicates: 2
        }
    );
    assert_eq!(
        mixed,
        InsertReport {
            inserted: 1,
            duplicates: 1
        }
    );
    assert_eq!(
        counts(&before),
        [
            row("spring", "install.tracked", 15, 1),
            row("spring", "link.clicked", 15, 1)
        ]
    );
    assert_eq!(
        counts(&store.minute_counts("spring").await.unwrap()),
        [
            row("spring", "install.tracked", 15, 1),
            row("spring", "link.clicked", 15, 2)
        ]
    );
    assert_eq!(store.count_events().await.unwrap(), 3);
}

pub(crate) async fn late_event_counts_in_its_own_minute(store: &Store) {
    store
        .insert_events(&[event("now", Some("spring"), "link.clicked", T0)])
        .await
        .unwrap();

    // Tolinku's last retry arrives 36 minutes after the event.
    let occurred = T0 - time::Duration::minutes(36);
    let mut late = event("late", Some("spring"), "link.clicked", occurred);
    late.received_at = T0;
    store.insert_events(&[late]).await.unwrap();

    let rows = store.minute_counts("spring").await.unwrap();
    assert_eq!(
        counts(&rows),
        [
            row("spring", "link.clicked", 39, 1),
            row("spring", "link.clicked", 15, 1)
        ]
    );
    assert_eq!(rows[0].window_start, datetime!(2026-03-01 09:39:00 UTC));
    assert_eq!(rows[1].window_start, datetime!(2026-03-01 10:15:00 UTC));
}

pub(crate) async fn missing_campaign_counts_as_unknown(store: &Store) {
    store
        .insert_events(&[
            event("x", None, "link.clicked", T0),
            event("y", None, "brand.new_type", T0),
        ])
        .await
        .unwrap();

    assert_eq!(
        counts(&store.minute_counts(UNKNOWN_CAMPAIGN).await.unwrap()),
        [
            row("unknown", "brand.new_type", 15, 1),
            row("unknown", "link.clicked", 15, 1)
        ]
    );
    let stored = store.event("x").await.unwrap().unwrap();
    assert_eq!(stored.campaign, None, "the event keeps a null campaign");
}

pub(crate) async fn counts_add_up_over_several_batches(store: &Store) {
    let minute = |m: i64| T0 + time::Duration::minutes(m);
    let mut expected_clicks = [0_i64; 3];
    for batch in 0..5 {
        let events: Vec<_> = (0..7)
            .map(|i| {
                let m = (batch + i) % 3;
                expected_clicks[m as usize] += 1;
                event(
                    &format!("b{batch}-{i}"),
                    Some("autumn"),
                    "link.clicked",
                    minute(m),
                )
            })
            .collect();
        let report = store.insert_events(&events).await.unwrap();
        assert_eq!(report.inserted, 7);
    }
    // One batch redelivered: nothing changes.
    let redelivered: Vec<_> = (0..7)
        .map(|i| event(&format!("b2-{i}"), Some("autumn"), "link.clicked", T0))
        .collect();
    assert_eq!(store.insert_events(&redelivered).await.unwrap().inserted, 0);

    let rows = store.minute_counts("autumn").await.unwrap();
    assert_eq!(
        counts(&rows),
        [
            row("autumn", "link.clicked", 15, expected_clicks[0]),
            row("autumn", "link.clicked", 16, expected_clicks[1]),
            row("autumn", "link.clicked", 17, expected_clicks[2]),
        ]
    );
    assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 35);
}

pub(crate) async fn concurrent_overlapping_batches_count_exactly_once(store: &Store) {
    // Eight writers at once, each with 20 events of which most are shared
    // with the others, in a different order per writer.
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..8_usize {
        let store = store.clone();
        tasks.spawn(async move {
            let mut events: Vec<_> = (0..20)
                .map(|i| {
                    let id = format!("shared-{}", (i + writer * 3) % 30);
                    event(&id, Some("race"), "link.clicked", T0)
                })
                .collect();
            events.rotate_left(writer);
            store.insert_events(&events).await.expect("insert")
        });
    }
    let mut inserted = 0;
    while let Some(report) = tasks.join_next().await {
        inserted += report.unwrap().inserted;
    }

    assert_eq!(
        inserted, 30,
        "each distinct event inserted by exactly one writer"
    );
    assert_eq!(
        counts(&store.minute_counts("race").await.unwrap()),
        [row("race", "link.clicked", 15, 30)]
    );
}

pub(crate) async fn large_batch_is_stored_in_one_call(store: &Store) {
    // More rows than one SQLite statement takes.
    let events: Vec<_> = (0..1234)
        .map(|i| event(&format!("big-{i:05}"), Some("big"), "link.clicked", T0))
        .collect();

    let report = store.insert_events(&events).await.unwrap();

    assert_eq!(
        report,
        InsertReport {
            inserted: 1234,
            duplicates: 0
        }
    );
    assert_eq!(
        counts(&store.minute_counts("big").await.unwrap()),
        [row("big", "link.clicked", 15, 1234)]
    );
}

pub(crate) async fn empty_batch_does_nothing(store: &Store) {
    assert_eq!(
        store.insert_events(&[]).await.unwrap(),
        InsertReport::default()
    );
    assert_eq!(store.count_events().await.unwrap(), 0);
}

pub(crate) async fn campaign_lookup(store: &Store) {
    let spring = Campaign {
        campaign_id: "spring".into(),
        channel: Some("email".into()),
        budget: Some(1250.5),
        target_audience: Some("students".into()),
    };
    store.upsert_campaign(&spring).await.unwrap();

    assert_eq!(
        store.campaign("spring").await.unwrap(),
        Some(spring.clone())
    );
    assert_eq!(store.campaign("winter").await.unwrap(), None);

    let moved = Campaign {
        channel: Some("social".into()),
        budget: None,
        ..spring
    };
    store.upsert_campaign(&moved).await.unwrap();
    assert_eq!(store.campaign("spring").await.unwrap(), Some(moved));
}

pub(crate) async fn user_lookups_by_id_and_referral_token(store: &Store) {
    let ada = User {
        id: "usr_ada".into(),
        email: Some("ada@example.com".into()),
        name: Some("Ada".into()),
        referral_token: Some("ref_ada".into()),
    };
    let bob = User {
        id: "usr_bob".into(),
        email: None,
        name: None,
        referral_token: None,
    };
    store.upsert_user(&ada).await.unwrap();
    store.upsert_user(&bob).await.unwrap();

    assert_eq!(
        store.user_by_id("usr_ada").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(store.user_by_id("usr_bob").await.unwrap(), Some(bob));
    assert_eq!(
        store.user_by_referral_token("ref_ada").await.unwrap(),
        Some(ada)
    );
    assert_eq!(store.user_by_id("usr_nobody").await.unwrap(), None);
    assert_eq!(
        store.user_by_referral_token("ref_nobody").await.unwrap(),
        None
    );
}
