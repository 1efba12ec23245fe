//! Alerting state on both backends: SQLite in a temporary directory,
//! PostgreSQL in a fresh schema (skipped loudly when it is unreachable
//! outside CI).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{Delivery, NewAlert, PruneReport, subject_lock_key};
use crate::Store;
use crate::testing::on_both_backends;

on_both_backends!(
    an_event_counts_once_in_its_minute,
    concurrent_counts_of_one_subject_are_exact,
    a_cooldown_lets_one_alert_through_per_key,
    racing_firings_of_one_key_have_one_winner,
    the_outbox_claims_retries_and_completes,
    concurrent_claims_are_disjoint,
    pruning_drops_what_is_past_the_horizon,
);

const T0: OffsetDateTime = datetime!(2026-12-03 10:15:30 UTC);

fn alert<'a>(key: &'a str, details: &'a serde_json::Value, at: OffsetDateTime) -> NewAlert<'a> {
    NewAlert {
        alert_key: key,
        rule: "broken_link",
        details,
        at,
        cooldown: Duration::from_secs(600),
        deliver: true,
    }
}

/// Counts `event_id` in `scope` at `at` in its own transaction; returns
/// whether it was new.
async fn count(store: &Store, event_id: &str, scope: &str, at: OffsetDateTime) -> bool {
    let mut tx = store.begin_alerting().await.unwrap();
    if !tx.record_event(event_id, at).await.unwrap() {
        tx.rollback().await.unwrap();
        return false;
    }
    tx.lock_subjects(&[scope]).await.unwrap();
    tx.add_to_windows(&[(scope, at)]).await.unwrap();
    tx.commit().await.unwrap();
    true
}

async fn an_event_counts_once_in_its_minute(store: &Store) {
    assert!(count(store, "e1", "click:spring", T0).await);
    assert!(!count(store, "e1", "click:spring", T0).await, "a repeat");
    assert!(count(store, "e2", "click:spring", T0 + Duration::from_secs(20)).await);
    assert!(count(store, "e3", "click:spring", T0 + Duration::from_secs(40)).await);

    let counts = store.alert_window_counts("click:spring").await.unwrap();
    let got: Vec<(u8, i64)> = counts
        .iter()
        .map(|c| (c.window_start.minute(), c.count))
        .collect();
    assert_eq!(got, [(15, 2), (16, 1)]);
    assert_eq!(counts[0].window_start, datetime!(2026-12-03 10:15 UTC));

    // Reading a range: both scopes at once, minutes inclusive.
    let mut tx = store.begin_alerting().await.unwrap();
    tx.add_to_windows(&[("install:spring", T0), ("click:spring", T0)])
        .await
        .unwrap();
    let read = tx
        .window_counts(
            &["click:spring", "install:spring"],
            T0,
            T0 + Duration::from_secs(60),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let read: Vec<(&str, u8, i64)> = read
        .iter()
        .map(|c| (c.scope.as_str(), c.window_start.minute(), c.count))
        .collect();
    assert_eq!(
        read,
        [
            ("click:spring", 15, 3),
            ("click:spring", 16, 1),
            ("install:spring", 15, 1)
        ]
    );
    // The rollback undid the increments.
    assert_eq!(
        store.alert_window_counts("click:spring").await.unwrap()[0].count,
        2
    );
}

/// Many concurrent transactions on one subject, each counting itself in a
/// different minute and reading the total: with the subject lock every
/// total is distinct, so each one saw all the others that committed
/// before it.
async fn concurrent_counts_of_one_subject_are_exact(store: &Store) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let at = T0 + Duration::from_secs(60 * (i % 5));
            let mut tx = store.begin_alerting().await.unwrap();
            assert!(tx.record_event(&format!("c{i}"), at).await.unwrap());
            tx.lock_subjects(&["campaign:x", "campaign:x"])
                .await
                .unwrap();
            tx.add_to_windows(&[("click:x", at)]).await.unwrap();
            let total: i64 = tx
                .window_counts(&["click:x"], T0, T0 + Duration::from_secs(600))
                .await
                .unwrap()
                .iter()
                .map(|c| c.count)
                .sum();
            tx.commit().await.unwrap();
            total
        });
    }
    let mut totals = HashSet::new();
    while let Some(total) = tasks.join_next().await {
        assert!(
            totals.insert(total.unwrap()),
            "two transactions saw one total"
        );
    }
    assert_eq!(totals, (1..=24).collect());
}

async fn a_cooldown_lets_one_alert_through_per_key(store: &Store) {
    let details = json!({"campaign": "spring", "clicks": 12});
    let mut tx = store.begin_alerting().await.unwrap();
    let first = tx.fire(&alert("broken_link:spring", &details, T0)).await;
    let again = tx
        .fire(&alert(
            "broken_link:spring",
            &details,
            T0 + Duration::from_secs(599),
        ))
        .await;
    let other_key = tx.fire(&alert("broken_link:autumn", &details, T0)).await;
    tx.commit().await.unwrap();
    assert!(first.unwrap().is_some());
    assert_eq!(again.unwrap(), None, "inside the cooldown");
    assert!(other_key.unwrap().is_some());

    // At the end of the cooldown (event time) the key fires again; an
    // alert without delivery is only stored.
    let mut tx = store.begin_alerting().await.unwrap();
    let mut later = alert(
        "broken_link:spring",
        &details,
        T0 + Duration::from_secs(600),
    );
    later.deliver = false;
    assert!(tx.fire(&later).await.unwrap().is_some());
    tx.commit().await.unwrap();

    let alerts = store.alerts().await.unwrap();
    let keys: Vec<&str> = alerts.iter().map(|a| a.alert_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "broken_link:spring",
            "broken_link:autumn",
            "broken_link:spring"
        ]
    );
    assert_eq!(alerts[0].details, details);
    assert_eq!(alerts[0].rule, "broken_link");
    assert_eq!(
        alerts[0].delivery,
        Delivery::Pending {
            attempts: 0,
            last_error: None
        }
    );
    assert_eq!(alerts[2].delivery, Delivery::NotRequested);
    assert!(alerts[0].fired_at > OffsetDateTime::now_utc() - Duration::from_secs(60));
    assert_eq!(store.pending_alert_deliveries().await.unwrap(), 2);
}

async fn racing_firings_of_one_key_have_one_winner(store: &Store) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        let store = store.clone();
        tasks.spawn(async move {
            let details = json!({"i": i});
            let at = T0 + Duration::from_millis(i);
            let mut tx = store.begin_alerting().await.unwrap();
            let fired = tx
                .fire(&alert("referral_fraud:ip:1.2.3.4", &details, at))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            fired.is_some()
        });
    }
    let mut winners = 0;
    while let Some(fired) = tasks.join_next().await {
        winners += usize::from(fired.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.alerts().await.unwrap().len(), 1);
}

async fn the_outbox_claims_retries_and_completes(store: &Store) {
    let details = json!({});
    let mut tx = store.begin_alerting().await.unwrap();
    let a = tx.fire(&alert("k:a", &details, T0)).await.unwrap().unwrap();
    let b = tx.fire(&alert("k:b", &details, T0)).await.unwrap().unwrap();
    let c = tx.fire(&alert("k:c", &details, T0)).await.unwrap().unwrap();
    tx.commit().await.unwrap();

    let lease = Duration::from_secs(30);
    let claimed = store.claim_alert_deliveries(10, lease).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|p| p.id).collect();
    assert_eq!(ids, [a, b, c]);
    assert_eq!(claimed[1].alert_key, "k:b");
    assert_eq!(claimed[1].attempts, 0);
    assert!(
        store
            .claim_alert_deliveries(10, lease)
            .await
            .unwrap()
            .is_empty(),
        "claimed rows are leased"
    );

    store.complete_alert_delivery(a).await.unwrap();
    store
        .retry_alert_delivery(b, Duration::from_millis(300), "slack answered 503\nbusy")
        .await
        .unwrap();
    store.release_alert_delivery(c).await.unwrap();

    // c is due at once; b after its delay, with one attempt counted.
    let again = store.claim_alert_deliveries(10, lease).await.unwrap();
    assert_eq!(again.iter().map(|p| p.id).collect::<Vec<_>>(), [c]);
    assert_eq!(again[0].attempts, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retried = store.claim_alert_deliveries(10, lease).await.unwrap();
    assert_eq!(retried.iter().map(|p| p.id).collect::<Vec<_>>(), [b]);
    assert_eq!(retried[0].attempts, 1);
    store
        .abandon_alert_delivery(b, "slack said 404")
        .await
        .unwrap();
    store.complete_alert_delivery(c).await.unwrap();
    // Settling twice changes nothing.
    store.complete_alert_delivery(c).await.unwrap();

    let alerts = store.alerts().await.unwrap();
    assert!(matches!(
        alerts[0].delivery,
        Delivery::Delivered { attempts: 1, .. }
    ));
    assert!(
        matches!(&alerts[1].delivery, Delivery::Abandoned { error, .. } if error == "slack said 404")
    );
    assert!(matches!(
        alerts[2].delivery,
        Delivery::Delivered { attempts: 1, .. }
    ));
    assert_eq!(store.pending_alert_deliveries().await.unwrap(), 0);
}

async fn concurrent_claims_are_disjoint(store: &Store) {
    let details = json!({});
    let mut tx = store.begin_alerting().await.unwrap();
    for i in 0..30 {
        tx.fire(&alert(&format!("k:{i}"), &details, T0))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_alert_deliveries(4, Duration::from_secs(30))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|p| p.id));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(mine) = tasks.join_next().await {
        all.extend(mine.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 30, "every alert claimed once: {all:?}");
    assert_eq!(unique.len(), 30);
}

async fn pruning_drops_what_is_past_the_horizon(store: &Store) {
    let old = T0 - Duration::from_secs(7200);
    assert!(count(store, "old", "click:x", old).await);
    assert!(count(store, "new", "click:x", T0).await);
    let details = json!({});
    let mut tx = store.begin_alerting().await.unwrap();
    tx.fire(&alert("k:old", &details, old)).await.unwrap();
    tx.fire(&alert("k:new", &details, T0)).await.unwrap();
    tx.commit().await.unwrap();

    let report = store
        .prune_alerting(T0 - Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        report,
        PruneReport {
            events: 1,
            window_counts: 1,
            cooldowns: 1
        }
    );
    assert_eq!(store.alert_window_counts("click:x").await.unwrap().len(), 1);
    // Alerts are kept, and the pruned event id may count again.
    assert_eq!(store.alerts().await.unwrap().len(), 2);
    assert!(count(store, "old", "click:x", old).await);
}

#[test]
fn lock_keys_are_stable() {
    // FNV-1a's published test vectors: the keys must never change, or
    // replicas of different versions would stop excluding each other.
    assert_eq!(subject_lock_key(""), 0x811c_9dc5_u32 as i32);
    assert_eq!(subject_lock_key("a"), 0xe40c_292c_u32 as i32);
    assert_eq!(subject_lock_key("foobar"), 0xbf9c_f968_u32 as i32);
}
