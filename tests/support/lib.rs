//! Support for the end-to-end suite: reaching LocalStack, naming things
//! uniquely, writing a test's own topology, and running the real binaries.
//!
//! Every test creates its own topic and queues under random names, so the
//! tests run in parallel and leave nothing shared behind.

pub mod alerts;
pub mod analytics;
pub mod cuttable;
pub mod ingest;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod topology;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;

pub use process::Running;
pub use topology::TestTopology;

/// The LocalStack endpoint the suite uses (`AWS_ENDPOINT_URL`, or the
/// default that `scripts/localstack` starts).
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

/// The environment every binary under test gets for AWS.
pub fn aws_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("HOOKFLEET_LOG_FORMAT".into(), "text".into()),
    ]
}

/// Clients for LocalStack.
#[derive(Clone)]
pub struct Aws {
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// Returns LocalStack's clients, or `None` when it is unreachable outside
/// CI (the test then skips, saying so on stderr). Under `CI=true` an
/// unreachable LocalStack fails the test.
pub async fn localstack() -> Option<Aws> {
    let health = format!("{}/_localstack/health", endpoint());
    let reachable = match reqwest_client().get(&health).send().await {
        Ok(answer) => answer.status().is_success(),
        Err(_) => false,
    };
    if !reachable {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("LocalStack is not reachable at {health} and CI=true");
        }
        eprintln!(
            "\n*** SKIPPED: LocalStack is not reachable at {health}; run scripts/localstack start ***\n"
        );
        return None;
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(hookfleet_bus::aws::http_client())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Some(Aws {
        sns: aws_sdk_sns::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
    })
}

/// A name no other test uses: `prefix-<12 random hex>`.
pub fn unique(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{:012x}", n & 0xffff_ffff_ffff)
}

/// The path of one of the workspace's binaries, built by `cargo build`
/// next to this test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// A reqwest client for tests (rustls on ring).
pub fn reqwest_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("reqwest client")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with
/// `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
