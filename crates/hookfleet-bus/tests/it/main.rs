//! hookfleet's own SNS and SQS client ([`hookfleet_bus::wire`]): against
//! a real LocalStack for what the services do with our requests, and
//! against a scripted local HTTP server for retries and timeouts.

mod localstack;
mod retries;

use std::time::Duration;

use aws_config::SdkConfig;
use hookfleet_bus::aws::AwsTimeouts;

/// An SDK configuration for `endpoint` with dummy credentials, the given
/// timeouts and `attempts` attempts per call.
pub(crate) async fn config_for(endpoint: &str, timeouts: AwsTimeouts, attempts: u32) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(hookfleet_bus::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .timeout_config(timeouts.to_config())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await
}

/// Short timeouts for calls that must fail fast.
pub(crate) fn quick() -> AwsTimeouts {
    AwsTimeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_millis(500),
        operation: Duration::from_secs(3),
    }
}
