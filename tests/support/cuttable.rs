//! A TCP forwarder a test can cut, to take a database away from a running
//! binary and give it back: [`Cuttable::cut`] closes every forwarded
//! connection and refuses new ones (accepted, then closed at once, as a
//! server going down looks to a client) until [`Cuttable::restore`].
//!
//! [`crate::proxy::Proxy`] delays traffic instead; a broker that is simply
//! gone is a port where nothing listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:port` to a target until cut. Stops when dropped.
pub struct Cuttable {
    /// The local port to connect to instead of the target.
    pub port: u16,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    /// Listens on a free local port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the forwarder");
        let port = listener.local_addr().expect("local address").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0_u64);
        let task = tokio::spawn(accept(listener, target, up.clone(), cuts.clone()));
        Self {
            port,
            up,
            cuts,
            task,
        }
    }

    /// Closes every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    target: String,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            continue; // Dropped: the client sees the connection close.
        }
        let mut cut = cuts.subscribe();
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
}

/// `url` (`scheme://[credentials@]host[:port]/path`) pointed at
/// `127.0.0.1:port` instead, and the `host:port` it pointed at (port 5432
/// when it named none).
pub fn redirect(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (credentials, after) = match rest.rsplit_once('@') {
        Some((credentials, after)) => (format!("{credentials}@"), after),
        None => (String::new(), rest),
    };
    let (host_port, path) = after.split_once('/').unwrap_or((after, ""));
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    (
        format!("{scheme}://{credentials}127.0.0.1:{port}/{path}"),
        target,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_credentials_and_path() {
        assert_eq!(
            redirect("postgres://app:pw@db.example:6543/test?x=1", 7000),
            (
                "postgres://app:pw@127.0.0.1:7000/test?x=1".to_owned(),
                "db.example:6543".to_owned()
            )
        );
        assert_eq!(
            redirect("postgres://127.0.0.1/test", 7000).1,
            "127.0.0.1:5432"
        );
    }
}
