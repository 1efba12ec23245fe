//! The wiring of a worker binary ([`Worker`]) run in-process: the admin
//! endpoint, queue resolution, a clean stop, and refusals at start.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hookfleet_worker::{Outcome, Worker, WorkerArgs, WorkerError, WorkerSettings};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::support::{self, Recorder, Step, TestQueue, eventually_async};

const WORKER: &str = "hookfleet-test";

/// The default name the test binds its handler to; the queue itself comes
/// from `--queue`.
const QUEUE: &str = "it-queue";

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
}

/// Settings as a worker binary would check them, from flags only.
fn settings(queue: &str, admin: &str) -> WorkerSettings {
    let topology = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/topology.toml");
    let argv = [
        "worker",
        "--topology",
        topology,
        "--queue",
        queue,
        "--admin-listen",
        admin,
        "--concurrency",
        "8",
        "--shutdown-grace-secs",
        "5",
    ];
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    cli.worker.check(WORKER, &[QUEUE]).expect("valid settings")
}

fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    PrometheusBuilder::new().build_recorder().handle()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wired_worker_drains_serves_status_and_stops_cleanly() {
    let Some(client) = support::localstack().await else {
        return;
    };
    let test = TestQueue::create(&client, 30, 5).await;
    test.send_events(5).await;
    let admin = format!("127.0.0.1:{}", free_port());
    let handler = Recorder::new(|_| Step::After(Duration::from_millis(10), Outcome::Done));

    let worker = Worker::new(settings(test.queue.url(), &admin), prometheus())
        .aws_config(support::aws_config().await)
        .queue(QUEUE, Arc::clone(&handler), Some("test-destination"));
    let shutdown = worker.shutdown_token();
    let run = tokio::spawn(worker.run());

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{admin}{path}")).send();
    eventually_async(
        Duration::from_secs(30),
        "/status to show 5 done",
        || async {
            let Ok(answer) = get("/status").await else {
                return false;
            };
            let status: serde_json::Value = answer.json().await.expect("JSON status");
            status["queues"][0]["processed"]["done"] == 5
        },
    )
    .await;

    let status: serde_json::Value = get("/status").await.unwrap().json().await.unwrap();
    assert_eq!(status["worker"], WORKER);
    assert_eq!(
        status["queues"][0]["queue"],
        test.queue.url().rsplit('/').next().unwrap()
    );
    assert_eq!(status["queues"][0]["received"], 5);
    assert_eq!(status["queues"][0]["in_flight"], 0);
    assert_eq!(status["breakers"][0]["destination"], "test-destination");
    assert_eq!(status["breakers"][0]["state"], "closed");
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    assert_eq!(get("/metrics").await.unwrap().status(), 200);

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the worker stops within 10 s of the cancel")
        .expect("the run task does not panic");
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(
        get("/healthz").await.is_err(),
        "the admin endpoint is closed"
    );
    assert_eq!(handler.done(), 5);
    assert_eq!(test.depth().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_to_start_on_a_busy_port_or_a_missing_queue() {
    let Some(_reachable) = support::localstack().await else {
        return;
    };
    let handler = Recorder::new(|_| Step::After(Duration::ZERO, Outcome::Done));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let error = Worker::new(settings("hf-w-unused", &address), prometheus())
        .aws_config(support::aws_config().await)
        .queue(QUEUE, Arc::clone(&handler), None)
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorkerError::AdminListen { .. }),
        "{error:?}"
    );
    let message = format!("{:#}", anyhow::Error::from(error));
    assert!(message.contains(&address), "{message}");
    assert!(message.contains("HOOKFLEET_ADMIN_LISTEN"), "{message}");

    let admin = format!("127.0.0.1:{}", free_port());
    let error = Worker::new(settings("hf-w-does-not-exist", &admin), prometheus())
        .aws_config(support::aws_config().await)
        .queue(QUEUE, Arc::clone(&handler), None)
        .run()
        .await
        .unwrap_err();
    let message = format!("{:#}", anyhow::Error::from(error));
    assert!(message.contains("hf-w-does-not-exist"), "{message}");
    assert!(message.contains("does not exist"), "{message}");

    let error = Worker::new(settings("hf-w-unused", &admin), prometheus())
        .queue("another-queue", Arc::clone(&handler), None)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(error, WorkerError::UnknownQueue(_)), "{error:?}");
    assert_eq!(handler.started(), 0);
}
