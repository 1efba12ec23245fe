//! Per-minute windows: which count an event adds to.
//!
//! Computed here, once, for both backends, so PostgreSQL and SQLite agree
//! on what "the minute" of an event is: its envelope timestamp in UTC with
//! seconds and fractions dropped.

use std::collections::BTreeMap;

use time::{OffsetDateTime, UtcOffset};

use crate::NewEvent;

/// The campaign an event without `data.campaign` is counted under.
pub const UNKNOWN_CAMPAIGN: &str = "unknown";

/// The key of one `campaign_minute_counts` row.
///
/// Ordered so that every transaction updates count rows in the same order,
/// which keeps concurrent PostgreSQL writers from deadlocking each other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WindowKey<'a> {
    pub(crate) campaign: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) window_start: OffsetDateTime,
}

impl<'a> WindowKey<'a> {
    /// The window `event` counts in.
    pub(crate) fn of(event: &'a NewEvent) -> Self {
        Self {
            campaign: event.campaign.as_deref().unwrap_or(UNKNOWN_CAMPAIGN),
            event_type: &event.event_type,
            window_start: minute_of(event.occurred_at),
        }
    }
}

/// `at` in UTC, truncated to the minute.
pub fn minute_of(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(UtcOffset::UTC);
    utc.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .expect("zero is a valid second and nanosecond")
}

/// How much each window grows by when `events` are stored.
pub(crate) fn window_counts<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
) -> BTreeMap<WindowKey<'a>, i64> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(WindowKey::of(event)).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use time::macros::datetime;

    use super::*;

    fn event(campaign: Option<&str>, event_type: &str, occurred_at: OffsetDateTime) -> NewEvent {
        NewEvent {
            event_id: "e".into(),
            event_type: event_type.into(),
            occurred_at,
            received_at: occurred_at,
            campaign: campaign.map(Into::into),
            country: None,
            region: None,
            city: None,
            channel: None,
            referrer_id: None,
            payload: RawValue::from_string("{}".into()).unwrap(),
        }
    }

    #[test]
    fn minute_drops_seconds_and_converts_to_utc() {
        assert_eq!(
            minute_of(datetime!(2026-03-01 10:15:59.999999 +02:00)),
            datetime!(2026-03-01 08:15:00 UTC)
        );
        assert_eq!(
            minute_of(datetime!(2026-03-01 10:15:00 UTC)),
            datetime!(2026-03-01 10:15:00 UTC)
        );
    }

    #[test]
    fn counts_group_by_campaign_type_and_minute() {
        let events = [
            event(
                Some("spring"),
                "link.clicked",
                datetime!(2026-03-01 10:15:01 UTC),
            ),
            event(
                Some("spring"),
                "link.clicked",
                datetime!(2026-03-01 10:15:59 UTC),
            ),
            event(
                Some("spring"),
                "link.clicked",
                datetime!(2026-03-01 10:16:00 UTC),
            ),
            event(
                Some("spring"),
                "install.tracked",
                datetime!(2026-03-01 10:15:30 UTC),
            ),
            event(None, "link.clicked", datetime!(2026-03-01 10:15:30 UTC)),
        ];
        let counts: Vec<_> = window_counts(&events)
            .into_iter()
            .map(|(k, n)| (k.campaign, k.event_type, k.window_start.minute(), n))
            .collect();
        assert_eq!(
            counts,
            [
                ("spring", "install.tracked", 15, 1),
                ("spring", "link.clicked", 15, 2),
                ("spring", "link.clicked", 16, 1),
                ("unknown", "link.clicked", 15, 1),
            ]
        );
    }
}
