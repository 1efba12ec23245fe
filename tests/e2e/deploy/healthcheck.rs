//! The image's healthcheck script against a real ingest.

use super::*;

/// Runs the image's healthcheck script with `env`, as Docker would.
pub(super) async fn healthcheck(env: &[(String, String)], args: &[&str]) -> Output {
    run(&repo().join("infra/docker/healthcheck"), args, env).await
}

#[tokio::test]
async fn healthcheck_script_tells_a_live_ingest_from_a_dead_one() {
    // Ingest resolves its topic lazily: /healthz answers without LocalStack.
    let topology = TestTopology::new();
    let mut ingest = Ingest::start(&topology.env(), &[]).await;
    let port = ingest.base.rsplit(':').next().expect("a port").to_owned();
    // In the container ingest listens on the wildcard address.
    let env = vec![("HOOKFLEET_LISTEN".to_owned(), format!("0.0.0.0:{port}"))];

    let live = healthcheck(&env, &[]).await;
    assert_eq!(live.code, Some(0), "{live:?}");
    // HOOKFLEET_ADMIN_LISTEN (a worker's) comes first.
    let mut worker_env = env.clone();
    worker_env.push((
        "HOOKFLEET_ADMIN_LISTEN".to_owned(),
        format!("0.0.0.0:{}", free_port()),
    ));
    let elsewhere = healthcheck(&worker_env, &[]).await;
    assert_eq!(elsewhere.code, Some(1), "{elsewhere:?}");
    // Any other answer than 200 is unhealthy.
    let missing = healthcheck(&env, &[&format!("127.0.0.1:{port}"), "/no-such-page"]).await;
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.stderr.contains("404"), "{missing:?}");

    ingest.process.sigkill();
    ingest.process.wait(Duration::from_secs(10)).await;
    let dead = healthcheck(&env, &[]).await;
    assert_eq!(dead.code, Some(1), "{dead:?}");
    assert!(dead.stderr.contains("unhealthy"), "{dead:?}");
}
