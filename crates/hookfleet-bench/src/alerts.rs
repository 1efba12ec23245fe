//! `hookfleet-alerts` evaluating a pre-filled queue with every rule on,
//! next to the runtime's no-op drain of the same messages in the same run.
//!
//! Each round, on three fresh scratch queues filled alike (the `drain`
//! benchmark's ~1 KB `link.clicked` envelopes, each with a public IP and
//! campaign `bench`):
//!
//! 1. **LocalStack's ceiling**: plain receive-and-delete-batch loops.
//! 2. **The no-op worker** (`examples/noop_worker`): the runtime alone.
//! 3. **Alerts** (release `hookfleet-alerts`) with all four rules on and
//!    GeoIP on (the fixture: every IP resolves to GB, which is not on the
//!    watch list, so every click does a lookup and fires nothing), on a
//!    fresh PostgreSQL schema (or a fresh SQLite directory with
//!    `--backend sqlite`). Each event is one transaction: its id recorded,
//!    the campaign's advisory lock, one count upsert, a read of the
//!    campaign's last 15 minutes, the rules, commit. Every message is one
//!    campaign, so every transaction takes the same lock: the worst case
//!    for a hot campaign. Slack is off (the two alerts that fire are only
//!    stored), so this measures evaluation, not Slack.
//!
//! Both workers are measured the same way (`drain::drain_with_worker`);
//! CPU is the worker process's own (all threads), not the database
//! server's. Afterwards the state must hold exactly one count per message
//! and exactly the two alerts the workload fires (`broken_link:bench`,
//! `click_spike:bench`).
//!
//! The `drain` bodies carry a fixed timestamp (2026-12-03T10:15:30Z); the
//! worker's horizon is set to cover it, up to its 30-day maximum.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_store::Store;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::drain::on_scratch_queue;
use crate::drain::{
    self, CeilingClient, CeilingRun, WorkerRun, drain_directly, drain_with_worker, median,
};
use crate::scratch::built_binary;

/// The event time of every `drain` body.
const BODY_TIME: OffsetDateTime = datetime!(2026-12-03 10:15:30 UTC);

/// Which database the alerts worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// A fresh schema in `--database-url`.
    Postgres,
    /// A fresh embedded SQLite file.
    Sqlite,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Queue contents, worker settings and rounds, as for `drain`.
    #[command(flatten)]
    drain: drain::Args,
    /// The alerts binary [default: hookfleet-alerts next to this binary].
    #[arg(long)]
    alerts_bin: Option<PathBuf>,
    /// The database the alerts worker keeps its windows in.
    #[arg(long, value_enum, default_value = "postgres")]
    backend: Backend,
    /// PostgreSQL for `--backend postgres`; each round uses a fresh
    /// schema, dropped afterwards.
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
}

/// One round's three drains.
struct Round {
    ceiling: CeilingRun,
    noop: WorkerRun,
    alerts: WorkerRun,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let noop_bin = built_binary(
        args.drain.worker_bin.as_ref(),
        "examples/noop_worker",
        "-p hookfleet-worker --examples",
    )?;
    let alerts_bin = built_binary(
        args.alerts_bin.as_ref(),
        "hookfleet-alerts",
        "-p hookfleet-alerts",
    )?;
    let geoip = args.geoip_db.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/GeoIP2-City-Test.mmdb")
    });
    if !geoip.exists() {
        bail!("{} not found (--geoip-db)", geoip.display());
    }
    let age_hours = (OffsetDateTime::now_utc() - BODY_TIME)
        .whole_hours()
        .unsigned_abs()
        + 1;
    if age_hours > 720 {
        bail!(
            "the drain bodies' timestamp ({BODY_TIME}) is more than 30 days old, past the \
             longest horizon hookfleet-alerts accepts"
        );
    }

    let sdk = aws::load_config(AwsTimeouts::long_poll()).await;
    let sqs = aws::sqs(&sdk);
    let drain = &args.drain;
    println!(
        "messages per drain: {}, body: {} bytes, workers: {} receivers and {} in flight, \
         alerts: all four rules, geo on, {:?}, slack off, rounds: {}",
        drain.messages,
        drain.body_bytes,
        drain.receivers,
        drain.concurrency,
        args.backend,
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
        let alerts = alerts_round(&args, &sqs, &alerts_bin, &geoip, age_hours).await?;

        println!(
            "round {number}: ceiling {:.0} msg/s; no-op worker {:.0} msg/s, {:.1} µs CPU/msg; \
             alerts {:.0} events/s evaluated ({:.0}% of the no-op), {:.1} µs CPU/event \
             (stat ticks: {:.1}), peak RSS {:.1} MiB, stopped {} ms after SIGTERM",
            ceiling.rate,
            noop.rate,
            noop.cpu_us_per_message,
            alerts.rate,
            100.0 * alerts.rate / noop.rate,
            alerts.cpu_us_per_message,
            alerts.cpu_us_per_message_ticks,
            alerts.peak_rss_kib as f64 / 1024.0,
            alerts.stop.as_millis(),
        );
        rounds.push(Round {
            ceiling,
            noop,
            alerts,
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
        "median: alerts {:.0} events/s evaluated, {:.0}% of its round's no-op rate, \
         {:.1} µs CPU/event ({:.1} µs above the no-op worker)",
        med(|r| r.alerts.rate),
        100.0 * med(|r| r.alerts.rate / r.noop.rate),
        med(|r| r.alerts.cpu_us_per_message),
        med(|r| r.alerts.cpu_us_per_message - r.noop.cpu_us_per_message),
    );
    Ok(())
}

/// A fresh database for one round: the worker's environment for it and a
/// store to check it through.
struct RoundDatabase {
    store: Store,
    env: (String, String),
    cleanup: Cleanup,
}

enum Cleanup {
    Schema { url: String, schema: String },
    Directory(PathBuf),
}

impl RoundDatabase {
    async fn create(args: &Args) -> anyhow::Result<Self> {
        let id: u32 = rand::random();
        match args.backend {
            Backend::Postgres => {
                let schema = format!("bench_alerts_{id:08x}");
                let store = Store::connect_postgres_schema(&args.database_url, &schema)
                    .await
                    .context("create the benchmark schema (is PostgreSQL running?)")?;
                let separator = if args.database_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                let url = format!(
                    "{}{separator}options=-csearch_path%3D{schema}",
                    args.database_url
                );
                Ok(Self {
                    store,
                    env: ("DATABASE_URL".into(), url),
                    cleanup: Cleanup::Schema {
                        url: args.database_url.clone(),
                        schema,
                    },
                })
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("hfb-alerts-{id:08x}"));
                let store = Store::connect(None, &dir)
                    .await
                    .context("create the benchmark SQLite file")?;
                Ok(Self {
                    store,
                    env: ("HOOKFLEET_DATA_DIR".into(), dir.display().to_string()),
                    cleanup: Cleanup::Directory(dir),
                })
            }
        }
    }

    async fn remove(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Schema { url, schema } => {
                let _ = Store::drop_postgres_schema(&url, &schema).await;
            }
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// One alerts drain into a fresh database, checked afterwards.
async fn alerts_round(
    args: &Args,
    sqs: &aws_sdk_sqs::Client,
    alerts_bin: &Path,
    geoip: &Path,
    horizon_hours: u64,
) -> anyhow::Result<WorkerRun> {
    let database = RoundDatabase::create(args).await?;
    let result = async {
        let env = [
            database.env.clone(),
            ("HOOKFLEET_GEOIP_DB".into(), geoip.display().to_string()),
            (
                "HOOKFLEET_ALERTS_HORIZON_HOURS".into(),
                horizon_hours.to_string(),
            ),
            (
                "HOOKFLEET_DATABASE_MAX_CONNECTIONS".into(),
                args.drain.concurrency.min(32).to_string(),
            ),
        ];
        let drain = &args.drain;
        let run = on_scratch_queue(sqs, drain, |scratch| async move {
            drain_with_worker(sqs, drain, &scratch, alerts_bin, &env).await
        })
        .await?;

        let counted: i64 = database
            .store
            .alert_window_counts("click:bench")
            .await?
            .iter()
            .map(|c| c.count)
            .sum();
        let mut fired: Vec<String> = database
            .store
            .alerts()
            .await?
            .into_iter()
            .map(|a| a.alert_key)
            .collect();
        fired.sort();
        let expected = drain.messages as i64;
        if counted != expected {
            bail!("{counted} clicks counted, expected {expected}");
        }
        if drain.messages >= 100 && fired != ["broken_link:bench", "click_spike:bench"] {
            bail!("unexpected alerts: {fired:?}");
        }
        Ok(run)
    }
    .await;
    database.remove().await;
    result
}
