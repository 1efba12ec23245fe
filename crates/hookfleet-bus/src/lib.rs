//! The AWS bus: how hookfleet talks to SNS and SQS.
//!
//! - [`aws`]: SDK configuration (rustls on ring, timeouts).
//! - [`attributes`]: the message attribute names of SPEC §5.
//! - [`topology`]: `infra/topology.toml`, the one description of the topic,
//!   queues, dead-letter queues and filter policies.
//! - [`apply`]: `hookfleet infra apply`, creating or updating that topology.
//! - [`resolve`]: topic ARNs, queue URLs and queue ARNs from names.
//! - [`publisher`]: the batching SNS publisher used by ingest.
//! - [`metrics`]: the metric names this crate emits.
//! - [`wire`]: our own client for the per-event SNS and SQS calls.

pub mod apply;
pub mod attributes;
pub mod aws;
pub mod metrics;
pub mod publisher;
pub mod resolve;
pub mod topology;
pub mod wire;
