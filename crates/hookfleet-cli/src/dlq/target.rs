//! Which queue `QUEUE` names, and where its messages came from.
//!
//! Every `dlq` command refuses a queue that is not a dead-letter queue:
//! looking at a live queue hides its messages from its worker and counts
//! towards their `maxReceiveCount`, and purging one loses live events. A
//! queue is a dead-letter queue when the topology declares it (a queue's
//! `<name>-dlq`) or when SQS names a queue that sends to it
//! (`ListDeadLetterSourceQueues`).

use anyhow::anyhow;
use hookfleet_bus::resolve::{self, ResolveError};
use hookfleet_bus::topology::Topology;

use crate::context::Failure;
use crate::dlq::sqs::aws_line;

/// A queue found by name or URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queue {
    /// Its name (the URL's last segment).
    pub(crate) name: String,
    /// Its URL.
    pub(crate) url: String,
    /// Its ARN.
    pub(crate) arn: String,
}

/// A dead-letter queue and the queue(s) that send to it.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterQueue {
    /// The dead-letter queue.
    pub(crate) queue: Queue,
    /// The URLs of its source queues: the topology's one, else what
    /// `ListDeadLetterSourceQueues` answered (never empty).
    pub(crate) source_urls: Vec<String>,
}

impl DeadLetterQueue {
    /// The names of its source queues.
    pub(crate) fn source_names(&self) -> Vec<String> {
        self.source_urls
            .iter()
            .map(|url| name_of(url).to_owned())
            .collect()
    }

    /// The one queue to send its messages back to: `to` when given, else
    /// its source queue. Several sources without `to` is bad usage.
    pub(crate) async fn destination(
        &self,
        sqs: &aws_sdk_sqs::Client,
        to: Option<&str>,
    ) -> Result<Queue, Failure> {
        if let Some(to) = to {
            return find(sqs, to).await;
        }
        match self.source_urls.as_slice() {
            [url] => find(sqs, url).await,
            urls => Err(Failure::Usage(format!(
                "several queues send to {} ({}): pass --to QUEUE",
                self.queue.name,
                urls.iter()
                    .map(|u| name_of(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// The queue `name_or_url` names. One that does not exist is bad usage
/// (exit 2); a failed call is a failed operation (exit 1).
pub(crate) async fn find(sqs: &aws_sdk_sqs::Client, name_or_url: &str) -> Result<Queue, Failure> {
    let url = resolve::queue_url(sqs, name_or_url)
        .await
        .map_err(|e| resolve_failure(name_or_url, e))?;
    let arn = resolve::queue_arn(sqs, &url)
        .await
        .map_err(|e| resolve_failure(name_or_url, e))?;
    Ok(Queue {
        name: name_of(&url).to_owned(),
        url,
        arn,
    })
}

/// The dead-letter queue `name_or_url` names, refusing any other queue.
pub(crate) async fn find_dead_letter_queue(
    sqs: &aws_sdk_sqs::Client,
    topology: &Topology,
    name_or_url: &str,
) -> Result<DeadLetterQueue, Failure> {
    let queue = find(sqs, name_or_url).await?;

    if let Some(source) = topology.queue_for_dlq(&queue.name) {
        let url = resolve::queue_url(sqs, &source.name)
            .await
            .map_err(|e| resolve_failure(&source.name, e))?;
        return Ok(DeadLetterQueue {
            queue,
            source_urls: vec![url],
        });
    }
    if topology.queue(&queue.name).is_some() {
        return Err(Failure::Usage(format!(
            "{} is a source queue, not a dead-letter queue (its DLQ is {}-dlq)",
            queue.name, queue.name
        )));
    }

    let source_urls = source_queues(sqs, &queue.url).await?;
    if source_urls.is_empty() {
        return Err(Failure::Usage(format!(
            "{} is not a dead-letter queue: the topology does not declare it and no queue's \
             redrive policy names it",
            queue.name
        )));
    }
    Ok(DeadLetterQueue { queue, source_urls })
}

/// `ListDeadLetterSourceQueues`, every page.
async fn source_queues(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<String>, Failure> {
    let mut pages = sqs
        .list_dead_letter_source_queues()
        .queue_url(url)
        .into_paginator()
        .send();
    let mut urls = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow!(
                "ListDeadLetterSourceQueues on {url} failed: {}",
                aws_line(&e)
            )
        })?;
        urls.extend(page.queue_urls);
    }
    Ok(urls)
}

/// The name in a queue URL: its last path segment.
pub(crate) fn name_of(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

fn resolve_failure(what: &str, error: ResolveError) -> Failure {
    match error {
        ResolveError::NotFound(_) => Failure::Usage(format!(
            "queue {what} does not exist (check the name, or run `hookfleet infra apply`)"
        )),
        error @ ResolveError::Aws { .. } => Failure::Operation(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_segment() {
        assert_eq!(
            name_of("http://127.0.0.1:4566/000000000000/hookfleet-crm-dlq"),
            "hookfleet-crm-dlq"
        );
        assert_eq!(name_of("https://sqs.eu-west-1.amazonaws.com/123/q/"), "q");
        assert_eq!(name_of("q"), "q");
    }
}
