-- The side-effect ledger (SPEC §10); see migrations/postgres for the
-- meaning of each column. Timestamps are TEXT in the store's fixed UTC
-- form (2026-03-01T10:15:00.000000Z).
CREATE TABLE effect_ledger (
    effect_key       TEXT    NOT NULL PRIMARY KEY,
    state            TEXT    NOT NULL CHECK (state IN ('in_progress', 'done')),
    attempt          INTEGER NOT NULL CHECK (attempt >= 1),
    lease_until      TEXT    NOT NULL,
    first_claimed_at TEXT    NOT NULL,
    claimed_at       TEXT    NOT NULL,
    completed_at     TEXT,
    CHECK ((state = 'done') = (completed_at IS NOT NULL))
) STRICT, WITHOUT ROWID;
