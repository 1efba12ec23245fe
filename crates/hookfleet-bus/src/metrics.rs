//! Every metric the bus crate emits, declared once.

/// Entries per `PublishBatch` call (histogram).
pub const PUBLISH_BATCH_SIZE: &str = "hookfleet_bus_publish_batch_size";
/// Duration of a `PublishBatch` call, seconds (histogram).
pub const PUBLISH_CALL_DURATION: &str = "hookfleet_bus_publish_call_duration_seconds";
/// `PublishBatch` calls by `result` (`ok`, `partial`, `failed`).
pub const PUBLISH_BATCHES: &str = "hookfleet_bus_publish_batches_total";
/// Events waiting for a batch (gauge).
pub const PUBLISH_QUEUE_DEPTH: &str = "hookfleet_bus_publish_queue_depth";

/// Registers help texts with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(PUBLISH_BATCH_SIZE, "Entries per SNS PublishBatch call.");
    metrics::describe_histogram!(
        PUBLISH_CALL_DURATION,
        metrics::Unit::Seconds,
        "Duration of SNS PublishBatch calls."
    );
    metrics::describe_counter!(PUBLISH_BATCHES, "SNS PublishBatch calls by result.");
    metrics::describe_gauge!(PUBLISH_QUEUE_DEPTH, "Events waiting to be batched.");
}
