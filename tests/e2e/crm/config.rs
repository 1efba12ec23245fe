//! Settings: destinations off, and `--check-config`.

use hookfleet_e2e::process::run;
use hookfleet_e2e::{TestTopology, eventually};
use hookfleet_store::EffectState;

use super::Backend;
use super::fleet::{DEADLINE, install, referral, setup};

/// With both URLs unset, nothing is called: each effect is logged and
/// still recorded once in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_urls_log_the_calls_and_still_record_them() {
    let Some(fleet) = setup(Backend::Sqlite, TestTopology::new()).await else {
        return;
    };
    let worker = fleet
        .start_worker(&[
            ("HOOKFLEET_CRM_URL", ""),
            ("HOOKFLEET_WELCOME_URL", ""),
            ("HOOKFLEET_WELCOME_DELAY", "0"),
        ])
        .await;
    let referral = fleet
        .send("referral.completed", referral("SPRING-4", "u-4", None))
        .await;
    let install = fleet.send("install.tracked", install("ios")).await;
    let effects = [
        format!("crm:referral:{}", referral.event_id),
        format!("welcome:{}", install.event_id),
    ];
    // The ledger first: the queues also read empty before SNS has
    // delivered, and while a receive is taking messages.
    eventually(DEADLINE, "both effects recorded once", || async {
        for effect in &effects {
            if fleet.ledger(effect).await != Some((EffectState::Done, 1)) {
                return None;
            }
        }
        Some(())
    })
    .await;
    fleet.wait_until_drained().await;
    let logged = worker
        .metric("hookfleet_crm_calls_total{destination=\"crm\",result=\"logged\"}")
        .await
        + worker
            .metric("hookfleet_crm_calls_total{destination=\"welcome\",result=\"logged\"}")
            .await;
    assert_eq!(logged, 2.0);
    assert_eq!(fleet.crm.count() + fleet.welcome.count(), 0);
    worker.stop().await;
    fleet.database.remove().await;
}

/// `--check-config` validates without the network or the database; a bad
/// setting exits 2 with one line naming it.
#[tokio::test]
async fn check_config_validates_without_the_network() {
    let bin = hookfleet_e2e::bin("hookfleet-crm");
    let topology = TestTopology::new();
    let mut env = topology.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    env.push((
        "HOOKFLEET_QUEUE".into(),
        format!(
            "hookfleet-crm={},hookfleet-welcome={}",
            topology.crm, topology.welcome
        ),
    ));
    env.push((
        "DATABASE_URL".into(),
        "postgres://nobody:secret@127.0.0.1:9/none".into(),
    ));
    env.push((
        "HOOKFLEET_CRM_URL".into(),
        "https://crm.example.com/api".into(),
    ));
    env.push(("HOOKFLEET_WELCOME_DELAY".into(), "90s".into()));

    let ok = run(&bin, &["--check-config"], &env).await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("configuration ok: "), "{ok:?}");
    assert!(
        ok.stdout.contains("welcome off (only logged) after 90 s"),
        "{ok:?}"
    );
    assert!(!ok.stdout.contains("secret"), "{ok:?}");

    for (key, value, setting) in [
        ("HOOKFLEET_WELCOME_DELAY", "20m", "HOOKFLEET_WELCOME_DELAY"),
        (
            "HOOKFLEET_WELCOME_DELAY",
            "1500ms",
            "HOOKFLEET_WELCOME_DELAY",
        ),
        ("HOOKFLEET_CRM_URL", "crm.example.com", "HOOKFLEET_CRM_URL"),
        ("HOOKFLEET_WELCOME_URL", "ftp://x", "HOOKFLEET_WELCOME_URL"),
        (
            "HOOKFLEET_EFFECT_LEASE_SECS",
            "5",
            "HOOKFLEET_EFFECT_LEASE_SECS",
        ),
    ] {
        let mut bad = env.clone();
        bad.retain(|(k, _)| k != key);
        bad.push((key.into(), value.into()));
        let output = run(&bin, &["--check-config"], &bad).await;
        assert_eq!(output.code, Some(2), "{key}={value}: {output:?}");
        let line = output.stderr.trim();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(setting), "{key}={value}: {line}");
    }
}
