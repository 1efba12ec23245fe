//! `hookfleet-crm` sending every referral of a pre-filled queue to a
//! local CRM stand-in that answers each call in 20 ms, next to the
//! runtime's no-op drain in the same run.
//!
//! Each round:
//!
//! 1. **The no-op worker** (`examples/noop_worker`) drains a fresh scratch
//!    queue of the `drain` benchmark's envelopes: the runtime and
//!    LocalStack alone.
//! 2. **The CRM worker** (release `hookfleet-crm`) drains a fresh scratch
//!    queue of as many unique `referral.completed` envelopes (about the
//!    same size), with a fresh ledger (a PostgreSQL schema or an SQLite
//!    file): per event a ledger claim, one `POST /referrals` to the
//!    stand-in — which holds every answer `--answer-ms` — and the ledger
//!    completion. Its welcome queue is an empty scratch queue.
//!
//! Both are measured by `drain::drain_with_worker`: from the worker's
//! first `/status` answer to the poll that sees every message done and
//! the queue empty; CPU is the worker process's user+system time over
//! that window. Calls one after another would cap the CRM worker at
//! 1 / 20 ms = 50 events/s; the mean number of calls in flight (rate ×
//! answer time) shows how much it overlaps them. Afterwards the stand-in
//! must have received exactly one call per event (distinct
//! `Idempotency-Key`s), and the ledger must hold each effect done.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, StatusCode};
use axum::serve::ListenerExt;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_event::EventId;
use hookfleet_store::EffectState;

use crate::database::{Backend, RoundDatabase};
use crate::drain::{self, ScratchQueue, WorkerRun, drain_with_worker, median, on_scratch_queue};
use crate::scratch::built_binary;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Queue contents, worker settings and rounds, as for `drain`.
    #[command(flatten)]
    drain: drain::Args,
    /// The CRM worker binary [default: hookfleet-crm next to this binary].
    #[arg(long)]
    crm_bin: Option<PathBuf>,
    /// How long the CRM stand-in takes to answer each call, ms.
    #[arg(long, default_value_t = 20)]
    answer_ms: u64,
    /// The database of the effect ledger.
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
}

/// One round's two drains.
struct Round {
    noop: WorkerRun,
    crm: WorkerRun,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let noop_bin = built_binary(
        args.drain.worker_bin.as_ref(),
        "examples/noop_worker",
        "-p hookfleet-worker --examples",
    )?;
    let crm_bin = built_binary(args.crm_bin.as_ref(), "hookfleet-crm", "-p hookfleet-crm")?;

    let sdk = aws::load_config(AwsTimeouts::long_poll()).await;
    let sqs = aws::sqs(&sdk);
    let answer = Duration::from_millis(args.answer_ms);
    let crm = StandIn::start(answer).await?;
    let drain = &args.drain;
    println!(
        "messages per drain: {}, body: about {} bytes, workers: {} receivers and {} in flight \
         per queue, CRM stand-in answering in {} ms, ledger on {:?}, rounds: {}",
        drain.messages,
        drain.body_bytes,
        drain.receivers,
        drain.concurrency,
        args.answer_ms,
        args.backend,
        drain.rounds
    );

    let mut rounds = Vec::new();
    for number in 1..=drain.rounds.max(1) {
        let noop = on_scratch_queue(&sqs, drain, |scratch| {
            let (sqs, noop_bin) = (&sqs, &noop_bin);
            async move { drain_with_worker(sqs, drain, &scratch, noop_bin, &[]).await }
        })
        .await?;
        let crm_run = crm_round(&args, &sqs, &crm_bin, &crm).await?;

        println!(
            "round {number}: no-op worker {:.0} msg/s, {:.1} µs CPU/msg; CRM worker {:.0} \
             events/s ({:.0}% of the no-op), {:.1} calls in flight on average, {:.1} µs \
             CPU/event, peak RSS {:.1} MiB, stopped {} ms after SIGTERM",
            noop.rate,
            noop.cpu_us_per_message,
            crm_run.rate,
            100.0 * crm_run.rate / noop.rate,
            crm_run.rate * answer.as_secs_f64(),
            crm_run.cpu_us_per_message,
            crm_run.peak_rss_kib as f64 / 1024.0,
            crm_run.stop.as_millis(),
        );
        rounds.push(Round { noop, crm: crm_run });
    }

    let med = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "median: no-op worker {:.0} msg/s, {:.1} µs CPU/msg",
        med(|r| r.noop.rate),
        med(|r| r.noop.cpu_us_per_message)
    );
    println!(
        "median: CRM worker {:.0} events/s, {:.0}% of its round's no-op rate, {:.1} calls in \
         flight on average (one at a time would be {:.0} events/s), {:.1} µs CPU/event",
        med(|r| r.crm.rate),
        100.0 * med(|r| r.crm.rate / r.noop.rate),
        med(|r| r.crm.rate) * answer.as_secs_f64(),
        1.0 / answer.as_secs_f64(),
        med(|r| r.crm.cpu_us_per_message),
    );
    Ok(())
}

/// One CRM drain: fresh queues and ledger, checked afterwards.
async fn crm_round(
    args: &Args,
    sqs: &aws_sdk_sqs::Client,
    crm_bin: &std::path::Path,
    crm: &StandIn,
) -> anyhow::Result<WorkerRun> {
    let referrals = ScratchQueue::create(sqs).await?;
    let welcome = ScratchQueue::create(sqs).await?;
    let ledger = RoundDatabase::create(args.backend, &args.database_url, "crm").await?;
    crm.reset();

    let result = async {
        let drain = &args.drain;
        let nonce: u64 = rand::random();
        let bodies: Vec<String> = (0..drain.messages)
            .map(|seq| referral_body(seq, nonce, drain.body_bytes))
            .collect();
        let event_ids: Vec<String> = bodies
            .iter()
            .map(|b| EventId::of_body(b.as_bytes()).to_hex())
            .collect();
        drain::send_all(sqs, &referrals.url, "referral.completed", bodies).await?;

        let queues = format!(
            "hookfleet-crm={},hookfleet-welcome={}",
            referrals.url, welcome.url
        );
        let env = [
            ("HOOKFLEET_QUEUE".to_owned(), queues),
            (
                "HOOKFLEET_CRM_URL".to_owned(),
                format!("http://{}", crm.address),
            ),
            ledger.env.clone(),
        ];
        let run = drain_with_worker(sqs, drain, &referrals, crm_bin, &env).await?;

        drain::ensure_empty(sqs, &referrals.dlq_url).await?;
        let (calls, keys) = crm.counts();
        if calls != drain.messages || keys != drain.messages {
            bail!(
                "the CRM got {calls} calls with {keys} distinct keys for {} events",
                drain.messages
            );
        }
        for event_id in &event_ids {
            let key = format!("crm:referral:{event_id}");
            let done = ledger
                .store
                .effect(&key)
                .await?
                .is_some_and(|r| r.state == EffectState::Done);
            if !done {
                bail!("{key} is not done in the ledger");
            }
        }
        Ok(run)
    }
    .await;

    referrals.remove(sqs).await;
    welcome.remove(sqs).await;
    ledger.remove().await;
    result
}

/// A unique, valid `referral.completed` envelope of about `size` bytes.
fn referral_body(seq: usize, nonce: u64, size: usize) -> String {
    let head = format!(
        r#"{{"event":"referral.completed","timestamp":"2026-12-03T10:15:30Z","data":{{"referral_code":"BENCH-{seq}","referrer_id":"u-{nonce:016x}","referred_user_id":"r-{seq}","campaign":"bench","pad":""#
    );
    let pad = size.saturating_sub(head.len() + 3);
    format!("{head}{}\"}}}}", "x".repeat(pad))
}

/// The CRM stand-in: answers every request `200` after a fixed time, and
/// counts the calls and their distinct `Idempotency-Key`s.
struct StandIn {
    address: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    calls: usize,
    keys: HashSet<String>,
}

impl StandIn {
    async fn start(answer: Duration) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the CRM stand-in")?;
        let address = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let counted = Arc::clone(&seen);
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let counted = Arc::clone(&counted);
            async move {
                tokio::time::sleep(answer).await;
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut seen = counted.lock().unwrap_or_else(|e| e.into_inner());
                seen.calls += 1;
                seen.keys.insert(key);
                StatusCode::OK
            }
        });
        // Without TCP_NODELAY a small answer can wait for the client's
        // delayed ACK (40 ms on Linux): a stand-in artefact, not the CRM's.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, seen })
    }

    fn reset(&self) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Seen::default();
    }

    /// Calls so far, and their distinct keys.
    fn counts(&self) -> (usize, usize) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        (seen.calls, seen.keys.len())
    }
}
