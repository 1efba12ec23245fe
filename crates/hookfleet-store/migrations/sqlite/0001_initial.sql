-- hookfleet's tables on SQLite (SPEC §8, §9).
--
-- Timestamps are TEXT in one fixed UTC form, 2026-03-01T10:15:00.000000Z,
-- so that text order is time order and SQLite's date functions read them.
-- JSON is TEXT. Tables are STRICT: a value of the wrong type is refused.

CREATE TABLE events (
    event_id    TEXT NOT NULL PRIMARY KEY,
    event_type  TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    campaign    TEXT,
    country     TEXT,
    region      TEXT,
    city        TEXT,
    channel     TEXT,
    referrer_id TEXT,
    payload     TEXT NOT NULL
) STRICT;

CREATE TABLE campaign_minute_counts (
    campaign     TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (campaign, event_type, window_start)
) STRICT, WITHOUT ROWID;

CREATE TABLE campaigns (
    campaign_id     TEXT NOT NULL PRIMARY KEY,
    channel         TEXT,
    budget          REAL,
    target_audience TEXT
) STRICT;

CREATE TABLE users (
    id             TEXT NOT NULL PRIMARY KEY,
    email          TEXT,
    name           TEXT,
    referral_token TEXT UNIQUE
) STRICT;

CREATE TABLE alerts (
    id        INTEGER PRIMARY KEY,
    alert_key TEXT NOT NULL,
    rule      TEXT NOT NULL,
    fired_at  TEXT NOT NULL,
    details   TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX alerts_key_fired_at ON alerts (alert_key, fired_at DESC);
