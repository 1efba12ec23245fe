//! hookfleet's own client for the AWS calls on the hot path: SNS
//! `PublishBatch` ([`sns`]) and the SQS calls a worker makes per message
//! ([`sqs`]), CRM's delayed welcome follow-ups among them.
//!
//! The AWS SDK costs about 300 µs of CPU per call on this project's
//! machines (its orchestration, interceptors and parsers), which is more
//! than everything else ingest and the workers do per batch together.
//! These calls are few and fixed, so they are made here directly: a hyper
//! client (rustls on ring), SigV4 signing with a cached daily key (the
//! `sigv4` module), a request body built in one buffer and a response
//! parsed into exactly the fields used.
//!
//! Everything else (start-up lookups, `infra apply`, the CLI) stays on the
//! SDK. Configuration comes from the same [`SdkConfig`]: region,
//! credentials (the SDK's provider chain, cached here until five minutes
//! before they expire), `AWS_ENDPOINT_URL`, timeouts and the number of
//! attempts. Like the SDK's standard retry mode, a call is retried with a
//! jittered exponential backoff after a transport error, a 5xx answer or
//! throttling, within its operation timeout.
//!
//! Known limit: a `PublishBatch` or `SendMessage` retried after a
//! transport error (the request may have arrived, its answer did not) can
//! deliver the same message twice; every consumer deduplicates by
//! `event_id`, so this costs a redelivery, not a second effect.
//!
//! Known limit: only the global endpoint form is built
//! (`https://<service>.<region>.amazonaws.com`, or the configured endpoint
//! URL for every service); FIPS, dual-stack and China-partition endpoints
//! need `AWS_ENDPOINT_URL` set to them.

pub(crate) mod sigv4;
pub mod sns;
pub mod sqs;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::aws::AwsTimeouts;

/// Credentials are refreshed this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// The first retry waits up to this long (full jitter), doubling per
/// attempt.
const RETRY_BASE: Duration = Duration::from_millis(50);

/// Why a call failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Configuration that cannot make a request (no region, a bad
    /// endpoint, no credentials).
    #[error("{0}")]
    Config(String),
    /// No answer: connection refused or reset, a timeout.
    #[error("{0}")]
    Transport(String),
    /// The service answered with an error.
    #[error("HTTP {status}: {code}: {message}")]
    Service {
        status: u16,
        /// The error code, e.g. `QueueDoesNotExist` or `NotFound`.
        code: String,
        message: String,
    },
    /// A 2xx answer that could not be read.
    #[error("unreadable answer: {0}")]
    Decode(String),
}

impl WireError {
    /// The service's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the service asked us to slow down.
    pub fn is_throttling(&self) -> bool {
        self.code().is_some_and(|code| {
            code.contains("Throttl")
                || code.contains("OverLimit")
                || code.contains("SlowDown")
                || code == "RequestLimitExceeded"
        })
    }

    /// Whether trying the same call again may succeed: no answer, a 5xx
    /// or throttling.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Service { status, .. } => *status >= 500 || self.is_throttling(),
            Self::Config(_) | Self::Decode(_) => false,
        }
    }
}

/// A batch entry the service refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    /// The entry's position in the request.
    pub index: usize,
    pub code: String,
    pub message: String,
    pub sender_fault: bool,
}

/// How one service's requests are sent and its errors read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protocol {
    /// The request body's `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Reads a non-2xx answer: status, headers, body.
    pub(crate) parse_error: fn(u16, &http::HeaderMap, &[u8]) -> WireError,
}

/// One service's endpoint, as requests use and sign it.
#[derive(Debug, Clone)]
struct Endpoint {
    uri: http::Uri,
    /// The `Host` header: `host` or `host:port`.
    host: String,
    /// The canonical path (`/` unless the configured endpoint has one).
    path: String,
}

impl Endpoint {
    fn new(url: &str) -> Result<Self, WireError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| WireError::Config(format!("endpoint {url:?}: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| WireError::Config(format!("endpoint {url:?} has no host")))?;
        let path = match uri.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        Ok(Self { uri, host, path })
    }
}

/// The hyper client every call shares (one connection pool).
type Http = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A signed-request client for one AWS service. Cheap to clone.
#[derive(Clone)]
pub struct AwsWire {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AwsWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsWire")
            .field("endpoint", &self.inner.endpoint.uri)
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: Http,
    service: &'static str,
    endpoint: Endpoint,
    signer: sigv4::Signer,
    credentials: CredentialCache,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    max_attempts: u32,
}

impl AwsWire {
    /// A client for `service` (`sns`, `sqs`) configured from `sdk`: its
    /// region, credentials provider, endpoint URL, timeouts and retry
    /// attempts. `fallback` supplies the timeouts `sdk` does not set.
    pub fn new(
        sdk: &SdkConfig,
        service: &'static str,
        fallback: AwsTimeouts,
    ) -> Result<Self, WireError> {
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| WireError::Config("no AWS region configured".to_owned()))?;
        let endpoint = match sdk.endpoint_url() {
            Some(url) => Endpoint::new(url)?,
            None => Endpoint::new(&format!("https://{service}.{region}.amazonaws.com/"))?,
        };
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| WireError::Config("no AWS credentials provider".to_owned()))?;
        let timeouts = sdk.timeout_config();
        let connect = timeouts
            .and_then(|t| t.connect_timeout())
            .unwrap_or(fallback.connect);
        let attempt_timeout = timeouts
            .and_then(|t| t.operation_attempt_timeout())
            .unwrap_or(fallback.attempt);
        let operation_timeout = timeouts
            .and_then(|t| t.operation_timeout())
            .unwrap_or(fallback.operation);
        let max_attempts = sdk.retry_config().map_or(3, |r| r.max_attempts()).max(1);

        Ok(Self {
            inner: Arc::new(Inner {
                http: http_client(connect)?,
                service,
                endpoint,
                signer: sigv4::Signer::new(region, service),
                credentials: CredentialCache::new(provider),
                attempt_timeout,
                operation_timeout,
                max_attempts,
            }),
        })
    }

    /// Posts `body` signed, retrying what is retryable, and returns the
    /// 2xx answer's body. `target` is the JSON protocol's `X-Amz-Target`.
    async fn call(
        &self,
        protocol: Protocol,
        target: Option<&str>,
        body: Bytes,
    ) -> Result<Bytes, WireError> {
        let inner = &*self.inner;
        let deadline = tokio::time::Instant::now() + inner.operation_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let timeout = inner.attempt_timeout.min(remaining);
            let result =
                match tokio::time::timeout(timeout, self.attempt(protocol, target, &body)).await {
                    Ok(result) => result,
                    Err(_) => Err(WireError::Transport(format!(
                        "no answer from {} within {timeout:?}",
                        inner.endpoint.host
                    ))),
                };
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= inner.max_attempts {
                return Err(error);
            }
            let ceiling = RETRY_BASE.saturating_mul(1 << (attempt - 1).min(10));
            let pause = ceiling.mul_f64(rand::random::<f64>());
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt(
        &self,
        protocol: Protocol,
        target: Option<&str>,
        body: &Bytes,
    ) -> Result<Bytes, WireError> {
        let inner = &*self.inner;
        let content_type = protocol.content_type;
        let credentials = inner.credentials.get().await?;
        let amz_date = amz_date(SystemTime::now());
        let authorization = inner.signer.authorization(
            &sigv4::Signing {
                access_key_id: credentials.access_key_id(),
                secret_access_key: credentials.secret_access_key(),
                session_token: credentials.session_token(),
                amz_date: &amz_date,
            },
            &sigv4::Request {
                path: &inner.endpoint.path,
                host: &inner.endpoint.host,
                content_type,
                target,
                body,
            },
        );

        let mut request = http::Request::post(inner.endpoint.uri.clone())
            .header(http::header::HOST, &inner.endpoint.host)
            .header(http::header::CONTENT_TYPE, content_type)
            .header("x-amz-date", amz_date)
            .header(http::header::AUTHORIZATION, authorization);
        if let Some(token) = credentials.session_token() {
            request = request.header("x-amz-security-token", token);
        }
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| WireError::Config(format!("cannot build the request: {e}")))?;

        let response = inner
            .http
            .request(request)
            .await
            .map_err(|e| WireError::Transport(crate::publisher::one_line(&e)))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| WireError::Transport(crate::publisher::one_line(&e)))?
            .to_bytes();
        if parts.status.is_success() {
            Ok(body)
        } else {
            Err((protocol.parse_error)(
                parts.status.as_u16(),
                &parts.headers,
                &body,
            ))
        }
    }
}

/// hyper over rustls on ring, trusting the system's roots; plain `http://`
/// endpoints (LocalStack) work too.
fn http_client(connect_timeout: Duration) -> Result<Http, WireError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| WireError::Config(format!("no usable TLS root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// `YYYYMMDDTHHMMSSZ` for `x-amz-date`.
fn amz_date(now: SystemTime) -> String {
    let now = time::OffsetDateTime::from(now);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The SDK's credentials, kept until shortly before they expire.
struct CredentialCache {
    provider: SharedCredentialsProvider,
    current: Mutex<Option<Credentials>>,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            current: Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Credentials, WireError> {
        let now = SystemTime::now();
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|expiry| expiry > now + CREDENTIALS_MARGIN)
        };
        if let Some(credentials) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| fresh(c))
        {
            return Ok(credentials.clone());
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| WireError::Config(format!("no AWS credentials: {e}")))?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(credentials.clone());
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_is_basic_iso_8601_in_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_292_672);
        assert_eq!(amz_date(at), "20261203T101112Z");
    }

    #[test]
    fn endpoints_keep_their_port_and_path() {
        let local = Endpoint::new("http://127.0.0.1:4566").unwrap();
        assert_eq!(local.host, "127.0.0.1:4566");
        assert_eq!(local.path, "/");
        let aws = Endpoint::new("https://sqs.eu-west-1.amazonaws.com/").unwrap();
        assert_eq!(aws.host, "sqs.eu-west-1.amazonaws.com");
        assert!(Endpoint::new("not a url").is_err());
    }

    #[test]
    fn retryable_means_no_answer_5xx_or_throttling() {
        let service = |status, code: &str| WireError::Service {
            status,
            code: code.to_owned(),
            message: String::new(),
        };
        assert!(WireError::Transport("reset".into()).is_retryable());
        assert!(service(503, "ServiceUnavailable").is_retryable());
        assert!(service(400, "Throttling").is_retryable());
        assert!(service(400, "RequestThrottled").is_retryable());
        assert!(!service(400, "QueueDoesNotExist").is_retryable());
        assert!(!WireError::Decode("x".into()).is_retryable());
    }
}
