//! `hookfleet dlq export QUEUE --out FILE`: every message of a DLQ as JSON
//! lines ([`crate::dlq::record`]), removing none (see
//! [`crate::dlq::peek`]). The file appears complete or not at all: it is
//! written beside its final path and moved into place at the end.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::context::{Failure, Global, print};
use crate::dlq::interrupt::Interrupt;
use crate::dlq::peek::peek;
use crate::dlq::record::Record;
use crate::dlq::{Opened, open, sqs};

/// Flags of `hookfleet dlq export`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLE)]
pub(crate) struct ExportArgs {
    /// The dead-letter queue: a name (hookfleet-crm-dlq) or a URL.
    queue: String,

    /// The file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

const EXAMPLE: &str = "\
One line per message: message_id, sent_timestamp, receive_count, body and
every attribute (failure attributes included). Nothing is removed: the
messages are received and handed back at once. `hookfleet dlq replay`
sends a file back.

Example:
  hookfleet dlq export hookfleet-crm-dlq --out crm-dlq-$(date +%F).jsonl";

/// Runs `hookfleet dlq export`.
pub(crate) async fn run(args: ExportArgs, global: &Global) -> Result<(), Failure> {
    if !args.force && args.out.exists() {
        return Err(Failure::Usage(format!(
            "{} exists: pass --force to overwrite it",
            args.out.display()
        )));
    }
    let Opened { aws, dlq } = open(global, &args.queue).await?;

    let depth = sqs::existing_depth(&aws.sqs, &dlq.queue.url).await?;
    let interrupt = Interrupt::listen();
    let peeked = peek(&aws.sqs, &dlq.queue.url, usize::MAX, &interrupt).await?;

    let mut text = String::new();
    for message in &peeked.messages {
        let line =
            serde_json::to_string(&Record::of(message)).context("cannot encode a message")?;
        text.push_str(&line);
        text.push('\n');
    }
    write_file(&args.out, text.as_bytes(), args.force)?;

    print(&format!(
        "exported {} message(s) from {} (~{} visible before) to {}; none removed\n",
        peeked.messages.len(),
        dlq.queue.name,
        depth.visible,
        args.out.display()
    ))?;
    match peeked.stop.shortfall() {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!(
            "the export is incomplete ({why}); do not purge on the strength of it"
        )
        .into()),
    }
}

/// Writes `bytes` to a temporary file next to `path`, then moves it into
/// place: over an existing file only with `force` (otherwise a file that
/// appeared meanwhile is bad usage, not overwritten).
fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    let file_name = path
        .file_name()
        .ok_or_else(|| Failure::Usage(format!("--out {} names no file", path.display())))?;
    let mut partial_name = file_name.to_os_string();
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = path.with_file_name(partial_name);

    let written = std::fs::File::create_new(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(Failure::Usage(format!(
            "cannot write {}: {error}",
            partial.display()
        )));
    }

    let placed = if force {
        std::fs::rename(&partial, path)
    } else {
        // A hard link fails if the path exists: no overwrite by accident.
        std::fs::hard_link(&partial, path)
    };
    let _ = std::fs::remove_file(&partial);
    placed.map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::Usage(format!(
            "{} exists: pass --force to overwrite it",
            path.display()
        )),
        _ => Failure::Usage(format!("cannot write {}: {error}", path.display())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_not_overwritten_without_force() {
        let dir = std::env::temp_dir().join(format!("hookfleet-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let _ = std::fs::remove_file(&path);

        write_file(&path, b"one\n", false).unwrap();
        assert!(matches!(
            write_file(&path, b"two\n", false),
            Err(Failure::Usage(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        write_file(&path, b"three\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no leftovers");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
