//! `hookfleet-analytics` against LocalStack, on PostgreSQL (a fresh schema
//! per test) and on the embedded SQLite file (a temporary directory):
//! enrichment from the GeoIP fixture and the lookup tables, duplicates
//! stored and counted once, late and unknown events, poison in the DLQ
//! with its reason, a database outage that loses nothing, and
//! `--check-config`.

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use hookfleet_e2e::analytics::{Analytics, TestDatabase, geoip_fixture, with_search_path};
use hookfleet_e2e::cuttable::{Cuttable, redirect};
use hookfleet_e2e::ingest::{Ingest, body, post_signed};
use hookfleet_e2e::process::run;
use hookfleet_e2e::topology::receive_all;
use hookfleet_e2e::{Aws, TestTopology, eventually, localstack, reqwest_client, unique};
use hookfleet_event::EventId;
use hookfleet_store::{Campaign, MinuteCount, StoredEvent, User};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

/// How long a test waits for the worker to get through what it was sent.
const DEADLINE: Duration = Duration::from_secs(60);

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Postgres,
    Sqlite,
}

/// LocalStack, a fresh topology and a fresh database; `None` (skipped,
/// said on stderr) when LocalStack or PostgreSQL is unreachable outside CI.
async fn setup(
    backend: Backend,
    topology: TestTopology,
) -> Option<(Aws, TestTopology, TestDatabase)> {
    let aws = localstack().await?;
    let database = match backend {
        Backend::Postgres => TestDatabase::postgres("analytics_e2e").await?,
        Backend::Sqlite => TestDatabase::sqlite().await,
    };
    topology.apply().await;
    Some((aws, topology, database))
}

#[tokio::test]
async fn enriches_stores_and_counts_each_event_once_on_postgres() {
    enriches_stores_and_counts_each_event_once(Backend::Postgres).await;
}

#[tokio::test]
async fn enriches_stores_and_counts_each_event_once_on_sqlite() {
    enriches_stores_and_counts_each_event_once(Backend::Sqlite).await;
}

/// Through the real ingest and the real worker: geo from the fixture,
/// channel from `campaigns`, referrer from `users`; the same bytes twice
/// through ingest and the same message twice on the queue stored and
/// counted once; a late event in its own minute; an unknown type stored.
async fn enriches_stores_and_counts_each_event_once(backend: Backend) {
    let Some((aws, topology, database)) = setup(backend, TestTopology::new()).await else {
        return;
    };
    let store = database.store();
    store
        .upsert_campaign(&Campaign {
            campaign_id: "spring".into(),
            channel: Some("email".into()),
            budget: Some(1500.0),
            target_audience: Some("new users".into()),
        })
        .await
        .unwrap();
    store
        .upsert_user(&User {
            id: "u-42".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada".into()),
            referral_token: Some("tok-42".into()),
        })
        .await
        .unwrap();

    let mut env = topology.env();
    env.extend(database.env());
    let geoip = geoip_fixture().display().to_string();
    let analytics = Analytics::start(
        &topology.analytics,
        &env,
        &[("HOOKFLEET_GEOIP_DB", geoip.as_str())],
    )
    .await;
    let ingest = Ingest::start(&topology.env(), &[]).await;
    let client = reqwest_client();
    let url = ingest.webhook_url();
    let started = OffsetDateTime::now_utc();

    let click = body(
        "link.clicked",
        json!({"ip": "81.2.69.142", "campaign": "spring"}),
    );
    let referral = body(
        "referral.created",
        json!({"ip": "2a02:ff0::1", "campaign": "spring", "referrer_token": "tok-42",
               "referral_code": "ADA42"}),
    );
    let install = body(
        "install.tracked",
        json!({"ip": "216.160.83.56", "country": "CA", "platform": "ios"}),
    );
    let future = body(
        "some.future_type",
        json!({"ip": "10.1.2.3", "campaign": "spring"}),
    );
    let ghost = body("link.clicked", json!({"campaign": "ghost"}));
    // Tolinku retries up to 36 minutes later: this one happened at 09:39.
    let late = serde_json::to_vec(&json!({
        "event": "link.clicked",
        "timestamp": "2026-12-03T09:39:10Z",
        "data": {"campaign": "spring", "nonce": unique("late")},
    }))
    .unwrap();

    for (event_type, bytes) in [
        ("link.clicked", &click),
        ("referral.created", &referral),
        ("install.tracked", &install),
        ("some.future_type", &future),
        ("link.clicked", &ghost),
        ("link.clicked", &late),
        // A Tolinku retry: the same bytes again.
        ("link.clicked", &click),
    ] {
        let answer = post_signed(&client, &url, event_type, bytes.clone()).await;
        assert_eq!(answer.status, 200, "{event_type}: {answer:?}");
    }
    // An SQS redelivery, as far as the worker can tell: the same message
    // (body and attributes) twice on the queue.
    let queue_url = topology.queue_url(&aws, &topology.analytics).await;
    let redelivered = body(
        "link.clicked",
        json!({"ip": "81.2.69.142", "campaign": "spring"}),
    );
    for _ in 0..2 {
        send(&aws, &queue_url, &redelivered).await;
    }

    eventually(DEADLINE, "9 messages processed", || async {
        (analytics.processed("done").await >= 9).then_some(())
    })
    .await;

    let stored = |bytes: &Vec<u8>| {
        let id = EventId::of_body(bytes).to_hex();
        async move { store.event(&id).await.unwrap().expect("stored") }
    };

    let event = stored(&click).await;
    assert_eq!(place(&event), (Some("GB"), Some("ENG"), Some("London")));
    assert_eq!(event.campaign.as_deref(), Some("spring"));
    assert_eq!(event.channel.as_deref(), Some("email"));
    assert_eq!(event.referrer_id, None);
    assert_eq!(event.occurred_at, datetime!(2026-12-03 10:15:30 UTC));
    assert!(
        event.received_at >= started - Duration::from_secs(5)
            && event.received_at <= OffsetDateTime::now_utc(),
        "received_at {} is ingest's clock",
        event.received_at
    );
    let payload = &event.payload;
    assert_eq!(payload["event"], "link.clicked");
    assert_eq!(payload["data"]["campaign"], "spring");
    assert_eq!(payload["enrichment"]["geo"]["city"], "London");
    assert_eq!(payload["enrichment"]["campaign"]["channel"], "email");
    assert_eq!(payload["enrichment"]["campaign"]["budget"], 1500.0);

    let event = stored(&referral).await;
    assert_eq!(place(&event), (Some("SE"), Some("AB"), Some("Stockholm")));
    assert_eq!(event.referrer_id.as_deref(), Some("u-42"));
    assert_eq!(
        event.payload["enrichment"]["referrer"],
        json!({"id": "u-42", "email": "ada@example.com", "name": "Ada"})
    );

    // The event's own country wins; GeoIP (US, WA, Milton) disagrees, so
    // it adds no region or city.
    let event = stored(&install).await;
    assert_eq!(place(&event), (Some("CA"), None, None));
    assert_eq!(event.campaign, None);

    // An unknown type is stored; a private address is never looked up
    // (the fixture has a decoy record for it).
    let event = stored(&future).await;
    assert_eq!(event.event_type, "some.future_type");
    assert_eq!(place(&event), (None, None, None));
    assert_eq!(event.channel.as_deref(), Some("email"));

    let event = stored(&ghost).await;
    assert_eq!(event.campaign.as_deref(), Some("ghost"));
    assert_eq!(event.channel, None);

    let event = stored(&late).await;
    assert_eq!(event.occurred_at, datetime!(2026-12-03 09:39:10 UTC));
    stored(&redelivered).await;

    assert_eq!(store.count_events().await.unwrap(), 7);
    assert_eq!(
        counts(store.minute_counts("spring").await.unwrap()),
        [
            "09:39 link.clicked 1",
            "10:15 link.clicked 2",
            "10:15 referral.created 1",
            "10:15 some.future_type 1",
        ]
    );
    assert_eq!(
        counts(store.minute_counts("unknown").await.unwrap()),
        ["10:15 install.tracked 1"]
    );
    assert_eq!(
        counts(store.minute_counts("ghost").await.unwrap()),
        ["10:15 link.clicked 1"]
    );

    assert_eq!(
        analytics
            .metric("hookfleet_analytics_events_stored_total")
            .await,
        7.0
    );
    assert_eq!(
        analytics
            .metric("hookfleet_analytics_events_duplicate_total")
            .await,
        2.0
    );
    assert_eq!(analytics.processed("gave_up").await, 0);
    assert_eq!(analytics.processed("retried").await, 0);
    let dlq = topology
        .queue_url(&aws, &topology.dlq(&topology.analytics))
        .await;
    assert!(receive_all(&aws, &dlq, 0, DEADLINE).await.is_empty());

    let mut process = analytics.process;
    process.sigterm();
    let status = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}:\n{}", process.log());
    database.remove().await;
}

#[tokio::test]
async fn dead_letters_malformed_bodies_with_a_reason_on_postgres() {
    dead_letters_malformed_bodies_with_a_reason(Backend::Postgres).await;
}

#[tokio::test]
async fn dead_letters_malformed_bodies_with_a_reason_on_sqlite() {
    dead_letters_malformed_bodies_with_a_reason(Backend::Sqlite).await;
}

/// Bodies that are not envelopes (ingest would have refused them; here
/// they are put on the queue directly) go to the DLQ at once, with the
/// reason as `error`; the good event next to them is stored.
async fn dead_letters_malformed_bodies_with_a_reason(backend: Backend) {
    let Some((aws, topology, database)) = setup(backend, TestTopology::new()).await else {
        return;
    };
    let mut env = topology.env();
    env.extend(database.env());
    let analytics = Analytics::start(&topology.analytics, &env, &[]).await;
    let queue_url = topology.queue_url(&aws, &topology.analytics).await;

    let poison: [(&[u8], &str); 2] = [
        (b"not json at all", "not valid JSON"),
        (
            br#"{"event":"link.clicked","data":{"campaign":"spring"}}"#,
            "timestamp",
        ),
    ];
    for (bytes, _) in &poison {
        send(&aws, &queue_url, bytes).await;
    }
    let good = body("link.clicked", json!({"campaign": "spring"}));
    send(&aws, &queue_url, &good).await;

    let dlq = topology
        .queue_url(&aws, &topology.dlq(&topology.analytics))
        .await;
    let dead = receive_all(&aws, &dlq, poison.len(), DEADLINE).await;
    assert_eq!(dead.len(), poison.len(), "{dead:?}");
    for (bytes, reason) in poison {
        let body = std::str::from_utf8(bytes).unwrap();
        let letter = dead
            .iter()
            .find(|d| d.body == body)
            .unwrap_or_else(|| panic!("{body:?} is not in the DLQ: {dead:?}"));
        let error = &letter.attributes["error"];
        assert!(error.contains(reason), "{error:?} should say {reason:?}");
        assert!(!error.contains('\n'));
        assert_eq!(letter.attributes["worker"], "hookfleet-analytics");
        assert_eq!(letter.attributes["receive_count"], "1");
        assert_eq!(letter.event_type(), "link.clicked");
        assert!(letter.attributes.contains_key("failed_at"));
    }

    let store = database.store();
    eventually(DEADLINE, "the good event stored", || async {
        (store.count_events().await.unwrap() == 1).then_some(())
    })
    .await;
    assert_eq!(analytics.processed("gave_up").await, 2);
    database.remove().await;
}

/// PostgreSQL goes away under a running worker (a forwarder between them
/// is cut) and comes back: the messages sent meanwhile are retried, the
/// database breaker opens (so they wait in SQS instead of spending their
/// receive count), none reaches the DLQ, and all are stored once.
#[tokio::test]
async fn a_database_outage_loses_nothing_and_dead_letters_nothing() {
    // Room for the probes the half-open breaker takes during the outage.
    let topology = TestTopology::builder().max_receive_count(10).build();
    let Some((aws, topology, database)) = setup(Backend::Postgres, topology).await else {
        return;
    };
    let TestDatabase::Postgres(schema) = &database else {
        unreachable!("a PostgreSQL database was asked for");
    };
    let (_, target) = redirect(schema.url(), 0);
    let forwarder = Cuttable::start(target).await;
    let (through, _) = redirect(schema.url(), forwarder.port);
    let mut env = topology.env();
    env.push((
        "DATABASE_URL".into(),
        with_search_path(&through, schema.schema()),
    ));
    // Without HOOKFLEET_GEOIP_DB: geo is off, said once.
    let analytics = Analytics::start(&topology.analytics, &env, &[]).await;
    let queue_url = topology.queue_url(&aws, &topology.analytics).await;
    let store = database.store();

    let before: Vec<Vec<u8>> = (0..5)
        .map(|_| body("link.clicked", json!({"campaign": "spring"})))
        .collect();
    for bytes in &before {
        send(&aws, &queue_url, bytes).await;
    }
    eventually(DEADLINE, "the first 5 events stored", || async {
        (store.count_events().await.unwrap() == 5).then_some(())
    })
    .await;

    forwarder.cut();
    let during: Vec<Vec<u8>> = (0..20)
        .map(|_| body("install.tracked", json!({"campaign": "spring"})))
        .collect();
    for bytes in &during {
        send(&aws, &queue_url, bytes).await;
    }
    let retried = eventually(DEADLINE, "retries and an open breaker", || async {
        let retried = analytics.processed("retried").await;
        let state = analytics.breaker_state().await;
        (retried >= 3 && state != "closed").then_some(retried)
    })
    .await;
    // Two more failed attempts while it is open: the half-open probes,
    // each reopening the breaker against the dead database.
    eventually(
        DEADLINE,
        "probes failing against the dead database",
        || async { (analytics.processed("retried").await >= retried + 2).then_some(()) },
    )
    .await;
    assert_eq!(store.count_events().await.unwrap(), 5);

    forwarder.restore();
    eventually(DEADLINE, "all 25 events stored", || async {
        (store.count_events().await.unwrap() == 25).then_some(())
    })
    .await;
    eventually(DEADLINE, "the breaker closed again", || async {
        (analytics.breaker_state().await == "closed").then_some(())
    })
    .await;

    for bytes in before.iter().chain(&during) {
        let id = EventId::of_body(bytes).to_hex();
        assert!(store.event(&id).await.unwrap().is_some());
    }
    assert_eq!(
        counts(store.minute_counts("spring").await.unwrap()),
        ["10:15 install.tracked 20", "10:15 link.clicked 5"]
    );
    assert_eq!(analytics.processed("gave_up").await, 0);
    let dlq = topology
        .queue_url(&aws, &topology.dlq(&topology.analytics))
        .await;
    assert!(receive_all(&aws, &dlq, 0, DEADLINE).await.is_empty());
    let left = receive_all(&aws, &queue_url, 0, DEADLINE).await;
    assert!(left.is_empty(), "left on the queue: {left:?}");

    let log = analytics.process.log();
    assert_eq!(log.matches("geo enrichment off").count(), 1, "{log}");
    database.remove().await;
}

/// `--check-config` validates without the network (the compose-file test
/// runs it with production addresses); bad settings exit 2 with one line
/// naming them; a database that never answers exits 1 after the wait.
#[tokio::test]
async fn check_config_needs_no_network_and_names_bad_settings() {
    let bin = hookfleet_e2e::bin("hookfleet-analytics");
    let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/topology.toml");
    let geoip = geoip_fixture().display().to_string();
    let base = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("HOOKFLEET_TOPOLOGY", topology),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_REGION", "us-east-1"),
            (
                "DATABASE_URL",
                "postgres://hookfleet:s3cret@db.invalid:5432/hookfleet",
            ),
            ("HOOKFLEET_GEOIP_DB", geoip.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        env
    };

    let ok = run(&bin, &["--check-config"], &base(&[])).await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("configuration ok: "), "{ok:?}");
    assert!(ok.stdout.contains("database postgres"), "{ok:?}");
    assert!(!ok.stdout.contains("s3cret"), "{ok:?}");

    let bad: [(&str, &str, &str); 4] = [
        (
            "HOOKFLEET_GEOIP_DB",
            "/nonexistent/GeoLite2-City.mmdb",
            "HOOKFLEET_GEOIP_DB",
        ),
        (
            "DATABASE_URL",
            "mysql://hookfleet:s3cret@db/hookfleet",
            "DATABASE_URL",
        ),
        ("HOOKFLEET_BATCH_SIZE", "0", "HOOKFLEET_BATCH_SIZE"),
        ("HOOKFLEET_CONCURRENCY", "0", "HOOKFLEET_CONCURRENCY"),
    ];
    for (key, value, named) in bad {
        let output = run(&bin, &["--check-config"], &base(&[(key, value)])).await;
        assert_eq!(output.code, Some(2), "{key}={value}: {output:?}");
        assert_eq!(output.stderr.trim().lines().count(), 1, "{output:?}");
        assert!(output.stderr.contains(named), "{output:?}");
        assert!(!output.stderr.contains("s3cret"), "{output:?}");
    }

    // Not --check-config: the worker waits for the database, then gives up.
    let unreachable = base(&[
        ("DATABASE_URL", "postgres://hookfleet@127.0.0.1:1/hookfleet"),
        ("HOOKFLEET_DATABASE_WAIT_SECS", "0"),
        ("HOOKFLEET_LOG_FORMAT", "text"),
    ]);
    let output = run(&bin, &[], &unreachable).await;
    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(
        output.stderr.contains("cannot use the database"),
        "{output:?}"
    );
}

/// Puts `body` on the queue with the attributes ingest gives it.
async fn send(aws: &Aws, queue_url: &str, body: &[u8]) {
    let text = std::str::from_utf8(body).expect("a UTF-8 body");
    let event_type = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "link.clicked".to_owned());
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("attribute")
    };
    let received_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    aws.sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(text)
        .message_attributes("event_type", attribute(&event_type))
        .message_attributes("event_id", attribute(&EventId::of_body(body).to_hex()))
        .message_attributes("received_at", attribute(&received_at))
        .send()
        .await
        .unwrap_or_else(|e| panic!("send to {queue_url}: {e:?}"));
}

/// An event's country, region and city.
fn place(event: &StoredEvent) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        event.country.as_deref(),
        event.region.as_deref(),
        event.city.as_deref(),
    )
}

/// Minute counts as `HH:MM event_type count` lines.
fn counts(rows: Vec<MinuteCount>) -> Vec<String> {
    rows.into_iter()
        .map(|row| {
            let at = row.window_start;
            format!(
                "{:02}:{:02} {} {}",
                at.hour(),
                at.minute(),
                row.event_type,
                row.count
            )
        })
        .collect()
}
