//! `redrive --server-side`: SQS's own message move task
//! (`StartMessageMoveTask`), polled with `ListMessageMoveTasks` until it
//! ends.
//!
//! It is fast and runs inside SQS, but it moves messages as they are: the
//! failure attributes (`error`, `worker`, `failed_at`, `receive_count`)
//! stay on them. That is harmless to the workers (a later give-up
//! replaces them) but it is why this path is opt-in and the default
//! redrive moves messages itself. The destination is always named
//! explicitly: without one, SQS can only return messages that reached the
//! DLQ by a redrive policy, and some LocalStack releases fail the task
//! outright (`FailureReason: AttributeError` on 4.13.1).

use std::time::Duration;

use anyhow::anyhow;

use crate::dlq::interrupt::Interrupt;
use crate::dlq::sqs::aws_line;
use crate::dlq::target::Queue;

/// How often the task's progress is read.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// How a move task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskEnd {
    /// Every message it set out to move was moved.
    Completed {
        /// `ApproximateNumberOfMessagesMoved`.
        moved: u64,
    },
    /// SQS gave up; what it moved stays moved.
    Failed {
        /// `ApproximateNumberOfMessagesMoved`.
        moved: u64,
        /// `FailureReason`.
        reason: String,
    },
    /// Cancelled (Ctrl-C, or someone else).
    Cancelled {
        /// `ApproximateNumberOfMessagesMoved`.
        moved: u64,
    },
}

/// Starts a move task from `from` to `to` at `rate` messages per second
/// (SQS's default when `None`) and waits for it to end, calling
/// `progress(moved, to_move)` on each poll. Ctrl-C cancels the task.
pub(crate) async fn run_move_task(
    sqs: &aws_sdk_sqs::Client,
    from: &Queue,
    to: &Queue,
    interrupt: &Interrupt,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<TaskEnd> {
    let started = sqs
        .start_message_move_task()
        .source_arn(&from.arn)
        .destination_arn(&to.arn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "StartMessageMoveTask on {} failed: {}",
                from.name,
                aws_line(&e)
            )
        })?;
    let handle = started.task_handle.unwrap_or_default();
    let mut cancelled = false;

    loop {
        tokio::time::sleep(POLL_EVERY).await;
        if interrupt.pressed() && !cancelled && !handle.is_empty() {
            cancelled = true;
            sqs.cancel_message_move_task()
                .task_handle(&handle)
                .send()
                .await
                .map_err(|e| anyhow!("CancelMessageMoveTask failed: {}", aws_line(&e)))?;
        }

        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&from.arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "ListMessageMoveTasks on {} failed: {}",
                    from.name,
                    aws_line(&e)
                )
            })?;
        let Some(task) = tasks.results.unwrap_or_default().into_iter().next() else {
            continue;
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved).unwrap_or(0);
        let to_move = task
            .approximate_number_of_messages_to_move
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(moved);
        progress(moved, to_move);

        match task.status.as_deref() {
            Some("COMPLETED") => return Ok(TaskEnd::Completed { moved }),
            Some("FAILED") => {
                return Ok(TaskEnd::Failed {
                    moved,
                    reason: task
                        .failure_reason
                        .unwrap_or_else(|| "no reason given".into()),
                });
            }
            Some("CANCELLED") => return Ok(TaskEnd::Cancelled { moved }),
            _ => {}
        }
    }
}
