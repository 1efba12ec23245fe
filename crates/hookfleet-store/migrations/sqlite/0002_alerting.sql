-- The alerts worker's shared state (SPEC §9): exact windows, cooldowns
-- and the Slack outbox. Timestamps as in 0001: fixed-width UTC text.

CREATE TABLE alert_events (
    event_id    TEXT NOT NULL PRIMARY KEY,
    occurred_at TEXT NOT NULL
) STRICT;

CREATE INDEX alert_events_occurred_at ON alert_events (occurred_at);

CREATE TABLE alert_window_counts (
    scope        TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (scope, window_start)
) STRICT, WITHOUT ROWID;

CREATE INDEX alert_window_counts_window_start ON alert_window_counts (window_start);

CREATE TABLE alert_cooldowns (
    alert_key TEXT NOT NULL PRIMARY KEY,
    until     TEXT NOT NULL
) STRICT;

CREATE TABLE alert_deliveries (
    alert_id        INTEGER NOT NULL PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    next_attempt_at TEXT    NOT NULL,
    lease_until     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    TEXT,
    abandoned_at    TEXT
) STRICT;

CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
