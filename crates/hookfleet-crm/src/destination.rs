//! An outbound destination (the CRM API, the welcome workflow): one
//! `POST` with an `Idempotency-Key`, and what its answer means (SPEC §10).
//!
//! | answer | becomes | why |
//! |---|---|---|
//! | 2xx | [`Answer::Accepted`] | done |
//! | 408, 429, 5xx | [`Answer::Retry`], after `Retry-After` when given | the destination is busy or failing, not the event |
//! | timeout, connection refused or reset | [`Answer::Retry`] | the same |
//! | any other status (4xx, a redirect) | [`Answer::Refused`], reason `HTTP <status>: <first line of the answer>` | the destination refused this content; another attempt gets the same answer |
//! | URL unset | [`Answer::Logged`] | the destination is off: the call is logged, not made |
//!
//! Redirects are not followed: a `POST` turned into a `GET` by a 302
//! would not be the call the destination documents.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::time::Instant;

use crate::metrics::{CallResult, DestinationMetrics};

/// The header carrying the effect's idempotency key (SPEC §10).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How much of an answer's body is read: enough for its first line.
const MAX_ANSWER_BYTES: usize = 1024;

/// The longest first line kept in a reason, in characters.
const MAX_LINE_CHARS: usize = 200;

/// An HTTP date in `Retry-After` (RFC 9110's IMF-fixdate).
const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// What a call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx answer.
    Accepted,
    /// Not made: the destination's URL is unset.
    Logged,
    /// Worth trying again: after `after` when the destination said.
    Retry {
        /// From `Retry-After`, capped.
        after: Option<Duration>,
        /// Why, one line.
        reason: String,
    },
    /// Refused for good: `HTTP <status>: <first line>`.
    Refused {
        /// Why, one line.
        reason: String,
    },
}

/// One destination: its name (the breaker's and the metrics'), its URL,
/// and the shared HTTP client.
#[derive(Debug)]
pub struct Destination {
    name: &'static str,
    url: Option<Url>,
    client: reqwest::Client,
    retry_after_max: Duration,
    metrics: DestinationMetrics,
}

impl Destination {
    /// A destination called `name`, `POST`ed at `url` (`None`: only
    /// logged). A `Retry-After` longer than `retry_after_max` is cut to it.
    pub fn new(
        name: &'static str,
        url: Option<Url>,
        client: reqwest::Client,
        retry_after_max: Duration,
    ) -> Self {
        Self {
            name,
            url,
            client,
            retry_after_max,
            metrics: DestinationMetrics::register(name),
        }
    }

    /// The destination's name: `crm` or `welcome`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its metric handles.
    pub fn metrics(&self) -> &DestinationMetrics {
        &self.metrics
    }

    /// `POST`s `body` (JSON) with `Idempotency-Key: idempotency_key`.
    pub async fn post(&self, body: &serde_json::Value, idempotency_key: &str) -> Answer {
        let Some(url) = &self.url else {
            tracing::info!(
                destination = self.name,
                idempotency_key,
                "destination URL unset; call logged, not made"
            );
            self.metrics.call(CallResult::Logged, None);
            return Answer::Logged;
        };

        let started = Instant::now();
        let sent = self
            .client
            .post(url.clone())
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(body)
            .send()
            .await;
        let (answer, result) = match sent {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers(), OffsetDateTime::now_utc())
                    .map(|after| after.min(self.retry_after_max));
                let line = first_line(response).await;
                let answer = classify(status, retry_after, &line);
                let result = match answer {
                    Answer::Accepted | Answer::Logged => CallResult::Accepted,
                    Answer::Retry { .. } => CallResult::Retried,
                    Answer::Refused { .. } => CallResult::Refused,
                };
                (answer, result)
            }
            Err(error) => {
                let answer = Answer::Retry {
                    after: None,
                    reason: transport_reason(&error),
                };
                (answer, CallResult::Failed)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.call(result, Some(seconds));
        match &answer {
            Answer::Accepted | Answer::Logged => {
                tracing::debug!(destination = self.name, seconds, "call accepted");
            }
            Answer::Retry { reason, after } => tracing::warn!(
                destination = self.name,
                reason,
                retry_after_secs = after.map(|a| a.as_secs()),
                "call failed; will retry"
            ),
            Answer::Refused { reason } => {
                tracing::warn!(destination = self.name, reason, "call refused")
            }
        }
        answer
    }
}

/// What a status means (see the module table).
fn classify(status: StatusCode, retry_after: Option<Duration>, first_line: &str) -> Answer {
    if status.is_success() {
        return Answer::Accepted;
    }
    let shown = if first_line.is_empty() {
        status.canonical_reason().unwrap_or("no reason given")
    } else {
        first_line
    };
    let reason = format!("HTTP {}: {shown}", status.as_u16());
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if retryable {
        Answer::Retry {
            after: retry_after,
            reason,
        }
    } else {
        Answer::Refused { reason }
    }
}

/// `Retry-After` as a delay: whole seconds, or an HTTP date (a date in
/// the past is no delay). Anything else is ignored.
fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = PrimitiveDateTime::parse(value, HTTP_DATE)
        .ok()?
        .assume_utc();
    Some((at - now).try_into().unwrap_or(Duration::ZERO))
}

/// The first non-blank line of the answer's body (at most
/// [`MAX_ANSWER_BYTES`] read, [`MAX_LINE_CHARS`] kept), or "" for a body
/// that is empty, unreadable or not text.
async fn first_line(mut response: reqwest::Response) -> String {
    let textual = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/") || v.contains("json") || v.contains("xml"));
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    if !textual {
        return String::new();
    }
    body.truncate(MAX_ANSWER_BYTES);
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| line.chars().take(MAX_LINE_CHARS).collect())
        .unwrap_or_default()
}

/// A request that got no answer, on one line, without the URL (its query
/// may hold a key).
fn transport_reason(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn statuses_map_to_the_spec() {
        assert_eq!(classify(StatusCode::OK, None, ""), Answer::Accepted);
        assert_eq!(
            classify(StatusCode::ACCEPTED, None, "queued"),
            Answer::Accepted
        );
        for status in [429, 500, 502, 503, 504, 408] {
            let status = StatusCode::from_u16(status).unwrap();
            let answer = classify(status, Some(Duration::from_secs(7)), "busy");
            assert_eq!(
                answer,
                Answer::Retry {
                    after: Some(Duration::from_secs(7)),
                    reason: format!("HTTP {}: busy", status.as_u16()),
                }
            );
        }
        for status in [400, 401, 403, 404, 409, 422, 301] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify(status, None, "x"), Answer::Refused { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn refusals_name_the_status_and_the_first_line() {
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, "referral_code is required"),
            Answer::Refused {
                reason: "HTTP 400: referral_code is required".into()
            }
        );
        assert_eq!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, None, ""),
            Answer::Refused {
                reason: "HTTP 422: Unprocessable Entity".into()
            }
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = datetime!(2026-12-03 10:00:00 UTC);
        let header = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert_eq!(
            retry_after(&header("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&header("Thu, 03 Dec 2026 10:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&header("Thu, 03 Dec 2026 09:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&header("soon"), now), None);
        assert_eq!(retry_after(&header("-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
