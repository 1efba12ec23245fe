//! The worker runtime against a real LocalStack: each test creates its
//! own queue and DLQ, runs the runtime with a scripted handler, and checks
//! what SQS holds afterwards.

mod app;
mod support;

use std::sync::Arc;
use std::time::Duration;

use hookfleet_worker::metrics::Processed;
use hookfleet_worker::{BreakerConfig, BreakerState, CircuitBreaker, Consumer, Outcome, Queue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use support::{Counting, Recorder, Step, TestQueue, config, eventually, eventually_async};

const DONE_QUICKLY: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_deletes_each_of_n_messages_exactly_once() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 5).await;
    let ids = test.send_events(30).await;
    let handler = Recorder::new(|_| Step::After(Duration::from_millis(50), Outcome::Done));

    let consumer = Consumer::new(
        config(8, 30),
        Arc::new(test.queue.clone()),
        Arc::clone(&handler),
    );
    let stats = consumer.stats();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(consumer.run(shutdown.clone()));

    eventually(Duration::from_secs(30), "30 messages done", || {
        handler.done() == 30
    })
    .await;
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    let summary = run.await.unwrap();

    let runs = handler.runs();
    assert_eq!(runs.len(), 30);
    for id in &ids {
        assert_eq!(runs[id].len(), 1, "event {id} ran {} times", runs[id].len());
    }
    assert_eq!(stats.count(Processed::Done), 30);
    assert_eq!(stats.received_count(), 30);
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(summary.abandoned, 0);
    assert!(test.dead_letters(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_comes_back_later_each_time() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 10).await;
    let ids = test.send_events(1).await;
    let handler = Recorder::new(|delivery| {
        if delivery.message.receive_count < 4 {
            Step::After(DONE_QUICKLY, Outcome::retry("destination said 503"))
        } else {
            Step::After(DONE_QUICKLY, Outcome::Done)
        }
    });

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(
        config(4, 30),
        Arc::new(test.queue.clone()),
        Arc::clone(&handler),
    );
    let stats = consumer.stats();
    let run = tokio::spawn(consumer.run(shutdown.clone()));
    eventually(Duration::from_secs(40), "the fourth attempt", || {
        handler.done() == 1
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    let runs = &handler.runs()[&ids[0]];
    let counts: Vec<u32> = runs.iter().map(|r| r.receive_count).collect();
    assert_eq!(counts, [1, 2, 3, 4]);
    let gaps: Vec<Duration> = runs.windows(2).map(|w| w[1].at - w[0].at).collect();
    // Backoff 1 s, 2 s, 4-5 s (whole seconds), plus receive latency.
    assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
    assert!(gaps[1] > gaps[0] + Duration::from_millis(500), "{gaps:?}");
    assert!(gaps[2] > gaps[1] + Duration::from_millis(1500), "{gaps:?}");
    assert_eq!(stats.count(Processed::Retried), 3);
    assert_eq!(stats.count(Processed::Done), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn give_up_and_poison_land_in_the_dlq_with_every_attribute() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 5).await;
    let ids = test.send_events(1).await;
    test.send_raw("this is not json").await;
    let handler = Recorder::new(|_| {
        Step::After(
            DONE_QUICKLY,
            Outcome::give_up("crm answered 422:\nunknown field"),
        )
    });

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(
        config(4, 30),
        Arc::new(test.queue.clone()),
        Arc::clone(&handler),
    );
    let stats = consumer.stats();
    let run = tokio::spawn(consumer.run(shutdown.clone()));
    eventually(Duration::from_secs(20), "both given up", || {
        stats.count(Processed::GaveUp) == 2
    })
    .await;
    eventually_async(
        Duration::from_secs(10),
        "the source queue to be empty",
        || async { test.depth().await == 0 },
    )
    .await;
    shutdown.cancel();
    run.await.unwrap();

    assert_eq!(
        handler.started(),
        1,
        "the poison message never reaches the handler"
    );
    let dead = test.dead_letters(Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 2);
    for message in &dead {
        let attributes = message.message_attributes().unwrap();
        let value = |name: &str| {
            attributes
                .get(name)
                .and_then(|v| v.string_value())
                .unwrap_or_else(|| panic!("attribute {name} missing"))
                .to_owned()
        };
        assert_eq!(value("event_type"), "link.clicked");
        assert_eq!(value("received_at"), "2026-12-03T10:00:01Z");
        assert_eq!(value("worker"), "hookfleet-test");
        assert_eq!(value("receive_count"), "1");
        let failed_at = OffsetDateTime::parse(&value("failed_at"), &Rfc3339).unwrap();
        assert!(
            (OffsetDateTime::now_utc() - failed_at)
                .whole_seconds()
                .abs()
                < 60
        );
        let error = value("error");
        assert!(!error.contains('\n'));
        if message.body() == Some("this is not json") {
            assert!(error.starts_with("body is not valid JSON"), "{error}");
        } else {
            assert_eq!(value("event_id"), ids[0]);
            assert_eq!(error, "crm answered 422: unknown field");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_handler_leaves_the_message_to_be_redelivered() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 2, 5).await;
    let ids = test.send_events(1).await;

    let hanging = Recorder::new(|_| Step::Hang);
    let killed = tokio::spawn(
        Consumer::new(
            config(4, 2),
            Arc::new(test.queue.clone()),
            Arc::clone(&hanging),
        )
        .run(CancellationToken::new()),
    );
    eventually(Duration::from_secs(10), "the handler to start", || {
        hanging.started() == 1
    })
    .await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());

    let handler = Recorder::new(|_| Step::After(DONE_QUICKLY, Outcome::Done));
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(
        Consumer::new(
            config(4, 2),
            Arc::new(test.queue.clone()),
            Arc::clone(&handler),
        )
        .run(shutdown.clone()),
    );
    eventually(Duration::from_secs(20), "the redelivery", || {
        handler.done() == 1
    })
    .await;
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    let runs = &handler.runs()[&ids[0]];
    assert_eq!(runs.len(), 1);
    assert!(runs[0].receive_count >= 2);
    assert_eq!(hanging.runs()[&ids[0]].len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_visibility_timeout_runs_once() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 2, 5).await;
    let ids = test.send_events(3).await;
    let handler = Recorder::new(|_| Step::After(Duration::from_secs(5), Outcome::Done));

    let shutdown = CancellationToken::new();
    let run = tokio::spawn(
        Consumer::new(
            config(8, 2),
            Arc::new(test.queue.clone()),
            Arc::clone(&handler),
        )
        .run(shutdown.clone()),
    );
    eventually(Duration::from_secs(20), "3 slow messages done", || {
        handler.done() == 3
    })
    .await;
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    let runs = handler.runs();
    for id in &ids {
        assert_eq!(
            runs[id].len(),
            1,
            "a 5 s handler with a 2 s visibility ran twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_not_lost() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 5).await;
    let ids = test.send_events(1).await;
    let handler = Recorder::new(|delivery| {
        if delivery.message.receive_count == 1 {
            Step::Panic
        } else {
            Step::After(DONE_QUICKLY, Outcome::Done)
        }
    });

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(
        config(4, 30),
        Arc::new(test.queue.clone()),
        Arc::clone(&handler),
    );
    let stats = consumer.stats();
    let run = tokio::spawn(consumer.run(shutdown.clone()));
    eventually(Duration::from_secs(20), "the retry after the panic", || {
        handler.done() == 1
    })
    .await;
    shutdown.cancel();
    let summary = run.await.unwrap();

    assert_eq!(handler.runs()[&ids[0]].len(), 2);
    assert_eq!(stats.count(Processed::Panicked), 1);
    assert_eq!(stats.count(Processed::Done), 1);
    assert_eq!(summary.internal_panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_holds_the_backlog_through_an_outage() {
    let Some(client) = support::localstack().await else {
        return;
    };
    // maxReceiveCount 2 with a 1 s visibility: an outage of 3 s would
    // dead-letter everything if the worker kept receiving.
    let test = TestQueue::create(&client, 1, 2).await;
    let ids = test.send_events(20).await;
    let outage_ends = Instant::now() + Duration::from_secs(3);
    let handler = Recorder::new(move |_| {
        if Instant::now() < outage_ends {
            Step::After(DONE_QUICKLY, Outcome::retry("destination down"))
        } else {
            Step::After(DONE_QUICKLY, Outcome::Done)
        }
    });
    let cooldown = Duration::from_secs(4);
    let breaker = CircuitBreaker::new(
        "test-destination",
        BreakerConfig {
            failure_threshold: 3,
            cooldown,
        },
    );
    let queue = Counting::new(test.queue.clone());

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(config(4, 1), Arc::clone(&queue), Arc::clone(&handler))
        .with_breaker(Arc::clone(&breaker));
    let stats = consumer.stats();
    let run = tokio::spawn(consumer.run(shutdown.clone()));

    eventually(Duration::from_secs(10), "the breaker to open", || {
        matches!(breaker.state(), BreakerState::Open { .. })
    })
    .await;
    let opened = Instant::now();
    eventually(Duration::from_secs(60), "the backlog to drain", || {
        handler.done() == 20
    })
    .await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    let open_window = (
        opened + Duration::from_millis(300),
        opened + cooldown - Duration::from_millis(500),
    );
    assert_eq!(
        queue.receives_between(open_window.0, open_window.1),
        0,
        "received while the breaker was open"
    );
    let runs = handler.runs();
    for id in &ids {
        let done = runs[id].iter().filter(|r| r.done).count();
        assert_eq!(done, 1, "event {id}: {:?}", runs[id]);
    }
    assert!(stats.count(Processed::Retried) >= 3);
    assert!(
        test.dead_letters(Duration::from_secs(2)).await.is_empty(),
        "a message reached the DLQ during the outage"
    );
}

/// `Wait` and `Skipped` say nothing about the destination: a handler that
/// only waits (a claim held elsewhere) never opens the breaker, and a
/// `Skipped` message is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_and_skips_leave_the_breaker_alone() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 1, 10).await;
    let ids = test.send_events(4).await;
    let handler = Recorder::new(|delivery| {
        if delivery.message.receive_count < 4 {
            Step::After(
                DONE_QUICKLY,
                Outcome::Wait {
                    after: Some(Duration::from_millis(200)),
                    reason: "held by another claim".to_owned(),
                },
            )
        } else {
            Step::After(DONE_QUICKLY, Outcome::Skipped)
        }
    });
    let breaker = CircuitBreaker::new(
        "test-destination",
        BreakerConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(30),
        },
    );

    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(
        config(4, 1),
        Arc::new(test.queue.clone()),
        Arc::clone(&handler),
    )
    .with_breaker(Arc::clone(&breaker));
    let stats = consumer.stats();
    let run = tokio::spawn(consumer.run(shutdown.clone()));

    // Done first: LocalStack's depth can read 0 while a receive has taken
    // messages off the visible list and not yet marked them in flight.
    eventually(Duration::from_secs(30), "4 messages skipped", || {
        stats.count(Processed::Done) == ids.len() as u64
    })
    .await;
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(
        stats.count(Processed::Retried) >= 12,
        "each message waited 3 times"
    );
    assert_eq!(stats.count(Processed::Done), ids.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_nothing_and_repeats_nothing() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 3, 5).await;
    let ids = test.send_events(40).await;
    let handler = Recorder::new(|delivery| {
        let millis = 20 + u64::from(delivery.event_id.to_hex().as_bytes()[0] % 8) * 25;
        Step::After(Duration::from_millis(millis), Outcome::Done)
    });

    let shutdown = CancellationToken::new();
    let first = tokio::spawn(
        Consumer::new(
            config(8, 3),
            Arc::new(test.queue.clone()),
            Arc::clone(&handler),
        )
        .run(shutdown.clone()),
    );
    eventually(Duration::from_secs(20), "some progress", || {
        handler.done() >= 10
    })
    .await;
    shutdown.cancel();
    let summary = first.await.unwrap();
    assert_eq!(summary.abandoned, 0);
    let unfinished: Vec<_> = handler
        .runs()
        .into_values()
        .flatten()
        .filter(|run| !run.finished)
        .collect();
    assert!(unfinished.is_empty(), "in-flight handlers were cut off");

    let shutdown = CancellationToken::new();
    let second = tokio::spawn(
        Consumer::new(
            config(8, 3),
            Arc::new(test.queue.clone()),
            Arc::clone(&handler),
        )
        .run(shutdown.clone()),
    );
    eventually(Duration::from_secs(30), "all 40 done", || {
        handler.done() == 40
    })
    .await;
    eventually_async(Duration::from_secs(10), "the queue to be empty", || async {
        test.depth().await == 0
    })
    .await;
    shutdown.cancel();
    second.await.unwrap();

    let runs = handler.runs();
    for id in &ids {
        assert_eq!(runs[id].len(), 1, "event {id} ran {} times", runs[id].len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_serves_health_readiness_and_status() {
    use hookfleet_worker::admin::{AdminQueue, AdminState, router};

    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 5).await;
    test.send_events(3).await;
    let handler = Recorder::new(|_| Step::After(DONE_QUICKLY, Outcome::Done));
    let queue = Arc::new(test.queue.clone());
    let consumer = Consumer::new(config(4, 30), Arc::clone(&queue), Arc::clone(&handler));
    let breaker = CircuitBreaker::new(
        "admin-test",
        BreakerConfig {
            failure_threshold: 1,
            cooldown: Duration::from_secs(60),
        },
    );
    breaker.try_acquire().unwrap().failure();
    let state = Arc::new(AdminState {
        worker: "hookfleet-test".into(),
        prometheus: None,
        queues: vec![AdminQueue::new(consumer.stats(), Arc::clone(&queue))],
        breakers: vec![breaker],
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let shutdown = CancellationToken::new();
    let run = tokio::spawn(consumer.run(shutdown.clone()));
    eventually(Duration::from_secs(20), "3 done", || handler.done() == 3).await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{address}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let status: serde_json::Value = get("/status").await.unwrap().json().await.unwrap();
    assert_eq!(status["worker"], "hookfleet-test");
    assert_eq!(status["queues"][0]["queue"], queue.name());
    assert_eq!(status["queues"][0]["processed"]["done"], 3);
    assert_eq!(status["queues"][0]["in_flight"], 0);
    assert_eq!(status["breakers"][0]["destination"], "admin-test");
    assert_eq!(status["breakers"][0]["state"], "open");

    shutdown.cancel();
    run.await.unwrap();
    client
        .delete_queue()
        .queue_url(queue.url())
        .send()
        .await
        .unwrap();
    eventually_async(Duration::from_secs(10), "readyz to fail", || async {
        get("/readyz").await.unwrap().status() == 503
    })
    .await;
    server.abort();
}
