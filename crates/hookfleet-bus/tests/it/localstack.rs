//! What SNS and SQS (LocalStack) make of our own client's requests: the
//! bytes of a body survive form encoding, publishing, raw delivery and
//! JSON decoding unchanged; batch calls report per entry; a missing topic
//! or queue is named by its error code.

use std::collections::BTreeMap;
use std::time::Duration;

use hookfleet_bus::aws::AwsTimeouts;
use hookfleet_bus::wire::sns::{PublishEntry, Sns};
use hookfleet_bus::wire::sqs::{Receive, ReceivedMessage, Sqs};
use hookfleet_bus::wire::{AwsWire, WireError};

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

/// The SDK's clients and ours, or `None` (the test skips, saying so) when
/// LocalStack is unreachable outside CI. Under `CI=true` it fails.
async fn localstack() -> Option<(aws_sdk_sns::Client, aws_sdk_sqs::Client, Sns, Sqs)> {
    let config = crate::config_for(&endpoint(), AwsTimeouts::long_poll(), 3).await;
    let sqs_sdk = aws_sdk_sqs::Client::new(&config);
    if let Err(error) = sqs_sdk.list_queues().max_results(1).send().await {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "LocalStack is not reachable at {} and CI=true: {error}",
            endpoint()
        );
        eprintln!(
            "\n*** SKIPPED: LocalStack is not reachable at {}; start it with `scripts/localstack start` ***\n",
            endpoint()
        );
        return None;
    }
    let sns = Sns::new(AwsWire::new(&config, "sns", AwsTimeouts::default()).expect("sns wire"));
    let sqs = Sqs::new(AwsWire::new(&config, "sqs", AwsTimeouts::long_poll()).expect("sqs wire"));
    Some((aws_sdk_sns::Client::new(&config), sqs_sdk, sns, sqs))
}

fn unique(kind: &str) -> String {
    format!("hf-wire-{:08x}-{kind}", rand::random::<u32>())
}

/// A fresh queue; returns its URL.
async fn create_queue(sqs: &aws_sdk_sqs::Client, kind: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(kind))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Bodies that form encoding, XML and JSON could each get wrong.
fn awkward_bodies() -> Vec<String> {
    [
        r#"{"event":"link.clicked","data":{"q":"a+b=c&d=%20 e"}}"#,
        "{\"event\":\"x\",\"data\":{\"multi\":\"line\\none\",\"raw\":\"tab\there\"}}",
        r#"{"event":"é","data":{"emoji":"🦀","cjk":"深い","nbsp":" "}}"#,
        r#"{"event":"x","data":{"xml":"<a href='b'>&amp;</a>","quote":"\""}}"#,
        "plain text, not JSON: ~!*'();:@$,/?#[]",
        "line one\r\nline two\n\ttabbed",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn receive_all(sqs: &Sqs, url: &str, count: usize) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut messages = Vec::new();
    while messages.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} messages arrived within 30 s",
            messages.len()
        );
        let batch = sqs
            .receive(Receive {
                queue_url: url,
                max_messages: 10,
                wait_seconds: 1,
                visibility_seconds: 60,
                system_attributes: &["ApproximateReceiveCount", "SentTimestamp"],
            })
            .await
            .expect("receive");
        messages.extend(batch);
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_batch_arrives_byte_for_byte_with_its_attributes() {
    let Some((sns_sdk, sqs_sdk, sns, sqs)) = localstack().await else {
        return;
    };
    let topic_arn = sns_sdk
        .create_topic()
        .name(unique("topic"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let queue_url = create_queue(&sqs_sdk, "queue").await;
    let queue_arn = hookfleet_bus::resolve::queue_arn(&sqs_sdk, &queue_url)
        .await
        .expect("queue arn");
    sns_sdk
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");

    let bodies = awkward_bodies();
    let attributes: Vec<[(&str, &str); 2]> = bodies
        .iter()
        .enumerate()
        .map(|(i, _)| {
            [
                ("seq", ["0", "1", "2", "3", "4", "5"][i]),
                ("odd", "a&b <c> é+%"),
            ]
        })
        .collect();
    let entries: Vec<PublishEntry<'_>> = bodies
        .iter()
        .zip(&attributes)
        .map(|(body, attributes)| PublishEntry {
            message: body,
            attributes,
        })
        .collect();
    let output = sns
        .publish_batch(&topic_arn, &entries)
        .await
        .expect("publish batch");
    assert!(output.failed.is_empty(), "{:?}", output.failed);
    let mut accepted: Vec<usize> = output.successful.iter().map(|(i, _)| *i).collect();
    accepted.sort_unstable();
    assert_eq!(accepted, (0..bodies.len()).collect::<Vec<_>>());
    assert!(output.successful.iter().all(|(_, id)| !id.is_empty()));

    let messages = receive_all(&sqs, &queue_url, bodies.len()).await;
    let mut by_seq: BTreeMap<usize, &ReceivedMessage> = BTreeMap::new();
    for message in &messages {
        let seq = message.attributes["seq"].parse().expect("seq");
        assert!(by_seq.insert(seq, message).is_none(), "seq {seq} twice");
    }
    for (seq, body) in bodies.iter().enumerate() {
        let message = by_seq[&seq];
        assert_eq!(&message.body, body, "body of entry {seq}");
        assert_eq!(message.attributes["odd"], "a&b <c> é+%");
        assert_eq!(message.receive_count, Some(1));
        assert!(message.sent_timestamp_ms.is_some());
    }

    // One good and one stale receipt: the batch reports the stale one by
    // its position, and the good one is released at once.
    let first = &messages[0];
    let failures = sqs
        .change_visibility_batch(
            &queue_url,
            &[(&first.receipt_handle, 0), ("not-a-receipt", 0)],
        )
        .await
        .expect("change visibility batch");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    let again = receive_all(&sqs, &queue_url, 1).await;
    assert_eq!(again[0].body, first.body);
    assert_eq!(again[0].receive_count, Some(2));

    let mut receipts: Vec<String> = messages[1..]
        .iter()
        .map(|m| m.receipt_handle.clone())
        .collect();
    receipts.push(again[0].receipt_handle.clone());
    let failures = sqs
        .delete_batch(&queue_url, &receipts)
        .await
        .expect("delete");
    assert!(failures.is_empty(), "{failures:?}");
    let depth = sqs
        .queue_attributes(
            &queue_url,
            &[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
        .await
        .expect("attributes");
    assert_eq!(depth["ApproximateNumberOfMessages"], "0");
    assert_eq!(depth["ApproximateNumberOfMessagesNotVisible"], "0");

    let _ = sqs_sdk.delete_queue().queue_url(&queue_url).send().await;
    let _ = sns_sdk.delete_topic().topic_arn(&topic_arn).send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_message_keeps_its_attributes() {
    let Some((_, sqs_sdk, _, sqs)) = localstack().await else {
        return;
    };
    let queue_url = create_queue(&sqs_sdk, "send").await;
    let attributes = BTreeMap::from([
        (
            "error".to_owned(),
            "handler gave up: \"quoted\" ✗".to_owned(),
        ),
        ("event_id".to_owned(), "ab".repeat(32)),
    ]);
    let body = awkward_bodies().join("|");
    let id = sqs
        .send(&queue_url, &body, &attributes)
        .await
        .expect("send");
    assert!(!id.is_empty());

    let received = receive_all(&sqs, &queue_url, 1).await;
    assert_eq!(received[0].body, body);
    assert_eq!(received[0].attributes, attributes);
    assert_eq!(received[0].message_id, id);
    let _ = sqs_sdk.delete_queue().queue_url(&queue_url).send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_stays_hidden_until_its_timer_ends() {
    let Some((_, sqs_sdk, _, sqs)) = localstack().await else {
        return;
    };
    let queue_url = create_queue(&sqs_sdk, "delayed").await;
    let attributes = BTreeMap::from([("follow_up".to_owned(), "welcome".to_owned())]);
    let sent_at = std::time::Instant::now();
    sqs.send_delayed(&queue_url, "later", &attributes, 2)
        .await
        .expect("send");

    let early = sqs
        .receive(Receive {
            queue_url: &queue_url,
            max_messages: 10,
            wait_seconds: 0,
            visibility_seconds: 60,
            system_attributes: &[],
        })
        .await
        .expect("receive");
    assert!(early.is_empty(), "visible before its timer: {early:?}");

    let received = receive_all(&sqs, &queue_url, 1).await;
    assert!(
        sent_at.elapsed() >= Duration::from_secs(2),
        "arrived after {:?}, before its 2 s timer",
        sent_at.elapsed()
    );
    assert_eq!(received[0].body, "later");
    assert_eq!(received[0].attributes, attributes);
    let _ = sqs_sdk.delete_queue().queue_url(&queue_url).send().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_or_queue_is_a_named_permanent_error() {
    let Some((_, _, sns, sqs)) = localstack().await else {
        return;
    };
    let missing_queue = format!("{}/000000000000/{}", endpoint(), unique("missing"));
    let error = sqs
        .receive(Receive {
            queue_url: &missing_queue,
            max_messages: 1,
            wait_seconds: 0,
            visibility_seconds: 30,
            system_attributes: &[],
        })
        .await
        .expect_err("no such queue");
    let code = error.code().unwrap_or_default();
    assert!(
        code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist"),
        "{error}"
    );
    assert!(!error.is_retryable(), "{error}");

    let missing_topic = format!("arn:aws:sns:us-east-1:000000000000:{}", unique("missing"));
    let error = sns
        .publish_batch(
            &missing_topic,
            &[PublishEntry {
                message: "{}",
                attributes: &[],
            }],
        )
        .await
        .expect_err("no such topic");
    assert!(
        matches!(&error, WireError::Service { status: 404, code, .. } if code == "NotFound"),
        "{error}"
    );
}
