//! Message attribute names on the bus (SPEC §5). Fixed: operators' tools
//! and the acceptance checks read them.

/// The event type; SNS subscription filter policies match on it.
pub const EVENT_TYPE: &str = "event_type";
/// Lowercase hex SHA-256 of the raw body: the deduplication key.
pub const EVENT_ID: &str = "event_id";
/// When ingest accepted the webhook, RFC 3339.
pub const RECEIVED_AT: &str = "received_at";

/// Added when a worker gives a message up: one line saying why.
pub const ERROR: &str = "error";
/// Added when a worker gives a message up: which worker.
pub const WORKER: &str = "worker";
/// Added when a worker gives a message up: when, RFC 3339.
pub const FAILED_AT: &str = "failed_at";
/// Added when a worker gives a message up: `ApproximateReceiveCount`.
pub const RECEIVE_COUNT: &str = "receive_count";

/// The attributes a give-up adds, which a redrive strips again.
pub const FAILURE_ATTRIBUTES: [&str; 4] = [ERROR, WORKER, FAILED_AT, RECEIVE_COUNT];
