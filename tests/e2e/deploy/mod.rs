//! Deployment (issue 8), checked without a Docker engine:
//!
//! - the `Dockerfile` copies only files that exist and that `.dockerignore`
//!   lets through, ships exactly SPEC §3's binaries under their `[[bin]]`
//!   names, and its dependency-caching skeleton stage yields a workspace
//!   that cargo loads;
//! - `docker-compose.yml` passes `docker-compose config -q` (where the
//!   client is installed), its start order and ports agree with the
//!   topology, and every project service's command passes `--check-config`
//!   with the service's environment, using only variables its binary knows;
//! - the CloudFormation template routes like `infra/topology.toml`, and a
//!   stack deployed to LocalStack has the same resources and attributes as
//!   `hookfleet infra apply` creates (one truth, two ways to deploy it);
//! - the image's healthcheck script tells a live ingest from a dead one.
//!
//! One file per artefact: [`docker`], [`compose`], [`cloudformation`],
//! [`healthcheck`]; this file holds what they share.

mod cloudformation;
mod compose;
mod docker;
mod healthcheck;

use compose::Compose;
use docker::{DockerIgnore, Dockerfile, service_of};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use hookfleet_bus::topology::{DLQ_SUFFIX, Topology};
use hookfleet_e2e::ingest::Ingest;
use hookfleet_e2e::process::{Output, free_port, run};
use hookfleet_e2e::{Aws, TestTopology, aws_env, endpoint, eventually, localstack, unique};
use serde_json::Value;
use serde_norway::Value as Yaml;

/// The binaries of SPEC §3: what the image ships.
pub(super) const SPEC_BINARIES: [&str; 5] = [
    "hookfleet",
    "hookfleet-ingest",
    "hookfleet-analytics",
    "hookfleet-alerts",
    "hookfleet-crm",
];

/// The services docker-compose.yml runs from the project's image.
pub(super) const PROJECT_SERVICES: [&str; 5] = ["infra", "ingest", "analytics", "alerts", "crm"];

/// Variables the binaries read without a clap flag (the AWS SDK and the
/// log filter), which `--help` therefore does not list.
pub(super) const UNLISTED_VARIABLES: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RUST_LOG",
];

/// The topology queues each worker drains: its admin address is theirs.
pub(super) const WORKER_QUEUES: [(&str, &[&str]); 3] = [
    ("hookfleet-analytics", &["hookfleet-analytics"]),
    ("hookfleet-alerts", &["hookfleet-alerts"]),
    ("hookfleet-crm", &["hookfleet-crm", "hookfleet-welcome"]),
];

/// The prefix of every name in the shipped topology, and the template's
/// default `NamePrefix`.
pub(super) const SHIPPED_PREFIX: &str = "hookfleet";

pub(super) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

pub(super) fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub(super) fn shipped_topology() -> Topology {
    Topology::load(&repo().join("infra/topology.toml")).expect("infra/topology.toml loads")
}

/// Where `cargo build` puts the workspace's binaries for this test run.
pub(super) fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

// --- the Dockerfile ------------------------------------------------------------
