//! The CloudFormation template: offline against the topology file, and deployed to LocalStack against what `hookfleet infra apply` creates.

use super::*;

pub(super) const TEMPLATE: &str = "infra/cloudformation/hookfleet.yaml";

/// The template, with what its resources name resolved.
pub(super) struct Template {
    pub(super) file: Yaml,
}

impl Template {
    pub(super) fn load() -> Self {
        Self {
            file: serde_norway::from_str(&read(TEMPLATE)).expect("the template parses"),
        }
    }

    pub(super) fn resources(&self, kind: &str) -> Vec<(String, &Yaml)> {
        self.file["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
            .map(|(id, resource)| (id.as_str().expect("logical id").to_owned(), resource))
            .collect()
    }

    pub(super) fn default_of(&self, parameter: &str) -> String {
        match &self.file["Parameters"][parameter]["Default"] {
            Yaml::String(text) => text.clone(),
            Yaml::Number(number) => number.to_string(),
            other => panic!("{TEMPLATE}: parameter {parameter} default {other:?}"),
        }
    }

    /// A `Fn::Sub` name with `NamePrefix` at its default.
    pub(super) fn name(&self, value: &Yaml) -> String {
        let text = value["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{TEMPLATE}: expected Fn::Sub, found {value:?}"));
        text.replace("${NamePrefix}", &self.default_of("NamePrefix"))
    }
}

pub(super) fn get_att(value: &Yaml) -> (String, String) {
    let pair = value["Fn::GetAtt"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{TEMPLATE}: expected Fn::GetAtt, found {value:?}"));
    let text = |i: usize| pair[i].as_str().expect("Fn::GetAtt words").to_owned();
    (text(0), text(1))
}

pub(super) fn ref_of(value: &Yaml) -> Option<&str> {
    value["Ref"].as_str()
}

pub(super) fn to_json(value: &Yaml) -> Value {
    serde_json::to_value(value).expect("YAML as JSON")
}

/// What AWS may change without changing the meaning: numbers and booleans
/// as strings, arrays in any order (every array here is a set) — as
/// `hookfleet infra apply` compares.
pub(super) fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_cached_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect(),
        ),
        Value::Null | Value::String(_) => value.clone(),
    }
}

#[test]
fn cloudformation_template_describes_the_topology_file() {
    let template = Template::load();
    let topology = shipped_topology();
    let prefix = template.default_of("NamePrefix");
    assert_eq!(prefix, SHIPPED_PREFIX);

    // The topic.
    let topics = template.resources("AWS::SNS::Topic");
    assert_eq!(topics.len(), 1, "one topic");
    let (topic_id, topic) = &topics[0];
    assert_eq!(
        template.name(&topic["Properties"]["TopicName"]),
        topology.topic.name
    );

    // The queues: exactly the topology's and their DLQs.
    let queues: BTreeMap<String, (String, &Yaml)> = template
        .resources("AWS::SQS::Queue")
        .into_iter()
        .map(|(id, queue)| {
            (
                template.name(&queue["Properties"]["QueueName"]),
                (id, queue),
            )
        })
        .collect();
    let expected: BTreeSet<String> = topology
        .queues
        .iter()
        .flat_map(|q| [q.name.clone(), q.dlq_name()])
        .collect();
    assert_eq!(
        queues.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the template's queues"
    );

    let max_receive_count = template.default_of("MaxReceiveCount");
    let subscriptions = template.resources("AWS::SNS::Subscription");
    let policies = template.resources("AWS::SQS::QueuePolicy");
    assert_eq!(
        subscriptions.len(),
        topology.queues.len(),
        "one subscription per queue"
    );
    assert_eq!(
        policies.len(),
        topology.queues.len(),
        "one queue policy per queue"
    );

    for spec in &topology.queues {
        let (queue_id, queue) = &queues[&spec.name];
        let (dlq_id, dlq) = &queues[&spec.dlq_name()];
        let properties = &queue["Properties"];

        // Settings: the queue, its redrive policy, the DLQ.
        assert_eq!(
            max_receive_count,
            spec.max_receive_count.to_string(),
            "{}: MaxReceiveCount's default is the topology's max_receive_count \
             (the template has one for every queue)",
            spec.name
        );
        assert_eq!(
            properties["VisibilityTimeout"].as_u64(),
            Some(u64::from(spec.visibility_timeout_secs)),
            "{}: VisibilityTimeout",
            spec.name
        );
        assert_eq!(
            properties["MessageRetentionPeriod"].as_u64(),
            Some(u64::from(spec.message_retention_secs)),
            "{}: MessageRetentionPeriod",
            spec.name
        );
        let redrive = &properties["RedrivePolicy"];
        assert_eq!(
            get_att(&redrive["deadLetterTargetArn"]),
            (dlq_id.clone(), "Arn".to_owned()),
            "{}: RedrivePolicy names its DLQ",
            spec.name
        );
        assert_eq!(ref_of(&redrive["maxReceiveCount"]), Some("MaxReceiveCount"));
        assert_eq!(
            dlq["Properties"]["MessageRetentionPeriod"].as_u64(),
            Some(u64::from(spec.dlq_retention_secs)),
            "{}: DLQ retention",
            spec.name
        );
        let allow = &dlq["Properties"]["RedriveAllowPolicy"];
        assert_eq!(allow["redrivePermission"].as_str(), Some("byQueue"));
        let sources: Vec<String> = allow["sourceQueueArns"]
            .as_sequence()
            .expect("sourceQueueArns")
            .iter()
            .map(|arn| template.name(arn))
            .collect();
        assert_eq!(sources.len(), 1, "{}: one source queue", spec.name);
        assert!(
            sources[0].starts_with("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:")
                && sources[0].ends_with(&format!(":{}", spec.name)),
            "{}: the DLQ admits its queue only: {}",
            spec.name,
            sources[0]
        );
        assert!(dlq_id.ends_with("DeadLetterQueue") && queue_id.ends_with("Queue"));

        // The topic may send to the queue.
        let policy = policies
            .iter()
            .find(|(_, p)| {
                p["Properties"]["Queues"]
                    .as_sequence()
                    .is_some_and(|q| q.len() == 1 && ref_of(&q[0]) == Some(queue_id))
            })
            .unwrap_or_else(|| panic!("{}: no queue policy", spec.name));
        let statement = &policy.1["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(
            get_att(&statement["Resource"]),
            (queue_id.clone(), "Arn".to_owned())
        );
        assert_eq!(
            ref_of(&statement["Condition"]["ArnEquals"]["aws:SourceArn"]),
            Some(topic_id.as_str())
        );

        // Routing: the subscription's filter policy is the topology's.
        let (_, subscription) = subscriptions
            .iter()
            .find(|(_, s)| get_att(&s["Properties"]["Endpoint"]).0 == *queue_id)
            .unwrap_or_else(|| panic!("{}: no subscription", spec.name));
        let properties = &subscription["Properties"];
        assert_eq!(ref_of(&properties["TopicArn"]), Some(topic_id.as_str()));
        assert_eq!(properties["Protocol"].as_str(), Some("sqs"));
        assert_eq!(properties["RawMessageDelivery"].as_bool(), Some(true));
        assert_eq!(
            properties["FilterPolicyScope"].as_str(),
            Some("MessageAttributes")
        );
        assert_eq!(
            normalized(&to_json(&properties["FilterPolicy"])),
            normalized(&spec.filter.filter_policy()),
            "{}: the filter policy is the topology's ({})",
            spec.name,
            spec.filter
        );
    }

    // Outputs: the topic ARN and every queue's URL.
    let outputs = template.file["Outputs"].as_mapping().expect("Outputs");
    let referenced: BTreeSet<&str> = outputs
        .values()
        .filter_map(|output| ref_of(&output["Value"]))
        .collect();
    assert!(
        referenced.contains(topic_id.as_str()),
        "an output for the topic ARN"
    );
    for (name, (id, _)) in &queues {
        assert!(
            referenced.contains(id.as_str()),
            "an output for the URL of {name}"
        );
    }
}

/// `scripts/localstack aws ...`: the AWS CLI of the LocalStack venv.
/// The script always names 127.0.0.1; it gets the port of the suite's
/// endpoint.
pub(super) fn localstack_aws(args: &[&str]) -> std::process::Command {
    let port = endpoint()
        .trim_end_matches('/')
        .rsplit_once(':')
        .map_or_else(|| "4566".to_owned(), |(_, port)| port.to_owned());
    let mut command = std::process::Command::new(repo().join("scripts/localstack"));
    command
        .arg("aws")
        .args(args)
        .env("HOOKFLEET_LOCALSTACK_PORT", port)
        .stdin(Stdio::null());
    command
}

pub(super) async fn aws_cli(args: &[&str]) -> Output {
    let output = tokio::process::Command::from(localstack_aws(args))
        .output()
        .await
        .expect("run scripts/localstack aws");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Deletes the stack when dropped (a failed test too), without waiting.
pub(super) struct Stack {
    pub(super) name: String,
    pub(super) deleted: bool,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = localstack_aws(&["cloudformation", "delete-stack", "--stack-name", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether LocalStack runs CloudFormation; `false` skips the test, except
/// under `CI=true`, where it fails.
pub(super) async fn cloudformation_available() -> bool {
    let health = format!("{}/_localstack/health", endpoint());
    let services: Value = match hookfleet_e2e::reqwest_client().get(&health).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let state = services["services"]["cloudformation"]
        .as_str()
        .unwrap_or("absent");
    if matches!(state, "available" | "running") {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("LocalStack at {health} has no CloudFormation ({state}) and CI=true");
    }
    eprintln!(
        "\n*** SKIPPED: LocalStack's CloudFormation is {state}; start LocalStack with \
         scripts/localstack (SERVICES includes cloudformation) ***\n"
    );
    false
}

/// Attributes of a queue, by name.
pub(super) async fn queue_attributes(aws: &Aws, name: &str) -> BTreeMap<String, String> {
    let url = hookfleet_e2e::topology::queue_url(aws, name).await;
    aws.sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("attributes of {name}: {e:?}"))
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key.as_str().to_owned(), value))
        .collect()
}

/// The topic's ARN and attributes, and its subscriptions' attributes by
/// the name of the queue they deliver to.
pub(super) async fn topic_and_subscriptions(
    aws: &Aws,
    topic: &str,
) -> (
    String,
    HashMap<String, String>,
    BTreeMap<String, HashMap<String, String>>,
) {
    let arn = hookfleet_bus::resolve::topic_arn(&aws.sns, topic)
        .await
        .expect("list topics")
        .unwrap_or_else(|| panic!("no topic {topic}"));
    let attributes = aws
        .sns
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
        .expect("topic attributes")
        .attributes
        .unwrap_or_default();
    let listed = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&arn)
        .send()
        .await
        .expect("list subscriptions");
    let mut subscriptions = BTreeMap::new();
    for subscription in listed.subscriptions() {
        let queue = subscription
            .endpoint()
            .and_then(|arn| arn.rsplit(':').next())
            .expect("an sqs endpoint")
            .to_owned();
        let attributes = aws
            .sns
            .get_subscription_attributes()
            .subscription_arn(subscription.subscription_arn().expect("subscription arn"))
            .send()
            .await
            .expect("subscription attributes")
            .attributes
            .unwrap_or_default();
        assert!(
            subscriptions.insert(queue.clone(), attributes).is_none(),
            "two subscriptions of {topic} deliver to {queue}"
        );
    }
    (arn, attributes, subscriptions)
}

/// Attribute values with `prefix` written as `<prefix>` and JSON compared
/// by meaning, minus the attributes that differ between any two resources
/// (creation times, counters, subscription ids).
pub(super) fn comparable<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a String)>,
    prefix: &str,
) -> BTreeMap<String, Value> {
    const VOLATILE: [&str; 6] = [
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "SubscriptionArn",
    ];
    attributes
        .into_iter()
        .filter(|(key, _)| !VOLATILE.contains(&key.as_str()))
        .map(|(key, value)| {
            let value = value.replace(prefix, "<prefix>");
            let value = match serde_json::from_str::<Value>(&value) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => normalized(&parsed),
                _ => Value::String(value),
            };
            (key.clone(), value)
        })
        .collect()
}

/// The attributes that differ between two resources, one line each, or
/// `None` when they are the same.
pub(super) fn difference(
    what: &str,
    stack: &BTreeMap<String, Value>,
    apply: &BTreeMap<String, Value>,
) -> Option<String> {
    let keys: BTreeSet<&String> = stack.keys().chain(apply.keys()).collect();
    let lines: Vec<String> = keys
        .into_iter()
        .filter(|key| stack.get(*key) != apply.get(*key))
        .map(|key| {
            format!(
                "  {what} {key}: stack {}, apply {}",
                stack.get(key).map_or("(none)".to_owned(), Value::to_string),
                apply.get(key).map_or("(none)".to_owned(), Value::to_string)
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `infra/topology.toml` with `hookfleet-` names under another prefix.
pub(super) fn renamed_topology(prefix: &str) -> String {
    let text = read("infra/topology.toml")
        .replace(&format!("\"{SHIPPED_PREFIX}-"), &format!("\"{prefix}-"));
    let renamed = Topology::from_toml(&text).expect("the renamed topology loads");
    assert!(
        renamed.topic.name.starts_with(prefix)
            && renamed.queues.iter().all(|q| q.name.starts_with(prefix)),
        "every name of infra/topology.toml starts with {SHIPPED_PREFIX}-"
    );
    text
}

/// The template deployed by CloudFormation and the topology file applied
/// by `hookfleet infra apply`, under two random prefixes, make the same
/// resources with the same attributes; and `hookfleet infra apply` run on
/// the stack's resources finds nothing to change.
#[tokio::test]
async fn cloudformation_stack_matches_what_infra_apply_creates() {
    let Some(aws) = localstack().await else {
        return;
    };
    if !cloudformation_available().await {
        return;
    }
    let shipped = shipped_topology();
    let stack_prefix = unique("hfcfn");
    let apply_prefix = unique("hfapply");
    let write = |prefix: &str| {
        let path = std::env::temp_dir().join(format!("{prefix}.toml"));
        std::fs::write(&path, renamed_topology(prefix)).expect("write topology");
        path
    };
    let stack_topology = write(&stack_prefix);
    let apply_topology = write(&apply_prefix);
    let env_for = |path: &Path| {
        let mut env = aws_env();
        env.push(("HOOKFLEET_TOPOLOGY".into(), path.display().to_string()));
        env
    };

    let mut stack = Stack {
        name: stack_prefix.clone(),
        deleted: false,
    };
    let template = repo().join(TEMPLATE).display().to_string();
    let parameter = format!("NamePrefix={stack_prefix}");
    let deploy_args = [
        "cloudformation",
        "deploy",
        "--stack-name",
        &stack.name,
        "--template-file",
        &template,
        "--parameter-overrides",
        &parameter,
        "--no-fail-on-empty-changeset",
    ];
    let cli = hookfleet_e2e::bin("hookfleet");
    let apply_env = env_for(&apply_topology);
    let deploy = aws_cli(&deploy_args);
    let apply = run(&cli, &["infra", "apply"], &apply_env);
    let (deployed, applied) = tokio::join!(deploy, apply);
    assert_eq!(
        deployed.code,
        Some(0),
        "cloudformation deploy: {deployed:?}"
    );
    assert_eq!(applied.code, Some(0), "hookfleet infra apply: {applied:?}");

    // Resource by resource: the queues and their DLQs...
    let name = |prefix: &str, shipped_name: &str| {
        format!(
            "{prefix}{}",
            shipped_name
                .strip_prefix(SHIPPED_PREFIX)
                .expect("shipped names start with the prefix")
        )
    };
    let mut differences = Vec::new();
    for spec in &shipped.queues {
        for queue in [spec.name.clone(), spec.dlq_name()] {
            let from_stack = queue_attributes(&aws, &name(&stack_prefix, &queue)).await;
            let from_apply = queue_attributes(&aws, &name(&apply_prefix, &queue)).await;
            let (stack_view, apply_view) = (
                comparable(&from_stack, &stack_prefix),
                comparable(&from_apply, &apply_prefix),
            );
            for key in ["VisibilityTimeout", "MessageRetentionPeriod"] {
                assert!(
                    stack_view.contains_key(key),
                    "{queue}: no {key}: {from_stack:?}"
                );
            }
            let key = if queue.ends_with(DLQ_SUFFIX) {
                "RedriveAllowPolicy"
            } else {
                "RedrivePolicy"
            };
            assert!(
                stack_view.contains_key(key),
                "{queue}: no {key}: {from_stack:?}"
            );
            differences.extend(difference(
                &format!("queue {queue}"),
                &stack_view,
                &apply_view,
            ));
        }
    }

    // ...the topic and its subscriptions.
    let (stack_topic, stack_topic_attributes, stack_subscriptions) =
        topic_and_subscriptions(&aws, &name(&stack_prefix, &shipped.topic.name)).await;
    let (_, apply_topic_attributes, apply_subscriptions) =
        topic_and_subscriptions(&aws, &name(&apply_prefix, &shipped.topic.name)).await;
    let (stack_view, apply_view) = (
        comparable(&stack_topic_attributes, &stack_prefix),
        comparable(&apply_topic_attributes, &apply_prefix),
    );
    differences.extend(difference("topic", &stack_view, &apply_view));
    let by_queue = |subscriptions: &BTreeMap<String, HashMap<String, String>>, prefix: &str| {
        subscriptions
            .iter()
            .map(|(queue, attributes)| {
                (
                    queue.replace(prefix, "<prefix>"),
                    comparable(attributes, prefix),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (stack_view, apply_view) = (
        by_queue(&stack_subscriptions, &stack_prefix),
        by_queue(&apply_subscriptions, &apply_prefix),
    );
    assert_eq!(stack_view.len(), shipped.queues.len(), "{stack_view:?}");
    for (queue, attributes) in &stack_view {
        for key in ["FilterPolicy", "FilterPolicyScope", "RawMessageDelivery"] {
            assert!(
                attributes.contains_key(key),
                "subscription {queue}: no {key}"
            );
        }
        let empty = BTreeMap::new();
        let applied = apply_view.get(queue).unwrap_or(&empty);
        differences.extend(difference(
            &format!("subscription {queue}"),
            attributes,
            applied,
        ));
    }
    assert!(
        differences.is_empty(),
        "the stack and `hookfleet infra apply` differ:\n{}",
        differences.join("\n")
    );

    // The outputs name the stack's topic and queues.
    let described = aws_cli(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack.name,
        "--output",
        "json",
    ])
    .await;
    assert_eq!(described.code, Some(0), "describe-stacks: {described:?}");
    let described: Value = serde_json::from_str(&described.stdout).expect("describe-stacks JSON");
    let outputs: BTreeMap<String, String> = described["Stacks"][0]["Outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            (
                o["OutputKey"].as_str().unwrap_or_default().to_owned(),
                o["OutputValue"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(outputs.get("TopicArn"), Some(&stack_topic), "{outputs:?}");
    for spec in &shipped.queues {
        let role = spec
            .name
            .strip_prefix(&format!("{SHIPPED_PREFIX}-"))
            .unwrap_or_default();
        let mut chars = role.chars();
        let role: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        for (key, queue) in [
            (format!("{role}QueueUrl"), spec.name.clone()),
            (format!("{role}DeadLetterQueueUrl"), spec.dlq_name()),
        ] {
            let url = outputs
                .get(&key)
                .unwrap_or_else(|| panic!("no output {key}: {outputs:?}"));
            let queue = name(&stack_prefix, &queue);
            assert!(
                url.ends_with(&format!("/{queue}")),
                "{key} = {url}, not {queue}"
            );
        }
    }
    assert_eq!(outputs.len(), 1 + 2 * shipped.queues.len(), "{outputs:?}");

    // `hookfleet infra apply` on the stack's names: nothing to change.
    let again = run(&cli, &["infra", "apply"], &env_for(&stack_topology)).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    let lines: Vec<&str> = again.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3 * shipped.queues.len(),
        "{}",
        again.stdout
    );
    assert!(
        lines.iter().all(|line| line.starts_with("unchanged ")),
        "infra apply would change the stack's resources:\n{}",
        again.stdout
    );

    // Delete the stack, and wait until CloudFormation has.
    let deleted = aws_cli(&[
        "cloudformation",
        "delete-stack",
        "--stack-name",
        &stack.name,
    ])
    .await;
    assert_eq!(deleted.code, Some(0), "delete-stack: {deleted:?}");
    stack.deleted = true;
    let stack_name = stack.name.clone();
    eventually(Duration::from_secs(120), "the stack's deletion", || {
        let stack_name = stack_name.clone();
        async move {
            let status = aws_cli(&[
                "cloudformation",
                "describe-stacks",
                "--stack-name",
                &stack_name,
                "--query",
                "Stacks[0].StackStatus",
                "--output",
                "text",
            ])
            .await;
            let gone = status.code != Some(0) || status.stdout.trim() == "DELETE_COMPLETE";
            gone.then_some(())
        }
    })
    .await;
    let topic_left =
        hookfleet_bus::resolve::topic_arn(&aws.sns, &name(&stack_prefix, &shipped.topic.name))
            .await
            .expect("list topics");
    assert_eq!(topic_left, None, "deleting the stack deletes its topic");

    std::fs::remove_file(&stack_topology).ok();
    std::fs::remove_file(&apply_topology).ok();
}

// --- the healthcheck -------------------------------------------------------------
