//! `hookfleet-analytics` draining a pre-filled queue into PostgreSQL,
//! next to the runtime's no-op drain of the same messages in the same run.
//!
//! Each round, on three fresh scratch queues filled alike (the `drain`
//! benchmark's ~1 KB `link.clicked` envelopes, each with a public IP and
//! campaign `bench`):
//!
//! 1. **LocalStack's ceiling**: plain receive-and-delete-batch loops.
//! 2. **The no-op worker** (`examples/noop_worker`): the runtime alone.
//! 3. **Analytics** (release `hookfleet-analytics`) with geo on (the
//!    GeoIP fixture: every IP resolves to London) and a fresh PostgreSQL
//!    schema with the `bench` campaign seeded (so every event also reads
//!    its channel, from the cache after the first), storing every event
//!    and counting it in its minute.
//!
//! Both workers are measured the same way (`drain::drain_with_worker`):
//! from the first `/status` answer to the poll that sees every message
//! done and the queue empty; CPU is the worker process's user+system time
//! over that window, all threads, from `/proc/<pid>/task/*/schedstat`, so
//! it includes enrichment, JSON, the SQS client and the database client,
//! but not the PostgreSQL server's own work (another process). After the
//! drain the schema must hold exactly one row per message and a minute
//! count equal to the number of messages.

use std::path::PathBuf;

use anyhow::{Context, bail};
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_store::{Campaign, Store};

use crate::drain::on_scratch_queue;
use crate::drain::{
    self, CeilingClient, CeilingRun, WorkerRun, drain_directly, drain_with_worker, median,
};
use crate::scratch::built_binary;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Queue contents, worker settings and rounds, as for `drain`.
    #[command(flatten)]
    drain: drain::Args,
    /// The analytics binary [default: hookfleet-analytics next to this
    /// binary].
    #[arg(long)]
    analytics_bin: Option<PathBuf>,
    /// PostgreSQL to store into; each round uses a fresh schema, dropped
    /// afterwards.
    #[arg(
        long,
        env = "HOOKFLEET_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// The GeoIP database [default: tests/fixtures/GeoIP2-City-Test.mmdb
    /// of this workspace].
    #[arg(long)]
    geoip_db: Option<PathBuf>,
    /// Analytics' HOOKFLEET_BATCH_SIZE [default: analytics' own].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Analytics' HOOKFLEET_BATCH_LINGER_MS [default: analytics' own].
    #[arg(long)]
    batch_linger_ms: Option<u64>,
    /// Analytics' HOOKFLEET_INSERT_CONCURRENCY [default: analytics' own].
    #[arg(long)]
    insert_concurrency: Option<usize>,
}

impl Args {
    /// The batching settings given, as analytics' variables.
    fn tuning(&self) -> Vec<(String, String)> {
        [
            (
                "HOOKFLEET_BATCH_SIZE",
                self.batch_size.map(|v| v.to_string()),
            ),
            (
                "HOOKFLEET_BATCH_LINGER_MS",
                self.batch_linger_ms.map(|v| v.to_string()),
            ),
            (
                "HOOKFLEET_INSERT_CONCURRENCY",
                self.insert_concurrency.map(|v| v.to_string()),
            ),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect()
    }
}

/// One round's three drains.
struct Round {
    ceiling: CeilingRun,
    noop: WorkerRun,
    analytics: WorkerRun,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let noop_bin = built_binary(
        args.drain.worker_bin.as_ref(),
        "examples/noop_worker",
        "-p hookfleet-worker --examples",
    )?;
    let analytics_bin = built_binary(
        args.analytics_bin.as_ref(),
        "hookfleet-analytics",
        "-p hookfleet-analytics",
    )?;
    let geoip = args.geoip_db.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/GeoIP2-City-Test.mmdb")
    });
    if !geoip.exists() {
        bail!("{} not found (--geoip-db)", geoip.display());
    }

    let sdk = aws::load_config(AwsTimeouts::long_poll()).await;
    let sqs = aws::sqs(&sdk);
    let drain = &args.drain;
    println!(
        "messages per drain: {}, body: {} bytes, workers: {} receivers and {} in flight, \
         analytics: geo on ({}), PostgreSQL, {}, rounds: {}",
        drain.messages,
        drain.body_bytes,
        drain.receivers,
        drain.concurrency,
        geoip.display(),
        if args.tuning().is_empty() {
            "its default batching".to_owned()
        } else {
            format!("{:?}", args.tuning())
        },
        drain.rounds
    );

    let mut rounds = Vec::new();
    let sdk_loops = CeilingClient::Sdk(sqs.clone());
    for number in 1..=drain.rounds.max(1) {
        let ceiling = on_scratch_queue(&sqs, drain, |scratch| {
            let loops = &sdk_loops;
            async move { drain_directly(loops, &scratch.url, drain.messages, drain.receivers).await }
        })
        .await?;
        let noop = on_scratch_queue(&sqs, drain, |scratch| {
            let (sqs, noop_bin) = (&sqs, &noop_bin);
            async move { drain_with_worker(sqs, drain, &scratch, noop_bin, &[]).await }
        })
        .await?;
        let analytics = analytics_round(&args, &sqs, &analytics_bin, &geoip).await?;

        println!(
            "round {number}: ceiling {:.0} msg/s; no-op worker {:.0} msg/s, {:.1} µs CPU/msg; \
             analytics {:.0} events/s stored ({:.0}% of the no-op), {:.1} µs CPU/event \
             (stat ticks: {:.1}), peak RSS {:.1} MiB, stopped {} ms after SIGTERM",
            ceiling.rate,
            noop.rate,
            noop.cpu_us_per_message,
            analytics.rate,
            100.0 * analytics.rate / noop.rate,
            analytics.cpu_us_per_message,
            analytics.cpu_us_per_message_ticks,
            analytics.peak_rss_kib as f64 / 1024.0,
            analytics.stop.as_millis(),
        );
        rounds.push(Round {
            ceiling,
            noop,
            analytics,
        });
    }

    let med = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "median: LocalStack receive+delete ceiling {:.0} msg/s",
        med(|r| r.ceiling.rate)
    );
    println!(
        "median: no-op worker {:.0} msg/s, {:.1} µs CPU/msg",
        med(|r| r.noop.rate),
        med(|r| r.noop.cpu_us_per_message)
    );
    println!(
        "median: analytics {:.0} events/s stored, {:.0}% of its round's no-op rate, \
         {:.1} µs CPU/event ({:.1} µs above the no-op worker)",
        med(|r| r.analytics.rate),
        100.0 * med(|r| r.analytics.rate / r.noop.rate),
        med(|r| r.analytics.cpu_us_per_message),
        med(|r| r.analytics.cpu_us_per_message - r.noop.cpu_us_per_message),
    );
    Ok(())
}

/// One analytics drain into a fresh schema, checked afterwards.
async fn analytics_round(
    args: &Args,
    sqs: &aws_sdk_sqs::Client,
    analytics_bin: &std::path::Path,
    geoip: &std::path::Path,
) -> anyhow::Result<WorkerRun> {
    let schema = format!("bench_{:08x}", rand::random::<u32>());
    let store = Store::connect_postgres_schema(&args.database_url, &schema)
        .await
        .context("create the benchmark schema (is PostgreSQL running?)")?;
    let result = async {
        store
            .upsert_campaign(&Campaign {
                campaign_id: "bench".into(),
                channel: Some("email".into()),
                budget: Some(100.0),
                target_audience: None,
            })
            .await?;
        let separator = if args.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut env = vec![
            (
                "DATABASE_URL".to_owned(),
                format!(
                    "{}{separator}options=-csearch_path%3D{schema}",
                    args.database_url
                ),
            ),
            ("HOOKFLEET_GEOIP_DB".to_owned(), geoip.display().to_string()),
        ];
        env.extend(args.tuning());

        let drain = &args.drain;
        let run = on_scratch_queue(sqs, drain, |scratch| async move {
            drain_with_worker(sqs, drain, &scratch, analytics_bin, &env).await
        })
        .await?;

        let stored = store.count_events().await?;
        let counted: i64 = store
            .minute_counts("bench")
            .await?
            .iter()
            .map(|c| c.count)
            .sum();
        let expected = drain.messages as i64;
        if stored != expected || counted != expected {
            bail!("{stored} events stored and {counted} counted, expected {expected} of each");
        }
        Ok(run)
    }
    .await;
    store.close().await;
    let _ = Store::drop_postgres_schema(&args.database_url, &schema).await;
    result
}
