//! `hookfleet-alerts` against LocalStack, on PostgreSQL and on SQLite,
//! with a [`TestReceiver`] standing in for Slack: each rule at its
//! threshold and not before, one message per incident, redeliveries that
//! change nothing, two workers firing what one fires, and a Slack outage
//! that opens the breaker and loses nothing.
//!
//! Events go straight to the alerts queue with the §5 attributes; their
//! times sit a few minutes in the past (inside the worker's horizon), so
//! every window a test fills is complete before it asserts.

use std::collections::BTreeMap;
use std::time::Duration;

use hookfleet_e2e::alerts::{Event, send, wait_done};
use hookfleet_e2e::analytics::{TestDatabase, geoip_fixture};
use hookfleet_e2e::process::run;
use hookfleet_e2e::receiver::{Reply, TestReceiver};
use hookfleet_e2e::worker::WorkerProcess;
use hookfleet_e2e::{Aws, TestTopology, localstack};
use hookfleet_store::alerting::{Delivery, StoredAlert};
use serde_json::json;
use time::OffsetDateTime;

/// How long any one wait may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Small thresholds and quick retries, as the worker's environment.
const SETTINGS: [(&str, &str); 16] = [
    ("HOOKFLEET_ALERTS_SUSPICIOUS_COUNTRIES", "XX,GB"),
    ("HOOKFLEET_ALERTS_REFERRAL_MAX", "3"),
    ("HOOKFLEET_ALERTS_REFERRAL_WINDOW_MINS", "10"),
    ("HOOKFLEET_ALERTS_BROKEN_LINK_CLICKS", "5"),
    ("HOOKFLEET_ALERTS_BROKEN_LINK_WINDOW_MINS", "10"),
    ("HOOKFLEET_ALERTS_CLICK_SPIKE_FACTOR", "2"),
    ("HOOKFLEET_ALERTS_CLICK_SPIKE_MIN_CLICKS", "8"),
    ("HOOKFLEET_ALERTS_CLICK_SPIKE_BASELINE_MINS", "5"),
    ("HOOKFLEET_ALERTS_COOLDOWN_MINS", "30"),
    ("HOOKFLEET_ALERTS_OUTBOX_POLL_MS", "100"),
    ("HOOKFLEET_SLACK_RETRY_MIN_MS", "200"),
    ("HOOKFLEET_SLACK_RETRY_MAX_SECS", "1"),
    ("HOOKFLEET_SLACK_TIMEOUT_SECS", "2"),
    ("HOOKFLEET_BREAKER_FAILURES", "3"),
    ("HOOKFLEET_BREAKER_COOLDOWN_SECS", "2"),
    ("HOOKFLEET_SHUTDOWN_GRACE_SECS", "5"),
];

/// Runs each scenario on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    each_rule_fires_at_its_threshold_and_not_before,
    redelivered_events_do_not_change_counts,
    two_workers_fire_exactly_what_one_would,
    a_slack_outage_opens_the_breaker_and_loses_no_alert,
);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A test's queue, database and fake Slack.
struct Setup {
    aws: Aws,
    topology: TestTopology,
    queue_url: String,
    db: TestDatabase,
    slack: TestReceiver,
}

impl Setup {
    async fn new(backend: Backend, name: &str) -> Option<Self> {
        let aws = localstack().await?;
        let db = match backend {
            Backend::Sqlite => TestDatabase::sqlite().await,
            Backend::Postgres => TestDatabase::postgres(name).await?,
        };
        let topology = TestTopology::new();
        topology.apply().await;
        let queue_url = topology.queue_url(&aws, &topology.alerts).await;
        let slack = TestReceiver::start().await;
        Some(Self {
            aws,
            topology,
            queue_url,
            db,
            slack,
        })
    }

    /// The worker's environment: topology, database, Slack, [`SETTINGS`].
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.topology.env();
        env.push(("HOOKFLEET_QUEUE".into(), self.topology.alerts.clone()));
        env.extend(self.db.env());
        env.push((
            "HOOKFLEET_SLACK_WEBHOOK_URL".into(),
            self.slack.url("/services/T000/B000/secret"),
        ));
        env.push((
            "HOOKFLEET_GEOIP_DB".into(),
            geoip_fixture().display().to_string(),
        ));
        env.extend(SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    async fn start_worker(&self) -> WorkerProcess {
        WorkerProcess::start("hookfleet-alerts", &self.env()).await
    }

    async fn alerts(&self) -> Vec<StoredAlert> {
        self.db.store().alerts().await.expect("read alerts")
    }

    /// Alert keys of `rule`, sorted (events of one phase are handled
    /// concurrently, so their alerts fire in any order).
    async fn keys(&self, rule: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .alerts()
            .await
            .into_iter()
            .filter(|a| a.rule == rule)
            .map(|a| a.alert_key)
            .collect();
        keys.sort();
        keys
    }

    /// Waits until every stored alert is delivered, then returns them.
    async fn all_delivered(&self) -> Vec<StoredAlert> {
        let started = tokio::time::Instant::now();
        loop {
            let alerts = self.alerts().await;
            if alerts
                .iter()
                .all(|a| matches!(a.delivery, Delivery::Delivered { .. }))
            {
                return alerts;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "alerts not all delivered: {alerts:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `events` and waits until the worker(s) processed everything sent
/// so far.
async fn phase(setup: &Setup, workers: &[&WorkerProcess], sent: &mut u64, events: Vec<Event>) {
    send(&setup.aws, &setup.queue_url, &events).await;
    *sent += events.len() as u64;
    wait_done(workers, *sent, DEADLINE).await;
}

/// The start of the minute three minutes ago, plus 20 s: a minute whose
/// window and baseline lie wholly in the past.
fn base_time() -> OffsetDateTime {
    hookfleet_store::minute_of(OffsetDateTime::now_utc()) - Duration::from_secs(160)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn click(at: OffsetDateTime, campaign: &str) -> Event {
    Event::new(
        "link.clicked",
        at,
        json!({"campaign": campaign, "ip": "198.51.100.20", "country": "FR"}),
    )
}

fn referral(at: OffsetDateTime, ip: &str, referrer_id: &str) -> Event {
    Event::new(
        "referral.created",
        at,
        json!({"ip": ip, "referrer_id": referrer_id, "referral_code": "RC1"}),
    )
}

/// The texts Slack received, answered 2xx.
fn delivered_texts(slack: &TestReceiver) -> Vec<String> {
    slack
        .successful()
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn each_rule_fires_at_its_threshold_and_not_before(backend: Backend) {
    let Some(setup) = Setup::new(backend, "alerts_rules").await else {
        return;
    };
    let worker = setup.start_worker().await;
    let workers = [&worker];
    let t = base_time();
    let mut sent = 0;

    // suspicious_country: the event's own country, or GeoIP's (81.2.69.142
    // is GB in the fixture); FR is not listed.
    phase(
        &setup,
        &workers,
        &mut sent,
        vec![
            Event::new(
                "link.clicked",
                t,
                json!({"campaign": "sc1", "country": "XX"}),
            ),
            Event::new(
                "link.clicked",
                t,
                json!({"campaign": "sc2", "ip": "81.2.69.142"}),
            ),
            click(t, "sc3"),
        ],
    )
    .await;
    assert_eq!(
        setup.keys("suspicious_country").await,
        ["suspicious_country:GB:sc2", "suspicious_country:XX:sc1"]
    );

    // referral_fraud: more than 3 from one IP, then for one referrer.
    let ip = "203.0.113.7";
    let by_ip: Vec<Event> = (0..4).map(|i| referral(t, ip, &format!("ra{i}"))).collect();
    phase(&setup, &workers, &mut sent, by_ip[..3].to_vec()).await;
    assert!(
        setup.keys("referral_fraud").await.is_empty(),
        "3 is not more than 3"
    );
    phase(&setup, &workers, &mut sent, by_ip[3..].to_vec()).await;
    assert_eq!(
        setup.keys("referral_fraud").await,
        [format!("referral_fraud:ip:{ip}")]
    );

    // Sent latest first: the last to arrive is the earliest, and still
    // completes the burst.
    let by_referrer: Vec<Event> = (1..=4u64)
        .map(|i| referral(t - minutes(i), &format!("192.0.2.{i}"), "u-42"))
        .collect();
    phase(&setup, &workers, &mut sent, by_referrer[..3].to_vec()).await;
    assert_eq!(setup.keys("referral_fraud").await.len(), 1);
    phase(&setup, &workers, &mut sent, by_referrer[3..].to_vec()).await;
    assert_eq!(
        setup.keys("referral_fraud").await[1],
        "referral_fraud:referrer:u-42"
    );

    // broken_link: 5 clicks without a conversion; "ok" has an install.
    phase(
        &setup,
        &workers,
        &mut sent,
        vec![Event::new(
            "install.tracked",
            t - minutes(2),
            json!({"campaign": "ok"}),
        )],
    )
    .await;
    let mut clicks: Vec<Event> = (0..4).map(|_| click(t, "bl")).collect();
    clicks.extend((0..6).map(|_| click(t, "ok")));
    phase(&setup, &workers, &mut sent, clicks).await;
    assert!(setup.keys("broken_link").await.is_empty());
    phase(&setup, &workers, &mut sent, vec![click(t, "bl")]).await;
    assert_eq!(setup.keys("broken_link").await, ["broken_link:bl"]);

    // One incident, one alert: more clicks inside the cooldown add none.
    let more = (0..3).map(|_| click(t - minutes(1), "bl")).collect();
    phase(&setup, &workers, &mut sent, more).await;
    assert_eq!(setup.keys("broken_link").await, ["broken_link:bl"]);

    // click_spike: a baseline of 2 a minute over 5 minutes (with a claim,
    // so the campaign's link is not "broken"), then a minute of 7 (under
    // the minimum of 8) and an 8th click (8 > 2 × 2).
    phase(
        &setup,
        &workers,
        &mut sent,
        vec![Event::new(
            "deferred_link.claimed",
            t - minutes(5),
            json!({"campaign": "cs"}),
        )],
    )
    .await;
    let baseline = (1..=5)
        .flat_map(|m| [click(t - minutes(m), "cs"), click(t - minutes(m), "cs")])
        .collect();
    phase(&setup, &workers, &mut sent, baseline).await;
    phase(
        &setup,
        &workers,
        &mut sent,
        (0..7).map(|_| click(t, "cs")).collect(),
    )
    .await;
    assert!(setup.keys("click_spike").await.is_empty());
    phase(&setup, &workers, &mut sent, vec![click(t, "cs")]).await;
    assert_eq!(setup.keys("click_spike").await, ["click_spike:cs"]);
    assert!(setup.keys("broken_link").await == ["broken_link:bl"]);

    // Every alert reached Slack once, as a readable message.
    let alerts = setup.all_delivered().await;
    assert_eq!(alerts.len(), 6, "{alerts:#?}");
    let texts = delivered_texts(&setup.slack);
    assert_eq!(texts.len(), 6, "{texts:#?}");
    for expected in [
        "suspicious country: XX",
        "suspicious country: GB",
        "4 referral events from IP address 203.0.113.7",
        "from referrer u-42",
        "Campaign bl had 5 clicks",
        "Campaign cs got 8 clicks",
    ] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(expected)).count(),
            1,
            "{expected:?} in {texts:#?}"
        );
    }
    let request = &setup.slack.successful()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/T000/B000/secret");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request.json()["blocks"]
            .as_array()
            .is_some_and(|b| b.len() == 3)
    );

    worker.stop().await;
    setup.db.remove().await;
}

async fn redelivered_events_do_not_change_counts(backend: Backend) {
    let Some(setup) = Setup::new(backend, "alerts_redelivery").await else {
        return;
    };
    let worker = setup.start_worker().await;
    let t = base_time();
    let ip = "203.0.113.50";
    let events: Vec<Event> = (0..4).map(|i| referral(t, ip, &format!("rd{i}"))).collect();
    let mut sent = 0;
    phase(&setup, &[&worker], &mut sent, events.clone()).await;
    setup.all_delivered().await;

    // The same bytes again (a Tolinku retry, an SQS redelivery): the
    // same event ids, which change neither counts, alerts nor Slack.
    phase(&setup, &[&worker], &mut sent, events).await;
    let store = setup.db.store();
    let counts = store
        .alert_window_counts(&format!("referral_ip:{ip}"))
        .await
        .unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 4, "{counts:?}");
    assert_eq!(setup.alerts().await.len(), 1);
    assert_eq!(setup.slack.successful().len(), 1);
    assert_eq!(
        worker
            .metric("hookfleet_alerts_events_total{outcome=\"duplicate\"}")
            .await,
        4.0
    );

    worker.stop().await;
    setup.db.remove().await;
}

/// Conversions first (they must precede clicks for `broken_link` to be
/// decided by the data alone), then everything else in one shuffled go.
fn workload(t: OffsetDateTime) -> (Vec<Event>, Vec<Event>) {
    let conversions = vec![
        Event::new("install.tracked", t, json!({"campaign": "conv1"})),
        Event::new("deferred_link.claimed", t, json!({"campaign": "conv2"})),
    ];
    let mut rest = Vec::new();
    for (ip, n) in [("203.0.113.1", 5), ("203.0.113.2", 3), ("203.0.113.3", 4)] {
        rest.extend((0..n).map(|i| referral(t, ip, &format!("{ip}-{i}"))));
    }
    rest.extend((0..6).map(|i| referral(t, &format!("192.0.2.{}", 10 + i), "hot")));
    for (campaign, n) in [
        ("b1", 6),
        ("b2", 4),
        ("conv1", 7),
        ("conv2", 9),
        ("spike", 10),
    ] {
        rest.extend((0..n).map(|_| click(t, campaign)));
    }
    for campaign in ["x1", "x2", "x1"] {
        rest.push(Event::new(
            "link.clicked",
            t,
            json!({"campaign": campaign, "country": "XX"}),
        ));
    }
    // A deterministic shuffle: far from sorted by rule or campaign.
    let len = rest.len();
    let order: Vec<usize> = (0..len).map(|i| (i * 17 + 5) % len).collect();
    let mut shuffled: Vec<Option<Event>> = rest.into_iter().map(Some).collect();
    let rest = order.iter().filter_map(|&i| shuffled[i].take()).collect();
    (conversions, rest)
}

/// Runs the workload with `instances` workers and returns each alert key
/// (by rule) with how many alerts and how many Slack messages it got.
async fn fired_by(
    setup: &Setup,
    instances: usize,
    t: OffsetDateTime,
) -> BTreeMap<(String, String), (usize, usize)> {
    let mut workers = Vec::new();
    for _ in 0..instances {
        workers.push(setup.start_worker().await);
    }
    let refs: Vec<&WorkerProcess> = workers.iter().collect();
    let (conversions, rest) = workload(t);
    let mut sent = 0;
    phase(setup, &refs, &mut sent, conversions).await;
    phase(setup, &refs, &mut sent, rest).await;

    let alerts = setup.all_delivered().await;
    let texts: Vec<String> = setup
        .slack
        .successful()
        .iter()
        .map(|r| r.json()["blocks"][2]["elements"][0]["text"].to_string())
        .collect();
    let mut fired = BTreeMap::new();
    for alert in alerts {
        let messages = texts
            .iter()
            .filter(|t| t.contains(&format!("`{}`", alert.alert_key)))
            .count();
        let entry = fired
            .entry((alert.rule.clone(), alert.alert_key.clone()))
            .or_insert((0, messages));
        entry.0 += 1;
    }
    for worker in workers {
        worker.stop().await;
    }
    fired
}

async fn two_workers_fire_exactly_what_one_would(backend: Backend) {
    let Some(one) = Setup::new(backend, "alerts_one").await else {
        return;
    };
    let Some(two) = Setup::new(backend, "alerts_two").await else {
        return;
    };
    let t = base_time();
    let (by_one, by_two) = tokio::join!(fired_by(&one, 1, t), fired_by(&two, 2, t));

    let expected: Vec<(&str, &str)> = vec![
        ("broken_link", "broken_link:b1"),
        ("broken_link", "broken_link:spike"),
        ("click_spike", "click_spike:conv2"),
        ("click_spike", "click_spike:spike"),
        ("referral_fraud", "referral_fraud:ip:203.0.113.1"),
        ("referral_fraud", "referral_fraud:ip:203.0.113.3"),
        ("referral_fraud", "referral_fraud:referrer:hot"),
        ("suspicious_country", "suspicious_country:XX:x1"),
        ("suspicious_country", "suspicious_country:XX:x2"),
    ];
    let keys: Vec<(&str, &str)> = by_one
        .keys()
        .map(|(rule, key)| (rule.as_str(), key.as_str()))
        .collect();
    assert_eq!(keys, expected);
    assert!(
        by_one.values().all(|&counts| counts == (1, 1)),
        "one alert and one message per key: {by_one:#?}"
    );
    assert_eq!(by_one, by_two);

    one.db.remove().await;
    two.db.remove().await;
}

async fn a_slack_outage_opens_the_breaker_and_loses_no_alert(backend: Backend) {
    let Some(setup) = Setup::new(backend, "alerts_outage").await else {
        return;
    };
    // First a 429 asking for a second's pause, then 503 until told.
    setup
        .slack
        .reply_next(1, Reply::status(429).retry_after_secs(1));
    setup.slack.reply_always(Reply::status(503));
    let worker = setup.start_worker().await;

    let t = base_time();
    let events: Vec<Event> = (1..=4)
        .map(|i| {
            Event::new(
                "link.clicked",
                t,
                json!({"campaign": format!("down{i}"), "country": "XX"}),
            )
        })
        .collect();
    let mut sent = 0;
    // Evaluation does not wait for Slack: every event is done and every
    // alert stored while Slack fails.
    phase(&setup, &[&worker], &mut sent, events).await;
    assert_eq!(setup.alerts().await.len(), 4);

    let breaker = "hookfleet_worker_breaker_state{destination=\"slack\"}";
    let started = tokio::time::Instant::now();
    while worker.metric(breaker).await != 1.0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the slack breaker did not open; log:\n{}",
            worker.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = setup.slack.requests();
    assert!(failed.len() >= 3, "{}", failed.len());
    assert!(failed.iter().all(|r| !r.succeeded()));
    assert!(
        failed[1].at - failed[0].at >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
    assert!(
        setup
            .alerts()
            .await
            .iter()
            .all(|a| matches!(a.delivery, Delivery::Pending { .. })),
        "nothing marked delivered while Slack fails"
    );

    // Slack recovers: the probe closes the breaker and every alert is
    // delivered, once.
    setup.slack.reply_always(Reply::ok());
    let alerts = setup.all_delivered().await;
    assert_eq!(alerts.len(), 4);
    let texts = delivered_texts(&setup.slack);
    assert_eq!(texts.len(), 4, "{texts:#?}");
    for i in 1..=4 {
        let campaign = format!("down{i}");
        assert_eq!(
            texts.iter().filter(|t| t.contains(&campaign)).count(),
            1,
            "{campaign} in {texts:#?}"
        );
    }
    assert_eq!(worker.metric(breaker).await, 0.0);

    worker.stop().await;
    setup.db.remove().await;
}

/// `--check-config` needs no network: a good configuration prints its
/// summary, a bad one exits 2 naming the setting (and never the URL).
#[tokio::test]
async fn check_config_validates_without_the_network() {
    let topology = TestTopology::builder().build();
    let mut env = topology.env();
    env.push(("HOOKFLEET_QUEUE".into(), topology.alerts.clone()));
    env.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    let bin = hookfleet_e2e::bin("hookfleet-alerts");

    let ok = run(&bin, &["--check-config"], &env).await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("configuration ok: "), "{ok:?}");
    assert!(ok.stdout.contains("slack off"), "{ok:?}");

    env.push((
        "HOOKFLEET_SLACK_WEBHOOK_URL".into(),
        "hooks.example/secret-token".into(),
    ));
    let bad = run(&bin, &["--check-config"], &env).await;
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert_eq!(bad.stderr.lines().count(), 1, "{bad:?}");
    assert!(
        bad.stderr.contains("HOOKFLEET_SLACK_WEBHOOK_URL"),
        "{bad:?}"
    );
    assert!(!bad.stderr.contains("secret-token"), "{bad:?}");
}
