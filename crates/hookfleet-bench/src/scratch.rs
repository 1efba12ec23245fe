//! A throwaway topology with random names, applied with the real
//! `hookfleet infra apply`, and removed afterwards.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// A topology written to a temporary file, with the real routing.
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
    pub(crate) topic: String,
    pub(crate) queues: Vec<String>,
}

impl Scratch {
    /// Writes and applies a topology named `hfb-<random>-…`.
    pub(crate) fn apply() -> anyhow::Result<Self> {
        let id: u32 = rand::random();
        let prefix = format!("hfb-{id:08x}");
        let topic = format!("{prefix}-events");
        let routes = [
            ("analytics", r#"except_event_types = ["test"]"#),
            (
                "alerts",
                r#"event_types = ["link.clicked", "install.tracked", "deferred_link.claimed", "referral.created", "referral.completed"]"#,
            ),
            ("crm", r#"event_types = ["referral.completed"]"#),
            ("welcome", r#"event_types = ["install.tracked"]"#),
        ];
        let mut text = format!(
            "[topic]\nname = \"{topic}\"\n\n[defaults]\nmax_receive_count = 5\nvisibility_timeout_secs = 30\nmessage_retention_secs = 3600\ndlq_retention_secs = 3600\n"
        );
        let mut queues = Vec::new();
        for (name, filter) in routes {
            let queue = format!("{prefix}-{name}");
            text.push_str(&format!("\n[[queues]]\nname = \"{queue}\"\n{filter}\n"));
            queues.push(queue);
        }
        let path = std::env::temp_dir().join(format!("{prefix}.toml"));
        std::fs::write(&path, text)?;

        let status = Command::new(sibling("hookfleet"))
            .args(["infra", "apply"])
            .env("HOOKFLEET_TOPOLOGY", &path)
            .stdout(std::process::Stdio::null())
            .status()
            .context("run hookfleet infra apply")?;
        if !status.success() {
            bail!("hookfleet infra apply failed");
        }
        Ok(Self {
            path,
            topic,
            queues,
        })
    }

    /// Deletes the queues (with their DLQs) and the topic.
    pub(crate) async fn remove(&self, sns: &aws_sdk_sns::Client, sqs: &aws_sdk_sqs::Client) {
        for queue in &self.queues {
            for name in [queue.clone(), format!("{queue}-dlq")] {
                if let Ok(url) = hookfleet_bus::resolve::queue_url(sqs, &name).await {
                    let _ = sqs.delete_queue().queue_url(url).send().await;
                }
            }
        }
        if let Ok(Some(arn)) = hookfleet_bus::resolve::topic_arn(sns, &self.topic).await {
            let _ = sns.delete_topic().topic_arn(arn).send().await;
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `given`, or the binary `name` built next to this one; an error saying
/// how to build it (`cargo build --release <build>`) when it is missing.
pub(crate) fn built_binary(
    given: Option<&PathBuf>,
    name: &str,
    build: &str,
) -> anyhow::Result<PathBuf> {
    let path = given.cloned().unwrap_or_else(|| sibling(name));
    if !path.exists() {
        bail!(
            "{} not found; build it with `cargo build --release {build}`",
            path.display()
        );
    }
    Ok(path)
}

/// A binary built next to this one.
pub(crate) fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.with_file_name(name)
}

/// A port nothing listens on now, on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
