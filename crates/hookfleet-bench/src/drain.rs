//! The worker runtime draining a pre-filled queue with a no-op handler.
//!
//! Each round fills three fresh scratch queues with the same number of valid
//! ~1 KB envelopes (`SendMessageBatch`, the three bus attributes) and
//! drains them:
//!
//! 1. **LocalStack's ceiling**, twice: plain loops of `ReceiveMessage`
//!    (10, the same attributes as the worker asks for) then
//!    `DeleteMessageBatch`, as many loops as the worker has receivers,
//!    until every message is deleted — once through the AWS SDK, once
//!    through the project's own client (the one the worker uses). This
//!    process's own CPU per message over each drain is printed too: what
//!    each client costs with no runtime around it. The worker is judged
//!    against the own-client ceiling, the higher of the two.
//! 2. **The worker**: `examples/noop_worker` (release) as its own process,
//!    started on the full queue. Its `/status` is polled; the rate and the
//!    CPU are taken between the first answer and the poll that sees every
//!    message done and the queue empty (every delete made), so process
//!    start-up is left out. CPU is the process's
//!    user+system time over that window, read from `/proc`: all threads'
//!    `schedstat` (nanoseconds) and, as a cross-check, `stat`'s
//!    `utime+stime` (10 ms ticks). It includes answering the polls.
//!
//! The worker is then stopped with SIGTERM and must exit 0; the queue and
//! its dead-letter queue must be empty, and every message received once.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::wire::AwsWire;
use hookfleet_bus::wire::sqs::{Receive, Sqs};
use hookfleet_event::EventId;
use tokio::task::JoinSet;

use crate::proc_stats::{cpu_time, peak_rss_kib};
use crate::scratch::{built_binary, free_port};

/// `SendMessageBatch` calls in flight while filling the queue.
const FILL_CONCURRENCY: usize = 8;

/// The visibility timeout of the scratch queue (and of every receive).
const VISIBILITY_SECS: i32 = 30;

/// How often the worker's `/status` is polled.
const POLL_EVERY: Duration = Duration::from_millis(50);

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Messages per drain.
    #[arg(long, default_value_t = 5000)]
    pub(crate) messages: usize,
    /// Size of each message body, bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) body_bytes: usize,
    /// The worker's receivers (HOOKFLEET_RECEIVERS), and the number of
    /// receive-and-delete loops of the ceiling.
    #[arg(long, default_value_t = 2)]
    pub(crate) receivers: usize,
    /// The worker's messages in flight (HOOKFLEET_CONCURRENCY).
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Rounds of (ceiling, worker); each is reported, then the medians.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// The no-op worker binary [default: examples/noop_worker next to
    /// this binary].
    #[arg(long)]
    pub(crate) worker_bin: Option<PathBuf>,
}

/// A scratch queue `hfb-<random>-drain` and its `-dlq`.
pub(crate) struct ScratchQueue {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) dlq_url: String,
    pub(crate) topology: PathBuf,
}

/// One worker drain, measured.
pub(crate) struct WorkerRun {
    pub(crate) rate: f64,
    pub(crate) cpu_us_per_message: f64,
    pub(crate) cpu_us_per_message_ticks: f64,
    pub(crate) received: u64,
    pub(crate) stop: Duration,
    pub(crate) peak_rss_kib: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let worker_bin = built_binary(
        args.worker_bin.as_ref(),
        "examples/noop_worker",
        "-p hookfleet-worker --examples",
    )?;
    let sdk = aws::load_config(AwsTimeouts::long_poll()).await;
    let sqs = aws::sqs(&sdk);
    let sdk_loops = CeilingClient::Sdk(sqs.clone());
    let own_loops = CeilingClient::Own(Sqs::new(AwsWire::new(
        &sdk,
        "sqs",
        AwsTimeouts::long_poll(),
    )?));
    let (args, sqs, sdk_loops, own_loops) = (&args, &sqs, &sdk_loops, &own_loops);
    println!(
        "messages per drain: {}, body: {} bytes, worker: {} receivers and {} in flight, \
         ceilings: {} receive-and-delete loops (AWS SDK, and the project's own client), rounds: {}",
        args.messages,
        args.body_bytes,
        args.receivers,
        args.concurrency,
        args.receivers,
        args.rounds
    );

    let mut sdk_ceilings = Vec::new();
    let mut wire_ceilings = Vec::new();
    let mut workers = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let sdk_ceiling = on_scratch_queue(sqs, args, |scratch| async move {
            drain_directly(sdk_loops, &scratch.url, args.messages, args.receivers).await
        })
        .await?;
        let wire_ceiling = on_scratch_queue(sqs, args, |scratch| async move {
            drain_directly(own_loops, &scratch.url, args.messages, args.receivers).await
        })
        .await?;
        let worker = on_scratch_queue(sqs, args, |scratch| {
            let worker_bin = worker_bin.clone();
            async move { drain_with_worker(sqs, args, &scratch, &worker_bin, &[]).await }
        })
        .await?;
        if worker.received != args.messages as u64 {
            bail!(
                "the worker received {} messages for {} sent: some were delivered twice",
                worker.received,
                args.messages
            );
        }

        println!(
            "round {round}: ceilings: SDK loops {:.0} msg/s ({:.1} µs/msg of CPU), own-client loops \
             {:.0} msg/s ({:.1} µs/msg); worker {:.0} msg/s ({:.0}% of the own-client ceiling, \
             {:.0}% of the SDK's), CPU {:.1} µs/msg (stat ticks: {:.1}), received {} of {}, \
             stopped in {} ms after SIGTERM (exit 0), peak RSS {:.1} MiB",
            sdk_ceiling.rate,
            sdk_ceiling.cpu_us_per_message,
            wire_ceiling.rate,
            wire_ceiling.cpu_us_per_message,
            worker.rate,
            100.0 * worker.rate / wire_ceiling.rate,
            100.0 * worker.rate / sdk_ceiling.rate,
            worker.cpu_us_per_message,
            worker.cpu_us_per_message_ticks,
            worker.received,
            args.messages,
            worker.stop.as_millis(),
            worker.peak_rss_kib as f64 / 1024.0
        );
        sdk_ceilings.push(sdk_ceiling);
        wire_ceilings.push(wire_ceiling);
        workers.push(worker);
    }

    let rates = |runs: &[CeilingRun]| median(runs.iter().map(|c| c.rate).collect());
    let cpus = |runs: &[CeilingRun]| median(runs.iter().map(|c| c.cpu_us_per_message).collect());
    let ratio_to = |ceilings: &[CeilingRun]| {
        median(
            workers
                .iter()
                .zip(ceilings)
                .map(|(w, c)| w.rate / c.rate)
                .collect(),
        )
    };
    println!(
        "median: LocalStack receive+delete ceiling {:.0} msg/s with the project's own client \
         ({:.1} µs/msg of CPU), {:.0} msg/s with the AWS SDK ({:.1} µs/msg)",
        rates(&wire_ceilings),
        cpus(&wire_ceilings),
        rates(&sdk_ceilings),
        cpus(&sdk_ceilings)
    );
    println!(
        "median: worker {:.0} msg/s, {:.0}% of its round's own-client ceiling ({:.0}% of the SDK's)",
        median(workers.iter().map(|w| w.rate).collect()),
        100.0 * ratio_to(&wire_ceilings),
        100.0 * ratio_to(&sdk_ceilings)
    );
    println!(
        "median: worker CPU {:.1} µs per message (user+system, all threads)",
        median(workers.iter().map(|w| w.cpu_us_per_message).collect())
    );
    Ok(())
}

/// Runs one drain on a fresh scratch queue filled with `args.messages`,
/// checks that the queue and its DLQ end empty, and removes them.
///
/// A fresh queue per drain, because LocalStack keeps serving a long poll
/// whose client has gone (a stopped loop or worker) for the rest of its
/// 20 s: reusing the queue would hand the first messages of the next fill
/// to that dead poll, and they would come back only after the visibility
/// timeout.
pub(crate) async fn on_scratch_queue<T, F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    args: &Args,
    drain: F,
) -> anyhow::Result<T>
where
    F: FnOnce(Arc<ScratchQueue>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let scratch = Arc::new(ScratchQueue::create(sqs).await?);
    let result = async {
        fill(sqs, &scratch.url, args.messages, args.body_bytes).await?;
        let measured = drain(Arc::clone(&scratch)).await?;
        ensure_empty(sqs, &scratch.url).await?;
        ensure_empty(sqs, &scratch.dlq_url).await?;
        Ok(measured)
    }
    .await;
    scratch.remove(sqs).await;
    result
}

impl ScratchQueue {
    /// Creates the queue with a redrive policy to its DLQ, and a topology
    /// file naming it for the worker.
    pub(crate) async fn create(sqs: &aws_sdk_sqs::Client) -> anyhow::Result<Self> {
        let id: u32 = rand::random();
        let name = format!("hfb-{id:08x}-drain");
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .context("create the scratch DLQ (is LocalStack running?)")?
            .queue_url
            .context("no DLQ URL")?;
        let dlq_arn = hookfleet_bus::resolve::queue_arn(sqs, &dlq_url).await?;
        let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#);
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_SECS.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .context("create the scratch queue")?
            .queue_url
            .context("no queue URL")?;

        let topology = std::env::temp_dir().join(format!("{name}.toml"));
        let text = format!(
            "[topic]\nname = \"hfb-{id:08x}-events\"\n\n[[queues]]\nname = \"{name}\"\n\
             event_types = [\"link.clicked\"]\nvisibility_timeout_secs = {VISIBILITY_SECS}\n"
        );
        std::fs::write(&topology, text).context("write the scratch topology")?;
        Ok(Self {
            name,
            url,
            dlq_url,
            topology,
        })
    }

    pub(crate) async fn remove(&self, sqs: &aws_sdk_sqs::Client) {
        for url in [&self.url, &self.dlq_url] {
            let _ = sqs.delete_queue().queue_url(url).send().await;
        }
        let _ = std::fs::remove_file(&self.topology);
    }
}

/// Sends `count` valid envelopes of about `size` bytes, 10 per call.
async fn fill(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    count: usize,
    size: usize,
) -> anyhow::Result<()> {
    let nonce: u64 = rand::random();
    let bodies = (0..count).map(|i| body(i, nonce, size)).collect();
    send_all(sqs, url, "link.clicked", bodies).await
}

/// Sends `bodies` (envelopes of `event_type`) with the three bus
/// attributes, 10 per `SendMessageBatch`, several calls in flight.
pub(crate) async fn send_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    event_type: &str,
    bodies: Vec<String>,
) -> anyhow::Result<()> {
    let batches: Vec<Vec<String>> = bodies.chunks(10).map(<[String]>::to_vec).collect();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..FILL_CONCURRENCY {
        let (sqs, url, batches, next) =
            (sqs.clone(), url.to_owned(), batches.clone(), next.clone());
        let event_type = event_type.to_owned();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let entries = batch
                    .iter()
                    .enumerate()
                    .map(|(j, body)| {
                        let event_id = EventId::of_body(body.as_bytes()).to_hex();
                        SendMessageBatchRequestEntry::builder()
                            .id(j.to_string())
                            .message_body(body)
                            .message_attributes("event_type", string(&event_type))
                            .message_attributes("event_id", string(&event_id))
                            .message_attributes("received_at", string("2026-12-03T10:15:30Z"))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let output = sqs
                    .send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .context("SendMessageBatch")?;
                if !output.failed().is_empty() {
                    bail!("{} entries failed", output.failed().len());
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// A unique, valid envelope of about `size` bytes.
fn body(seq: usize, nonce: u64, size: usize) -> String {
    let head = format!(
        r#"{{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{{"ip":"81.2.69.142","campaign":"bench","seq":{seq},"nonce":"{nonce:016x}","pad":""#
    );
    let pad = size.saturating_sub(head.len() + 3);
    format!("{head}{}\"}}}}", "x".repeat(pad))
}

/// The ceiling's drain, measured.
pub(crate) struct CeilingRun {
    pub(crate) rate: f64,
    /// This process's CPU per message while the loops ran: what the SDK
    /// alone costs, for comparison with the worker's.
    pub(crate) cpu_us_per_message: f64,
}

/// Which client the ceiling loops use.
#[derive(Clone)]
pub(crate) enum CeilingClient {
    /// The AWS SDK.
    Sdk(aws_sdk_sqs::Client),
    /// The project's own client, the one the worker uses.
    Own(Sqs),
}

/// LocalStack's ceiling: `loops` concurrent receive-then-delete-batch
/// loops through `client` until `count` messages are deleted; the rate
/// and this process's CPU per message.
pub(crate) async fn drain_directly(
    client: &CeilingClient,
    url: &str,
    count: usize,
    loops: usize,
) -> anyhow::Result<CeilingRun> {
    let cpu_before = cpu_time_ns(std::process::id());
    let deleted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..loops.max(1) {
        let (client, url, deleted, done) = (
            client.clone(),
            url.to_owned(),
            deleted.clone(),
            done.clone(),
        );
        tasks.spawn(async move { receive_and_delete(&client, &url, count, &deleted, &done).await });
    }
    tokio::select! {
        () = done.notified() => {}
        Some(result) = tasks.join_next() => {
            result??;
            bail!("a ceiling loop stopped");
        }
    }
    let elapsed = started.elapsed();
    let cpu_ns = cpu_time_ns(std::process::id()) - cpu_before;
    tasks.abort_all();
    Ok(CeilingRun {
        rate: count as f64 / elapsed.as_secs_f64(),
        cpu_us_per_message: cpu_ns as f64 / 1e3 / count as f64,
    })
}

/// One ceiling loop: receive 10, delete them in one batch, again; it
/// returns only on an error (the caller stops it).
async fn receive_and_delete(
    client: &CeilingClient,
    url: &str,
    count: usize,
    deleted: &AtomicUsize,
    done: &tokio::sync::Notify,
) -> anyhow::Result<()> {
    loop {
        let ok = match client {
            CeilingClient::Sdk(sqs) => receive_and_delete_once_sdk(sqs, url).await?,
            CeilingClient::Own(sqs) => receive_and_delete_once_own(sqs, url).await?,
        };
        if ok > 0 && deleted.fetch_add(ok, Ordering::Relaxed) + ok >= count {
            done.notify_one();
        }
    }
}

/// One receive of up to 10 and one delete of what came, through the AWS
/// SDK; returns how many were deleted.
async fn receive_and_delete_once_sdk(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<usize> {
    let answer = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(20)
        .visibility_timeout(VISIBILITY_SECS)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .message_system_attribute_names(
            MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
        )
        .message_attribute_names("All")
        .send()
        .await
        .context("ReceiveMessage")?;
    let messages = answer.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("entry")
        })
        .collect();
    let output = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("DeleteMessageBatch")?;
    Ok(output.successful().len())
}

/// The same through the project's own client.
async fn receive_and_delete_once_own(sqs: &Sqs, url: &str) -> anyhow::Result<usize> {
    let messages = sqs
        .receive(Receive {
            queue_url: url,
            max_messages: 10,
            wait_seconds: 20,
            visibility_seconds: VISIBILITY_SECS as u32,
            system_attributes: &[
                "ApproximateReceiveCount",
                "SentTimestamp",
                "ApproximateFirstReceiveTimestamp",
            ],
        })
        .await
        .context("ReceiveMessage")?;
    if messages.is_empty() {
        return Ok(0);
    }
    let receipts: Vec<String> = messages.into_iter().map(|m| m.receipt_handle).collect();
    let failed = sqs
        .delete_batch(url, &receipts)
        .await
        .context("DeleteMessageBatch")?;
    Ok(receipts.len() - failed.len())
}

/// Starts the worker (`worker_bin`, with `env` on top of the drain's
/// settings) on the full queue, measures it until every message is done,
/// then stops it with SIGTERM.
pub(crate) async fn drain_with_worker(
    sqs: &aws_sdk_sqs::Client,
    args: &Args,
    scratch: &ScratchQueue,
    worker_bin: &std::path::Path,
    env: &[(String, String)],
) -> anyhow::Result<WorkerRun> {
    let port = free_port();
    let mut worker = tokio::process::Command::new(worker_bin)
        .env("HOOKFLEET_TOPOLOGY", &scratch.topology)
        .env("HOOKFLEET_QUEUE", &scratch.name)
        .env("HOOKFLEET_ADMIN_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKFLEET_RECEIVERS", args.receivers.to_string())
        .env("HOOKFLEET_CONCURRENCY", args.concurrency.to_string())
        .env("HOOKFLEET_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", worker_bin.display()))?;
    let pid = worker.id().context("the worker has no pid")?;
    let http = reqwest::Client::new();
    let status_url = format!("http://127.0.0.1:{port}/status");
    let target = args.messages as u64;

    let deadline = Instant::now() + Duration::from_secs(20);
    let (first, first_done) = loop {
        if let Some(status) = status(&http, &status_url).await {
            break (Window::now(pid), status.done);
        }
        if Instant::now() > deadline {
            bail!("the worker's /status did not answer within 20 s");
        }
        if let Some(exit) = worker.try_wait()? {
            bail!("the worker exited at start: {exit}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let deadline = Instant::now() + Duration::from_secs(600);
    let (last, received) = loop {
        tokio::time::sleep(POLL_EVERY).await;
        if let Some(status) = status(&http, &status_url).await
            && status.done >= target
            && depth(sqs, &scratch.url).await? == 0
        {
            break (Window::now(pid), status.received);
        }
        if Instant::now() > deadline {
            bail!("the worker did not drain {target} messages within 10 minutes");
        }
    };
    let measured = (target - first_done) as f64;
    if measured < target as f64 / 2.0 {
        bail!("the worker drained half the queue before /status answered; use more messages");
    }

    let peak_rss_kib = peak_rss_kib(pid);
    let stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = tokio::time::timeout(Duration::from_secs(60), worker.wait())
        .await
        .context("the worker did not stop within 60 s of SIGTERM")??;
    let stop = stop.elapsed();
    if !exit.success() {
        bail!("the worker exited with {exit} after SIGTERM");
    }

    let seconds = (last.at - first.at).as_secs_f64();
    Ok(WorkerRun {
        rate: measured / seconds,
        cpu_us_per_message: (last.cpu_ns - first.cpu_ns) as f64 / 1e3 / measured,
        cpu_us_per_message_ticks: (last.cpu_ticks - first.cpu_ticks).as_secs_f64() * 1e6 / measured,
        received,
        stop,
        peak_rss_kib,
    })
}

/// The worker's counters that matter here.
struct Status {
    done: u64,
    received: u64,
}

async fn status(http: &reqwest::Client, url: &str) -> Option<Status> {
    let answer = http.get(url).send().await.ok()?;
    let status: serde_json::Value = answer.json().await.ok()?;
    let queue = &status["queues"][0];
    Some(Status {
        done: queue["processed"]["done"].as_u64()?,
        received: queue["received"].as_u64()?,
    })
}

/// A point in time with the worker's CPU time so far.
struct Window {
    at: Instant,
    cpu_ns: u64,
    cpu_ticks: Duration,
}

impl Window {
    fn now(pid: u32) -> Self {
        Self {
            at: Instant::now(),
            cpu_ns: cpu_time_ns(pid),
            cpu_ticks: cpu_time(pid),
        }
    }
}

/// On-CPU time of every live thread of `pid`, in nanoseconds, from
/// `/proc/<pid>/task/*/schedstat` (first field).
fn cpu_time_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Fails unless the queue holds nothing, visible or in flight.
pub(crate) async fn ensure_empty(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<()> {
    let left = depth(sqs, url).await?;
    if left > 0 {
        bail!("{url} still holds {left} message(s)");
    }
    Ok(())
}

/// Messages in the queue, visible or in flight (exact on LocalStack).
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .context("GetQueueAttributes")?;
    let attributes = answer.attributes.unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

fn string(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

/// The median of `values`: the mean of the middle two for an even count.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 0 => (values[mid - 1] + values[mid]) / 2.0,
        _ => values[mid],
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
