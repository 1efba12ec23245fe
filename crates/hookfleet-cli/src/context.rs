//! What every command shares: the global flags, loading the topology,
//! building AWS clients, and the two ways a command fails.

use std::path::PathBuf;

use clap::Args;
use hookfleet_bus::aws::{self, AwsTimeouts};
use hookfleet_bus::topology::{DEFAULT_TOPOLOGY_PATH, Topology};
use hookfleet_telemetry::LogFormat;

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Topology file declaring the topic and queues.
    #[arg(
        long,
        env = "HOOKFLEET_TOPOLOGY",
        default_value = DEFAULT_TOPOLOGY_PATH,
        global = true,
        help_heading = "Global options"
    )]
    pub(crate) topology: PathBuf,

    /// Log format (logs go to stderr; RUST_LOG filters, default warn).
    #[arg(
        long,
        env = "HOOKFLEET_LOG_FORMAT",
        value_enum,
        default_value = "auto",
        global = true,
        help_heading = "Global options"
    )]
    pub(crate) log_format: LogFormat,

    /// Validate the topology and the AWS variables, then exit, calling
    /// nothing.
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) check_config: bool,
}

impl Global {
    /// `--check-config`: what can be checked without the network.
    pub(crate) fn check_config(&self) -> Result<(), Failure> {
        let topology = self.load_topology()?;
        hookfleet_bus::aws::check_environment()
            .map_err(|e| Failure::config(e.setting, e.reason))?;
        print(&format!(
            "configuration ok: topology {} (topic {}, {} queues)\n",
            self.topology.display(),
            topology.topic.name,
            topology.queues.len()
        ))
    }

    /// The topology, or a configuration failure with the file's one line.
    pub(crate) fn load_topology(&self) -> Result<Topology, Failure> {
        Topology::load(&self.topology).map_err(|e| Failure::config("HOOKFLEET_TOPOLOGY", e))
    }
}

/// SNS and SQS clients from the standard AWS variables.
pub(crate) struct AwsClients {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// Builds both clients. A missing region or a malformed endpoint is a
    /// configuration failure here rather than an obscure error (or, for an
    /// empty endpoint, a panic inside the SDK) on the first call.
    pub(crate) async fn from_env() -> Result<Self, Failure> {
        let config = aws::load_checked(AwsTimeouts::default())
            .await
            .map_err(|e| Failure::config(e.setting, e.reason))?;
        Ok(Self {
            sns: aws::sns(&config),
            sqs: aws::sqs(&config),
        })
    }
}

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or configuration (exit 2): one line naming the setting.
    Config {
        /// The flag or variable, e.g. `HOOKFLEET_WEBHOOK_SECRET`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bad usage that no single setting names (exit 2), e.g. a queue that
    /// does not exist or a missing `--yes`: the one line to print.
    Usage(String),
    /// The operation failed (exit 1).
    Operation(anyhow::Error),
}

impl Failure {
    /// A configuration failure naming `setting`.
    pub(crate) fn config(setting: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Config {
            setting,
            reason: reason.to_string(),
        }
    }
}

/// Parses the command line. `--help` and `--version` print and exit 0;
/// any other error prints one line and exits 2. That line is clap's
/// first, with the names clap lists under it when an argument is missing
/// (`... not provided: --out <FILE>`), so it always names the culprit.
pub(crate) fn parse_cli<T: clap::Parser>() -> T {
    use clap::error::ErrorKind;

    let error = match T::try_parse() {
        Ok(cli) => return cli,
        Err(error) => error,
    };
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit()
    }
    eprintln!("{}", one_line_usage_error(&error.render().to_string()));
    std::process::exit(hookfleet_telemetry::EXIT_CONFIG)
}

/// Clap's first line, plus the indented lines right under it.
fn one_line_usage_error(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let mut line = lines
        .next()
        .unwrap_or("error: invalid arguments")
        .to_owned();
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    if !listed.is_empty() {
        line.push(' ');
        line.push_str(&listed.join(", "));
    }
    line
}

/// A count given on the command line: a whole number, 1 or more.
pub(crate) fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("must be a whole number, 1 or more".to_owned()),
    }
}

/// Writes `text` to stdout in one piece. A closed pipe (`| head`) ends
/// the output quietly instead of panicking the way `println!` does.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;

    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(anyhow::anyhow!("cannot write to stdout: {error}").into()),
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Operation(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fit_one_line_and_name_the_argument() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        --out <FILE>\n  --to <QUEUE>\n\nUsage: hookfleet dlq export\n";
        assert_eq!(
            one_line_usage_error(rendered),
            "error: the following required arguments were not provided: --out <FILE>, --to <QUEUE>"
        );
        assert_eq!(
            one_line_usage_error("error: unexpected argument '--x' found\n\n  tip: ...\n"),
            "error: unexpected argument '--x' found"
        );
    }

    #[test]
    fn counts_are_positive() {
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert!(positive("ten").is_err());
    }
}
