//! `hookfleet infra apply` against LocalStack: what it creates, that a
//! second run changes nothing, that edits are applied, that the filter
//! policies route as SPEC §4 says, and how it refuses a bad file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use hookfleet_e2e::process::{free_port, run};
use hookfleet_e2e::topology::{Received, receive_all};
use hookfleet_e2e::{Aws, TestTopology, aws_env, bin, localstack, unique};
use serde_json::{Value, json};

/// Lines of a report: (action, kind, name and detail).
fn report_lines(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let action = words.next().unwrap_or_default().to_owned();
            let kind = words.next().unwrap_or_default().to_owned();
            (action, kind, words.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

async fn queue_attributes(aws: &Aws, url: &str) -> std::collections::HashMap<String, String> {
    aws.sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("get queue attributes")
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

/// The subscription attributes of the topic's subscription for `queue`.
async fn subscription_attributes(
    aws: &Aws,
    topic: &str,
    queue: &str,
) -> std::collections::HashMap<String, String> {
    let topic_arn = hookfleet_bus::resolve::topic_arn(&aws.sns, topic)
        .await
        .expect("list topics")
        .expect("topic exists");
    let url = hookfleet_e2e::topology::queue_url(aws, queue).await;
    let queue_arn = hookfleet_bus::resolve::queue_arn(&aws.sqs, &url)
        .await
        .expect("queue arn");
    let subscriptions = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .expect("list subscriptions");
    let matching: Vec<_> = subscriptions
        .subscriptions()
        .iter()
        .filter(|s| s.endpoint() == Some(queue_arn.as_str()))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one subscription for {queue}: {matching:?}"
    );
    aws.sns
        .get_subscription_attributes()
        .subscription_arn(matching[0].subscription_arn().unwrap())
        .send()
        .await
        .expect("get subscription attributes")
        .attributes
        .unwrap_or_default()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn apply_creates_everything_then_changes_nothing() {
    let Some(aws) = localstack().await else {
        return;
    };
    let topology = TestTopology::builder().max_receive_count(4).build();

    let first = topology.apply().await;
    let lines = report_lines(&first.stdout);
    assert_eq!(
        lines.len(),
        13,
        "topic + 4 x (dlq, queue, subscription):\n{}",
        first.stdout
    );
    assert!(
        lines.iter().all(|(action, _, _)| action == "created"),
        "{}",
        first.stdout
    );
    assert_eq!(
        lines[..4],
        [
            ("created".into(), "topic".into(), topology.topic.clone()),
            (
                "created".into(),
                "queue".into(),
                topology.dlq(&topology.analytics)
            ),
            ("created".into(), "queue".into(), topology.analytics.clone()),
            (
                "created".into(),
                "subscription".into(),
                topology.analytics.clone()
            ),
        ]
    );

    let second = topology.apply().await;
    let again = report_lines(&second.stdout);
    assert_eq!(again.len(), 13, "{}", second.stdout);
    assert!(
        again.iter().all(|(action, _, _)| action == "unchanged"),
        "a second apply must change nothing:\n{}",
        second.stdout
    );

    // What was created is what the topology says.
    let crm_url = topology.queue_url(&aws, &topology.crm).await;
    let dlq_url = topology.queue_url(&aws, &topology.dlq(&topology.crm)).await;
    let crm = queue_attributes(&aws, &crm_url).await;
    let dlq = queue_attributes(&aws, &dlq_url).await;
    assert_eq!(crm["VisibilityTimeout"], "5");
    assert_eq!(crm["MessageRetentionPeriod"], "345600");
    let redrive = json_of(&crm["RedrivePolicy"]);
    assert_eq!(redrive["deadLetterTargetArn"], json!(dlq["QueueArn"]));
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "4"
    );
    let policy = json_of(&crm["Policy"]);
    assert_eq!(
        policy["Statement"][0]["Principal"]["Service"],
        "sns.amazonaws.com"
    );
    assert_eq!(dlq["MessageRetentionPeriod"], "1209600");
    assert_eq!(
        json_of(&dlq["RedriveAllowPolicy"]),
        json!({"redrivePermission": "byQueue", "sourceQueueArns": [crm["QueueArn"]]})
    );

    let subscription = subscription_attributes(&aws, &topology.topic, &topology.crm).await;
    assert_eq!(subscription["RawMessageDelivery"], "true");
    assert_eq!(
        json_of(&subscription["FilterPolicy"]),
        json!({"event_type": ["referral.completed"]})
    );
}

#[tokio::test]
async fn apply_updates_only_what_the_file_changed() {
    let Some(aws) = localstack().await else {
        return;
    };
    let topology = TestTopology::new();
    topology.apply().await;

    // CRM also takes referral.created; alerts redeliver fewer times.
    let crm_line = format!(
        "name = {:?}\nevent_types = [\"referral.completed\"]",
        topology.crm
    );
    let alerts_line = format!("name = {:?}\n", topology.alerts);
    let edited = topology
        .render()
        .replace(
            &crm_line,
            &format!(
                "name = {:?}\nevent_types = [\"referral.completed\", \"referral.created\"]",
                topology.crm
            ),
        )
        .replace(
            &alerts_line,
            &format!("{alerts_line}max_receive_count = 7\n"),
        );
    assert_ne!(edited, topology.render(), "the edit must apply");
    topology.write_text(&edited);

    let output = topology.apply().await;
    let changed: Vec<_> = report_lines(&output.stdout)
        .into_iter()
        .filter(|(action, _, _)| action != "unchanged")
        .collect();
    assert_eq!(
        changed,
        [
            (
                "updated".into(),
                "queue".into(),
                format!("{} (RedrivePolicy)", topology.alerts)
            ),
            (
                "updated".into(),
                "subscription".into(),
                format!("{} (FilterPolicy)", topology.crm)
            ),
        ],
        "{}",
        output.stdout
    );

    let subscription = subscription_attributes(&aws, &topology.topic, &topology.crm).await;
    let policy = json_of(&subscription["FilterPolicy"]);
    let types: BTreeSet<&str> = policy["event_type"]
        .as_array()
        .expect("event_type list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["referral.completed", "referral.created"])
    );

    // And SNS routes by the new policy at once.
    let topic_arn = hookfleet_bus::resolve::topic_arn(&aws.sns, &topology.topic)
        .await
        .unwrap()
        .unwrap();
    publish(&aws, &topic_arn, "referral.created").await;
    let crm_url = topology.queue_url(&aws, &topology.crm).await;
    let received = receive_all(&aws, &crm_url, 1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].event_type(), "referral.created");

    let again = topology.apply().await;
    assert!(
        report_lines(&again.stdout)
            .iter()
            .all(|(action, _, _)| action == "unchanged"),
        "{}",
        again.stdout
    );
}

/// Publishes one event the way ingest does: the body as the message,
/// `event_type`, `event_id` and `received_at` as attributes. Returns the
/// body.
async fn publish(aws: &Aws, topic_arn: &str, event_type: &str) -> String {
    let body = json!({
        "event": event_type,
        "timestamp": "2026-12-03T10:15:30Z",
        "data": {"marker": unique("m")},
    })
    .to_string();
    let string = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("attribute")
    };
    aws.sns
        .publish()
        .topic_arn(topic_arn)
        .message(&body)
        .message_attributes("event_type", string(event_type))
        .message_attributes("event_id", string(&unique("id")))
        .message_attributes("received_at", string("2026-12-03T10:15:31Z"))
        .send()
        .await
        .expect("publish");
    body
}

#[tokio::test]
async fn subscriptions_route_each_event_type_as_the_spec_says() {
    let Some(aws) = localstack().await else {
        return;
    };
    let topology = TestTopology::new();
    topology.apply().await;
    let topic_arn = hookfleet_bus::resolve::topic_arn(&aws.sns, &topology.topic)
        .await
        .unwrap()
        .expect("topic");

    let types = [
        "link.clicked",
        "deferred_link.claimed",
        "install.tracked",
        "referral.created",
        "referral.completed",
        "ecommerce.purchase",
        "test",
        "some.future_type",
    ];
    let mut bodies = BTreeMap::new();
    for event_type in types {
        bodies.insert(event_type, publish(&aws, &topic_arn, event_type).await);
    }

    let expected: [(&String, &[&str]); 4] = [
        (
            &topology.analytics,
            &[
                "link.clicked",
                "deferred_link.claimed",
                "install.tracked",
                "referral.created",
                "referral.completed",
                "ecommerce.purchase",
                "some.future_type",
            ],
        ),
        (
            &topology.alerts,
            &[
                "link.clicked",
                "deferred_link.claimed",
                "install.tracked",
                "referral.created",
                "referral.completed",
            ],
        ),
        (&topology.crm, &["referral.completed"]),
        (&topology.welcome, &["install.tracked"]),
    ];
    let mut urls = Vec::new();
    for (queue, _) in &expected {
        urls.push(topology.queue_url(&aws, queue).await);
    }
    let deadline = Duration::from_secs(20);
    let receive = |i: usize| receive_all(&aws, &urls[i], expected[i].1.len(), deadline);
    let (analytics, alerts, crm, welcome) =
        tokio::join!(receive(0), receive(1), receive(2), receive(3));

    for ((queue, want), received) in expected.iter().zip([analytics, alerts, crm, welcome]) {
        let got: BTreeSet<&str> = received.iter().map(Received::event_type).collect();
        assert_eq!(
            got,
            want.iter().copied().collect::<BTreeSet<_>>(),
            "queue {queue}"
        );
        assert_eq!(received.len(), want.len(), "queue {queue}: {received:?}");
        for message in &received {
            // Raw delivery: the body unchanged, attributes kept.
            assert_eq!(message.body, bodies[message.event_type()], "queue {queue}");
            assert!(message.attributes.contains_key("event_id"), "{message:?}");
            assert!(
                message.attributes.contains_key("received_at"),
                "{message:?}"
            );
        }
    }
}

#[tokio::test]
async fn malformed_topology_exits_2_naming_the_file() {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("hf-bad")));
    std::fs::write(
        &path,
        "[topic]\nname = \"t\"\n[[queues]]\nname = \"q\"\nevent_types = [\"a\"]\nexcept_event_types = [\"b\"]\n",
    )
    .unwrap();
    let mut env = aws_env();
    env.push(("HOOKFLEET_TOPOLOGY".into(), path.display().to_string()));

    let output = run(&bin("hookfleet"), &["infra", "apply"], &env).await;
    std::fs::remove_file(&path).ok();

    assert_eq!(output.code, Some(2), "{output:?}");
    assert_eq!(output.stdout, "");
    assert_eq!(
        output.stderr.trim_end(),
        format!(
            "error: invalid HOOKFLEET_TOPOLOGY: {}: queue \"q\": set exactly one of event_types, except_event_types",
            path.display()
        )
    );

    let missing = run(
        &bin("hookfleet"),
        &["infra", "apply", "--topology", "/nonexistent/topology.toml"],
        &aws_env(),
    )
    .await;
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("/nonexistent/topology.toml: cannot read")
    );
}

#[tokio::test]
async fn unreachable_endpoint_exits_1_with_one_line() {
    let topology = TestTopology::new();
    let mut env = topology.env();
    for (key, value) in &mut env {
        if key == "AWS_ENDPOINT_URL" {
            *value = format!("http://127.0.0.1:{}", free_port());
        }
    }

    let output = run(&bin("hookfleet"), &["infra", "apply"], &env).await;

    assert_eq!(output.code, Some(1), "{output:?}");
    assert_eq!(output.stdout, "");
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    assert!(
        output
            .stderr
            .starts_with(&format!("error: cannot find topic {}: ", topology.topic)),
        "{output:?}"
    );
}

#[tokio::test]
async fn bad_aws_settings_exit_2_naming_the_variable() {
    let topology = TestTopology::new();
    let cases = [
        ("AWS_ENDPOINT_URL", "", "AWS_ENDPOINT_URL"),
        ("AWS_ENDPOINT_URL", "localhost:4566", "AWS_ENDPOINT_URL"),
        ("AWS_REGION", "", "AWS_REGION"),
    ];

    for (key, value, setting) in cases {
        let mut env = topology.env();
        env.retain(|(k, _)| k != key);
        env.push((key.into(), value.into()));

        let output = run(&bin("hookfleet"), &["infra", "apply"], &env).await;

        assert_eq!(output.code, Some(2), "{key}={value:?}: {output:?}");
        assert_eq!(
            output.stderr.lines().count(),
            1,
            "{key}={value:?}: {output:?}"
        );
        assert!(
            output
                .stderr
                .starts_with(&format!("error: invalid {setting}: ")),
            "{key}={value:?}: {output:?}"
        );
    }
}
