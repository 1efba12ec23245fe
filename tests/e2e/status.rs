//! `hookfleet status` against LocalStack: queue and DLQ depths, a worker
//! that does not answer (shown, exit 0), and fake workers on 127.0.0.1:0
//! serving `/healthz` and `/status` the way the worker runtime does.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hookfleet_e2e::process::free_port;
use hookfleet_e2e::topology::Queue;
use hookfleet_e2e::{TestTopology, localstack};
use serde_json::{Value, json};

use crate::dlq::{Setup, put_by_policy, put_given_up};

/// A fake worker's admin endpoint: `/healthz` answers `health`, `/status`
/// answers `status`. Returns its address.
async fn fake_worker(health: StatusCode, status: Value) -> String {
    let app = Router::new()
        .route("/healthz", get(move || async move { (health, "ok\n") }))
        .route(
            "/status",
            get(move || {
                let status = status.clone();
                async move { axum::Json(status) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// What the CRM worker's `/status` looks like (hookfleet-worker's
/// `admin::Status`).
fn crm_status(crm: &str, welcome: &str) -> Value {
    json!({
        "worker": "hookfleet-crm",
        "queues": [
            {
                "queue": crm,
                "in_flight": 2,
                "received": 12,
                "processed": {"done": 7, "retried": 2, "gave_up": 1, "breaker_open": 0,
                              "panicked": 0, "abandoned": 0},
                "oldest_message_age_secs": 1.5
            },
            {
                "queue": welcome,
                "in_flight": 1,
                "received": 3,
                "processed": {"done": 3, "retried": 0, "gave_up": 0, "breaker_open": 0,
                              "panicked": 0, "abandoned": 0},
                "oldest_message_age_secs": 0.0
            }
        ],
        "breakers": [
            {"destination": "crm-api", "state": "open", "open_for_secs": 21.7},
            {"destination": "welcome", "state": "closed"}
        ]
    })
}

#[tokio::test]
async fn status_shows_queue_depths_and_an_unreachable_worker_with_exit_0() {
    let Some(aws) = localstack().await else {
        return;
    };
    let nobody = format!("127.0.0.1:{}", free_port());
    let topology = TestTopology::builder().admin(Queue::Crm, &nobody).build();
    topology.apply().await;
    let dlq = topology.dlq(&topology.crm);
    let setup = Setup {
        dlq_url: topology.queue_url(&aws, &dlq).await,
        source_url: topology.queue_url(&aws, &topology.crm).await,
        dlq,
        aws,
        topology,
    };
    for _ in 0..3 {
        crate::dlq::put(
            &setup.aws,
            &setup.source_url,
            &crate::dlq::Put {
                body: "{}".into(),
                attributes: Default::default(),
            },
        )
        .await;
    }
    put_given_up(
        &setup.aws,
        &setup.dlq_url,
        "referral.completed",
        "crm answered 503",
    )
    .await;
    put_by_policy(&setup.aws, &setup.dlq_url, "referral.completed").await;

    let output = setup.hookfleet(&["status"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let line = |name: &str| -> Vec<String> {
        output
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", output.stdout))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // QUEUE VISIBLE IN-FLIGHT DELAYED DLQ
    assert_eq!(line(&setup.topology.crm)[1..5], ["3", "0", "0", "2"]);
    assert_eq!(line(&setup.topology.alerts)[1..5], ["0", "0", "0", "0"]);
    let worker = output
        .stdout
        .lines()
        .find(|l| l.contains(&nobody))
        .unwrap_or_else(|| panic!("{}", output.stdout));
    assert!(worker.contains("unreachable"), "{worker}");
    assert!(
        worker.starts_with(&format!("({})", setup.topology.crm)),
        "{worker}"
    );

    let output = setup.hookfleet(&["status", "--json"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let status: Value = serde_json::from_str(&output.stdout).unwrap();
    let crm = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == setup.topology.crm.as_str())
        .unwrap();
    assert_eq!(crm["counts"]["visible"], 3);
    assert_eq!(crm["dlq_depth"], 2);
    assert_eq!(status["workers"][0]["address"], nobody.as_str());
    assert_eq!(status["workers"][0]["health"], "unreachable");
    assert!(status["workers"][0]["status"].is_null());
}

#[tokio::test]
async fn status_renders_reachable_workers() {
    let Some(_aws) = localstack().await else {
        return;
    };
    // Not applied: the queues show as missing, which is not an error.
    let topology = TestTopology::new();
    let healthy = fake_worker(StatusCode::OK, crm_status(&topology.crm, &topology.welcome)).await;
    let sick = fake_worker(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"worker": "hookfleet-alerts", "queues": [], "breakers": []}),
    )
    .await;
    let env = topology.env();
    let run = |args: Vec<String>| {
        let env = env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            hookfleet_e2e::process::run(&hookfleet_e2e::bin("hookfleet"), &args, &env).await
        }
    };
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "status", "--admin", &healthy, "--admin", &sick, "--admin", &healthy,
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
    };

    let output = run(args(&[])).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert!(
        output
            .stdout
            .contains("missing: run `hookfleet infra apply`"),
        "{}",
        output.stdout
    );
    let workers: Vec<&str> = output
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("WORKER"))
        .skip(1)
        .collect();
    assert_eq!(workers.len(), 2, "each address once:\n{}", output.stdout);
    let healthy_line = workers[0];
    assert!(healthy_line.starts_with("hookfleet-crm "), "{healthy_line}");
    for expected in [
        healthy.as_str(),
        " ok ",
        " 3 ",
        "done 10, gave_up 1, retried 2",
        "crm-api open (22s left), welcome closed",
    ] {
        assert!(
            healthy_line.contains(expected),
            "{expected:?} in {healthy_line}"
        );
    }
    assert!(
        workers[1].contains("unhealthy (/healthz answered 503"),
        "{}",
        workers[1]
    );

    let output = run(args(&["--json"])).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let status: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(status["workers"][0]["health"], "ok");
    assert_eq!(
        status["workers"][0]["status"],
        crm_status(&topology.crm, &topology.welcome)
    );
    assert_eq!(status["workers"][1]["health"], "unhealthy");
}
