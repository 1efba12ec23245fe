-- hookfleet's tables on PostgreSQL (SPEC §8, §9).

-- Every stored event, once: event_id is the SHA-256 of the raw body.
CREATE TABLE events (
    event_id    text        PRIMARY KEY,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    campaign    text,
    country     text,
    region      text,
    city        text,
    channel     text,
    referrer_id text,
    payload     jsonb       NOT NULL
);

-- Exactly-once per-minute counts; a missing campaign is 'unknown'.
CREATE TABLE campaign_minute_counts (
    campaign     text        NOT NULL,
    event_type   text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (campaign, event_type, window_start)
);

-- Lookup tables, filled by whoever owns campaigns and users.
CREATE TABLE campaigns (
    campaign_id     text PRIMARY KEY,
    channel         text,
    budget          numeric,
    target_audience text
);

CREATE TABLE users (
    id             text PRIMARY KEY,
    email          text,
    name           text,
    referral_token text UNIQUE
);

-- Fired alerts (SPEC §9). One row per alert sent; the cooldown looks up
-- the latest row of a key.
CREATE TABLE alerts (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key text        NOT NULL,
    rule      text        NOT NULL,
    fired_at  timestamptz NOT NULL,
    details   jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX alerts_key_fired_at ON alerts (alert_key, fired_at DESC);
