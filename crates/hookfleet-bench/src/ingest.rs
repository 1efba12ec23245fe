//! Ingest under load.
//!
//! 1. LocalStack's ceiling: the same events published straight to the
//!    topic with `PublishBatch` (10 per call, as many calls in flight as
//!    ingest uses), so both numbers include the same SNS→SQS fan-out.
//! 2. The real `hookfleet-ingest`, driven by a closed-loop generator of
//!    signed, unique events at a set concurrency: throughput, p50/p99
//!    answer latency, ingest CPU per event (from `/proc`) and peak RSS.
//! 3. The HTTP floor: the same requests answered by a bare axum server
//!    (`http_floor`) at about the same rate, so the CPU that serving HTTP
//!    costs by itself is printed next to ingest's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use hookfleet_bus::aws::{self, AwsTimeouts};

use crate::proc_stats::{cpu_split, peak_rss_kib};
use crate::scratch::{Scratch, free_port, sibling};

const SECRET: &str = "whsec_benchmark";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Events per phase.
    #[arg(long, default_value_t = 3000)]
    events: usize,
    /// Requests in flight from the load generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Size of each event body, bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// PublishBatch calls in flight, for the ceiling and for ingest.
    #[arg(long, default_value_t = 16)]
    publish_concurrency: usize,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let sdk = aws::load_config(AwsTimeouts::default()).await;
    let (sns, sqs) = (aws::sns(&sdk), aws::sqs(&sdk));
    let scratch = Scratch::apply()?;
    let result = measure(&args, &sns, &scratch).await;
    scratch.remove(&sns, &sqs).await;
    result
}

async fn measure(args: &Args, sns: &aws_sdk_sns::Client, scratch: &Scratch) -> anyhow::Result<()> {
    let arn = hookfleet_bus::resolve::topic_arn(sns, &scratch.topic)
        .await?
        .context("the scratch topic is missing")?;

    println!(
        "events per phase: {}, body: {} bytes, generator concurrency: {}, publish concurrency: {}",
        args.events, args.body_bytes, args.concurrency, args.publish_concurrency
    );

    let direct = bodies(args.events, args.body_bytes);
    let ceiling = publish_directly(sns, &arn, &direct, args.publish_concurrency).await?;
    println!("LocalStack PublishBatch ceiling: {ceiling:.0} events/s");

    let port = free_port();
    let mut ingest = std::process::Command::new(sibling("hookfleet-ingest"))
        .env("HOOKFLEET_TOPOLOGY", &scratch.path)
        .env("HOOKFLEET_WEBHOOK_SECRET", SECRET)
        .env("HOOKFLEET_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "HOOKFLEET_PUBLISH_CONCURRENCY",
            args.publish_concurrency.to_string(),
        )
        .env("HOOKFLEET_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .spawn()
        .context("start hookfleet-ingest")?;
    let pid = ingest.id();
    let url = format!("http://127.0.0.1:{port}/webhooks/tolinku");
    let client = reqwest::Client::new();
    wait_healthy(&client, port).await?;

    let Driven {
        mut latencies,
        elapsed,
        user,
        system,
    } = warm_then_drive(args, &client, &url, pid).await?;
    let peak_kib = peak_rss_kib(pid);
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .text()
        .await?;

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = ingest.wait();

    latencies.sort_unstable();
    let throughput = args.events as f64 / elapsed.as_secs_f64();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "ingest: {throughput:.0} events/s ({:.0}% of the ceiling)",
        100.0 * throughput / ceiling
    );
    println!(
        "answer latency: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(0.50)),
        ms(percentile(0.99))
    );
    let per_event = |cpu: Duration| cpu.as_secs_f64() * 1e6 / args.events as f64;
    println!(
        "ingest CPU: {:.1} µs per event ({:.1} user + {:.1} system)",
        per_event(user + system),
        per_event(user),
        per_event(system)
    );
    println!("ingest peak RSS: {:.1} MiB", peak_kib as f64 / 1024.0);
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        sample("hookfleet_bus_publish_batch_size_sum"),
        sample("hookfleet_bus_publish_batch_size_count"),
    );
    println!(
        "PublishBatch calls: {count:.0}, {:.1} events per call on average",
        sum / count.max(1.0)
    );

    let floor = http_floor(args, &client, percentile(0.50)).await?;
    println!(
        "HTTP floor (bare axum server, same requests, each answered after {:.0} ms): \
         {:.0} requests/s, {:.1} µs CPU per request ({:.1} user + {:.1} system)",
        ms(percentile(0.50)),
        args.events as f64 / floor.elapsed.as_secs_f64(),
        per_event(floor.user + floor.system),
        per_event(floor.user),
        per_event(floor.system)
    );
    Ok(())
}

/// One measured drive of a server process.
struct Driven {
    /// Each answer's latency, in no order.
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// The server's CPU over the drive.
    user: Duration,
    system: Duration,
}

/// Warms the server up (connections, lookups, allocator) with 100 signed
/// bodies, then drives it with `args.events` fresh ones and measures the
/// server process `pid`.
async fn warm_then_drive(
    args: &Args,
    client: &reqwest::Client,
    url: &str,
    pid: u32,
) -> anyhow::Result<Driven> {
    let warm = sign_all(bodies(100, args.body_bytes));
    drive(client, url, &warm, args.concurrency).await?;
    let signed = sign_all(bodies(args.events, args.body_bytes));
    let (user_before, system_before) = cpu_split(pid);
    let started = Instant::now();
    let latencies = drive(client, url, &signed, args.concurrency).await?;
    let elapsed = started.elapsed();
    let (user_after, system_after) = cpu_split(pid);
    Ok(Driven {
        latencies,
        elapsed,
        user: user_after - user_before,
        system: system_after - system_before,
    })
}

/// Starts `hookfleet-bench http-floor` answering after `delay` (ingest's
/// median latency, so the generator runs at about ingest's rate) and
/// drives it like ingest: what serving the same requests costs with no
/// webhook work.
async fn http_floor(
    args: &Args,
    client: &reqwest::Client,
    delay: Duration,
) -> anyhow::Result<Driven> {
    let port = free_port();
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .args(["http-floor", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--answer-after-ms", &delay.as_millis().max(1).to_string()])
        .spawn()
        .context("start the HTTP floor server")?;
    let result = async {
        wait_healthy(client, port).await?;
        let url = format!("http://127.0.0.1:{port}/webhooks/tolinku");
        warm_then_drive(args, client, &url, server.id()).await
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Unique bodies of about `size` bytes.
fn bodies(count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let head = format!(
                r#"{{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{{"ip":"81.2.69.142","campaign":"bench","seq":{i},"nonce":"{:016x}","pad":""#,
                rand::random::<u64>()
            );
            let pad = size.saturating_sub(head.len() + 3);
            format!("{head}{}\"}}}}", "x".repeat(pad)).into_bytes()
        })
        .collect()
}

/// Pairs each body with its signature, before any timing starts.
fn sign_all(bodies: Vec<Vec<u8>>) -> Arc<Vec<(Vec<u8>, String)>> {
    let signed = bodies
        .into_iter()
        .map(|body| {
            let signature = hookfleet_event::sign(SECRET, &body);
            (body, signature)
        })
        .collect();
    Arc::new(signed)
}

/// Sends every body through ingest with `concurrency` requests in flight;
/// returns each answer's latency. Any non-200 answer fails the run.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<(Vec<u8>, String)>>,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) =
            (client.clone(), url.to_owned(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, signature)) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let started = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-webhook-event", "link.clicked")
                    .header("x-webhook-signature", signature)
                    .body(body.clone())
                    .send()
                    .await?;
                let status = answer.status();
                let _ = answer.bytes().await?;
                latencies.push(started.elapsed());
                if status != 200 {
                    bail!("ingest answered {status}");
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result??);
    }
    Ok(latencies)
}

/// Publishes the bodies straight to SNS, 10 per call, `concurrency` calls
/// in flight; returns events per second.
async fn publish_directly(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    bodies: &[Vec<u8>],
    concurrency: usize,
) -> anyhow::Result<f64> {
    let batches: Vec<Vec<String>> = bodies
        .chunks(10)
        .map(|chunk| {
            chunk
                .iter()
                .map(|b| String::from_utf8(b.clone()).expect("UTF-8"))
                .collect()
        })
        .collect();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (sns, arn, batches, next) =
            (sns.clone(), arn.to_owned(), batches.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let entries = batch
                    .iter()
                    .enumerate()
                    .map(|(j, message)| {
                        PublishBatchRequestEntry::builder()
                            .id(j.to_string())
                            .message(message)
                            .message_attributes("event_type", string("link.clicked"))
                            .message_attributes("event_id", string(&format!("{i}-{j}")))
                            .message_attributes("received_at", string("2026-12-03T10:15:30Z"))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let output = sns
                    .publish_batch()
                    .topic_arn(&arn)
                    .set_publish_batch_request_entries(Some(entries))
                    .send()
                    .await?;
                if !output.failed().is_empty() {
                    bail!("{} entries failed", output.failed().len());
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(bodies.len() as f64 / started.elapsed().as_secs_f64())
}

fn string(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

async fn wait_healthy(client: &reqwest::Client, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(answer) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && answer.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server on port {port} did not become healthy")
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
