//! `hookfleet infra apply`: create or update the topology (SPEC §4).

use anyhow::anyhow;
use clap::Subcommand;
use hookfleet_bus::apply::apply;

use crate::context::{AwsClients, Failure, Global};

/// Commands on the bus's infrastructure.
#[derive(Debug, Subcommand)]
pub(crate) enum InfraCommand {
    /// Create or update the topic, every queue and DLQ, and their
    /// subscriptions; print one line per resource.
    #[command(after_help = APPLY_EXAMPLE)]
    Apply,
}

const APPLY_EXAMPLE: &str = "\
Prints one line per resource: created, updated (with the attributes that
changed) or unchanged. Running it again changes nothing.

Example:
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=us-east-1 \\
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
  hookfleet infra apply --topology infra/topology.toml";

/// Runs an `infra` command.
pub(crate) async fn run(command: InfraCommand, global: &Global) -> Result<(), Failure> {
    match command {
        InfraCommand::Apply => apply_topology(global).await,
    }
}

async fn apply_topology(global: &Global) -> Result<(), Failure> {
    let topology = global.load_topology()?;
    let aws = AwsClients::from_env().await?;

    match apply(&topology, &aws.sns, &aws.sqs).await {
        Ok(report) => {
            println!("{report}");
            Ok(())
        }
        Err(error) => {
            // What was done before the failure stays done: show it.
            if !error.completed.resources.is_empty() {
                println!("{}", error.completed);
            }
            Err(anyhow!(error).into())
        }
    }
}
