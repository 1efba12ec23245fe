//! A TCP forwarder standing between a binary and LocalStack, so a test can
//! make the broker slow; the broker "down" is a port where nothing listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards `127.0.0.1:port` to a target, optionally delaying each
/// request chunk. Stops when dropped.
pub struct Proxy {
    pub port: u16,
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `port` (0 for any) and forwards to `target` (`host:port`).
    pub async fn start(port: u16, target: String) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let delay = delay.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(&target).await {
                        forward(client, upstream, delay).await;
                    }
                });
            }
        });
        Self {
            port,
            delay_ms,
            task,
        }
    }

    /// Delays every chunk sent towards the target.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: TcpStream, delay: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let to_upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let ms = delay.load(Ordering::Relaxed);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if upstream_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    let to_client = async move {
        let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
    };
    tokio::join!(to_upstream, to_client);
}
