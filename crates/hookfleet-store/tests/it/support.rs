//! Building events and SQLite stores for the scenarios.

use hookfleet_store::{NewEvent, Store};
use serde_json::value::RawValue;
use tempfile::TempDir;
use time::OffsetDateTime;

/// A SQLite store in its own temporary directory (removed on drop).
pub(crate) struct SqliteDb {
    store: Store,
    _dir: TempDir,
}

impl SqliteDb {
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

pub(crate) async fn sqlite() -> SqliteDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(None, dir.path())
        .await
        .expect("sqlite store");
    SqliteDb { store, _dir: dir }
}

/// An event with a JSON payload naming it.
pub(crate) fn event(
    id: &str,
    campaign: Option<&str>,
    event_type: &str,
    occurred_at: OffsetDateTime,
) -> NewEvent {
    let payload = serde_json::json!({
        "event": event_type,
        "timestamp": occurred_at.to_string(),
        "data": {"campaign": campaign, "id": id},
    });
    NewEvent {
        event_id: id.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at,
        received_at: occurred_at + time::Duration::seconds(1),
        campaign: campaign.map(str::to_owned),
        country: None,
        region: None,
        city: None,
        channel: None,
        referrer_id: None,
        payload: RawValue::from_string(payload.to_string()).expect("json"),
    }
}
