//! One call per event: duplicates, replicas, a crash mid-call, and the
//! welcome delay across a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use hookfleet_e2e::receiver::Reply;
use hookfleet_e2e::{TestTopology, eventually};
use hookfleet_store::EffectState;

use super::Backend;
use super::fleet::{
    DEADLINE, LEASE, WELCOME_DELAY, assert_call, expected_referral, expected_welcome, install,
    keys, only_call, referral, setup,
};
/// Two replicas drain the same queues while every event arrives twice —
/// referrals and installs resent through ingest (a Tolinku retry), and a
/// referral and an install copied onto their queues (an SQS duplicate):
/// each event makes exactly one call, with its body and key.
pub(super) async fn each_event_is_called_once_even_when_delivered_twice(backend: Backend) {
    let Some(fleet) = setup(backend, TestTopology::new()).await else {
        return;
    };
    let first = fleet.start_worker(&[]).await;
    let second = fleet.start_worker(&[]).await;

    let referrals = [
        fleet
            .send(
                "referral.completed",
                referral("SPRING-1", "u-1", Some("u-9")),
            )
            .await,
        fleet
            .send("referral.completed", referral("SPRING-2", "u-2", None))
            .await,
    ];
    let installs = [
        fleet.send("install.tracked", install("ios")).await,
        fleet.send("install.tracked", install("android")).await,
    ];
    fleet
        .resend("referral.completed", &referrals[0].bytes)
        .await;
    fleet.resend("install.tracked", &installs[0].bytes).await;
    fleet
        .duplicate_on_queue(&fleet.topology.crm, "referral.completed", &referrals[1])
        .await;
    fleet
        .duplicate_on_queue(&fleet.topology.welcome, "install.tracked", &installs[1])
        .await;

    fleet.crm.wait_for(2, DEADLINE).await;
    fleet.welcome.wait_for(2, DEADLINE).await;
    fleet.wait_until_drained().await;

    let crm_calls = fleet.crm.requests();
    assert_eq!(crm_calls.len(), 2, "{crm_calls:#?}");
    for sent in &referrals {
        let call = only_call(&crm_calls, &sent.event_id);
        assert_call(
            call,
            "/api/referrals",
            &sent.event_id,
            &expected_referral(sent),
        );
        let effect = format!("crm:referral:{}", sent.event_id);
        assert_eq!(fleet.ledger(&effect).await, Some((EffectState::Done, 1)));
    }
    let welcome_calls = fleet.welcome.requests();
    assert_eq!(welcome_calls.len(), 2, "{welcome_calls:#?}");
    for sent in &installs {
        let call = only_call(&welcome_calls, &sent.event_id);
        assert_call(
            call,
            "/workflows/welcome",
            &sent.event_id,
            &expected_welcome(sent),
        );
        assert!(
            call.at >= sent.at + WELCOME_DELAY,
            "welcome call {:?} after the install, before the delay",
            call.at - sent.at
        );
        let effect = format!("welcome:{}", sent.event_id);
        assert_eq!(fleet.ledger(&effect).await, Some((EffectState::Done, 1)));
    }

    // The duplicates were seen and skipped, by one replica or the other.
    let mut duplicates = 0.0;
    for worker in [&first, &second] {
        duplicates += worker
            .metric("hookfleet_crm_effects_total{destination=\"crm\",outcome=\"duplicate\"}")
            .await;
        duplicates += worker
            .metric("hookfleet_crm_effects_total{destination=\"welcome\",outcome=\"duplicate\"}")
            .await;
    }
    assert!(duplicates >= 2.0, "{duplicates} duplicates skipped");

    assert!(fleet.dead_letters(&fleet.topology.crm, 0).await.is_empty());
    assert!(
        fleet
            .dead_letters(&fleet.topology.welcome, 0)
            .await
            .is_empty()
    );
    first.stop().await;
    second.stop().await;
    fleet.database.remove().await;
}

/// The CRM holds the answer to the first call; the worker is killed with
/// SIGKILL while it waits (after the call, before the ledger and the
/// delete) and started again. The claim excludes everyone until its lease
/// ends; then the event is called once more with the same key and body,
/// and the ledger records it done, by the second attempt.
pub(super) async fn a_worker_killed_during_its_call_leaves_one_effective_call(backend: Backend) {
    let topology = TestTopology::builder().max_receive_count(5).build();
    let Some(fleet) = setup(backend, topology).await else {
        return;
    };
    fleet
        .crm
        .reply_next(1, Reply::ok().delay(Duration::from_secs(30)));
    let mut doomed = fleet.start_worker(&[]).await;

    let sent = fleet
        .send(
            "referral.completed",
            referral("SPRING-9", "u-7", Some("u-8")),
        )
        .await;
    let effect = format!("crm:referral:{}", sent.event_id);
    fleet.crm.wait_for(1, DEADLINE).await;
    doomed.process.sigkill();
    doomed.process.wait(Duration::from_secs(10)).await;
    assert_eq!(
        fleet.ledger(&effect).await,
        Some((EffectState::InProgress, 1)),
        "the call was claimed and never completed"
    );

    let restarted = fleet.start_worker(&[]).await;
    let calls = fleet.crm.wait_for(2, DEADLINE).await;
    fleet.wait_until_drained().await;

    let calls_now = fleet.crm.requests();
    assert_eq!(calls_now.len(), 2, "{calls_now:#?}");
    assert_eq!(keys(&calls), BTreeSet::from([sent.event_id.clone()]));
    for call in &calls {
        assert_call(
            call,
            "/api/referrals",
            &sent.event_id,
            &expected_referral(&sent),
        );
    }
    // Nobody called while the dead worker's claim held.
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= LEASE - Duration::from_secs(1),
        "second call {gap:?} after the first, inside the {LEASE:?} lease"
    );
    assert_eq!(fleet.ledger(&effect).await, Some((EffectState::Done, 2)));
    assert!(fleet.dead_letters(&fleet.topology.crm, 0).await.is_empty());
    restarted.stop().await;
    fleet.database.remove().await;
}

/// An install is answered by a follow-up on the welcome queue with a
/// message timer; the worker is killed while the timer runs and another
/// one started: the workflow is called once, the delay after the install,
/// not before.
pub(super) async fn the_welcome_call_comes_after_the_delay_even_across_a_restart(backend: Backend) {
    let Some(fleet) = setup(backend, TestTopology::new()).await else {
        return;
    };
    let mut first = fleet.start_worker(&[]).await;
    let sent = fleet.send("install.tracked", install("ios")).await;

    eventually(DEADLINE, "the follow-up to be sent", || async {
        let sent = first
            .metric("hookfleet_crm_welcome_follow_ups_total{result=\"sent\"}")
            .await;
        (sent >= 1.0).then_some(())
    })
    .await;
    assert_eq!(fleet.welcome.count(), 0, "called before the delay");
    first.process.sigkill();
    first.process.wait(Duration::from_secs(10)).await;

    let second = fleet.start_worker(&[]).await;
    let calls = fleet.welcome.wait_for(1, DEADLINE).await;
    fleet.wait_until_drained().await;

    assert_eq!(fleet.welcome.count(), 1);
    let call = only_call(&calls, &sent.event_id);
    assert_call(
        call,
        "/workflows/welcome",
        &sent.event_id,
        &expected_welcome(&sent),
    );
    assert!(
        call.at >= sent.at + WELCOME_DELAY,
        "called {:?} after the install, before the {WELCOME_DELAY:?} delay",
        call.at - sent.at
    );
    let effect = format!("welcome:{}", sent.event_id);
    assert_eq!(fleet.ledger(&effect).await, Some((EffectState::Done, 1)));
    assert_eq!(fleet.crm.count(), 0);
    second.stop().await;
    fleet.database.remove().await;
}
