//! The ledger's protocol on both backends: SQLite in a temporary
//! directory, PostgreSQL in a fresh schema (skipped loudly when it is
//! unreachable outside CI).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{Claim, EffectClaim, EffectState};
use crate::Store;
use crate::testing::on_both_backends;

on_both_backends!(
    first_claim_then_done_then_never_again,
    a_held_claim_excludes_others_until_its_lease_ends,
    an_expired_claim_is_taken_over,
    a_release_frees_the_effect_at_once,
    a_stale_release_does_not_undo_a_takeover,
    racing_claims_have_one_winner,
    racing_takeovers_of_an_expired_claim_have_one_winner,
    bad_keys_and_leases_are_refused,
);

const LEASE: Duration = Duration::from_secs(30);

async fn claimed(store: &Store, key: &str, lease: Duration) -> EffectClaim {
    match store.claim_effect(key, lease).await.expect("claim") {
        Claim::Claimed(claim) => claim,
        other => panic!("expected a claim of {key}, got {other:?}"),
    }
}

async fn first_claim_then_done_then_never_again(store: &Store) {
    let before = OffsetDateTime::now_utc();
    let claim = claimed(store, "crm:referral:a", LEASE).await;
    assert_eq!(claim.attempt(), 1);
    assert_eq!(claim.effect_key(), "crm:referral:a");
    assert!(claim.lease_until() > before + Duration::from_secs(25));

    let record = store.effect("crm:referral:a").await.unwrap().unwrap();
    assert_eq!(record.state, EffectState::InProgress);
    assert_eq!(record.completed_at, None);

    store.complete_effect(&claim).await.unwrap();
    let record = store.effect("crm:referral:a").await.unwrap().unwrap();
    assert_eq!(record.state, EffectState::Done);
    assert_eq!(record.attempt, 1);
    assert!(record.completed_at.is_some());

    // Done is final: neither a claim, a release nor a second completion
    // changes it.
    assert_eq!(
        store.claim_effect("crm:referral:a", LEASE).await.unwrap(),
        Claim::AlreadyDone
    );
    store.release_effect(&claim).await.unwrap();
    store.complete_effect(&claim).await.unwrap();
    assert_eq!(
        store.claim_effect("crm:referral:a", LEASE).await.unwrap(),
        Claim::AlreadyDone
    );
    assert_eq!(store.effect("crm:referral:b").await.unwrap(), None);
}

async fn a_held_claim_excludes_others_until_its_lease_ends(store: &Store) {
    let claim = claimed(store, "welcome:b", LEASE).await;
    match store.claim_effect("welcome:b", LEASE).await.unwrap() {
        Claim::HeldByOther { until } => {
            let difference = (until - claim.lease_until()).abs();
            assert!(difference < time::Duration::milliseconds(1), "{difference}");
        }
        other => panic!("expected HeldByOther, got {other:?}"),
    }
    // Another key is independent.
    claimed(store, "welcome:c", LEASE).await;
}

async fn an_expired_claim_is_taken_over(store: &Store) {
    // A worker claims and "crashes": it never completes or releases.
    let lease = Duration::from_millis(300);
    let crashed = claimed(store, "crm:referral:d", lease).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let takeover = loop {
        match store.claim_effect("crm:referral:d", LEASE).await.unwrap() {
            Claim::Claimed(claim) => break claim,
            Claim::HeldByOther { .. } => {
                assert!(tokio::time::Instant::now() < deadline, "never taken over");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Claim::AlreadyDone => panic!("not done"),
        }
    };
    assert_eq!(takeover.attempt(), crashed.attempt() + 1);
    let record = store.effect("crm:referral:d").await.unwrap().unwrap();
    assert_eq!(record.attempt, 2);
    assert!(record.claimed_at > record.first_claimed_at);
}

async fn a_release_frees_the_effect_at_once(store: &Store) {
    let failed = claimed(store, "crm:referral:e", LEASE).await;
    store.release_effect(&failed).await.unwrap();
    let retry = claimed(store, "crm:referral:e", LEASE).await;
    assert_eq!(retry.attempt(), 2);
    store.complete_effect(&retry).await.unwrap();
    assert_eq!(
        store.claim_effect("crm:referral:e", LEASE).await.unwrap(),
        Claim::AlreadyDone
    );
}

async fn a_stale_release_does_not_undo_a_takeover(store: &Store) {
    // Worker A's lease runs out while it is (slowly) failing; B takes the
    // effect over; A's late release must not free B's claim.
    let slow = claimed(store, "welcome:f", Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let takeover = claimed(store, "welcome:f", LEASE).await;
    store.release_effect(&slow).await.unwrap();
    assert!(matches!(
        store.claim_effect("welcome:f", LEASE).await.unwrap(),
        Claim::HeldByOther { .. }
    ));
    store.complete_effect(&takeover).await.unwrap();
}

async fn racing_claims_have_one_winner(store: &Store) {
    for round in 0..5 {
        let key = format!("crm:referral:race-{round}");
        let winners = race(store, &key, 8).await;
        assert_eq!(winners, 1, "round {round}");
    }
}

async fn racing_takeovers_of_an_expired_claim_have_one_winner(store: &Store) {
    for round in 0..5 {
        let key = format!("welcome:takeover-{round}");
        claimed(store, &key, Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let winners = race(store, &key, 8).await;
        assert_eq!(winners, 1, "round {round}");
        let record = store.effect(&key).await.unwrap().unwrap();
        assert_eq!(record.attempt, 2, "round {round}");
    }
}

/// `contenders` tasks claim `key` at once; returns how many got it.
async fn race(store: &Store, key: &str, contenders: usize) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(contenders));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..contenders {
        let (store, key, start) = (store.clone(), key.to_owned(), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            store.claim_effect(&key, LEASE).await.expect("claim")
        });
    }
    let mut winners = 0;
    while let Some(claim) = tasks.join_next().await {
        match claim.expect("task") {
            Claim::Claimed(_) => winners += 1,
            Claim::HeldByOther { .. } => {}
            Claim::AlreadyDone => panic!("nobody completed {key}"),
        }
    }
    winners
}

async fn bad_keys_and_leases_are_refused(store: &Store) {
    assert!(store.claim_effect("", LEASE).await.is_err());
    let long = "k".repeat(super::MAX_EFFECT_KEY_LEN + 1);
    assert!(store.claim_effect(&long, LEASE).await.is_err());
    assert!(store.claim_effect("k", Duration::ZERO).await.is_err());
    assert!(
        store
            .claim_effect("k", super::MAX_LEASE + Duration::from_secs(1))
            .await
            .is_err()
    );
}
