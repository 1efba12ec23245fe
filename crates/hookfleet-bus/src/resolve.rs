//! Turning the names in the topology into what SNS and SQS calls need:
//! topic ARNs, queue URLs and queue ARNs.
//!
//! A missing topic is `Ok(None)` (creating it is a normal step of
//! `infra apply`); a missing queue is [`ResolveError::NotFound`], kept
//! apart from an AWS call that failed so callers can say "run
//! `hookfleet infra apply`" instead of "SQS is down".

use aws_sdk_sqs::types::QueueAttributeName;

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No queue has this name or URL.
    #[error("queue {0} does not exist")]
    NotFound(String),
    /// The call itself failed: endpoint unreachable, throttled, refused.
    #[error("{operation} for {target} failed: {message}")]
    Aws {
        /// The AWS operation, e.g. `GetQueueUrl`.
        operation: &'static str,
        /// The name or URL being resolved.
        target: String,
        /// The SDK's error with its causes, on one line.
        message: String,
    },
}

/// The ARN of the topic called `name`, or `None` when there is none.
///
/// SNS has no lookup by name, so this pages through `ListTopics` and
/// compares the ARN's last `:` segment exactly (`hookfleet-events` does
/// not match `hookfleet-events-old`).
pub async fn topic_arn(
    sns: &aws_sdk_sns::Client,
    name: &str,
) -> Result<Option<String>, ResolveError> {
    let mut topics = sns.list_topics().into_paginator().items().send();
    while let Some(topic) = topics
        .try_next()
        .await
        .map_err(|e| aws_error("ListTopics", name, &e))?
    {
        let Some(arn) = topic.topic_arn() else {
            continue;
        };
        if arn.rsplit(':').next() == Some(name) {
            return Ok(Some(arn.to_owned()));
        }
    }
    Ok(None)
}

/// The URL of a queue given by name or URL (`QUEUE` in the CLI). An
/// `http://` or `https://` value is returned as it is, without a call.
pub async fn queue_url(
    sqs: &aws_sdk_sqs::Client,
    name_or_url: &str,
) -> Result<String, ResolveError> {
    if name_or_url.starts_with("http://") || name_or_url.starts_with("https://") {
        return Ok(name_or_url.to_owned());
    }

    let answer = sqs.get_queue_url().queue_name(name_or_url).send().await;
    match answer {
        Ok(output) => output
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| aws_message("GetQueueUrl", name_or_url, "the answer has no QueueUrl")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Err(ResolveError::NotFound(name_or_url.to_owned()))
        }
        Err(e) => Err(aws_error("GetQueueUrl", name_or_url, &e)),
    }
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, ResolveError> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await;
    match answer {
        Ok(output) => output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| aws_message("GetQueueAttributes", url, "the answer has no QueueArn")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Err(ResolveError::NotFound(url.to_owned()))
        }
        Err(e) => Err(aws_error("GetQueueAttributes", url, &e)),
    }
}

/// An SDK error with its whole cause chain, on one line.
pub(crate) fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let text = aws_sdk_sqs::error::DisplayErrorContext(error).to_string();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn aws_error(
    operation: &'static str,
    target: &str,
    error: &(dyn std::error::Error + 'static),
) -> ResolveError {
    aws_message(operation, target, &error_line(error))
}

fn aws_message(operation: &'static str, target: &str, message: &str) -> ResolveError {
    ResolveError::Aws {
        operation,
        target: target.to_owned(),
        message: message.to_owned(),
    }
}
