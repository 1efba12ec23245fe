//! The Tolinku webhook as hookfleet sees it.
//!
//! Three things live here, all pure and allocation-light so the ingest hot
//! path stays in the low microseconds:
//!
//! - [`Envelope`]: the `{"event", "timestamp", "data"}` body, parsed by
//!   borrowing from the raw bytes, validated with one-line reasons.
//! - [`EventId`]: the lowercase hex SHA-256 of the raw body, the key every
//!   worker deduplicates on.
//! - [`Verifier`]: HMAC-SHA256 signature checks against one or several
//!   secrets (rotation), constant-time, with secrets that never print.

mod envelope;
mod event_id;
mod signature;

pub use envelope::{Envelope, EnvelopeError, MAX_EVENT_TYPE_LEN, TEST_EVENT};
pub use event_id::EventId;
pub use signature::{MAX_BODY_BYTES, Secret, SecretsError, SignatureError, Verifier, sign};
