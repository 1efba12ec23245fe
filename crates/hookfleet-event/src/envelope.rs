use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The event type of the dashboard's "Send Test" button: verified and
/// acknowledged by ingest, never published.
pub const TEST_EVENT: &str = "test";

/// The longest event type accepted. Real types are short (`link.clicked`);
/// the bound keeps a hostile body from putting kilobytes into an SNS
/// message attribute.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// A parsed Tolinku envelope, borrowing from the raw body.
///
/// `data` stays unparsed ([`RawValue`]): ingest only needs to know it is an
/// object, and the workers parse it into whatever shape they need.
#[derive(Debug)]
pub struct Envelope<'a> {
    event: Cow<'a, str>,
    occurred_at: OffsetDateTime,
    data: &'a RawValue,
}

/// Why a body is not a valid envelope. `Display` is one line, safe to send
/// back to the sender and to put in a dead-letter `error` attribute: it
/// never quotes the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("field `{0}` is missing or null")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `timestamp` is not an RFC 3339 date-time")]
    BadTimestamp,
    #[error(
        "field `event` must be 1 to {MAX_EVENT_TYPE_LEN} printable ASCII characters without spaces"
    )]
    BadEventType,
    #[error("header X-Webhook-Event does not match the body's `event`")]
    EventMismatch,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Parses and validates a raw webhook body.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        // serde would also accept a JSON array for a struct; only an object
        // is an envelope.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(match serde_json::from_slice::<&RawValue>(body) {
                Ok(_) => EnvelopeError::NotObject,
                Err(e) => EnvelopeError::NotJson(one_line(&e)),
            });
        }
        let raw: RawEnvelope<'a> =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(one_line(&e)))?;

        let event = string_field(raw.event, "event")?;
        if !is_valid_event_type(&event) {
            return Err(EnvelopeError::BadEventType);
        }

        let timestamp = string_field(raw.timestamp, "timestamp")?;
        let occurred_at =
            OffsetDateTime::parse(&timestamp, &Rfc3339).map_err(|_| EnvelopeError::BadTimestamp)?;

        let data = raw.data.ok_or(EnvelopeError::MissingField("data"))?;
        if !data.get().starts_with('{') {
            return Err(EnvelopeError::WrongType {
                field: "data",
                expected: "an object",
            });
        }

        Ok(Self {
            event,
            occurred_at,
            data,
        })
    }

    /// The event type, e.g. `link.clicked`.
    pub fn event_type(&self) -> &str {
        &self.event
    }

    /// The envelope's `timestamp`, converted to UTC.
    pub fn occurred_at(&self) -> OffsetDateTime {
        self.occurred_at.to_offset(time::UtcOffset::UTC)
    }

    /// The `data` object, unparsed.
    pub fn data(&self) -> &'a RawValue {
        self.data
    }

    /// Whether this is the dashboard's test event.
    pub fn is_test(&self) -> bool {
        self.event == TEST_EVENT
    }

    /// Checks the `X-Webhook-Event` header against the body.
    pub fn check_header(&self, header_event: &str) -> Result<(), EnvelopeError> {
        if header_event == self.event {
            Ok(())
        } else {
            Err(EnvelopeError::EventMismatch)
        }
    }
}

fn string_field<'a>(
    value: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Cow<'a, str>, EnvelopeError> {
    let value = value.ok_or(EnvelopeError::MissingField(field))?;
    let wrong_type = EnvelopeError::WrongType {
        field,
        expected: "a string",
    };
    if !value.get().starts_with('"') {
        return Err(wrong_type);
    }
    serde_json::from_str::<Cow<'a, str>>(value.get()).map_err(|_| wrong_type)
}

fn is_valid_event_type(event: &str) -> bool {
    (1..=MAX_EVENT_TYPE_LEN).contains(&event.len()) && event.bytes().all(|b| b.is_ascii_graphic())
}

fn one_line(error: &serde_json::Error) -> String {
    error.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Envelope<'_>, EnvelopeError> {
        Envelope::parse(body.as_bytes())
    }

    #[test]
    fn parses_a_click() {
        let body = r#"{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{"ip":"1.2.3.4","campaign":"spring"}}"#;
        let envelope = parse(body).unwrap();
        assert_eq!(envelope.event_type(), "link.clicked");
        assert_eq!(envelope.occurred_at().unix_timestamp(), 1_796_292_930);
        assert!(envelope.data().get().contains("spring"));
        assert!(!envelope.is_test());
        assert!(envelope.check_header("link.clicked").is_ok());
        assert_eq!(
            envelope.check_header("install.tracked"),
            Err(EnvelopeError::EventMismatch)
        );
    }

    #[test]
    fn timestamps_with_offsets_are_normalised_to_utc() {
        let envelope =
            parse(r#"{"event":"test","timestamp":"2026-12-03T12:15:30+02:00","data":{}}"#).unwrap();
        assert_eq!(envelope.occurred_at().offset(), time::UtcOffset::UTC);
        assert_eq!(envelope.occurred_at().hour(), 10);
        assert!(envelope.is_test());
    }

    #[test]
    fn escaped_event_types_are_decoded() {
        let envelope =
            parse(r#"{"event":"link\u002eclicked","timestamp":"2026-12-03T10:15:30Z","data":{}}"#)
                .unwrap();
        assert_eq!(envelope.event_type(), "link.clicked");
    }

    #[test]
    fn rejects_with_one_line_reasons() {
        let cases = [
            ("", "body is not valid JSON"),
            ("[1,2]", "body is not a JSON object"),
            ("\"x\"", "body is not a JSON object"),
            ("{", "body is not valid JSON"),
            (
                r#"{"timestamp":"2026-12-03T10:15:30Z","data":{}}"#,
                "field `event` is missing",
            ),
            (
                r#"{"event":7,"timestamp":"2026-12-03T10:15:30Z","data":{}}"#,
                "field `event` must be a string",
            ),
            (
                r#"{"event":"","timestamp":"2026-12-03T10:15:30Z","data":{}}"#,
                "field `event` must be 1 to",
            ),
            (
                r#"{"event":"a b","timestamp":"2026-12-03T10:15:30Z","data":{}}"#,
                "field `event` must be 1 to",
            ),
            (
                r#"{"event":"x","timestamp":"yesterday","data":{}}"#,
                "field `timestamp` is not an RFC 3339",
            ),
            (
                r#"{"event":"x","timestamp":"2026-12-03T10:15:30Z"}"#,
                "field `data` is missing",
            ),
            (
                r#"{"event":"x","timestamp":"2026-12-03T10:15:30Z","data":[]}"#,
                "field `data` must be an object",
            ),
            (
                r#"{"event":"x","timestamp":"2026-12-03T10:15:30Z","data":null}"#,
                "field `data` is missing or null",
            ),
        ];
        for (body, expected) in cases {
            let reason = parse(body).unwrap_err().to_string();
            assert!(
                reason.starts_with(expected),
                "{body:?}: got {reason:?}, want {expected:?}"
            );
            assert!(!reason.contains('\n'));
        }
    }
}
