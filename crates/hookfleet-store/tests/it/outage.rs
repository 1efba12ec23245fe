//! PostgreSQL going away and coming back, through a TCP forwarder the test
//! can cut: failures are retryable, and retrying loses and doubles nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hookfleet_store::Store;
use time::macros::datetime;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::event;

/// Forwards a local port to PostgreSQL until cut; cutting closes every
/// forwarded connection and refuses new ones until restored.
struct Cuttable {
    port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0_u64);
        let task = {
            let up = up.clone();
            let generation = generation.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // Dropped: the client sees the connection close.
                    }
                    let mut cut = generation.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut upstream) = TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Self {
            port,
            up,
            generation,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, after) = rest.rsplit_once('@').map_or(("", rest), |(c, a)| (c, a));
    let (host_port, path) = after.split_once('/').unwrap_or((after, ""));
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let at = if credentials.is_empty() { "" } else { "@" };
    (
        format!("{scheme}://{credentials}{at}127.0.0.1:{port}/{path}"),
        target,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_retryable_and_retry_loses_and_doubles_nothing() {
    // Skip (or fail under CI) exactly like the other PostgreSQL tests.
    let Some(db) = hookfleet_store::testing::postgres("outage").await else {
        return;
    };
    let (_, target) = through(db.url(), 0);
    let proxy = Cuttable::start(target).await;
    let (proxied_url, _) = through(db.url(), proxy.port);
    let store = Store::connect_postgres_schema(&proxied_url, db.schema())
        .await
        .unwrap();
    let at = datetime!(2026-03-01 10:15:20 UTC);
    let first: Vec<_> = (0..5)
        .map(|i| event(&format!("before-{i}"), Some("c"), "link.clicked", at))
        .collect();
    let second: Vec<_> = (0..5)
        .map(|i| event(&format!("during-{i}"), Some("c"), "link.clicked", at))
        .collect();
    store.insert_events(&first).await.unwrap();

    proxy.cut();
    let error = store.insert_events(&second).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(store.ping().await.is_err());

    proxy.restore();
    // The worker's retry: the same batch again, plus a redelivery of the
    // first one.
    let retried = store.insert_events(&second).await.unwrap();
    let redelivered = store.insert_events(&first).await.unwrap();

    assert_eq!(retried.inserted, 5);
    assert_eq!(redelivered.duplicates, 5);
    assert_eq!(store.count_events().await.unwrap(), 10);
    let counts = store.minute_counts("c").await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count, 10);
    store.close().await;
    db.drop().await;
}
