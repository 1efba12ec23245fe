//! SNS `PublishBatch` over SNS's query protocol: a form-encoded request,
//! an XML answer of which only the per-entry results are read.

use std::borrow::Cow;
use std::io::Write;

use bytes::Bytes;

use super::{AwsWire, BatchFailure, Protocol, WireError};

/// SNS's query protocol: a form in, XML out.
const QUERY: Protocol = Protocol {
    content_type: "application/x-www-form-urlencoded",
    parse_error,
};

/// One entry of a `PublishBatch`: the message and its `String`
/// attributes. Its id in the request is its position.
#[derive(Debug, Clone, Copy)]
pub struct PublishEntry<'a> {
    pub message: &'a str,
    pub attributes: &'a [(&'a str, &'a str)],
}

/// SNS's verdict on each entry, by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishBatchOutput {
    /// `(position, message id)` of each accepted entry.
    pub successful: Vec<(usize, String)>,
    pub failed: Vec<BatchFailure>,
}

/// An SNS client for `PublishBatch`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sns {
    wire: AwsWire,
}

impl Sns {
    /// Uses `wire`, which must have been made for the `sns` service.
    pub fn new(wire: AwsWire) -> Self {
        Self { wire }
    }

    /// Publishes up to 10 entries to `topic_arn` in one call.
    pub async fn publish_batch(
        &self,
        topic_arn: &str,
        entries: &[PublishEntry<'_>],
    ) -> Result<PublishBatchOutput, WireError> {
        let body = publish_batch_body(topic_arn, entries);
        let answer = self.wire.call(QUERY, None, Bytes::from(body)).await?;
        let answer = std::str::from_utf8(&answer)
            .map_err(|_| WireError::Decode("PublishBatch: the answer is not UTF-8".to_owned()))?;
        Ok(parse_publish_batch(answer, entries.len()))
    }
}

/// The form-encoded `PublishBatch` request.
fn publish_batch_body(topic_arn: &str, entries: &[PublishEntry<'_>]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| e.message.len() * 3 + 120 + e.attributes.len() * 200)
        .sum();
    let mut body = Vec::with_capacity(size + 128);
    body.extend_from_slice(b"Action=PublishBatch&Version=2010-03-31&TopicArn=");
    encode_into(&mut body, topic_arn);
    // Writing into a `Vec` cannot fail.
    for (i, entry) in entries.iter().enumerate() {
        let n = i + 1;
        let _ = write!(
            body,
            "&PublishBatchRequestEntries.member.{n}.Id={i}\
             &PublishBatchRequestEntries.member.{n}.Message="
        );
        encode_into(&mut body, entry.message);
        for (a, (name, value)) in entry.attributes.iter().enumerate() {
            let a = a + 1;
            let _ = write!(
                body,
                "&PublishBatchRequestEntries.member.{n}.MessageAttributes.entry.{a}.Name="
            );
            encode_into(&mut body, name);
            let _ = write!(
                body,
                "&PublishBatchRequestEntries.member.{n}.MessageAttributes.entry.{a}.Value.DataType=String\
                 &PublishBatchRequestEntries.member.{n}.MessageAttributes.entry.{a}.Value.StringValue="
            );
            encode_into(&mut body, value);
        }
    }
    body
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as
/// AWS's query protocol expects.
fn encode_into(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    out.reserve(bytes.len());
    // Runs of unreserved bytes are copied whole; only the rest is escaped.
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if !UNRESERVED[usize::from(byte)] {
            out.extend_from_slice(&bytes[run_start..i]);
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// RFC 3986's unreserved characters, by byte value.
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        byte += 1;
    }
    table
};

/// Reads the `Successful` and `Failed` members of a `PublishBatch` answer.
/// Entries whose id is not a position of the request are ignored; the
/// caller treats an entry mentioned nowhere as failed.
fn parse_publish_batch(xml: &str, entries: usize) -> PublishBatchOutput {
    let index = |member: &str| {
        element(member, "Id")
            .and_then(|id| id.trim().parse::<usize>().ok())
            .filter(|&i| i < entries)
    };
    let mut output = PublishBatchOutput::default();
    if let Some(successful) = element(xml, "Successful") {
        for member in elements(successful, "member") {
            if let Some(i) = index(member) {
                let id = element(member, "MessageId")
                    .map(unescape)
                    .unwrap_or_default();
                output.successful.push((i, id.into_owned()));
            }
        }
    }
    if let Some(failed) = element(xml, "Failed") {
        for member in elements(failed, "member") {
            if let Some(i) = index(member) {
                output.failed.push(BatchFailure {
                    index: i,
                    code: element(member, "Code")
                        .map(unescape)
                        .unwrap_or_default()
                        .into_owned(),
                    message: element(member, "Message")
                        .map(unescape)
                        .unwrap_or_default()
                        .into_owned(),
                    sender_fault: element(member, "SenderFault")
                        .is_some_and(|s| s.trim() == "true"),
                });
            }
        }
    }
    output
}

/// A query-protocol error: `<ErrorResponse><Error><Code>…</Code>
/// <Message>…</Message></Error></ErrorResponse>`.
fn parse_error(status: u16, _headers: &http::HeaderMap, body: &[u8]) -> WireError {
    let text = String::from_utf8_lossy(body);
    let error = element(&text, "Error").unwrap_or(&text);
    let code = element(error, "Code")
        .map(|c| unescape(c).into_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = element(error, "Message")
        .map(|m| unescape(m).into_owned())
        .unwrap_or_else(|| text.chars().take(200).collect());
    WireError::Service {
        status,
        code,
        message: message.replace(['\n', '\r'], " "),
    }
}

/// The content of the first `<tag>…</tag>` in `xml` (no attributes on the
/// tag; SNS's result elements have none). `None` for a missing or empty
/// (`<tag/>`) element.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    elements(xml, tag).next()
}

/// The contents of each `<tag>…</tag>` in `xml`, in order. Elements of the
/// same name must not nest (true of SNS's answers).
fn elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let mut rest = xml;
    std::iter::from_fn(move || {
        let (_, start) = find_tag(rest, tag, false)?;
        let (end, after) = find_tag(&rest[start..], tag, true)?;
        let content = &rest[start..start + end];
        rest = &rest[start + after..];
        Some(content)
    })
}

/// Where the first `<tag>` (or, if `closing`, `</tag>`) in `xml` starts,
/// and where it ends (just past its `>`).
fn find_tag(xml: &str, tag: &str, closing: bool) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(at) = xml[from..].find('<') {
        let start = from + at;
        from = start + 1;
        let name = &xml[from..];
        let name = if closing {
            match name.strip_prefix('/') {
                Some(name) => name,
                None => continue,
            }
        } else {
            name
        };
        if let Some(after) = name.strip_prefix(tag)
            && after.starts_with('>')
        {
            return Some((start, xml.len() - after.len() + 1));
        }
    }
    None
}

/// Replaces XML's five named entities and numeric character references.
fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_form_encoded_with_positions_as_ids() {
        let attributes = [("event_type", "link.clicked"), ("event_id", "ab12")];
        let body = publish_batch_body(
            "arn:aws:sns:eu-west-1:000000000000:hookfleet-events",
            &[PublishEntry {
                message: r#"{"a": "b&c"}"#,
                attributes: &attributes,
            }],
        );
        let body = String::from_utf8(body).unwrap();
        assert_eq!(
            body,
            "Action=PublishBatch&Version=2010-03-31\
             &TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A000000000000%3Ahookfleet-events\
             &PublishBatchRequestEntries.member.1.Id=0\
             &PublishBatchRequestEntries.member.1.Message=%7B%22a%22%3A%20%22b%26c%22%7D\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name=event_type\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType=String\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue=link.clicked\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.2.Name=event_id\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.2.Value.DataType=String\
             &PublishBatchRequestEntries.member.1.MessageAttributes.entry.2.Value.StringValue=ab12"
        );
    }

    #[test]
    fn utf8_is_encoded_byte_by_byte() {
        let mut out = Vec::new();
        encode_into(&mut out, "é ~");
        assert_eq!(out, b"%C3%A9%20~");
    }

    #[test]
    fn every_byte_outside_the_unreserved_set_is_escaped() {
        let all: String = (0u8..128).map(char::from).collect();
        let mut out = b"x=".to_vec();
        encode_into(&mut out, &all);
        let mut expected = b"x=".to_vec();
        for byte in all.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                expected.push(byte);
            } else {
                expected.extend_from_slice(format!("%{byte:02X}").as_bytes());
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        let mut edges = Vec::new();
        encode_into(&mut edges, "&ab&");
        assert_eq!(edges, b"%26ab%26");
    }

    #[test]
    fn the_answer_gives_each_entry_its_verdict() {
        let xml = r#"<?xml version="1.0"?>
<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishBatchResult>
    <Successful>
      <member><Id>0</Id><MessageId>5b1c-0</MessageId></member>
      <member><MessageId>5b1c-2</MessageId><Id>2</Id></member>
    </Successful>
    <Failed>
      <member><Id>1</Id><Code>InvalidParameter</Code><Message>bad &amp; &lt;worse&gt; &#233;</Message><SenderFault>true</SenderFault></member>
      <member><Id>7</Id><Code>X</Code></member>
    </Failed>
  </PublishBatchResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</PublishBatchResponse>"#;
        let output = parse_publish_batch(xml, 3);
        assert_eq!(
            output.successful,
            vec![(0, "5b1c-0".to_owned()), (2, "5b1c-2".to_owned())]
        );
        assert_eq!(
            output.failed,
            vec![BatchFailure {
                index: 1,
                code: "InvalidParameter".to_owned(),
                message: "bad & <worse> é".to_owned(),
                sender_fault: true,
            }]
        );
    }

    #[test]
    fn empty_result_lists_are_no_entries() {
        let xml = "<PublishBatchResponse><PublishBatchResult><Successful/><Failed/></PublishBatchResult></PublishBatchResponse>";
        assert_eq!(parse_publish_batch(xml, 10), PublishBatchOutput::default());
    }

    #[test]
    fn errors_name_their_code() {
        let xml = br#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        let error = parse_error(404, &http::HeaderMap::new(), xml);
        assert_eq!(
            error,
            WireError::Service {
                status: 404,
                code: "NotFound".to_owned(),
                message: "Topic does not exist".to_owned(),
            }
        );
        let error = parse_error(502, &http::HeaderMap::new(), b"Bad Gateway");
        assert_eq!(error.code(), Some("HTTP502"));
    }

    #[test]
    fn unescape_leaves_unknown_entities_as_they_are() {
        assert_eq!(unescape("a &bogus; b &amp"), "a &bogus; b &amp");
        assert_eq!(unescape("&#x41;&#66;"), "AB");
    }
}
