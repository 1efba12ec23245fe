//! `dlq export`, `dlq purge` and `dlq replay`: the round trip.

use std::collections::BTreeSet;
use std::time::Duration;

use hookfleet_e2e::topology::receive_all;
use hookfleet_e2e::{eventually, unique};
use serde_json::Value;

use super::*;

#[tokio::test]
async fn export_then_purge_then_replay_round_trips() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(
            put_given_up(
                &setup.aws,
                &setup.dlq_url,
                "referral.completed",
                "crm answered 503",
            )
            .await,
        );
    }
    for _ in 0..2 {
        sent.push(put_by_policy(&setup.aws, &setup.dlq_url, "referral.completed").await);
    }
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("hf-export")));
    let file_arg = file.display().to_string();

    let export = setup
        .hookfleet(&["dlq", "export", &setup.dlq, "--out", &file_arg])
        .await;
    assert_eq!(export.code, Some(0), "{export:?}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 7);
    assert!(
        lines
            .iter()
            .all(|l| l["message_id"].is_string() && l["sent_timestamp"].is_string())
    );
    assert!(lines.iter().all(|l| l["receive_count"].as_u64() >= Some(1)));
    assert_eq!(
        depth(&setup.aws, &setup.dlq_url).await,
        (7, 0),
        "export removes nothing"
    );

    // No overwrite without --force.
    let again = setup
        .hookfleet(&["dlq", "export", &setup.dlq, "--out", &file_arg])
        .await;
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.stderr.contains("--force"), "{again:?}");

    let purge = setup
        .hookfleet(&["dlq", "purge", &setup.dlq, "--yes"])
        .await;
    assert_eq!(purge.code, Some(0), "{purge:?}");
    assert_eq!(
        purge.stdout,
        format!("purged ~7 message(s) from {}\n", setup.dlq)
    );
    eventually(Duration::from_secs(70), "the purge", || async {
        (depth(&setup.aws, &setup.dlq_url).await == (0, 0)).then_some(())
    })
    .await;

    // Back into the DLQ as it was...
    let replay = setup
        .hookfleet(&[
            "dlq",
            "replay",
            &file_arg,
            "--to",
            &setup.dlq,
            "--keep-failure-attributes",
            "--yes",
        ])
        .await;
    assert_eq!(replay.code, Some(0), "{replay:?}");
    assert_eq!(last_line(&replay.stdout), "sent 7, failed 0");
    let restored = receive_all(&setup.aws, &setup.dlq_url, 7, Duration::from_secs(20)).await;
    assert_eq!(as_puts(&restored), puts(&sent.iter().collect::<Vec<_>>()));

    // ...and into the source queue, without the failure attributes.
    let replay = setup
        .hookfleet(&[
            "dlq",
            "replay",
            &file_arg,
            "--to",
            &setup.topology.crm,
            "--yes",
        ])
        .await;
    assert_eq!(replay.code, Some(0), "{replay:?}");
    let replayed = receive_all(&setup.aws, &setup.source_url, 7, Duration::from_secs(20)).await;
    let expected: BTreeSet<_> = sent
        .iter()
        .map(|m| (m.body.clone(), m.originals()))
        .collect();
    assert_eq!(as_puts(&replayed), expected);

    let _ = std::fs::remove_file(&file);
}
