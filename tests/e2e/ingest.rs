//! `hookfleet-ingest` through real HTTP, against LocalStack: every answer
//! of SPEC §6, routing by the real filter policies, a dead broker,
//! overload and SIGTERM.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hookfleet_e2e::ingest::{Ingest, SECRET, body, post, post_signed};
use hookfleet_e2e::process::free_port;
use hookfleet_e2e::proxy::Proxy;
use hookfleet_e2e::topology::receive_all;
use hookfleet_e2e::{Aws, TestTopology, localstack, reqwest_client};
use serde_json::json;

async fn setup() -> Option<(Aws, TestTopology)> {
    let aws = localstack().await?;
    let topology = TestTopology::new();
    topology.apply().await;
    Some((aws, topology))
}

#[tokio::test]
async fn answers_every_case_of_the_spec_table() {
    let Some((aws, topology)) = setup().await else {
        return;
    };
    let secrets = format!("{SECRET},whsec_e2e_old");
    let ingest = Ingest::start(&topology.env(), &[("HOOKFLEET_WEBHOOK_SECRET", &secrets)]).await;
    let url = ingest.webhook_url();
    let client = reqwest_client();

    // 200 only after SNS accepted it, with the body's SHA-256 as event id.
    let click = body(
        "link.clicked",
        json!({"ip": "81.2.69.142", "campaign": "spring"}),
    );
    let answer = post_signed(&client, &url, "link.clicked", click.clone()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let event_id = hookfleet_event::EventId::of_body(&click).to_hex();
    assert_eq!(answer.json["event_id"], event_id.as_str());

    // `sha256=` prefix and the second (old) secret: both valid, and the
    // metric tells which secret matched.
    let install = body("install.tracked", json!({"platform": "ios"}));
    let signature = format!(
        "sha256={}",
        hookfleet_event::sign("whsec_e2e_old", &install)
    );
    let answer = post(
        &client,
        &url,
        "install.tracked",
        install.clone(),
        Some(signature),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        ingest
            .metric("hookfleet_ingest_signature_matches_total{secret=\"1\"}")
            .await,
        1.0
    );

    // `test`: acknowledged, counted, not published.
    let test_event = body("test", json!({}));
    let answer = post_signed(&client, &url, "test", test_event).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["published"], false);
    assert_eq!(
        ingest
            .metric("hookfleet_ingest_requests_total{outcome=\"test\"}")
            .await,
        1.0
    );

    // 413 before any verification.
    let huge = vec![b' '; 256 * 1024 + 1];
    let answer = post(&client, &url, "link.clicked", huge, Some("0".repeat(64)))
        .await
        .unwrap();
    assert_eq!(answer.status, 413);

    // 401 without detail: missing, malformed, wrong.
    let fresh = body("link.clicked", json!({}));
    for signature in [None, Some("nothex".to_owned()), Some("ab".repeat(32))] {
        let answer = post(&client, &url, "link.clicked", fresh.clone(), signature)
            .await
            .unwrap();
        assert_eq!(answer.status, 401);
        assert_eq!(answer.json, json!({"error": "unauthorized"}));
    }

    // 400 with a one-line reason.
    let bad_bodies: [(&str, &[u8], &str); 4] = [
        ("link.clicked", b"not json", "not valid JSON"),
        (
            "link.clicked",
            br#"{"event":"link.clicked","data":{}}"#,
            "timestamp",
        ),
        (
            "link.clicked",
            br#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":[]}"#,
            "data",
        ),
        (
            "install.tracked",
            br#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{}}"#,
            "does not match",
        ),
    ];
    for (header, bad, reason) in bad_bodies {
        let answer = post_signed(&client, &url, header, bad.to_vec()).await;
        assert_eq!(answer.status, 400, "{bad:?}");
        let error = answer.json["error"].as_str().unwrap();
        assert!(
            error.contains(reason),
            "{error:?} should mention {reason:?}"
        );
        assert!(!error.contains('\n'));
    }

    // Only the two real events reached the bus: analytics gets both (test
    // is filtered there anyway, but ingest never sent it: the publish
    // counter says one per event).
    let analytics = topology.queue_url(&aws, &topology.analytics).await;
    let delivered = receive_all(&aws, &analytics, 2, Duration::from_secs(20)).await;
    let bodies: HashSet<&str> = delivered.iter().map(|d| d.body.as_str()).collect();
    let expected: HashSet<&str> = [&click, &install]
        .into_iter()
        .map(|b| std::str::from_utf8(b).unwrap())
        .collect();
    assert_eq!(bodies, expected);
    assert_eq!(
        ingest
            .metric("hookfleet_ingest_requests_total{outcome=\"published\"}")
            .await,
        2.0
    );
}

/// Every event type goes through ingest to exactly the queues SPEC §4
/// names, bytes unchanged, with the three attributes of §5.
#[tokio::test]
async fn routes_every_event_type_to_its_queues() {
    let Some((aws, topology)) = setup().await else {
        return;
    };
    let ingest = Ingest::start(&topology.env(), &[]).await;
    let url = ingest.webhook_url();
    let client = reqwest_client();

    let types = [
        "link.clicked",
        "deferred_link.claimed",
        "install.tracked",
        "referral.created",
        "referral.completed",
        "ecommerce.purchase",
        "some.future_type",
    ];
    let mut sent = HashMap::new();
    for event_type in types {
        let bytes = body(event_type, json!({"campaign": "c1"}));
        let answer = post_signed(&client, &url, event_type, bytes.clone()).await;
        assert_eq!(answer.status, 200, "{event_type}: {answer:?}");
        sent.insert(String::from_utf8(bytes).unwrap(), event_type);
    }

    let expect: [(&str, &[&str]); 4] = [
        (&topology.analytics, &types),
        (
            &topology.alerts,
            &[
                "link.clicked",
                "deferred_link.claimed",
                "install.tracked",
                "referral.created",
                "referral.completed",
            ],
        ),
        (&topology.crm, &["referral.completed"]),
        (&topology.welcome, &["install.tracked"]),
    ];
    for (queue, wanted) in expect {
        let queue_url = topology.queue_url(&aws, queue).await;
        // Ask for one more than expected so an extra delivery shows up.
        let delivered = receive_all(&aws, &queue_url, wanted.len(), Duration::from_secs(20)).await;
        let mut got: Vec<&str> = delivered
            .iter()
            .map(|d| {
                let event_type = sent.get(&d.body).unwrap_or_else(|| {
                    panic!("{queue} got a body that was not sent byte for byte")
                });
                assert_eq!(d.attributes["event_type"], *event_type);
                let id = hookfleet_event::EventId::of_body(d.body.as_bytes()).to_hex();
                assert_eq!(d.attributes["event_id"], id);
                let received_at = &d.attributes["received_at"];
                time::OffsetDateTime::parse(
                    received_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or_else(|_| panic!("received_at {received_at:?} is not RFC 3339"));
                *event_type
            })
            .collect();
        got.sort_unstable();
        let mut wanted = wanted.to_vec();
        wanted.sort_unstable();
        assert_eq!(got, wanted, "queue {queue}");
    }
}

#[tokio::test]
async fn a_dead_broker_gets_503_quickly_and_ingest_recovers() {
    let Some((aws, topology)) = setup().await else {
        return;
    };
    let port = free_port();
    let mut env = topology.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    let mut ingest = Ingest::start(&env, &[]).await;
    let url = ingest.webhook_url();
    let client = reqwest_client();

    let started = tokio::time::Instant::now();
    let answer = post_signed(
        &client,
        &url,
        "link.clicked",
        body("link.clicked", json!({})),
    )
    .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.retry_after.is_some(), "503 without Retry-After");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Tolinku would have timed out"
    );
    let ready = client
        .get(format!("{}/readyz", ingest.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ingest.process.is_running());

    // The broker comes back on the same address.
    let target = hookfleet_e2e::endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let _broker = Proxy::start(port, target).await;
    let recovered = body("link.clicked", json!({"after": "recovery"}));
    let answer = hookfleet_e2e::eventually(Duration::from_secs(30), "ingest to recover", || {
        let client = client.clone();
        let url = url.clone();
        let recovered = recovered.clone();
        async move {
            let answer = post_signed(&client, &url, "link.clicked", recovered).await;
            (answer.status == 200).then_some(answer)
        }
    })
    .await;
    assert_eq!(
        answer.json["event_id"],
        hookfleet_event::EventId::of_body(&recovered)
            .to_hex()
            .as_str()
    );
    let analytics = topology.queue_url(&aws, &topology.analytics).await;
    let delivered = receive_all(&aws, &analytics, 1, Duration::from_secs(20)).await;
    assert!(
        delivered
            .iter()
            .any(|d| d.body.as_bytes() == recovered.as_slice())
    );
}

/// A slow broker and a tiny publish queue: excess requests are refused
/// with 503 at once, memory stays bounded, and every 200 is on the queue.
#[tokio::test]
async fn overload_is_refused_and_every_accepted_event_is_published() {
    let Some((aws, topology)) = setup().await else {
        return;
    };
    let target = hookfleet_e2e::endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let slow_broker = Proxy::start(0, target).await;
    let mut env = topology.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{}", slow_broker.port),
    ));
    let ingest = Ingest::start(
        &env,
        &[
            ("HOOKFLEET_PUBLISH_QUEUE", "4"),
            ("HOOKFLEET_PUBLISH_CONCURRENCY", "1"),
        ],
    )
    .await;
    slow_broker.set_delay(Duration::from_millis(300));
    let url = ingest.webhook_url();
    let client = reqwest_client();

    let answers = futures_join_all((0..120).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let bytes = body("link.clicked", json!({"load": true}));
            let answer = post_signed(&client, &url, "link.clicked", bytes.clone()).await;
            (answer, bytes)
        }
    }))
    .await;

    let accepted: HashSet<Vec<u8>> = answers
        .iter()
        .filter(|(a, _)| a.status == 200)
        .map(|(_, b)| b.clone())
        .collect();
    let refused = answers.iter().filter(|(a, _)| a.status == 503).count();
    assert!(refused > 0, "a 4-slot queue took 120 concurrent requests");
    assert!(!accepted.is_empty(), "nothing was accepted");
    assert_eq!(accepted.len() + refused, answers.len(), "only 200 or 503");
    for (answer, _) in answers.iter().filter(|(a, _)| a.status == 503) {
        assert!(answer.retry_after.is_some());
    }

    let rss_kib = resident_kib(ingest.process.pid());
    assert!(rss_kib < 100 * 1024, "ingest uses {rss_kib} KiB");

    slow_broker.set_delay(Duration::ZERO);
    let analytics = topology.queue_url(&aws, &topology.analytics).await;
    let delivered = receive_all(&aws, &analytics, accepted.len(), Duration::from_secs(30)).await;
    let delivered: HashSet<Vec<u8>> = delivered.into_iter().map(|d| d.body.into_bytes()).collect();
    assert!(
        accepted.is_subset(&delivered),
        "{} accepted events missing from the queue",
        accepted.difference(&delivered).count()
    );
}

/// SIGTERM in the middle of a burst: the process exits 0 and every event
/// answered 200 is on the queue.
#[tokio::test]
async fn sigterm_under_load_publishes_every_accepted_event() {
    let Some((aws, topology)) = setup().await else {
        return;
    };
    let mut ingest = Ingest::start(&topology.env(), &[]).await;
    let url = ingest.webhook_url();
    let client = reqwest_client();

    let burst = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut accepted = Vec::new();
            let mut tasks = Vec::new();
            for _ in 0..150 {
                let client = client.clone();
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let bytes = body("link.clicked", json!({"burst": true}));
                    let signature = hookfleet_event::sign(SECRET, &bytes);
                    let answer = post(
                        &client,
                        &url,
                        "link.clicked",
                        bytes.clone(),
                        Some(signature),
                    )
                    .await;
                    (answer.map(|a| a.status).ok(), bytes)
                }));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for task in tasks {
                if let (Some(200), bytes) = task.await.unwrap() {
                    accepted.push(bytes);
                }
            }
            accepted
        }
    });

    // Let part of the burst in, then stop the service.
    hookfleet_e2e::eventually(
        Duration::from_secs(20),
        "some requests to be accepted",
        || {
            let ingest = &ingest;
            async move {
                (ingest
                    .metric("hookfleet_ingest_requests_total{outcome=\"published\"}")
                    .await
                    >= 20.0)
                    .then_some(())
            }
        },
    )
    .await;
    ingest.process.sigterm();
    let status = ingest.process.wait(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "exit {status:?}:\n{}",
        ingest.process.log()
    );

    let accepted = burst.await.unwrap();
    assert!(accepted.len() >= 20);
    let analytics = topology.queue_url(&aws, &topology.analytics).await;
    let delivered = receive_all(&aws, &analytics, accepted.len(), Duration::from_secs(30)).await;
    let delivered: HashSet<Vec<u8>> = delivered.into_iter().map(|d| d.body.into_bytes()).collect();
    let missing = accepted.iter().filter(|b| !delivered.contains(*b)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} accepted events lost",
        accepted.len()
    );
}

#[tokio::test]
async fn bad_configuration_exits_2_with_one_line() {
    // No LocalStack needed: configuration is checked before any call.
    let ingest = hookfleet_e2e::bin("hookfleet-ingest");
    let topology = format!("{}/../infra/topology.toml", env!("CARGO_MANIFEST_DIR"));
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("HOOKFLEET_TOPOLOGY", &topology)],
            "HOOKFLEET_WEBHOOK_SECRET",
        ),
        (
            &[
                ("HOOKFLEET_TOPOLOGY", &topology),
                ("HOOKFLEET_WEBHOOK_SECRET_FILE", "/nonexistent/secret"),
            ],
            "HOOKFLEET_WEBHOOK_SECRET_FILE",
        ),
        (
            &[
                ("HOOKFLEET_TOPOLOGY", "/nonexistent/topology.toml"),
                ("HOOKFLEET_WEBHOOK_SECRET", "whsec_x"),
            ],
            "HOOKFLEET_TOPOLOGY",
        ),
        (
            &[
                ("HOOKFLEET_TOPOLOGY", &topology),
                ("HOOKFLEET_WEBHOOK_SECRET", "whsec_x"),
                ("HOOKFLEET_LISTEN", "not-an-address"),
            ],
            "--listen",
        ),
    ];
    for (env, names) in cases {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let output = hookfleet_e2e::process::run(&ingest, &["--check-config"], &env).await;
        assert_eq!(output.code, Some(2), "{env:?}: {output:?}");
        assert_eq!(output.stderr.trim().lines().count(), 1, "{output:?}");
        assert!(
            output.stderr.contains(names),
            "{output:?} should name {names}"
        );
    }
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}
