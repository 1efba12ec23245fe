//! `hookfleet status`: the fleet on one screen. Per queue of the topology,
//! its visible, in-flight and delayed messages and its DLQ's depth; per
//! worker (admin address), its health and what its `/status` says:
//! in-flight messages, messages processed by outcome, breaker states.
//!
//! A worker that does not answer within [`WORKER_TIMEOUT`] is shown as
//! `unreachable`: that is information, not a failure of the command (exit
//! 0). A queue that cannot be read is shown as such, the rest is still
//! printed, and the command exits 1.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use hookfleet_bus::resolve::{self, ResolveError};
use hookfleet_bus::topology::{QueueSpec, Topology};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{AwsClients, Failure, Global, print};
use crate::dlq::text::{Align, Table};
use crate::dlq::{Depth, depth};

/// How long each worker has to answer `/healthz` and `/status`.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags of `hookfleet status`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,

    /// A worker's admin address, host:port (repeat for several)
    /// [default: the topology's `admin` addresses].
    #[arg(long = "admin", value_name = "ADDR")]
    admin: Vec<String>,
}

const EXAMPLE: &str = "\
Queue counts are SQS's approximate ones. Workers are asked GET /healthz and
GET /status on their admin address (HOOKFLEET_ADMIN_LISTEN); one that does
not answer within 2 s is shown as unreachable, which does not change the
exit code.

Examples:
  hookfleet status
  hookfleet status --admin 127.0.0.1:9103 --json | jq '.workers[].health'";

/// One queue's line.
#[derive(Debug, Serialize)]
struct QueueRow {
    queue: String,
    /// `None` when the queue does not exist or could not be read.
    counts: Option<Depth>,
    dlq: String,
    /// Visible messages in the DLQ.
    dlq_depth: Option<u64>,
    /// Why the counts are missing: `missing` or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// One worker's line.
#[derive(Debug, Serialize)]
struct WorkerRow {
    address: String,
    /// The topology's queues drained from this address.
    topology_queues: Vec<String>,
    /// `ok`, `unhealthy` or `unreachable`.
    health: &'static str,
    /// What went wrong, for `unhealthy` and `unreachable`, or when
    /// `/status` failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// `/status` as the worker served it.
    status: Option<Value>,
}

/// The part of a worker's `/status` the table shows; unknown fields are
/// ignored and missing ones default, so old and new workers both render.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkerStatus {
    worker: String,
    queues: Vec<WorkerQueue>,
    breakers: Vec<Breaker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkerQueue {
    in_flight: u64,
    processed: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Breaker {
    destination: String,
    state: String,
    open_for_secs: Option<f64>,
}

/// Runs `hookfleet status`.
pub(crate) async fn run(args: StatusArgs, global: &Global) -> Result<(), Failure> {
    let topology = global.load_topology()?;
    for address in &args.admin {
        check_address(address).map_err(|reason| Failure::config("--admin", reason))?;
    }
    let aws = AwsClients::from_env().await?;
    let http = reqwest::Client::builder()
        .timeout(WORKER_TIMEOUT)
        .connect_timeout(WORKER_TIMEOUT)
        .build()
        .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;

    let addresses = worker_addresses(&topology, &args.admin);
    let (queues, workers) = futures::join!(
        futures::future::join_all(topology.queues.iter().map(|spec| queue_row(&aws.sqs, spec))),
        futures::future::join_all(
            addresses
                .iter()
                .map(|(address, queues)| worker_row(&http, address, queues))
        ),
    );

    let text = if args.json {
        let value = serde_json::json!({ "queues": queues, "workers": workers });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    } else {
        render(&queues, &workers)
    };
    print(&text)?;

    let unreadable: Vec<&QueueRow> = queues
        .iter()
        .filter(|row| row.problem.as_deref().is_some_and(|p| p != "missing"))
        .collect();
    match unreadable.first() {
        None => Ok(()),
        Some(first) => Err(anyhow!(
            "cannot read {} queue(s): {}",
            unreadable.len(),
            first.problem.as_deref().unwrap_or_default()
        )
        .into()),
    }
}

/// `--admin` addresses when given, else the topology's; each once, in
/// order, with the topology's queues it serves.
fn worker_addresses(topology: &Topology, flags: &[String]) -> Vec<(String, Vec<String>)> {
    let mut addresses: Vec<(String, Vec<String>)> = Vec::new();
    let wanted: Vec<&str> = if flags.is_empty() {
        topology
            .queues
            .iter()
            .filter_map(|q| q.admin.as_deref())
            .collect()
    } else {
        flags.iter().map(String::as_str).collect()
    };
    for address in wanted {
        if addresses.iter().any(|(known, _)| known == address) {
            continue;
        }
        let queues = topology
            .queues
            .iter()
            .filter(|q| q.admin.as_deref() == Some(address))
            .map(|q| q.name.clone())
            .collect();
        addresses.push((address.to_owned(), queues));
    }
    addresses
}

/// `host:port`, as `HOOKFLEET_ADMIN_LISTEN` takes it.
fn check_address(address: &str) -> Result<(), String> {
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!("{address:?} is not host:port"))
    }
}

async fn queue_row(sqs: &aws_sdk_sqs::Client, spec: &QueueSpec) -> QueueRow {
    let dlq = spec.dlq_name();
    let (counts, dlq_counts) = futures::join!(counts(sqs, &spec.name), counts(sqs, &dlq));
    let problem = match (&counts, &dlq_counts) {
        (Err(e), _) | (_, Err(e)) => Some(e.clone()),
        (Ok(None), _) | (_, Ok(None)) => Some("missing".to_owned()),
        _ => None,
    };
    QueueRow {
        queue: spec.name.clone(),
        counts: counts.ok().flatten(),
        dlq,
        dlq_depth: dlq_counts.ok().flatten().map(|d| d.visible),
        problem,
    }
}

/// A queue's counts by name; `Ok(None)` when it does not exist.
async fn counts(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Option<Depth>, String> {
    let url = match resolve::queue_url(sqs, name).await {
        Ok(url) => url,
        Err(ResolveError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    depth(sqs, &url).await.map_err(|e| format!("{e:#}"))
}

async fn worker_row(http: &reqwest::Client, address: &str, queues: &[String]) -> WorkerRow {
    let base = format!("http://{address}");
    let (health, status) = futures::join!(
        http.get(format!("{base}/healthz")).send(),
        fetch_status(http, &base)
    );

    let (health, mut detail) = match health {
        Ok(answer) if answer.status().is_success() => ("ok", None),
        Ok(answer) => (
            "unhealthy",
            Some(format!("/healthz answered {}", answer.status())),
        ),
        Err(error) => ("unreachable", Some(reason(&error))),
    };
    let status = match status {
        Ok(value) => Some(value),
        Err(error) => {
            if detail.is_none() {
                detail = Some(error);
            }
            None
        }
    };
    WorkerRow {
        address: address.to_owned(),
        topology_queues: queues.to_vec(),
        health,
        detail,
        status,
    }
}

async fn fetch_status(http: &reqwest::Client, base: &str) -> Result<Value, String> {
    let answer = http
        .get(format!("{base}/status"))
        .send()
        .await
        .map_err(|e| reason(&e))?;
    if !answer.status().is_success() {
        return Err(format!("/status answered {}", answer.status()));
    }
    answer
        .json::<Value>()
        .await
        .map_err(|e| format!("/status is not JSON: {}", reason(&e)))
}

/// Why a request failed, in a few words.
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", WORKER_TIMEOUT.as_secs());
    }
    if error.is_connect() {
        return "connection refused".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

fn render(queues: &[QueueRow], workers: &[WorkerRow]) -> String {
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("VISIBLE", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("DELAYED", Align::Right),
        ("DLQ", Align::Right),
        ("", Align::Left),
    ]);
    for row in queues {
        let number = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
        table.row(vec![
            row.queue.clone(),
            number(row.counts.map(|c| c.visible)),
            number(row.counts.map(|c| c.in_flight)),
            number(row.counts.map(|c| c.delayed)),
            number(row.dlq_depth),
            match row.problem.as_deref() {
                Some("missing") => "missing: run `hookfleet infra apply`".to_owned(),
                Some(problem) => problem.to_owned(),
                None => String::new(),
            },
        ]);
    }
    let mut out = table.render();

    if workers.is_empty() {
        out.push_str("\nno worker addresses: set `admin` in the topology or pass --admin\n");
        return out;
    }
    let mut table = Table::new(&[
        ("WORKER", Align::Left),
        ("ADDRESS", Align::Left),
        ("HEALTH", Align::Left),
        ("IN FLIGHT", Align::Right),
        ("PROCESSED", Align::Left),
        ("BREAKERS", Align::Left),
    ]);
    for row in workers {
        table.row(worker_cells(row));
    }
    out.push('\n');
    out.push_str(&table.render());
    out
}

fn worker_cells(row: &WorkerRow) -> Vec<String> {
    let status: Option<WorkerStatus> = row
        .status
        .clone()
        .and_then(|value| serde_json::from_value(value).ok());
    let name = match (&status, row.topology_queues.is_empty()) {
        (Some(status), _) if !status.worker.is_empty() => status.worker.clone(),
        (_, false) => format!("({})", row.topology_queues.join(", ")),
        _ => "-".to_owned(),
    };
    let health = match &row.detail {
        Some(detail) if row.health != "ok" || status.is_none() => {
            format!("{} ({detail})", row.health)
        }
        _ => row.health.to_owned(),
    };
    let Some(status) = status else {
        return vec![name, row.address.clone(), health];
    };

    let in_flight: u64 = status.queues.iter().map(|q| q.in_flight).sum();
    let mut processed: BTreeMap<&str, u64> = BTreeMap::new();
    for queue in &status.queues {
        for (outcome, count) in &queue.processed {
            *processed.entry(outcome).or_default() += count;
        }
    }
    let processed: Vec<String> = processed
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(outcome, count)| format!("{outcome} {count}"))
        .collect();
    let breakers: Vec<String> = status
        .breakers
        .iter()
        .map(|b| match b.open_for_secs {
            Some(secs) => format!("{} {} ({secs:.0}s left)", b.destination, b.state),
            None => format!("{} {}", b.destination, b.state),
        })
        .collect();

    vec![
        name,
        row.address.clone(),
        health,
        in_flight.to_string(),
        if processed.is_empty() {
            "none yet".to_owned()
        } else {
            processed.join(", ")
        },
        if breakers.is_empty() {
            "-".to_owned()
        } else {
            breakers.join(", ")
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPOLOGY: &str = "[topic]\nname = \"t\"\n\
        [[queues]]\nname = \"a\"\nevent_types = [\"x\"]\nadmin = \"127.0.0.1:9103\"\n\
        [[queues]]\nname = \"b\"\nevent_types = [\"x\"]\nadmin = \"127.0.0.1:9103\"\n\
        [[queues]]\nname = \"c\"\nevent_types = [\"x\"]\n";

    #[test]
    fn addresses_come_from_flags_or_the_topology_once_each() {
        let topology = Topology::from_toml(TOPOLOGY).unwrap();
        assert_eq!(
            worker_addresses(&topology, &[]),
            [(
                "127.0.0.1:9103".to_owned(),
                vec!["a".to_owned(), "b".to_owned()]
            )]
        );
        let flags = [
            "h:1".to_owned(),
            "127.0.0.1:9103".to_owned(),
            "h:1".to_owned(),
        ];
        let addresses = worker_addresses(&topology, &flags);
        assert_eq!(addresses.len(), 2);
        assert_eq!(addresses[0], ("h:1".to_owned(), vec![]));
        assert!(check_address("localhost").is_err());
        assert!(check_address(":80").is_err());
        assert!(check_address("localhost:9101").is_ok());
    }

    #[test]
    fn a_worker_renders_its_status_on_one_line() {
        let row = WorkerRow {
            address: "127.0.0.1:9103".into(),
            topology_queues: vec!["a".into()],
            health: "ok",
            detail: None,
            status: Some(json!({
                "worker": "hookfleet-crm",
                "queues": [
                    {"queue": "a", "in_flight": 2, "processed": {"done": 5, "gave_up": 1, "retried": 0}},
                    {"queue": "b", "in_flight": 1, "processed": {"done": 3}}
                ],
                "breakers": [
                    {"destination": "crm", "state": "open", "open_for_secs": 12.4},
                    {"destination": "welcome", "state": "closed"}
                ]
            })),
        };
        assert_eq!(
            worker_cells(&row),
            [
                "hookfleet-crm",
                "127.0.0.1:9103",
                "ok",
                "3",
                "done 8, gave_up 1",
                "crm open (12s left), welcome closed"
            ]
        );

        let unreachable = WorkerRow {
            address: "127.0.0.1:9101".into(),
            topology_queues: vec!["c".into()],
            health: "unreachable",
            detail: Some("connection refused".into()),
            status: None,
        };
        assert_eq!(
            worker_cells(&unreachable),
            ["(c)", "127.0.0.1:9101", "unreachable (connection refused)"]
        );
    }
}
