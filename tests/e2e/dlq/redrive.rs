//! `dlq redrive`: a filtered redrive moves exactly what it selects, with
//! the failure attributes stripped, and a killed one loses nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use hookfleet_e2e::process::Running;
use hookfleet_e2e::topology::receive_all;
use hookfleet_e2e::{bin, eventually};

use super::*;

#[tokio::test]
async fn a_filtered_redrive_moves_exactly_the_matching_messages() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut matching = Vec::new();
    let mut others = Vec::new();
    for _ in 0..4 {
        matching.push(
            put_given_up(
                &setup.aws,
                &setup.dlq_url,
                "referral.completed",
                "crm answered 503 Service Unavailable",
            )
            .await,
        );
    }
    for _ in 0..3 {
        others.push(
            put_given_up(
                &setup.aws,
                &setup.dlq_url,
                "referral.completed",
                "bad field",
            )
            .await,
        );
    }
    others.push(
        put_given_up(
            &setup.aws,
            &setup.dlq_url,
            "install.tracked",
            "crm answered 503",
        )
        .await,
    );
    for _ in 0..2 {
        others.push(put_by_policy(&setup.aws, &setup.dlq_url, "referral.completed").await);
    }
    let filter = [
        "--event-type",
        "referral.completed",
        "--error-contains",
        "ANSWERED 503",
    ];

    // A dry run lists the four and moves nothing.
    let mut args = vec!["dlq", "redrive", setup.dlq.as_str(), "--dry-run"];
    args.extend(filter);
    let dry = setup.hookfleet(&args).await;
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert_eq!(
        dry.stdout.matches("would move  ").count(),
        4,
        "{}",
        dry.stdout
    );
    assert_eq!(
        last_line(&dry.stdout),
        "dry run: would move 4, skip 6; nothing was moved"
    );
    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (10, 0));
    assert_eq!(depth(&setup.aws, &setup.source_url).await, (0, 0));

    let mut args = vec!["dlq", "redrive", setup.dlq.as_str(), "--yes"];
    args.extend(filter);
    let output = setup.hookfleet(&args).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert_eq!(last_line(&output.stdout), "moved 4, skipped 6, failed 0");

    // In the source queue: exactly the four, failure attributes stripped,
    // original attributes kept.
    let moved = receive_all(&setup.aws, &setup.source_url, 4, Duration::from_secs(20)).await;
    assert_eq!(moved.len(), 4, "{moved:?}");
    let expected: BTreeSet<_> = matching
        .iter()
        .map(|m| (m.body.clone(), m.originals()))
        .collect();
    assert_eq!(as_puts(&moved), expected);
    for message in &moved {
        for name in FAILURE_ATTRIBUTES {
            assert!(
                !message.attributes.contains_key(name),
                "{name} kept: {message:?}"
            );
        }
    }

    // In the DLQ: the six others, untouched and visible again at once.
    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (6, 0));
    let left = receive_all(&setup.aws, &setup.dlq_url, 6, Duration::from_secs(20)).await;
    assert_eq!(as_puts(&left), puts(&others.iter().collect::<Vec<_>>()));
}

/// Kills a filtered, rate-limited redrive after its first moves. At that
/// moment it holds skipped messages (invisible until the end of its run)
/// and may be between a send and a delete; afterwards every message must
/// be in the DLQ or the source queue, and no skipped one in the source.
#[tokio::test]
async fn a_redrive_killed_midway_loses_nothing() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut sent = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    for i in 0..30 {
        let error = if i % 3 == 0 {
            "bad field"
        } else {
            "crm answered 503"
        };
        let message = put_given_up(&setup.aws, &setup.dlq_url, "referral.completed", error).await;
        if i % 3 == 0 {
            skipped.insert(message.body.clone());
        }
        sent.insert(message.body);
    }

    let mut redrive = Running::start(
        &bin("hookfleet"),
        &[
            "dlq",
            "redrive",
            &setup.dlq,
            "--error-contains",
            "503",
            "--rate",
            "5/s",
            "--yes",
        ],
        &setup.topology.env(),
    );
    eventually(Duration::from_secs(20), "the first moves", || async {
        let (visible, _) = depth(&setup.aws, &setup.source_url).await;
        (visible > 0).then_some(())
    })
    .await;
    redrive.sigkill();
    redrive.wait(Duration::from_secs(5)).await;

    // What the killed process held reappears in the DLQ when its
    // visibility runs out (30 s); until every body is found somewhere,
    // keep draining both queues. A duplicate is fine; a missing body is a
    // loss.
    let mut found_in_source = BTreeSet::new();
    let mut found_in_dlq = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Each receive long-polls for a second: no sleep needed.
        for message in receive_all(&setup.aws, &setup.source_url, 0, Duration::ZERO).await {
            found_in_source.insert(message.body);
        }
        for message in receive_all(&setup.aws, &setup.dlq_url, 0, Duration::ZERO).await {
            found_in_dlq.insert(message.body);
        }
        let found: BTreeSet<String> = found_in_source.union(&found_in_dlq).cloned().collect();
        if found == sent {
            break;
        }
        let missing: Vec<_> = sent.difference(&found).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost {} message(s): {missing:?}",
            missing.len()
        );
    }
    assert!(!found_in_source.is_empty(), "some moved before the kill");
    assert!(
        found_in_source.len() < sent.len() - skipped.len(),
        "killed midway, not after the end: {} moved",
        found_in_source.len()
    );
    assert!(
        found_in_source.is_disjoint(&skipped),
        "a message the filter skips was moved"
    );
    let unexpected: Vec<_> = found_in_source
        .union(&found_in_dlq)
        .filter(|b| !sent.contains(*b))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}

/// `--server-side` hands the move to SQS's message move task (with an
/// explicit destination) and waits for it: everything moves, with the
/// failure attributes still on, as the help says.
#[tokio::test]
async fn a_server_side_redrive_moves_everything_through_sqs() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut sent = Vec::new();
    for _ in 0..3 {
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
    sent.push(put_by_policy(&setup.aws, &setup.dlq_url, "referral.completed").await);

    let output = setup
        .hookfleet(&["dlq", "redrive", &setup.dlq, "--server-side", "--yes"])
        .await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert_eq!(last_line(&output.stdout), "moved 4, skipped 0, failed 0");
    assert!(
        output.stderr.contains("keeps the failure attributes"),
        "{output:?}"
    );

    let moved = receive_all(&setup.aws, &setup.source_url, 4, Duration::from_secs(20)).await;
    assert_eq!(as_puts(&moved), puts(&sent.iter().collect::<Vec<_>>()));
    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (0, 0));
}
