//! When the CRM fails: an outage longer than the redrive limit, and a
//! refusal.

use std::time::Duration;

use hookfleet_e2e::receiver::{Recorded, Reply};
use hookfleet_e2e::{TestTopology, eventually};
use hookfleet_store::EffectState;
use tokio::time::Instant;

use super::Backend;
use super::fleet::{
    DEADLINE, assert_call, expected_referral, install, keys, only_call, referral, setup,
};
/// The CRM answers 503 for longer than `maxReceiveCount` × visibility
/// (5 × 4 s): its breaker opens, the CRM queue stops being received from,
/// and nothing reaches the DLQ. Installs sent meanwhile are called on
/// time. Once the CRM is back, every referral is delivered exactly once.
pub(super) async fn a_crm_outage_loses_nothing_and_does_not_stop_welcome_calls(backend: Backend) {
    let topology = TestTopology::builder()
        .max_receive_count(5)
        .visibility_timeout_secs(4)
        .build();
    let outage = Duration::from_secs(
        u64::from(topology.max_receive_count * topology.visibility_timeout_secs) + 4,
    );
    let Some(fleet) = setup(backend, topology).await else {
        return;
    };
    fleet
        .crm
        .reply_always(Reply::status(503).body("down for maintenance"));
    // Probes every 10 s: over the outage a referral is received at most
    // 1 + 2 (failed probes) + 1 (delivered) = 4 times, under the 5 allowed.
    let worker = fleet
        .start_worker(&[
            ("HOOKFLEET_BREAKER_FAILURES", "2"),
            ("HOOKFLEET_BREAKER_COOLDOWN_SECS", "10"),
        ])
        .await;

    let mut referrals = Vec::new();
    for n in 0..3 {
        let code = format!("OUTAGE-{n}");
        referrals.push(
            fleet
                .send("referral.completed", referral(&code, "u-1", None))
                .await,
        );
    }
    fleet.crm.wait_for(2, DEADLINE).await;
    let outage_started = Instant::now();
    eventually(DEADLINE, "the CRM breaker to open", || async {
        let status = worker.status().await;
        let crm = status["breakers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["destination"] == "crm")
            .cloned()
            .unwrap_or_default();
        (crm["state"] == "open").then_some(())
    })
    .await;

    // Welcome calls keep coming while the CRM is down.
    let installs = [
        fleet.send("install.tracked", install("ios")).await,
        fleet.send("install.tracked", install("android")).await,
    ];
    fleet.welcome.wait_for(2, DEADLINE).await;
    assert!(
        outage_started.elapsed() < outage,
        "the welcome calls came only after the outage"
    );

    tokio::time::sleep_until(outage_started + outage).await;
    let failed_calls = fleet.crm.count();
    fleet.crm.reply_always(Reply::ok());

    fleet
        .crm
        .wait_until(DEADLINE, "every referral delivered", |requests| {
            let delivered: Vec<Recorded> =
                requests.iter().filter(|r| r.succeeded()).cloned().collect();
            keys(&delivered).len() == referrals.len()
        })
        .await;
    fleet.wait_until_drained().await;

    let delivered = fleet.crm.successful();
    assert_eq!(delivered.len(), referrals.len(), "{delivered:#?}");
    for sent in &referrals {
        let call = only_call(&delivered, &sent.event_id);
        assert_call(
            call,
            "/api/referrals",
            &sent.event_id,
            &expected_referral(sent),
        );
    }
    // The breaker kept the failures down to a few, not one per receive.
    assert!(
        failed_calls <= referrals.len() + 3,
        "{failed_calls} failed calls during the outage"
    );
    let welcomed = fleet.welcome.requests();
    assert_eq!(welcomed.len(), installs.len());
    for sent in &installs {
        only_call(&welcomed, &sent.event_id);
    }
    assert!(fleet.dead_letters(&fleet.topology.crm, 0).await.is_empty());
    assert!(
        fleet
            .dead_letters(&fleet.topology.welcome, 0)
            .await
            .is_empty()
    );
    worker.stop().await;
    fleet.database.remove().await;
}

/// The CRM refuses a referral with 400: the event goes to the CRM's DLQ
/// with `HTTP 400: <first line>` as `error`, the ledger lets it be made
/// again after a redrive, and the next referral goes through.
pub(super) async fn a_400_from_the_crm_dead_letters_the_event_with_its_status(backend: Backend) {
    let Some(fleet) = setup(backend, TestTopology::new()).await else {
        return;
    };
    fleet.crm.reply_next(
        1,
        Reply::status(400).body("unknown referral code SPRING-X\nsee the docs"),
    );
    let worker = fleet.start_worker(&[]).await;

    let refused = fleet
        .send("referral.completed", referral("SPRING-X", "u-3", None))
        .await;
    let dead = fleet.dead_letters(&fleet.topology.crm, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (attributes, body) = &dead[0];
    assert_eq!(body.as_bytes(), refused.bytes.as_slice());
    assert_eq!(
        attributes["error"],
        "HTTP 400: unknown referral code SPRING-X"
    );
    assert_eq!(attributes["event_id"], refused.event_id);
    assert_eq!(attributes["event_type"], "referral.completed");
    assert_eq!(attributes["worker"], "hookfleet-crm");
    assert_eq!(attributes["receive_count"], "1");
    let effect = format!("crm:referral:{}", refused.event_id);
    assert_eq!(
        fleet.ledger(&effect).await,
        Some((EffectState::InProgress, 1)),
        "released, not done: a redrive may make it again"
    );

    let accepted = fleet
        .send("referral.completed", referral("SPRING-3", "u-3", None))
        .await;
    fleet.crm.wait_for(2, DEADLINE).await;
    fleet.wait_until_drained().await;
    let calls = fleet.crm.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].answered, 400);
    assert_call(
        only_call(&calls, &accepted.event_id),
        "/api/referrals",
        &accepted.event_id,
        &expected_referral(&accepted),
    );
    worker.stop().await;
    fleet.database.remove().await;
}
