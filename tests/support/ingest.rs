//! Running `hookfleet-ingest` and sending it signed webhooks.

use serde_json::Value;

use crate::process::{Running, free_port};

/// The secret the suite signs with.
pub const SECRET: &str = "whsec_e2e_current";

/// A running ingest and its webhook URL.
pub struct Ingest {
    pub process: Running,
    pub base: String,
}

impl Ingest {
    /// Starts ingest with `env` (the topology's) plus `extra`, and waits
    /// until `/healthz` answers.
    pub async fn start(env: &[(String, String)], extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("HOOKFLEET_LISTEN".into(), format!("127.0.0.1:{port}")));
        if !extra.iter().any(|(k, _)| *k == "HOOKFLEET_WEBHOOK_SECRET") {
            env.push(("HOOKFLEET_WEBHOOK_SECRET".into(), SECRET.into()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut process = Running::start(&crate::bin("hookfleet-ingest"), &[], &env);
        let base = format!("http://127.0.0.1:{port}");
        crate::process::wait_healthy(&mut process, &format!("{base}/healthz")).await;
        Self { process, base }
    }

    /// The webhook endpoint.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/tolinku", self.base)
    }

    /// Fetches `/metrics` and returns the value of the first sample line
    /// starting with `prefix` (0 when absent).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = crate::reqwest_client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A webhook body with a unique marker in `data.nonce`.
pub fn body(event: &str, data: Value) -> Vec<u8> {
    let mut data = data;
    data["nonce"] = Value::String(crate::unique("n"));
    serde_json::to_vec(&serde_json::json!({
        "event": event,
        "timestamp": "2026-12-03T10:15:30Z",
        "data": data,
    }))
    .unwrap()
}

/// An answer: status, `Retry-After`, and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: Value,
}

/// Posts `body` with the event header and a signature by `secret` (none
/// when `None`).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> Result<Answer, reqwest::Error> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Tolinku/1.0")
        .header("x-webhook-event", event);
    if let Some(signature) = signature {
        request = request.header("x-webhook-signature", signature);
    }
    let answer = request.body(body).send().await?;
    let status = answer.status().as_u16();
    let retry_after = answer
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let json = answer.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        retry_after,
        json,
    })
}

/// Posts `body` signed with [`SECRET`].
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    body: Vec<u8>,
) -> Answer {
    let signature = hookfleet_event::sign(SECRET, &body);
    post(client, url, event, body, Some(signature))
        .await
        .expect("request")
}
