//! A local HTTP server standing in for an outside service (Slack, the CRM
//! API, the welcome workflow): it listens on `127.0.0.1:0`, records every
//! request (method, path with query, headers, body) and answers what the
//! test tells it to.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use hookfleet_e2e::receiver::{Reply, TestReceiver};
//!
//! let receiver = TestReceiver::start().await; // 200 to everything
//! receiver.reply_next(3, Reply::status(503).retry_after_secs(1));
//! // … point the binary at receiver.url("/hook") …
//! let requests = receiver.wait_for(4, Duration::from_secs(20)).await;
//! assert_eq!(requests[3].answered, 200);
//! # }
//! ```
//!
//! Replies are chosen in order: the scripted ones ([`TestReceiver::reply_next`]),
//! each used for as many requests as it was given, then the default
//! ([`TestReceiver::reply_always`], initially `200 ok`). A reply may be
//! delayed (to play a service that times out) and may carry `Retry-After`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How to answer one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// A `Retry-After` header value, if any.
    pub retry_after: Option<String>,
    /// How long to wait before answering.
    pub delay: Duration,
    /// The body (sent as `text/plain`).
    pub body: String,
}

impl Reply {
    /// `status` with a short body, no delay, no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: if status < 300 { "ok" } else { "error" }.to_owned(),
        }
    }

    /// `200 ok`.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Adds `Retry-After: <secs>`.
    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.to_string());
        self
    }

    /// Adds a `Retry-After` header with any value (an HTTP date, garbage).
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// Waits `delay` before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers with `body`.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, …
    pub method: Method,
    /// The path and query, e.g. `/referrals?x=1`.
    pub path: String,
    /// Every header, as sent.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
    /// The status it was answered with (with a delayed reply: the status
    /// it would get, even if the client gave up waiting).
    pub answered: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// A header's value as text, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {} body is not JSON: {e}", self.method, self.path))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether it was answered with a 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

#[derive(Default)]
struct Script {
    /// (requests left, reply), used front to back.
    next: VecDeque<(usize, Reply)>,
    default: Option<Reply>,
}

impl Script {
    fn take(&mut self) -> Reply {
        while let Some((left, reply)) = self.next.front_mut() {
            if *left == 0 {
                self.next.pop_front();
                continue;
            }
            *left -= 1;
            return reply.clone();
        }
        self.default.clone().unwrap_or_else(Reply::ok)
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    recorded: Mutex<Vec<Recorded>>,
    arrived: Notify,
}

/// The receiver. Stops serving when dropped.
pub struct TestReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestReceiver {
    /// Starts a receiver on `127.0.0.1:0` answering `200 ok` to any method
    /// on any path.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test receiver");
        let address = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            shared,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The URL of `path` (which starts with `/`) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Answers every request not scripted by [`Self::reply_next`] with
    /// `reply`, from now on.
    pub fn reply_always(&self, reply: Reply) {
        self.script().default = Some(reply);
    }

    /// Answers the next `count` requests (after those already scripted)
    /// with `reply`.
    pub fn reply_next(&self, count: usize, reply: Reply) {
        self.script().next.push_back((count, reply));
    }

    /// Drops every scripted reply and goes back to `200 ok`.
    pub fn reset(&self) {
        *self.script() = Script::default();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The requests answered with a 2xx, in arrival order.
    pub fn successful(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::succeeded)
            .collect()
    }

    /// Waits until at least `count` requests arrived and returns them all;
    /// panics after `deadline`.
    pub async fn wait_for(&self, count: usize, deadline: Duration) -> Vec<Recorded> {
        self.wait_until(deadline, &format!("{count} request(s)"), |r| {
            r.len() >= count
        })
        .await
    }

    /// Waits until `done` holds for the requests so far and returns them;
    /// panics naming `what` after `deadline`.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let until = Instant::now() + deadline;
        loop {
            // Registered before checking, so an arrival in between wakes us.
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            if tokio::time::timeout_at(until, arrived).await.is_err() {
                panic!(
                    "timed out after {deadline:?} waiting for {what} at the test receiver; \
                     got {} request(s)",
                    self.count()
                );
            }
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = shared
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    shared
        .recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Recorded {
            method,
            path,
            headers,
            body,
            answered: reply.status,
            at: Instant::now(),
        });
    shared.arrived.notify_waiters();

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    if let Some(value) = reply.retry_after
        && let Ok(value) = value.parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}
