//! The set-up every CRM scenario shares: LocalStack, a topology, a
//! database, ingest, the two receivers, and the worker's environment;
//! plus the events sent and what each destination must receive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use hookfleet_e2e::analytics::TestDatabase;
use hookfleet_e2e::ingest::{Ingest, body, post_signed};
use hookfleet_e2e::receiver::{Recorded, TestReceiver};
use hookfleet_e2e::topology::receive_all;
use hookfleet_e2e::worker::{WorkerProcess, queue_depth};
use hookfleet_e2e::{Aws, TestTopology, eventually, localstack, reqwest_client};
use hookfleet_store::EffectState;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Backend;

/// How long a test waits for the worker to get through what it was sent.
pub(crate) const DEADLINE: Duration = Duration::from_secs(90);

/// The welcome delay the tests run with.
pub(crate) const WELCOME_DELAY: Duration = Duration::from_secs(3);

/// The HTTP timeout and the effect lease the tests run with: the lease is
/// the shortest the worker accepts (timeout + 5 s).
pub(crate) const HTTP_TIMEOUT_SECS: u64 = 3;
pub(crate) const LEASE: Duration = Duration::from_secs(8);

/// LocalStack, a topology, a database, ingest and the two receivers.
pub(crate) struct Fleet {
    pub(crate) aws: Aws,
    pub(crate) topology: TestTopology,
    pub(crate) database: TestDatabase,
    pub(crate) ingest: Ingest,
    /// Stands in for the CRM API (`HOOKFLEET_CRM_URL` = `<it>/api`).
    pub(crate) crm: TestReceiver,
    /// Stands in for the workflow (`<it>/workflows/welcome`).
    pub(crate) welcome: TestReceiver,
}

/// One event sent through ingest.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) bytes: Vec<u8>,
    pub(crate) event_id: String,
    /// Just before ingest was asked to take it.
    pub(crate) at: Instant,
}

impl Sent {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("sent JSON")
    }
}

/// `None` (skipped, said on stderr) when LocalStack or PostgreSQL is
/// unreachable outside CI.
pub(crate) async fn setup(backend: Backend, topology: TestTopology) -> Option<Fleet> {
    let aws = localstack().await?;
    let database = match backend {
        Backend::Postgres => TestDatabase::postgres("crm_e2e").await?,
        Backend::Sqlite => TestDatabase::sqlite().await,
    };
    topology.apply().await;
    let ingest = Ingest::start(&topology.env(), &[]).await;
    Some(Fleet {
        aws,
        topology,
        database,
        ingest,
        crm: TestReceiver::start().await,
        welcome: TestReceiver::start().await,
    })
}

impl Fleet {
    /// The worker's environment: the topology's queues, the database, the
    /// receivers, a 3 s welcome delay and quick retries; `extra` on top.
    pub(crate) fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.topology.env();
        env.extend(self.database.env());
        let queues = format!(
            "hookfleet-crm={},hookfleet-welcome={}",
            self.topology.crm, self.topology.welcome
        );
        let settings = [
            ("HOOKFLEET_QUEUE", queues),
            // The worker reads visibility from the topology by the queues'
            // default names, which a test topology does not use.
            (
                "HOOKFLEET_VISIBILITY_TIMEOUT_SECS",
                self.topology.visibility_timeout_secs.to_string(),
            ),
            ("HOOKFLEET_CRM_URL", self.crm.url("/api")),
            (
                "HOOKFLEET_WELCOME_URL",
                self.welcome.url("/workflows/welcome"),
            ),
            (
                "HOOKFLEET_WELCOME_DELAY",
                format!("{}s", WELCOME_DELAY.as_secs()),
            ),
            ("HOOKFLEET_HTTP_TIMEOUT_SECS", HTTP_TIMEOUT_SECS.to_string()),
            ("HOOKFLEET_EFFECT_LEASE_SECS", LEASE.as_secs().to_string()),
            ("HOOKFLEET_BACKOFF_MIN_SECS", "1".into()),
            ("HOOKFLEET_BACKOFF_MAX_SECS", "2".into()),
            ("HOOKFLEET_SHUTDOWN_GRACE_SECS", "5".into()),
            ("HOOKFLEET_DATABASE_WAIT_SECS", "10".into()),
            ("RUST_LOG", "info".into()),
        ];
        for (key, value) in settings
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
        {
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value));
        }
        env
    }

    pub(crate) async fn start_worker(&self, extra: &[(&str, &str)]) -> WorkerProcess {
        WorkerProcess::start("hookfleet-crm", &self.env(extra)).await
    }

    /// Sends a new event of `event_type` with `data` through ingest.
    pub(crate) async fn send(&self, event_type: &str, data: Value) -> Sent {
        let bytes = body(event_type, data);
        self.resend(event_type, &bytes).await
    }

    /// Sends these exact bytes through ingest (again: a Tolinku retry).
    pub(crate) async fn resend(&self, event_type: &str, bytes: &[u8]) -> Sent {
        let at = Instant::now();
        let answer = post_signed(
            &reqwest_client(),
            &self.ingest.webhook_url(),
            event_type,
            bytes.to_vec(),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        Sent {
            bytes: bytes.to_vec(),
            event_id: answer.json["event_id"].as_str().unwrap().to_owned(),
            at,
        }
    }

    /// Puts a second copy of `sent` straight onto `queue`, with the bus
    /// attributes: the duplicate delivery SQS is allowed to make.
    pub(crate) async fn duplicate_on_queue(&self, queue: &str, event_type: &str, sent: &Sent) {
        let url = self.topology.queue_url(&self.aws, queue).await;
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .unwrap()
        };
        self.aws
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(String::from_utf8(sent.bytes.clone()).unwrap())
            .message_attributes("event_type", attribute(event_type))
            .message_attributes("event_id", attribute(&sent.event_id))
            .message_attributes("received_at", attribute("2026-12-03T10:15:31Z"))
            .send()
            .await
            .expect("send a duplicate");
    }

    /// Waits until both queues hold nothing (visible, in flight or
    /// delayed): every delivery has been settled. Call it after waiting
    /// for the effects: the queues also read empty before SNS has
    /// delivered, and for a moment during a receive.
    pub(crate) async fn wait_until_drained(&self) {
        let crm = self.topology.queue_url(&self.aws, &self.topology.crm).await;
        let welcome = self
            .topology
            .queue_url(&self.aws, &self.topology.welcome)
            .await;
        eventually(DEADLINE, "both queues to drain", || async {
            let left = queue_depth(&self.aws, &crm).await + queue_depth(&self.aws, &welcome).await;
            (left == 0).then_some(())
        })
        .await;
    }

    /// Everything in `queue`'s DLQ (removed), after one more poll.
    pub(crate) async fn dead_letters(
        &self,
        queue: &str,
        expected: usize,
    ) -> Vec<(BTreeMap<String, String>, String)> {
        let url = self
            .topology
            .queue_url(&self.aws, &self.topology.dlq(queue))
            .await;
        receive_all(&self.aws, &url, expected, DEADLINE)
            .await
            .into_iter()
            .map(|m| (m.attributes.into_iter().collect(), m.body))
            .collect()
    }

    /// The ledger's state and attempt count of `effect_key`.
    pub(crate) async fn ledger(&self, effect_key: &str) -> Option<(EffectState, u32)> {
        self.database
            .store()
            .effect(effect_key)
            .await
            .expect("read the ledger")
            .map(|r| (r.state, r.attempt))
    }
}

/// The distinct `Idempotency-Key`s among `requests`.
pub(crate) fn keys(requests: &[Recorded]) -> BTreeSet<String> {
    requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or_default().to_owned())
        .collect()
}

/// The one request carrying `event_id` as its key; panics unless there
/// is exactly one.
pub(crate) fn only_call<'a>(requests: &'a [Recorded], event_id: &str) -> &'a Recorded {
    let calls: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.header("idempotency-key") == Some(event_id))
        .collect();
    assert_eq!(calls.len(), 1, "calls for {event_id}: {calls:#?}");
    calls[0]
}

pub(crate) fn referral(code: &str, referrer: &str, referred: Option<&str>) -> Value {
    let mut data = json!({
        "referral_code": code,
        "referrer_id": referrer,
        "campaign": "spring",
        "ip": "81.2.69.142",
    });
    if let Some(referred) = referred {
        data["referred_user_id"] = json!(referred);
    }
    data
}

pub(crate) fn install(platform: &str) -> Value {
    json!({
        "platform": platform,
        "device_type": "phone",
        "country": "GB",
        "campaign": "spring",
        "ip": "81.2.69.142",
    })
}

/// The CRM body the worker must send for `sent`, a referral.
pub(crate) fn expected_referral(sent: &Sent) -> Value {
    let event = sent.json();
    let data = &event["data"];
    json!({
        "event_id": sent.event_id,
        "referral_code": data["referral_code"],
        "referrer_id": data["referrer_id"],
        "referrer_token": null,
        "referred_user_id": data.get("referred_user_id").cloned().unwrap_or(Value::Null),
        "campaign": data["campaign"],
        "completed_at": event["timestamp"],
    })
}

/// The welcome body the worker must send for `sent`, an install.
pub(crate) fn expected_welcome(sent: &Sent) -> Value {
    let event = sent.json();
    let data = &event["data"];
    json!({
        "event_id": sent.event_id,
        "installed_at": event["timestamp"],
        "platform": data["platform"],
        "device_type": data["device_type"],
        "country": data["country"],
        "campaign": data["campaign"],
    })
}

/// Asserts the request is the POST a destination expects for one event.
pub(crate) fn assert_call(request: &Recorded, path: &str, event_id: &str, body: &Value) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, path);
    assert_eq!(request.header("idempotency-key"), Some(event_id));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(&request.json(), body, "body of the call for {event_id}");
}
