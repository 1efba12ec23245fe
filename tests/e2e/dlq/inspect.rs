//! Looking without removing: `dlq show` (messages, `--raw`, `--json`,
//! `--group-by`) and `dlq list`.

use std::collections::BTreeMap;
use std::time::Duration;

use hookfleet_e2e::topology::receive_all;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn show_leaves_the_dlq_unchanged_and_explains_each_message() {
    let Some(setup) = setup().await else {
        return;
    };
    let mut sent = Vec::new();
    for i in 0..12 {
        let error = if i % 3 == 0 {
            "bad field"
        } else {
            "crm answered 503"
        };
        sent.push(put_given_up(&setup.aws, &setup.dlq_url, "referral.completed", error).await);
    }
    for _ in 0..2 {
        sent.push(put_by_policy(&setup.aws, &setup.dlq_url, "referral.completed").await);
    }
    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (14, 0));

    let output = setup
        .hookfleet(&["dlq", "show", &setup.dlq, "--limit", "50", "--json"])
        .await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let shown: Value = serde_json::from_str(&output.stdout).expect("JSON");
    let messages = shown["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 14, "{shown}");
    assert_eq!(shown["complete"], true);
    for message in messages {
        let original = sent
            .iter()
            .find(|m| m.body == message["body"].as_str().unwrap())
            .expect("a message that was put");
        assert_eq!(message["event_type"], "referral.completed");
        assert_eq!(
            message["event_id"],
            original.attributes["event_id"].as_str()
        );
        match original.attributes.get("error") {
            Some(error) => {
                assert_eq!(message["error"], error.as_str());
                assert_eq!(message["worker"], "hookfleet-crm");
                assert_eq!(message["failed_at"], "2026-12-03T10:05:00Z");
                assert_eq!(message["receive_count"], "4");
                assert_eq!(message["by_redrive_policy"], false);
            }
            None => {
                assert!(message["error"].is_null());
                assert_eq!(message["by_redrive_policy"], true);
            }
        }
    }

    // The text form: pretty bodies, and the redrive-policy explanation.
    let output = setup
        .hookfleet(&["dlq", "show", &setup.dlq, "--limit", "50"])
        .await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert!(
        output
            .stdout
            .contains("    error          crm answered 503")
    );
    assert!(output.stdout.contains("\"event\": \"referral.completed\""));
    assert_eq!(
        output
            .stdout
            .matches("moved here by the redrive policy")
            .count(),
        2,
        "{}",
        output.stdout
    );

    // --raw prints the bodies byte for byte.
    let output = setup
        .hookfleet(&["dlq", "show", &setup.dlq, "--limit", "50", "--raw"])
        .await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert!(output.stdout.contains(&sent[0].body), "{}", output.stdout);

    // Unchanged: same depth at once (handed back, not left in flight),
    // same bodies and attributes.
    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (14, 0));
    let after = receive_all(&setup.aws, &setup.dlq_url, 14, Duration::from_secs(20)).await;
    assert_eq!(after.len(), 14);
    assert_eq!(as_puts(&after), puts(&sent.iter().collect::<Vec<_>>()));
}

#[tokio::test]
async fn group_by_counts_per_error_event_type_and_worker() {
    let Some(setup) = setup().await else {
        return;
    };
    for _ in 0..5 {
        put_given_up(
            &setup.aws,
            &setup.dlq_url,
            "referral.completed",
            "crm answered 503",
        )
        .await;
    }
    for _ in 0..3 {
        put_given_up(&setup.aws, &setup.dlq_url, "install.tracked", "bad field").await;
    }
    for _ in 0..2 {
        put_by_policy(&setup.aws, &setup.dlq_url, "install.tracked").await;
    }

    let counts = |value: &Value| -> BTreeMap<String, u64> {
        value["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| {
                let key = g["key"].as_str().unwrap_or("(none)").to_owned();
                (key, g["count"].as_u64().unwrap())
            })
            .collect()
    };
    let expected = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };

    let by_error = setup
        .hookfleet(&["dlq", "show", &setup.dlq, "--group-by", "error", "--json"])
        .await;
    assert_eq!(by_error.code, Some(0), "{by_error:?}");
    let by_error: Value = serde_json::from_str(&by_error.stdout).unwrap();
    assert_eq!(by_error["scanned"], 10);
    assert_eq!(
        counts(&by_error),
        expected(&[("crm answered 503", 5), ("bad field", 3), ("(none)", 2)])
    );
    let first = &by_error["groups"][0];
    assert_eq!(first["key"], "crm answered 503");
    assert_eq!(first["first_seen"], "2026-12-03T10:05:00.000Z");
    assert_eq!(first["last_seen"], "2026-12-03T10:05:00.000Z");

    let by_type = setup
        .hookfleet(&[
            "dlq",
            "show",
            &setup.dlq,
            "--group-by",
            "event_type",
            "--json",
        ])
        .await;
    let by_type: Value = serde_json::from_str(&by_type.stdout).unwrap();
    assert_eq!(
        counts(&by_type),
        expected(&[("referral.completed", 5), ("install.tracked", 5)])
    );

    // The text summary: one line per group under a header.
    let text = setup
        .hookfleet(&["dlq", "show", &setup.dlq, "--group-by", "worker"])
        .await;
    assert_eq!(text.code, Some(0), "{text:?}");
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", text.stdout);
    assert!(lines[1].starts_with("COUNT"), "{}", text.stdout);
    assert!(lines[2].trim_start().starts_with("8 "), "{}", text.stdout);
    assert!(lines[2].ends_with("hookfleet-crm"), "{}", text.stdout);
    assert!(lines[3].contains("redrive policy"), "{}", text.stdout);

    assert_eq!(depth(&setup.aws, &setup.dlq_url).await, (10, 0));
}

#[tokio::test]
async fn list_shows_every_dlq_with_depth_age_and_source() {
    let Some(setup) = setup().await else {
        return;
    };
    for _ in 0..3 {
        put_given_up(
            &setup.aws,
            &setup.dlq_url,
            "referral.completed",
            "crm answered 503",
        )
        .await;
    }

    let output = setup.hookfleet(&["dlq", "list", "--json"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let listed: Value = serde_json::from_str(&output.stdout).unwrap();
    let rows = listed["dead_letter_queues"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let crm = rows
        .iter()
        .find(|r| r["queue"] == setup.dlq.as_str())
        .unwrap();
    assert_eq!(crm["source_queue"], setup.topology.crm.as_str());
    assert_eq!(crm["depth"], 3);
    assert!(crm["oldest_message_age_secs"].as_u64().is_some(), "{crm}");
    assert_eq!(crm["age_is_lower_bound"], false);
    let empty = rows.iter().find(|r| r["depth"] == 0).unwrap();
    assert!(empty["oldest_message_age_secs"].is_null());

    let text = setup.hookfleet(&["dlq", "list"]).await;
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&setup.dlq))
        .unwrap_or_else(|| panic!("{}", text.stdout));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "3", "{line}");
    assert_eq!(cells.last(), Some(&setup.topology.crm.as_str()), "{line}");
    assert_eq!(
        depth(&setup.aws, &setup.dlq_url).await,
        (3, 0),
        "looking removes nothing"
    );
}
