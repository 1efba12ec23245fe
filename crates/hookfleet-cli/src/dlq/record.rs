//! One line of an export file (`dlq export`, read back by `dlq replay`):
//! a message as JSON, with everything needed to send it again.
//!
//! ```json
//! {"message_id":"…","sent_timestamp":"2026-12-03T10:05:00.000Z","receive_count":1,
//!  "body":"{\"event\":…}","attributes":{"event_type":{"data_type":"String","string_value":"link.clicked"}}}
//! ```
//!
//! Binary attributes (hookfleet writes none) are kept as hex.

use std::collections::BTreeMap;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};

use crate::dlq::message::DlqMessage;
use crate::dlq::text::rfc3339;

/// One exported message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// SQS's message id in the DLQ.
    pub(crate) message_id: String,
    /// When it entered the DLQ (`SentTimestamp`), RFC 3339.
    pub(crate) sent_timestamp: Option<String>,
    /// `ApproximateReceiveCount` in the DLQ, the export's own receive
    /// included.
    pub(crate) receive_count: u32,
    /// The body, unchanged.
    pub(crate) body: String,
    /// Every message attribute.
    pub(crate) attributes: BTreeMap<String, RecordAttribute>,
}

/// One message attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordAttribute {
    /// `String`, `Number` or `Binary` (with an optional `.suffix`).
    pub(crate) data_type: String,
    /// The value of a `String` or `Number` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) string_value: Option<String>,
    /// The value of a `Binary` attribute, as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binary_value_hex: Option<String>,
}

impl Record {
    /// The record of a received message.
    pub(crate) fn of(message: &DlqMessage) -> Self {
        Self {
            message_id: message.id.clone(),
            sent_timestamp: message.sent_at.map(rfc3339),
            receive_count: message.dlq_receive_count,
            body: message.body.clone(),
            attributes: message
                .attributes
                .iter()
                .map(|(name, value)| {
                    let attribute = RecordAttribute {
                        data_type: value.data_type().to_owned(),
                        string_value: value.string_value().map(str::to_owned),
                        binary_value_hex: value.binary_value().map(|b| hex::encode(b.as_ref())),
                    };
                    (name.clone(), attribute)
                })
                .collect(),
        }
    }

    /// Parses one line; the error names what is wrong.
    pub(crate) fn parse(line: &str) -> Result<Self, String> {
        let record: Self = serde_json::from_str(line).map_err(|e| e.to_string())?;
        record.sqs_attributes()?;
        Ok(record)
    }

    /// The attributes as SQS takes them.
    pub(crate) fn sqs_attributes(&self) -> Result<BTreeMap<String, MessageAttributeValue>, String> {
        self.attributes
            .iter()
            .map(|(name, attribute)| {
                let mut value = MessageAttributeValue::builder().data_type(&attribute.data_type);
                match (&attribute.string_value, &attribute.binary_value_hex) {
                    (Some(text), None) => value = value.string_value(text),
                    (None, Some(hex)) => {
                        let bytes = hex::decode(hex)
                            .map_err(|e| format!("attribute {name:?}: binary_value_hex: {e}"))?;
                        value = value.binary_value(Blob::new(bytes));
                    }
                    _ => {
                        return Err(format!(
                            "attribute {name:?} needs exactly one of string_value, binary_value_hex"
                        ));
                    }
                }
                let value = value
                    .build()
                    .map_err(|e| format!("attribute {name:?}: {e}"))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::message::tests::message;

    #[test]
    fn records_round_trip_through_a_line() {
        let mut original = message("m-1", &[("event_type", "link.clicked"), ("error", "boom")]);
        original.attributes.insert(
            "blob".into(),
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0, 255]))
                .build()
                .unwrap(),
        );
        let record = Record::of(&original);
        let line = serde_json::to_string(&record).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""binary_value_hex":"00ff""#), "{line}");

        let back = Record::parse(&line).unwrap();
        assert_eq!(back, record);
        let attributes = back.sqs_attributes().unwrap();
        assert_eq!(
            attributes["event_type"].string_value(),
            Some("link.clicked")
        );
        assert_eq!(
            attributes["blob"]
                .binary_value()
                .map(|b| b.as_ref().to_vec()),
            Some(vec![0, 255])
        );
    }

    #[test]
    fn malformed_lines_say_why() {
        assert!(Record::parse("{").is_err());
        let both = r#"{"message_id":"m","sent_timestamp":null,"receive_count":1,"body":"",
            "attributes":{"a":{"data_type":"String"}}}"#
            .replace('\n', "");
        let error = Record::parse(&both).unwrap_err();
        assert!(error.contains("exactly one"), "{error}");
    }
}
