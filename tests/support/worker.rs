//! Running any worker binary (`hookfleet-crm`, …) and reading its admin
//! endpoint; and how much a queue still holds.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::Aws;
use crate::process::{Running, free_port};

/// A running worker and its admin endpoint.
pub struct WorkerProcess {
    /// The process.
    pub process: Running,
    /// `http://127.0.0.1:<port>` of `/healthz`, `/status`, `/metrics`.
    pub admin: String,
}

impl WorkerProcess {
    /// Starts the workspace binary `bin` with `env` and its admin endpoint
    /// on a free port, and waits until `/healthz` answers: by then the
    /// worker has resolved its queues and opened its database.
    pub async fn start(bin: &str, env: &[(String, String)]) -> Self {
        let port = free_port();
        let mut env = env.to_vec();
        env.retain(|(k, _)| k != "HOOKFLEET_ADMIN_LISTEN");
        env.push(("HOOKFLEET_ADMIN_LISTEN".into(), format!("127.0.0.1:{port}")));
        let mut process = Running::start(&crate::bin(bin), &[], &env);
        let admin = format!("http://127.0.0.1:{port}");

        crate::process::wait_healthy(&mut process, &format!("{admin}/healthz")).await;
        Self { process, admin }
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> Value {
        crate::reqwest_client()
            .get(format!("{}/status", self.admin))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON")
    }

    /// The sum of the `/metrics` samples whose line starts with `prefix`
    /// (0 when there is none), e.g. a counter over all its labels.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = crate::reqwest_client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Stops it with SIGTERM and asserts it exits 0 within 30 s.
    pub async fn stop(mut self) {
        self.process.sigterm();
        let status = self.process.wait(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "the worker exited with {status} after SIGTERM:\n{}",
            self.process.log()
        );
    }
}

/// Messages in the queue at `url`: visible, in flight (received and not
/// deleted) and delayed (a message timer still running).
pub async fn queue_depth(aws: &Aws, url: &str) -> u64 {
    let answer = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap_or_else(|e| panic!("attributes of {url}: {e:?}"));
    answer
        .attributes()
        .into_iter()
        .flatten()
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum()
}
