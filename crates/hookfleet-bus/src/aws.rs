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
    /// The SDK's form of these timeouts.
    pub fn to_config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

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
        .timeout_config(timeouts.to_config())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// A standard AWS variable that cannot work, found before any call (an
/// empty `AWS_ENDPOINT_URL` would otherwise panic inside the SDK on the
/// first request).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct AwsConfigError {
    /// The variable, e.g. `AWS_ENDPOINT_URL`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks the standard variables that can be checked without loading
/// credentials or calling anything: `AWS_ENDPOINT_URL` is a usable URL and
/// `AWS_REGION`, when set, is not empty. `--check-config` uses this.
pub fn check_environment() -> Result<(), AwsConfigError> {
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        check_endpoint(&endpoint).map_err(|reason| AwsConfigError {
            setting: "AWS_ENDPOINT_URL",
            reason,
        })?;
    }
    if std::env::var("AWS_REGION").is_ok_and(|region| region.trim().is_empty()) {
        return Err(AwsConfigError {
            setting: "AWS_REGION",
            reason: "empty".to_owned(),
        });
    }
    Ok(())
}

/// [`load_config`], after [`check_environment`] and checking that a region
/// is found. Binaries call this at start and exit 2 on an error.
pub async fn load_checked(timeouts: AwsTimeouts) -> Result<SdkConfig, AwsConfigError> {
    check_environment()?;
    let config = load_config(timeouts).await;
    if config.region().is_none_or(|r| r.as_ref().is_empty()) {
        return Err(AwsConfigError {
            setting: "AWS_REGION",
            reason: "not set".to_owned(),
        });
    }
    Ok(config)
}

/// An endpoint the SDK can use: `http(s)://host[:port][/path]`.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| format!("{endpoint:?} is not an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.parse::<u16>().is_ok() {
                host
            } else {
                ""
            }
        });
    if host.is_empty() || endpoint.contains(char::is_whitespace) {
        return Err(format!("{endpoint:?} has no valid host[:port]"));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints_are_checked() {
        for good in [
            "http://127.0.0.1:4566",
            "https://sqs.eu-west-1.amazonaws.com",
            "http://localstack:4566/",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "127.0.0.1:4566",
            "http://",
            "http://:4566",
            "http://host:port",
            "ftp://x",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
