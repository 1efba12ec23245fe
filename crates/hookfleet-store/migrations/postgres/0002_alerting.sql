-- The alerts worker's shared state (SPEC §9): exact windows, cooldowns
-- and the Slack outbox. Every replica reads and writes these, so they all
-- see the same totals and fire the same alerts.

-- Events already counted: a redelivered event_id is skipped before it
-- touches a window. Pruned past the worker's event horizon.
CREATE TABLE alert_events (
    event_id    text        PRIMARY KEY,
    occurred_at timestamptz NOT NULL
);

CREATE INDEX alert_events_occurred_at ON alert_events (occurred_at);

-- Per-minute counts by scope ('click:<campaign>', 'referral_ip:<ip>', …),
-- keyed by event time truncated to the minute.
CREATE TABLE alert_window_counts (
    scope        text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (scope, window_start)
);

CREATE INDEX alert_window_counts_window_start ON alert_window_counts (window_start);

-- One row per alert key: no alert of that key fires while event time is
-- before `until`. Taken with a conditional upsert, so exactly one of
-- several concurrent firings wins.
CREATE TABLE alert_cooldowns (
    alert_key text        PRIMARY KEY,
    until     timestamptz NOT NULL
);

-- The Slack outbox: one row per alert to deliver, written in the same
-- transaction as the alert.
CREATE TABLE alert_deliveries (
    alert_id        bigint      PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at    timestamptz,
    abandoned_at    timestamptz
);

CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
