//! `hookfleet send`: sign a webhook the way Tolinku does and send it to
//! ingest, printing the answer. For smoke tests and demos.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use hookfleet_event::{Verifier, sign};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::context::Failure;

/// How long to wait for ingest: Tolinku's own patience (SPEC §2).
const TIMEOUT: Duration = Duration::from_secs(10);

const SIGNATURE_HEADER: &str = "X-Webhook-Signature";
const EVENT_HEADER: &str = "X-Webhook-Event";

/// Flags of `hookfleet send`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct SendArgs {
    /// Event type, e.g. link.clicked (also sent as X-Webhook-Event).
    #[arg(long, value_name = "TYPE")]
    event: String,

    /// The envelope's `data`, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    data: String,

    /// The envelope's `timestamp`, RFC 3339, sent as written
    /// [default: now, UTC].
    #[arg(long, value_name = "RFC3339")]
    timestamp: Option<String>,

    /// Where ingest receives webhooks.
    #[arg(
        long,
        env = "HOOKFLEET_INGEST_URL",
        default_value = "http://127.0.0.1:8080/webhooks/tolinku"
    )]
    url: String,

    /// Webhook secret; of a comma-separated list (rotation), the first
    /// signs.
    #[arg(long, env = "HOOKFLEET_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

const EXAMPLE: &str = "\
Prints `HTTP <status>` and the answer's body; exits 0 on a 2xx answer,
1 otherwise.

Example:
  HOOKFLEET_WEBHOOK_SECRET=whsec_test hookfleet send --event link.clicked \\
    --data '{\"campaign\": \"spring\", \"ip\": \"203.0.113.7\"}'";

/// The body Tolinku sends, keys in its order; `data` kept byte for byte.
#[derive(Serialize)]
struct Envelope<'a> {
    event: &'a str,
    timestamp: &'a str,
    data: &'a RawValue,
}

/// Runs `hookfleet send`.
pub(crate) async fn run(args: SendArgs) -> Result<(), Failure> {
    let secret = signing_secret(args.secret.as_deref())?;
    let url = Url::parse(&args.url).map_err(|e| Failure::config("HOOKFLEET_INGEST_URL", e))?;
    let event_header = HeaderValue::from_str(&args.event)
        .map_err(|_| Failure::config("--event", "not usable as an HTTP header value"))?;
    let data = object(&args.data)?;
    let timestamp = match args.timestamp {
        Some(text) => {
            OffsetDateTime::parse(&text, &Rfc3339)
                .map_err(|e| Failure::config("--timestamp", format!("not RFC 3339: {e}")))?;
            text
        }
        None => now_rfc3339(),
    };

    let body = serde_json::to_vec(&Envelope {
        event: &args.event,
        timestamp: &timestamp,
        data: &data,
    })
    .context("cannot encode the envelope")?;
    let signature = sign(&secret, &body);

    let answer = http_client()?
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("hookfleet-cli/", env!("CARGO_PKG_VERSION")),
        )
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, event_header)
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot send to {url}: {}", error_chain(&e.without_url())))?;

    let status = answer.status();
    let text = answer
        .text()
        .await
        .with_context(|| format!("cannot read the answer from {url}"))?;
    println!("HTTP {}", status.as_u16());
    if !text.is_empty() {
        println!("{}", text.trim_end());
    }

    if !status.is_success() {
        return Err(anyhow::anyhow!("ingest answered {status}").into());
    }
    Ok(())
}

/// The first secret of the list, after checking the whole list the way
/// ingest does.
fn signing_secret(list: Option<&str>) -> Result<String, Failure> {
    const SETTING: &str = "HOOKFLEET_WEBHOOK_SECRET";
    let list = list.ok_or_else(|| Failure::config(SETTING, "not set (or pass --secret)"))?;
    Verifier::from_list(list).map_err(|e| Failure::config(SETTING, e))?;
    let first = list.trim().split(',').next().unwrap_or_default().trim();
    Ok(first.to_owned())
}

/// `--data` as raw JSON, refused unless it is an object.
fn object(data: &str) -> Result<Box<RawValue>, Failure> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| Failure::config("--data", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::config("--data", "must be a JSON object"));
    }
    RawValue::from_string(data.trim().to_owned())
        .map_err(|e| Failure::config("--data", format!("not JSON: {e}")))
}

/// Now, UTC, to the millisecond: two sends of the same event a moment
/// apart get different bodies, hence different event ids.
fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&Rfc3339)
        .unwrap_or_else(|_| unreachable!("a UTC time always formats as RFC 3339"))
}

fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
        .map_err(Failure::from)
}

/// reqwest's error and its causes on one line ("error sending request:
/// connection refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_must_be_an_object_and_is_kept_verbatim() {
        let data = object(r#" {"b": 1, "a": [2]} "#).unwrap();
        assert_eq!(data.get(), r#"{"b": 1, "a": [2]}"#);
        assert!(matches!(
            object("[1]"),
            Err(Failure::Config {
                setting: "--data",
                ..
            })
        ));
        assert!(matches!(
            object("{"),
            Err(Failure::Config {
                setting: "--data",
                ..
            })
        ));
    }

    #[test]
    fn the_first_secret_signs() {
        assert_eq!(
            signing_secret(Some(" whsec_new , whsec_old\n")).unwrap(),
            "whsec_new"
        );
        assert!(matches!(signing_secret(None), Err(Failure::Config { .. })));
        assert!(matches!(
            signing_secret(Some("a,,b")),
            Err(Failure::Config { .. })
        ));
    }

    #[test]
    fn envelope_keeps_tolinkus_key_order() {
        let data = object(r#"{"z":1,"a":2}"#).unwrap();
        let body = serde_json::to_string(&Envelope {
            event: "test",
            timestamp: "2026-12-03T10:15:30Z",
            data: &data,
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"event":"test","timestamp":"2026-12-03T10:15:30Z","data":{"z":1,"a":2}}"#
        );
        assert!(OffsetDateTime::parse(&now_rfc3339(), &Rfc3339).is_ok());
    }
}
