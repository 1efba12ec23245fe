//! Building AWS clients: rustls on ring, the standard environment
//! variables, and timeouts short enough that a dead endpoint turns into an
//! error well inside Tolinku's 10-second patience.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

/// Timeouts for every AWS call, in one place.
#[derive(Debug, Clone, Copy)]
pub struct AwsTimeouts {
    /// How long to wait for a TCP (and TLS) connection.
    pub connect: Duration,
    /// One attempt of one call.
    pub attempt: Duration,
    /// One call, all retries included.
    pub operation: Duration,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(5),
            operation: Duration::from_secs(8),
        }
    }
}

impl AwsTimeouts {
    /// For long polls (`WaitTimeSeconds` 20): the attempt must outlive the
    /// poll.
    pub fn long_poll() -> Self {
        Self {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(40),
        }
    }
}

/// Loads the SDK configuration from the standard variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials) with a rustls/ring HTTPS
/// client. Retries are the SDK's standard mode with at most 3 attempts.
pub async fn load_config(timeouts: AwsTimeouts) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .operation_attempt_timeout(timeouts.attempt)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The HTTP client every AWS client uses: hyper with rustls on ring (no
/// aws-lc-rs, no OpenSSL). Plain `http://` endpoints (LocalStack) work too.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An SNS client.
pub fn sns(config: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

/// An SQS client.
pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
