//! The JSON bodies sent to the destinations, built from an event's
//! envelope. Pure functions: what each destination receives is decided
//! here, in one place.
//!
//! Both carry the `event_id` (also sent as `Idempotency-Key`) and the
//! event's time; fields absent from the event are `null` (referral) or
//! left out (install). The install's `ip` is never forwarded: the
//! workflow has no use for it.

use hookfleet_event::Envelope;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

/// The referral fields the CRM receives, besides the ids and the time.
const REFERRAL_OPTIONAL: [&str; 3] = ["referrer_token", "referred_user_id", "campaign"];

/// The install fields the welcome workflow receives when the event has
/// them.
const INSTALL_FIELDS: [&str; 12] = [
    "user_id",
    "referred_user_id",
    "referral_code",
    "platform",
    "device_type",
    "country",
    "campaign",
    "source",
    "url",
    "prefix",
    "token",
    "hostname",
];

/// The body of `POST {HOOKFLEET_CRM_URL}/referrals` for a
/// `referral.completed` event: `event_id`, `referral_code` and
/// `referrer_id` (both required), `referrer_token`, `referred_user_id`,
/// `campaign` (or `null`) and `completed_at` (the event's time, RFC 3339
/// UTC). An event without a referral code or referrer cannot be recorded
/// by the CRM: the error says which field is missing.
pub fn referral_update(envelope: &Envelope<'_>, event_id: &str) -> Result<Value, String> {
    let data = data_object(envelope)?;
    let required = |field: &str| {
        text(&data, field).ok_or_else(|| {
            format!("referral.completed without data.{field}: the CRM cannot record it")
        })
    };
    let mut body = Map::new();
    body.insert("event_id".into(), json!(event_id));
    body.insert("referral_code".into(), json!(required("referral_code")?));
    body.insert("referrer_id".into(), json!(required("referrer_id")?));
    for field in REFERRAL_OPTIONAL {
        body.insert(field.into(), json!(text(&data, field)));
    }
    body.insert("completed_at".into(), json!(time_text(envelope)));
    Ok(Value::Object(body))
}

/// The body of `POST {HOOKFLEET_WELCOME_URL}` for an `install.tracked`
/// event: `event_id`, `installed_at` (the event's time) and each of the
/// install fields the event has.
pub fn welcome_trigger(envelope: &Envelope<'_>, event_id: &str) -> Result<Value, String> {
    let data = data_object(envelope)?;
    let mut body = Map::new();
    body.insert("event_id".into(), json!(event_id));
    body.insert("installed_at".into(), json!(time_text(envelope)));
    for field in INSTALL_FIELDS {
        if let Some(value) = text(&data, field) {
            body.insert(field.into(), json!(value));
        }
    }
    Ok(Value::Object(body))
}

fn data_object(envelope: &Envelope<'_>) -> Result<Map<String, Value>, String> {
    serde_json::from_str(envelope.data().get())
        .map_err(|e| format!("data is not a JSON object: {e}"))
}

/// A field as text: strings as they are, numbers written out (ids are
/// sometimes numeric); empty strings, other types and `null` are absent.
fn text(data: &Map<String, Value>, field: &str) -> Option<String> {
    match data.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time_text(envelope: &Envelope<'_>) -> String {
    envelope
        .occurred_at()
        .format(&Rfc3339)
        .unwrap_or_else(|_| envelope.occurred_at().unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(text: &str) -> Envelope<'_> {
        Envelope::parse(text.as_bytes()).expect("envelope")
    }

    #[test]
    fn a_referral_update_carries_the_referral_fields() {
        let raw = r#"{"event":"referral.completed","timestamp":"2026-12-03T11:15:30+01:00",
            "data":{"referral_code":"SPRING-42","referrer_id":"u-1","referred_user_id":77,
                    "campaign":"spring","ip":"81.2.69.142"}}"#;
        let body = referral_update(&envelope(raw), "abc").unwrap();
        assert_eq!(
            body,
            json!({
                "event_id": "abc",
                "referral_code": "SPRING-42",
                "referrer_id": "u-1",
                "referrer_token": null,
                "referred_user_id": "77",
                "campaign": "spring",
                "completed_at": "2026-12-03T10:15:30Z",
            })
        );
    }

    #[test]
    fn a_referral_without_its_code_or_referrer_is_refused() {
        let raw = r#"{"event":"referral.completed","timestamp":"2026-12-03T10:15:30Z",
            "data":{"referrer_id":"u-1","referral_code":""}}"#;
        let error = referral_update(&envelope(raw), "abc").unwrap_err();
        assert!(error.contains("data.referral_code"), "{error}");
        let raw = r#"{"event":"referral.completed","timestamp":"2026-12-03T10:15:30Z",
            "data":{"referral_code":"X"}}"#;
        let error = referral_update(&envelope(raw), "abc").unwrap_err();
        assert!(error.contains("data.referrer_id"), "{error}");
    }

    #[test]
    fn a_welcome_trigger_carries_the_install_fields_but_not_the_ip() {
        let raw = r#"{"event":"install.tracked","timestamp":"2026-12-03T10:15:30Z",
            "data":{"platform":"ios","device_type":"phone","country":"GB","campaign":"spring",
                    "ip":"81.2.69.142","token":"t-9","extra":{"nested":true},"source":null}}"#;
        let body = welcome_trigger(&envelope(raw), "def").unwrap();
        assert_eq!(
            body,
            json!({
                "event_id": "def",
                "installed_at": "2026-12-03T10:15:30Z",
                "platform": "ios",
                "device_type": "phone",
                "country": "GB",
                "campaign": "spring",
                "token": "t-9",
            })
        );
    }
}
