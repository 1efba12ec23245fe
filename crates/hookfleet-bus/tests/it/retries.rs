//! Retries and timeouts of our own client, against a local HTTP server
//! that answers from a script and records what it was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookfleet_bus::wire::sqs::{Receive, Sqs};
use hookfleet_bus::wire::{AwsWire, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer; `None` holds the connection open, never answering.
type Answer = Option<(u16, &'static str)>;

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

/// Serves `script` in order, one answer per request (the last one
/// repeated), and records every request.
async fn scripted(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let Some(request) = read_request(&mut socket).await else {
                continue;
            };
            let answer = {
                let mut seen = record.lock().unwrap();
                seen.push(request);
                script[(seen.len() - 1).min(script.len() - 1)]
            };
            tokio::spawn(async move {
                let Some((status, body)) = answer else {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let read = socket.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
            return Some(Seen { head, body });
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

async fn client(url: &str, attempts: u32) -> Sqs {
    let config = crate::config_for(url, crate::quick(), attempts).await;
    Sqs::new(AwsWire::new(&config, "sqs", crate::quick()).expect("wire"))
}

async fn receive_once(sqs: &Sqs) -> Result<usize, WireError> {
    sqs.receive(Receive {
        queue_url: "http://queue/000000000000/q",
        max_messages: 10,
        wait_seconds: 0,
        visibility_seconds: 30,
        system_attributes: &["ApproximateReceiveCount"],
    })
    .await
    .map(|messages| messages.len())
}

const ONE_MESSAGE: &str = r#"{"Messages":[{"MessageId":"m","ReceiptHandle":"r","Body":"b"}]}"#;

#[tokio::test]
async fn a_5xx_and_throttling_are_retried_until_an_answer() {
    let (url, seen) = scripted(vec![
        Some((503, "{}")),
        Some((
            400,
            r#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}"#,
        )),
        Some((200, ONE_MESSAGE)),
    ])
    .await;
    let sqs = client(&url, 3).await;

    assert_eq!(receive_once(&sqs).await, Ok(1));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two retries, then the answer");
    for request in &seen {
        let head = request.head.to_ascii_lowercase();
        assert!(head.starts_with("post / http/1.1"), "{head}");
        assert!(
            head.contains("x-amz-target: amazonsqs.receivemessage"),
            "{head}"
        );
        assert!(
            head.contains("authorization: aws4-hmac-sha256 credential=test/"),
            "{head}"
        );
        assert!(head.contains("/us-east-1/sqs/aws4_request"), "{head}");
        assert!(
            request.body.contains(r#""MaxNumberOfMessages":10"#),
            "{}",
            request.body
        );
        assert!(
            request.body.contains(r#""MessageAttributeNames":["All"]"#),
            "{}",
            request.body
        );
    }
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (url, seen) = scripted(vec![Some((
        400,
        r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
    ))])
    .await;
    let sqs = client(&url, 3).await;

    let error = receive_once(&sqs).await.expect_err("a 400");
    assert_eq!(error.code(), Some("QueueDoesNotExist"));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn attempts_are_bounded_and_the_last_error_is_kept() {
    let (url, seen) = scripted(vec![Some((500, "{}"))]).await;
    let sqs = client(&url, 2).await;

    let error = receive_once(&sqs).await.expect_err("always 500");
    assert!(
        matches!(&error, WireError::Service { status: 500, .. }),
        "{error}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "max attempts 2");
}

#[tokio::test]
async fn a_silent_server_is_a_transport_error_within_the_operation_timeout() {
    let (url, _seen) = scripted(vec![None]).await;
    let sqs = client(&url, 3).await;

    // Each attempt times out after 500 ms; the call must end on its own
    // (the outer bound only keeps a broken client from hanging the test).
    let error = tokio::time::timeout(Duration::from_secs(30), receive_once(&sqs))
        .await
        .expect("the call ends by its own timeouts")
        .expect_err("no answer");
    assert!(matches!(error, WireError::Transport(_)), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let sqs = client(&format!("http://127.0.0.1:{port}"), 2).await;

    let error = receive_once(&sqs).await.expect_err("refused");
    assert!(matches!(error, WireError::Transport(_)), "{error}");
}
