//! `hookfleet send` against a local HTTP receiver that checks the
//! signature like ingest does and records what arrived; and the ways it
//! refuses bad configuration (exit 2) or reports a failed send (exit 1).
//! No LocalStack needed.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookfleet_e2e::bin;
use hookfleet_e2e::process::{Output, free_port, run};
use hookfleet_event::Verifier;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    headers: HeaderMap,
    body: Bytes,
    /// Which secret verified it (`Verifier::verify`), if any.
    verified: Option<usize>,
}

/// A webhook receiver on 127.0.0.1:0 that answers `status` and records
/// every request.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

#[derive(Clone)]
struct ReceiverState {
    verifier: Arc<Verifier>,
    status: StatusCode,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    /// Starts a receiver verifying against `secrets` (comma-separated).
    async fn start(secrets: &str, status: StatusCode) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            verifier: Arc::new(Verifier::from_list(secrets).expect("secrets")),
            status,
            requests: requests.clone(),
        };
        let app = Router::new()
            .route("/webhooks/tolinku", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{address}/webhooks/tolinku"),
            requests,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature = headers
        .get("x-webhook-signature")
        .and_then(|v| v.to_str().ok());
    let verified = state.verifier.verify(&body, signature).ok();
    state.requests.lock().expect("requests").push(Request {
        headers,
        body,
        verified,
    });
    (state.status, r#"{"event_id":"abc"}"#.to_owned())
}

fn env(secret: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("HOOKFLEET_LOG_FORMAT".to_owned(), "text".to_owned())];
    if let Some(secret) = secret {
        env.push(("HOOKFLEET_WEBHOOK_SECRET".into(), secret.into()));
    }
    env
}

async fn send(args: &[&str], env: &[(String, String)]) -> Output {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    run(&bin("hookfleet"), &all, env).await
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn send_signs_with_the_first_secret_and_posts_the_envelope() {
    let receiver = Receiver::start("whsec_new", StatusCode::OK).await;
    let before = OffsetDateTime::now_utc();

    let output = send(
        &[
            "--event",
            "link.clicked",
            "--data",
            r#"{"campaign": "spring", "ip": "203.0.113.7"}"#,
            "--url",
            &receiver.url,
        ],
        &env(Some("whsec_new,whsec_old")),
    )
    .await;

    assert_eq!(output.code, Some(0), "{output:?}");
    assert_eq!(output.stdout, "HTTP 200\n{\"event_id\":\"abc\"}\n");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.verified, Some(0), "signed with the first secret");
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(
        header(request, "user-agent"),
        format!("hookfleet-cli/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header(request, "x-webhook-event"), "link.clicked");

    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(body["event"], "link.clicked");
    assert_eq!(
        body["data"],
        json!({"campaign": "spring", "ip": "203.0.113.7"})
    );
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert!(timestamp.ends_with('Z'), "UTC: {timestamp}");
    let sent_at = OffsetDateTime::parse(timestamp, &Rfc3339).expect("RFC 3339");
    // Millisecond precision: compare with the start truncated likewise.
    assert!(
        sent_at >= before.replace_nanosecond(0).unwrap(),
        "{timestamp}"
    );
    assert!(sent_at <= OffsetDateTime::now_utc(), "{timestamp}");
}

#[tokio::test]
async fn send_keeps_a_given_timestamp_and_defaults_data_to_an_empty_object() {
    let receiver = Receiver::start("whsec_only", StatusCode::OK).await;

    let output = send(
        &[
            "--event",
            "test",
            "--timestamp",
            "2026-12-03T10:15:30Z",
            "--secret",
            "whsec_only",
            "--url",
            &receiver.url,
        ],
        &env(None),
    )
    .await;

    assert_eq!(output.code, Some(0), "{output:?}");
    let request = &receiver.requests()[0];
    assert_eq!(request.verified, Some(0));
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"event":"test","timestamp":"2026-12-03T10:15:30Z","data":{}}"#
    );
}

#[tokio::test]
async fn send_exits_1_when_the_answer_is_not_2xx() {
    let receiver = Receiver::start("whsec_a", StatusCode::UNAUTHORIZED).await;

    let output = send(
        &["--event", "link.clicked", "--url", &receiver.url],
        &env(Some("whsec_a")),
    )
    .await;

    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(output.stdout.starts_with("HTTP 401\n"), "{output:?}");
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn send_exits_1_with_one_line_when_nothing_listens() {
    let url = format!("http://127.0.0.1:{}/webhooks/tolinku", free_port());

    let output = send(&["--event", "test", "--url", &url], &env(Some("whsec_a"))).await;

    assert_eq!(output.code, Some(1), "{output:?}");
    assert_eq!(output.stdout, "");
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    assert!(
        output
            .stderr
            .starts_with(&format!("error: cannot send to {url}")),
        "{output:?}"
    );
}

#[tokio::test]
async fn send_refuses_bad_configuration_with_exit_2_and_one_line() {
    let url = format!("http://127.0.0.1:{}/webhooks/tolinku", free_port());
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        (&["--event", "test"], None, "HOOKFLEET_WEBHOOK_SECRET"),
        (
            &["--event", "test"],
            Some(" , "),
            "HOOKFLEET_WEBHOOK_SECRET",
        ),
        (
            &["--event", "test", "--data", "[1, 2]"],
            Some("whsec_a"),
            "--data",
        ),
        (
            &["--event", "test", "--data", "{nope"],
            Some("whsec_a"),
            "--data",
        ),
        (
            &["--event", "test", "--timestamp", "yesterday"],
            Some("whsec_a"),
            "--timestamp",
        ),
        (
            &["--event", "test", "--url", "not a url"],
            Some("whsec_a"),
            "HOOKFLEET_INGEST_URL",
        ),
    ];

    for (args, secret, setting) in cases {
        let mut args = args.to_vec();
        if !args.contains(&"--url") {
            args.extend(["--url", &url]);
        }
        let output = send(&args, &env(secret)).await;
        assert_eq!(output.code, Some(2), "{args:?}: {output:?}");
        assert_eq!(output.stdout, "", "{args:?}");
        assert_eq!(output.stderr.lines().count(), 1, "{args:?}: {output:?}");
        assert!(
            output
                .stderr
                .starts_with(&format!("error: invalid {setting}: ")),
            "{args:?}: {output:?}"
        );
    }
}
