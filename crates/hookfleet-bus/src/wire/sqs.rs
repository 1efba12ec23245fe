//! The SQS calls a worker makes per message, over SQS's JSON protocol
//! (`application/x-amz-json-1.0`, `X-Amz-Target: AmazonSQS.<Operation>`).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{AwsWire, BatchFailure, Protocol, WireError};

/// SQS's JSON protocol (AWS JSON 1.0), both ways.
const JSON: Protocol = Protocol {
    content_type: "application/x-amz-json-1.0",
    parse_error,
};

/// One message as SQS returned it, reduced to what the runtime reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// Message attributes with a string value (`String` and `Number`
    /// types); binary attributes are left out.
    pub attributes: BTreeMap<String, String>,
    /// `ApproximateReceiveCount`, when asked for.
    pub receive_count: Option<u32>,
    /// `SentTimestamp` in epoch milliseconds, when asked for.
    pub sent_timestamp_ms: Option<u64>,
    /// `ApproximateFirstReceiveTimestamp` in epoch milliseconds, when
    /// asked for.
    pub first_receive_timestamp_ms: Option<u64>,
}

/// What one `ReceiveMessage` asks for.
#[derive(Debug, Clone, Copy)]
pub struct Receive<'a> {
    pub queue_url: &'a str,
    /// 1 to 10.
    pub max_messages: u32,
    /// 0 to 20.
    pub wait_seconds: u32,
    pub visibility_seconds: u32,
    /// System attribute names, e.g. `ApproximateReceiveCount`.
    pub system_attributes: &'a [&'a str],
}

/// An SQS client for the per-message calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sqs {
    wire: AwsWire,
}

impl Sqs {
    /// Uses `wire`, which must have been made for the `sqs` service.
    pub fn new(wire: AwsWire) -> Self {
        Self { wire }
    }

    /// Calls `operation` (`X-Amz-Target: AmazonSQS.<operation>`) with
    /// `request` as its JSON body and reads the answer as `R`.
    async fn call<T: Serialize, R: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        request: &T,
    ) -> Result<R, WireError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| WireError::Config(format!("{operation}: cannot encode: {e}")))?;
        let target = format!("AmazonSQS.{operation}");
        let answer = self
            .wire
            .call(JSON, Some(&target), Bytes::from(body))
            .await?;
        serde_json::from_slice(&answer).map_err(|e| WireError::Decode(format!("{operation}: {e}")))
    }

    /// `ReceiveMessage`, asking for every message attribute.
    pub async fn receive(&self, receive: Receive<'_>) -> Result<Vec<ReceivedMessage>, WireError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Request<'a> {
            queue_url: &'a str,
            max_number_of_messages: u32,
            wait_time_seconds: u32,
            visibility_timeout: u32,
            message_system_attribute_names: &'a [&'a str],
            message_attribute_names: [&'a str; 1],
        }
        let output: ReceiveOutput = self
            .call(
                "ReceiveMessage",
                &Request {
                    queue_url: receive.queue_url,
                    max_number_of_messages: receive.max_messages,
                    wait_time_seconds: receive.wait_seconds,
                    visibility_timeout: receive.visibility_seconds,
                    message_system_attribute_names: receive.system_attributes,
                    message_attribute_names: ["All"],
                },
            )
            .await?;
        Ok(output
            .messages
            .into_iter()
            .map(WireMessage::into_received)
            .collect())
    }

    /// `DeleteMessageBatch` of up to 10 receipt handles; entry ids are
    /// their positions.
    pub async fn delete_batch(
        &self,
        queue_url: &str,
        receipts: &[String],
    ) -> Result<Vec<BatchFailure>, WireError> {
        let entries = receipts.iter().map(|receipt| (receipt.as_str(), None));
        self.batch("DeleteMessageBatch", queue_url, entries).await
    }

    /// `ChangeMessageVisibility` of one message, counted from now.
    pub async fn change_visibility(
        &self,
        queue_url: &str,
        receipt: &str,
        visibility_seconds: u32,
    ) -> Result<(), WireError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Request<'a> {
            queue_url: &'a str,
            receipt_handle: &'a str,
            visibility_timeout: u32,
        }
        let _: serde::de::IgnoredAny = self
            .call(
                "ChangeMessageVisibility",
                &Request {
                    queue_url,
                    receipt_handle: receipt,
                    visibility_timeout: visibility_seconds,
                },
            )
            .await?;
        Ok(())
    }

    /// `ChangeMessageVisibilityBatch` of up to 10 `(receipt, seconds)`;
    /// entry ids are their positions.
    pub async fn change_visibility_batch(
        &self,
        queue_url: &str,
        entries: &[(&str, u32)],
    ) -> Result<Vec<BatchFailure>, WireError> {
        let entries = entries
            .iter()
            .map(|&(receipt, seconds)| (receipt, Some(seconds)));
        self.batch("ChangeMessageVisibilityBatch", queue_url, entries)
            .await
    }

    /// A batch call on receipt handles (with a visibility timeout each
    /// for `ChangeMessageVisibilityBatch`); entry ids are positions.
    async fn batch<'a>(
        &self,
        operation: &'static str,
        queue_url: &str,
        entries: impl Iterator<Item = (&'a str, Option<u32>)>,
    ) -> Result<Vec<BatchFailure>, WireError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry<'a> {
            id: String,
            receipt_handle: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            visibility_timeout: Option<u32>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Request<'a> {
            queue_url: &'a str,
            entries: Vec<Entry<'a>>,
        }
        let entries: Vec<Entry<'_>> = entries
            .enumerate()
            .map(|(id, (receipt_handle, visibility_timeout))| Entry {
                id: id.to_string(),
                receipt_handle,
                visibility_timeout,
            })
            .collect();
        let count = entries.len();
        let output: BatchOutput = self
            .call(operation, &Request { queue_url, entries })
            .await?;
        Ok(output.failures(count))
    }

    /// `SendMessage` with string attributes; returns the message id.
    pub async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, WireError> {
        self.send_delayed(queue_url, body, attributes, 0).await
    }

    /// `SendMessage` with string attributes and a message timer of
    /// `delay_seconds` (SQS allows up to 900; 0 is the queue's default
    /// delay); returns the message id.
    pub async fn send_delayed(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
        delay_seconds: u32,
    ) -> Result<String, WireError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Value<'a> {
            data_type: &'static str,
            string_value: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Request<'a> {
            queue_url: &'a str,
            message_body: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            message_attributes: BTreeMap<&'a str, Value<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            delay_seconds: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            #[serde(default)]
            message_id: String,
        }
        let message_attributes = attributes
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    Value {
                        data_type: "String",
                        string_value: value,
                    },
                )
            })
            .collect();
        let output: Output = self
            .call(
                "SendMessage",
                &Request {
                    queue_url,
                    message_body: body,
                    message_attributes,
                    delay_seconds: (delay_seconds > 0).then_some(delay_seconds),
                },
            )
            .await?;
        Ok(output.message_id)
    }

    /// `GetQueueAttributes` for `names`.
    pub async fn queue_attributes(
        &self,
        queue_url: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>, WireError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Request<'a> {
            queue_url: &'a str,
            attribute_names: &'a [&'a str],
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            #[serde(default)]
            attributes: BTreeMap<String, String>,
        }
        let output: Output = self
            .call(
                "GetQueueAttributes",
                &Request {
                    queue_url,
                    attribute_names: names,
                },
            )
            .await?;
        Ok(output.attributes)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveOutput {
    #[serde(default)]
    messages: Vec<WireMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireMessage {
    message_id: String,
    receipt_handle: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attributes: SystemAttributes,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeValue>,
}

#[derive(Deserialize, Default)]
struct SystemAttributes {
    #[serde(rename = "ApproximateReceiveCount")]
    receive_count: Option<String>,
    #[serde(rename = "SentTimestamp")]
    sent_timestamp: Option<String>,
    #[serde(rename = "ApproximateFirstReceiveTimestamp")]
    first_receive_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeValue {
    string_value: Option<String>,
}

impl WireMessage {
    fn into_received(self) -> ReceivedMessage {
        let number = |value: Option<String>| value.and_then(|v| v.parse::<u64>().ok());
        ReceivedMessage {
            message_id: self.message_id,
            receipt_handle: self.receipt_handle,
            body: self.body,
            attributes: self
                .message_attributes
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.string_value?)))
                .collect(),
            receive_count: number(self.attributes.receive_count)
                .map(|n| n.min(u64::from(u32::MAX)) as u32),
            sent_timestamp_ms: number(self.attributes.sent_timestamp),
            first_receive_timestamp_ms: number(self.attributes.first_receive_timestamp),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchOutput {
    #[serde(default)]
    failed: Vec<FailedEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FailedEntry {
    id: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    sender_fault: bool,
}

impl BatchOutput {
    fn failures(self, entries: usize) -> Vec<BatchFailure> {
        self.failed
            .into_iter()
            .filter_map(|f| {
                let index = f.id.parse::<usize>().ok().filter(|&i| i < entries)?;
                Some(BatchFailure {
                    index,
                    code: f.code,
                    message: f.message,
                    sender_fault: f.sender_fault,
                })
            })
            .collect()
    }
}

/// An error answer of the JSON protocol: `{"__type": "…#Code",
/// "message": "…"}`, or the query-compatible code in
/// `x-amzn-query-error` when the body has none.
fn parse_error(status: u16, headers: &http::HeaderMap, body: &[u8]) -> WireError {
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        #[serde(rename = "__type", default)]
        kind: String,
        #[serde(default, alias = "Message")]
        message: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let mut code = parsed
        .kind
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .to_owned();
    if code.is_empty()
        && let Some(query) = headers
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok())
    {
        code = query.split(';').next().unwrap_or_default().to_owned();
    }
    if code.is_empty() {
        code = format!("HTTP{status}");
    }
    let message = if parsed.message.is_empty() {
        String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
    } else {
        parsed.message
    };
    WireError::Service {
        status,
        code,
        message: message.replace(['\n', '\r'], " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receive_answer_keeps_string_attributes_and_the_system_numbers() {
        let answer = br#"{"Messages":[{"MessageId":"m1","ReceiptHandle":"r1","MD5OfBody":"x",
            "Body":"{\"event\":\"link.clicked\"}",
            "Attributes":{"ApproximateReceiveCount":"3","SentTimestamp":"1796292672000",
                          "ApproximateFirstReceiveTimestamp":"1796292673000"},
            "MessageAttributes":{"event_type":{"StringValue":"link.clicked","DataType":"String"},
                                 "blob":{"BinaryValue":"AAE=","DataType":"Binary"}}}]}"#;
        let output: ReceiveOutput = serde_json::from_slice(answer).unwrap();
        let messages: Vec<_> = output
            .messages
            .into_iter()
            .map(WireMessage::into_received)
            .collect();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m.message_id, "m1");
        assert_eq!(m.receipt_handle, "r1");
        assert_eq!(m.body, r#"{"event":"link.clicked"}"#);
        assert_eq!(m.receive_count, Some(3));
        assert_eq!(m.sent_timestamp_ms, Some(1_796_292_672_000));
        assert_eq!(m.first_receive_timestamp_ms, Some(1_796_292_673_000));
        assert_eq!(
            m.attributes,
            BTreeMap::from([("event_type".to_owned(), "link.clicked".to_owned())])
        );
    }

    #[test]
    fn an_empty_receive_answer_is_no_messages() {
        let output: ReceiveOutput = serde_json::from_slice(b"{}").unwrap();
        assert!(output.messages.is_empty());
    }

    #[test]
    fn batch_failures_are_reported_by_position() {
        let answer = br#"{"Successful":[{"Id":"0"}],"Failed":[
            {"Id":"1","SenderFault":true,"Code":"ReceiptHandleIsInvalid","Message":"bad"},
            {"Id":"9","SenderFault":true,"Code":"X","Message":"not ours"}]}"#;
        let output: BatchOutput = serde_json::from_slice(answer).unwrap();
        assert_eq!(
            output.failures(2),
            vec![BatchFailure {
                index: 1,
                code: "ReceiptHandleIsInvalid".to_owned(),
                message: "bad".to_owned(),
                sender_fault: true,
            }]
        );
    }

    #[test]
    fn errors_name_their_code() {
        let error = parse_error(
            400,
            &http::HeaderMap::new(),
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
        );
        assert_eq!(error.code(), Some("QueueDoesNotExist"));
        assert!(!error.is_retryable());

        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amzn-query-error",
            http::HeaderValue::from_static("AWS.SimpleQueueService.NonExistentQueue;Sender"),
        );
        let error = parse_error(400, &headers, b"");
        assert_eq!(
            error.code(),
            Some("AWS.SimpleQueueService.NonExistentQueue")
        );

        let error = parse_error(503, &http::HeaderMap::new(), b"<html>busy</html>");
        assert_eq!(error.code(), Some("HTTP503"));
        assert!(error.is_retryable());
    }
}
