-- The side-effect ledger (SPEC §10): one row per outbound effect (a CRM
-- update, a welcome-workflow trigger), keyed by what makes it unique,
-- e.g. `crm:referral:<event_id>`. A worker claims the row before calling
-- the destination and marks it done after a 2xx; see
-- crates/hookfleet-store/src/ledger.rs for the protocol.
CREATE TABLE effect_ledger (
    effect_key       text        PRIMARY KEY,
    -- 'in_progress' while a worker holds (or held) the claim, then 'done'.
    state            text        NOT NULL CHECK (state IN ('in_progress', 'done')),
    -- How many times the effect was claimed: 1, or more after a release
    -- or an expired lease. The current claim's fencing token.
    attempt          integer     NOT NULL CHECK (attempt >= 1),
    -- Until when the current claim excludes others; a claim left by a
    -- crashed worker is taken over after it.
    lease_until      timestamptz NOT NULL,
    first_claimed_at timestamptz NOT NULL,
    claimed_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    CHECK ((state = 'done') = (completed_at IS NOT NULL))
);
