//! Slack: the message an alert becomes, and one attempt to post it to an
//! incoming webhook, classified for the deliverer.
//!
//! A message has a one-line `text` (what notifications and old clients
//! show) and `blocks`: a header naming what happened, a sentence with the
//! numbers and the window, fields for the campaign / IP / referrer, and a
//! context line with the rule and the alert key. Values that came from
//! events are escaped for Slack's mrkdwn (`&`, `<`, `>`), so an event
//! cannot inject a mention or a link.
//!
//! | answer | verdict |
//! |---|---|
//! | 2xx | delivered |
//! | 429, 5xx, timeout, connection error | retry (after `Retry-After` when given); counts against the breaker |
//! | other 4xx (`invalid_payload`, `no_service`, `channel_not_found`, …) | abandoned: Slack will never take it |

use std::time::Duration;

use hookfleet_store::PendingAlert;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The longest `Retry-After` honoured; longer ones are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// Slack took it.
    Delivered,
    /// Try again: after `after` when Slack said so.
    Retry {
        /// `Retry-After`, when present and readable.
        after: Option<Duration>,
        /// Why, one line.
        reason: String,
    },
    /// Slack will never take it.
    Rejected {
        /// Why, one line (status and Slack's error code).
        reason: String,
    },
}

/// A Slack incoming webhook. The URL is a secret (it is the credential):
/// it is never logged or shown.
#[derive(Clone)]
pub struct Slack {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// A client posting to `url`, each attempt bounded by `timeout`.
    pub fn new(url: reqwest::Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookfleet-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, url })
    }

    /// Posts `message` once.
    pub async fn post(&self, message: &Value) -> Posted {
        let answer = match self
            .client
            .post(self.url.clone())
            .json(message)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                // Timeouts and connection failures: Slack may be down.
                let kind = if error.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return Posted::Retry {
                    after: None,
                    reason: format!("slack request {kind}: {}", without_url(error)),
                };
            }
        };
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Slack's error bodies are short codes (`invalid_payload`); read a
        // bounded amount, whatever the server sends.
        let body = answer.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        classify(
            status,
            retry_after.as_deref(),
            &body,
            OffsetDateTime::now_utc(),
        )
    }
}

/// The verdict on one answer; see the module table.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str, now: OffsetDateTime) -> Posted {
    let code = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match status {
        200..=299 => Posted::Delivered,
        429 | 500..=599 => Posted::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
            reason: format!("slack answered {status} {code}")
                .trim_end()
                .to_owned(),
        },
        _ => Posted::Rejected {
            reason: format!("slack refused the message: {status} {code}")
                .trim_end()
                .to_owned(),
        },
    }
}

/// `Retry-After` as seconds or an HTTP date, at most [`MAX_RETRY_AFTER`];
/// `None` when unreadable.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let format = format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let at = PrimitiveDateTime::parse(value, format).ok()?.assume_utc();
        Duration::try_from(at - now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A reqwest error, without its URL (which holds the webhook's secret),
/// and its causes on one line.
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

/// The Slack message for a stored alert.
pub fn message(alert: &PendingAlert) -> Value {
    let d = &alert.details;
    let (title, sentence, fields) = match alert.rule.as_str() {
        "suspicious_country" => suspicious_country(d),
        "referral_fraud" => referral_fraud(d),
        "broken_link" => broken_link(d),
        "click_spike" => click_spike(d),
        other => (
            format!("Alert: {other}"),
            format!("Rule `{}` fired.", escape(other)),
            Vec::new(),
        ),
    };
    let fired_at = alert
        .fired_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| alert.fired_at.to_string());

    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(&sentence, 3000)},
    });
    if !fields.is_empty() {
        section["fields"] = Value::Array(
            fields
                .iter()
                .take(10)
                .map(|(name, value)| {
                    json!({"type": "mrkdwn", "text": cut(&format!("*{name}*\n{value}"), 2000)})
                })
                .collect(),
        );
    }
    json!({
        "text": cut(&format!(":rotating_light: {}: {}", escape(&title), plain(&sentence)), 3000),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": cut(&format!("🚨 {title}"), 150), "emoji": true},
            },
            section,
            {
                "type": "context",
                "elements": [{
                    "type": "mrkdwn",
                    "text": cut(&format!(
                        "rule `{}` · alert key `{}` · fired {fired_at} · hookfleet-alerts",
                        escape(&alert.rule),
                        escape(&alert.alert_key),
                    ), 2000),
                }],
            },
        ],
    })
}

type Rendered = (String, String, Vec<(&'static str, String)>);

fn suspicious_country(d: &Value) -> Rendered {
    let country = text(d, "country");
    let source = match d["country_source"].as_str() {
        Some("geoip") => " (from GeoIP of the click's IP)",
        _ => "",
    };
    let campaign = d["campaign"]
        .as_str()
        .map(|c| format!(" on campaign *{}*", escape(c)))
        .unwrap_or_default();
    let sentence = format!(
        "A click from *{}*{source}{campaign} at {}, a country on the watch list.",
        escape(&country),
        time_of(d, "occurred_at"),
    );
    let mut fields = vec![("Country", escape(&country))];
    optional(&mut fields, "Campaign", d, "campaign");
    optional(&mut fields, "IP", d, "ip");
    optional(&mut fields, "URL", d, "url");
    optional(&mut fields, "Event", d, "event_id");
    (
        format!("Click from a suspicious country: {country}"),
        sentence,
        fields,
    )
}

fn referral_fraud(d: &Value) -> Rendered {
    let by = d["by"].as_str().unwrap_or("ip");
    let who = text(d, by);
    let (label, noun) = match by {
        "ip" => ("IP", "IP address"),
        _ => ("Referrer", "referrer"),
    };
    let sentence = format!(
        "*{}* referral events from {noun} *{}* in {} minutes ({}), more than the limit of {}.",
        number(d, "referrals"),
        escape(&who),
        number(d, "window_mins"),
        window_text(d),
        number(d, "max_events"),
    );
    let fields = vec![
        (label, escape(&who)),
        ("Referrals", number(d, "referrals")),
        ("Limit", format!("more than {}", number(d, "max_events"))),
        ("Window", window_text(d)),
    ];
    (
        format!("Possible referral fraud from {noun} {who}"),
        sentence,
        fields,
    )
}

fn broken_link(d: &Value) -> Rendered {
    let campaign = text(d, "campaign");
    let sentence = format!(
        "Campaign *{}* had *{} clicks* and *no installs or deferred-link claims* in {} \
         minutes ({}). Its link is probably broken.",
        escape(&campaign),
        number(d, "clicks"),
        number(d, "window_mins"),
        window_text(d),
    );
    let fields = vec![
        ("Campaign", escape(&campaign)),
        ("Clicks", number(d, "clicks")),
        ("Installs + claims", number(d, "conversions")),
        ("Window", window_text(d)),
    ];
    (
        format!("Broken link suspected: campaign {campaign}"),
        sentence,
        fields,
    )
}

fn click_spike(d: &Value) -> Rendered {
    let campaign = text(d, "campaign");
    let sentence = format!(
        "Campaign *{}* got *{} clicks* in the minute from {}, against a baseline of {} per \
         minute over the {} minutes before (alert above {}× and at least {} clicks).",
        escape(&campaign),
        number(d, "clicks"),
        time_of(d, "minute_start"),
        number(d, "baseline_per_minute"),
        number(d, "baseline_mins"),
        number(d, "factor"),
        number(d, "min_clicks"),
    );
    let fields = vec![
        ("Campaign", escape(&campaign)),
        ("Clicks in the minute", number(d, "clicks")),
        ("Baseline per minute", number(d, "baseline_per_minute")),
        ("Minute", time_of(d, "minute_start")),
    ];
    (
        format!("Click spike: campaign {campaign}"),
        sentence,
        fields,
    )
}

fn text(d: &Value, field: &str) -> String {
    match &d[field] {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".to_owned(),
        other => other.to_string(),
    }
}

fn number(d: &Value, field: &str) -> String {
    match &d[field] {
        Value::Number(n) => n.to_string(),
        Value::Null => "?".to_owned(),
        other => escape(&text_of(other)),
    }
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn optional(fields: &mut Vec<(&'static str, String)>, name: &'static str, d: &Value, key: &str) {
    if let Some(value) = d[key].as_str() {
        fields.push((name, escape(value)));
    }
}

/// `HH:MM` UTC of an RFC 3339 field (the whole date when it is not today's
/// UTC date would be noise in a live alert; the context line has it).
fn time_of(d: &Value, field: &str) -> String {
    d[field]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
        .unwrap_or_else(|| "?".to_owned())
}

/// `10:01–10:16 UTC` from `window_start` and `window_end`.
fn window_text(d: &Value) -> String {
    let start = time_of(d, "window_start");
    let end = time_of(d, "window_end");
    format!("{}–{end}", start.trim_end_matches(" UTC"))
}

/// Escapes the three characters Slack's mrkdwn gives meaning to.
fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// mrkdwn without its emphasis, for the notification text.
fn plain(sentence: &str) -> String {
    sentence.replace('*', "")
}

/// At most `max` characters.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-03 10:15:30 UTC);

    fn alert(rule: &str, details: Value) -> PendingAlert {
        PendingAlert {
            id: 7,
            alert_key: format!("{rule}:spring"),
            rule: rule.to_owned(),
            fired_at: NOW,
            details,
            attempts: 0,
        }
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200, None, "ok", NOW), Posted::Delivered);
        assert_eq!(
            classify(429, Some("7"), "rate_limited", NOW),
            Posted::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "slack answered 429 rate_limited".into()
            }
        );
        assert!(matches!(
            classify(503, Some("soon"), "", NOW),
            Posted::Retry { after: None, .. }
        ));
        assert_eq!(
            classify(404, None, "no_service\n", NOW),
            Posted::Rejected {
                reason: "slack refused the message: 404 no_service".into()
            }
        );
        assert!(matches!(
            classify(400, None, "invalid_payload", NOW),
            Posted::Rejected { .. }
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            parse_retry_after(" 30 ", NOW),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 10:16:00 GMT", NOW),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 10:00:00 GMT", NOW),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999", NOW), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("later", NOW), None);
    }

    #[test]
    fn a_broken_link_message_says_what_where_how_many_and_when() {
        let message = message(&alert(
            "broken_link",
            json!({
                "campaign": "spring <!channel>",
                "clicks": 52,
                "conversions": 0,
                "min_clicks": 50,
                "window_mins": 15,
                "window_start": "2026-12-03T10:01:00Z",
                "window_end": "2026-12-03T10:16:00Z",
            }),
        ));
        let text = message["text"].as_str().unwrap();
        assert!(text.contains("52 clicks"), "{text}");
        assert!(text.contains("10:01–10:16 UTC"), "{text}");
        assert!(!text.contains("<!channel>"), "escaped: {text}");
        assert_eq!(message["blocks"][0]["type"], "header");
        let section = message["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("*spring &lt;!channel&gt;*"), "{section}");
        assert_eq!(message["blocks"][1]["fields"][1]["text"], "*Clicks*\n52");
        let context = message["blocks"][2]["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(context.contains("broken_link:spring"), "{context}");
    }

    #[test]
    fn every_rule_renders_its_numbers() {
        let cases = [
            (
                "referral_fraud",
                json!({"by": "ip", "ip": "203.0.113.9", "referrals": 11, "max_events": 10,
                       "window_mins": 60, "window_start": "2026-12-03T09:16:00Z",
                       "window_end": "2026-12-03T10:16:00Z"}),
                ["11", "203.0.113.9", "09:16–10:16 UTC"],
            ),
            (
                "click_spike",
                json!({"campaign": "spring", "clicks": 120, "baseline_per_minute": 4.5,
                       "factor": 5.0, "min_clicks": 100, "baseline_mins": 15,
                       "minute_start": "2026-12-03T10:15:00Z"}),
                ["120 clicks", "4.5 per", "10:15 UTC"],
            ),
            (
                "suspicious_country",
                json!({"country": "XX", "country_source": "geoip", "campaign": "spring",
                       "ip": "198.51.100.4", "occurred_at": "2026-12-03T10:15:30Z"}),
                ["XX", "GeoIP", "spring"],
            ),
        ];
        for (rule, details, expected) in cases {
            let text = message(&alert(rule, details))["text"]
                .as_str()
                .unwrap()
                .to_owned();
            for part in expected {
                assert!(text.contains(part), "{rule}: {part:?} missing from {text}");
            }
        }
    }

    #[test]
    fn long_values_are_cut_to_slack_limits() {
        let long = "c".repeat(400);
        let message = message(&alert("broken_link", json!({"campaign": long})));
        let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), 150);
    }
}
