//! Bad queue names, bad flags and a missing `--yes`: exit 2 and one line;
//! a failed AWS call: exit 1 and one line.

use hookfleet_e2e::process::{free_port, run};
use hookfleet_e2e::{aws_env, bin, unique};

use super::*;

#[tokio::test]
async fn bad_queue_names_and_flags_exit_2_with_one_line() {
    let Some(setup) = setup().await else {
        return;
    };
    put_given_up(
        &setup.aws,
        &setup.dlq_url,
        "referral.completed",
        "crm answered 503",
    )
    .await;
    let bad_file = std::env::temp_dir().join(format!("{}.jsonl", unique("hf-bad")));
    std::fs::write(&bad_file, "{\"not\": \"an export line\"}\n").unwrap();
    let bad_file = bad_file.display().to_string();
    let missing_url = setup.dlq_url.replace(&setup.dlq, "hf-no-such-queue-dlq");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["dlq", "show", "hf-no-such-queue-dlq"],
            "does not exist",
        ),
        (
            vec!["dlq", "purge", &missing_url, "--yes"],
            "does not exist",
        ),
        (
            vec!["dlq", "show", &setup.topology.crm],
            "not a dead-letter queue",
        ),
        (vec!["dlq", "redrive", &setup.dlq], "pass --yes"),
        (vec!["dlq", "purge", &setup.dlq], "pass --yes"),
        (vec!["dlq", "show", &setup.dlq, "--limit", "0"], "--limit"),
        (
            vec!["dlq", "show", &setup.dlq, "--group-by", "colour"],
            "--group-by",
        ),
        (
            vec!["dlq", "redrive", &setup.dlq, "--rate", "fast", "--yes"],
            "--rate",
        ),
        (
            vec!["dlq", "redrive", &setup.dlq, "--server-side", "--max", "2"],
            "--server-side",
        ),
        (vec!["dlq", "export", &setup.dlq], "--out"),
        (vec!["dlq", "frobnicate"], "frobnicate"),
        (
            vec!["dlq", "replay", &bad_file, "--to", &setup.dlq, "--yes"],
            "line 1",
        ),
    ];
    for (args, mentions) in cases {
        let output = setup.hookfleet(&args).await;
        assert_eq!(output.code, Some(2), "{args:?}: {output:?}");
        assert_eq!(output.stdout, "", "{args:?}");
        assert_eq!(output.stderr.lines().count(), 1, "{args:?}: {output:?}");
        assert!(output.stderr.starts_with("error: "), "{args:?}: {output:?}");
        assert!(output.stderr.contains(mentions), "{args:?}: {output:?}");
    }
    assert_eq!(
        depth(&setup.aws, &setup.dlq_url).await,
        (1, 0),
        "nothing was touched"
    );
    assert_eq!(depth(&setup.aws, &setup.source_url).await, (0, 0));

    // An AWS call that fails is exit 1, one line.
    let mut env = aws_env();
    env.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{}", free_port()),
    ));
    env.push((
        "HOOKFLEET_TOPOLOGY".into(),
        setup.topology.path.display().to_string(),
    ));
    let output = run(&bin("hookfleet"), &["dlq", "show", &setup.dlq], &env).await;
    assert_eq!(output.code, Some(1), "{output:?}");
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    let _ = std::fs::remove_file(&bad_file);
}
