//! The side-effect ledger: each outbound effect (a CRM update, a welcome
//! workflow trigger) performed once per event, across redeliveries,
//! replicas and restarts (SPEC §10).
//!
//! # The protocol
//!
//! One row per effect key (table `effect_ledger`, migration 0003). A
//! worker about to call a destination:
//!
//! 1. **claims** the key for a lease ([`Store::claim_effect`]) and gets
//!    one of
//!    - [`Claim::Claimed`]: nobody did it and nobody holds it — call now;
//!    - [`Claim::AlreadyDone`]: done before — do not call, delete the
//!      message;
//!    - [`Claim::HeldByOther`]: another worker (or this one, for a
//!      duplicate message) is on it until `until` — try again after;
//! 2. calls the destination, and then either
//! 3. **completes** the claim after a 2xx ([`Store::complete_effect`]), or
//!    **releases** it after a failure ([`Store::release_effect`]) so the
//!    retry can claim it again at once.
//!
//! A claim a crashed worker never completed or released stays in progress
//! until its lease runs out; the next claim after that takes it over (the
//! row's `attempt` goes up). The caller keeps the lease longer than its
//! longest call (the HTTP timeout), so a live holder always finishes
//! before anyone else may start.
//!
//! # What is guaranteed
//!
//! - While a claim's lease runs, nobody else gets [`Claim::Claimed`] for
//!   the key: the claim is a single atomic statement on PostgreSQL
//!   (`INSERT … ON CONFLICT DO UPDATE … WHERE` the lease expired
//!   `RETURNING`, which re-checks the condition on the latest row version
//!   under the row lock) and a `BEGIN IMMEDIATE` transaction on SQLite
//!   (one writer at a time, processes included).
//! - Once completed, a key is never claimed again.
//! - Not guaranteed, and impossible without the destination's help: a
//!   worker that dies after the destination acted but before
//!   [`Store::complete_effect`] leaves a claim that is taken over after
//!   the lease, so the destination is called again. Callers send the same
//!   idempotency key on every attempt (`Idempotency-Key: <event_id>`) so
//!   that the destination can recognise the repeat.
//!
//! Every claim carries its `attempt` number, a fencing token: a release
//! only undoes the claim it was given, never a later worker's takeover.
//! A completion is not fenced: it records that the effect happened,
//! whoever's attempt it was.
//!
//! # Clocks
//!
//! Leases are measured by the database's clock on PostgreSQL (`now()`),
//! so replicas with skewed clocks agree, and by the local clock on SQLite,
//! whose file only one host can use.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::time::Duration;

use time::OffsetDateTime;

use crate::{Backend, Store, StoreError};

/// The longest effect key accepted, in bytes.
pub const MAX_EFFECT_KEY_LEN: usize = 512;

/// The longest lease accepted: a day. Leases are meant to be a little
/// longer than one call.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the effect until the claim's lease ends: perform
    /// it, then complete or release the claim.
    Claimed(EffectClaim),
    /// The effect was performed before: do not perform it again.
    AlreadyDone,
    /// Another claim holds the effect until `until`; try again after it.
    HeldByOther {
        /// When that claim's lease ends.
        until: OffsetDateTime,
    },
}

/// A claim held on an effect, to complete or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectClaim {
    effect_key: String,
    attempt: i32,
    lease_until: OffsetDateTime,
}

impl EffectClaim {
    /// The effect's key.
    pub fn effect_key(&self) -> &str {
        &self.effect_key
    }

    /// Which claim of the key this is: 1 for the first, more after a
    /// release or a takeover of an expired lease.
    pub fn attempt(&self) -> u32 {
        self.attempt.max(0) as u32
    }

    /// When the lease ends.
    pub fn lease_until(&self) -> OffsetDateTime {
        self.lease_until
    }
}

/// Where an effect stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectState {
    /// Claimed and not completed: held while the lease runs, claimable
    /// after it.
    InProgress,
    /// Performed.
    Done,
}

impl EffectState {
    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "in_progress" => Ok(Self::InProgress),
            "done" => Ok(Self::Done),
            other => Err(StoreError::Invalid(format!(
                "effect_ledger.state holds {other:?}"
            ))),
        }
    }
}

/// One row of the ledger, for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectRecord {
    /// The effect's key.
    pub effect_key: String,
    /// In progress or done.
    pub state: EffectState,
    /// How many times the effect was claimed.
    pub attempt: u32,
    /// When the latest claim's lease ends (or ended).
    pub lease_until: OffsetDateTime,
    /// When the effect was first claimed.
    pub first_claimed_at: OffsetDateTime,
    /// When the latest claim was made.
    pub claimed_at: OffsetDateTime,
    /// When it was completed, if it was.
    pub completed_at: Option<OffsetDateTime>,
}

/// How many times a PostgreSQL claim looks again when the row changed
/// between its insert attempt and its read (a holder released or its
/// lease ran out in between).
const CLAIM_ROUNDS: usize = 3;

impl Store {
    /// Claims the effect `effect_key` for `lease` (see the
    /// [module documentation](self)). Keys are at most
    /// [`MAX_EFFECT_KEY_LEN`] bytes; leases between a millisecond and
    /// [`MAX_LEASE`].
    pub async fn claim_effect(
        &self,
        effect_key: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        check_key(effect_key)?;
        if lease < Duration::from_millis(1) || lease > MAX_LEASE {
            return Err(StoreError::Invalid(format!(
                "effect lease {lease:?} is outside 1 ms..=24 h"
            )));
        }
        match &self.backend {
            Backend::Postgres(pool) => {
                for _ in 0..CLAIM_ROUNDS {
                    if let Some(claim) = postgres::claim(pool, effect_key, lease).await? {
                        return Ok(claim);
                    }
                }
                // The row kept changing under us: someone is busy with it.
                Ok(Claim::HeldByOther {
                    until: OffsetDateTime::now_utc(),
                })
            }
            Backend::Sqlite(pool) => sqlite::claim(pool, effect_key, lease).await,
        }
    }

    /// Marks the claimed effect done: it is never claimed again. Call it
    /// after the destination accepted the effect.
    pub async fn complete_effect(&self, claim: &EffectClaim) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::complete(pool, &claim.effect_key).await,
            Backend::Sqlite(pool) => sqlite::complete(pool, &claim.effect_key).await,
        }
    }

    /// Gives the claim up after a failed attempt, so the next claim (a
    /// retry) succeeds at once. Does nothing when the claim was already
    /// taken over or completed.
    pub async fn release_effect(&self, claim: &EffectClaim) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::release(pool, claim).await,
            Backend::Sqlite(pool) => sqlite::release(pool, claim).await,
        }
    }

    /// The ledger's row for `effect_key`, if any.
    pub async fn effect(&self, effect_key: &str) -> Result<Option<EffectRecord>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => postgres::record(pool, effect_key).await,
            Backend::Sqlite(pool) => sqlite::record(pool, effect_key).await,
        }
    }
}

fn check_key(effect_key: &str) -> Result<(), StoreError> {
    if effect_key.is_empty() || effect_key.len() > MAX_EFFECT_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "effect key must be 1 to {MAX_EFFECT_KEY_LEN} bytes"
        )));
    }
    Ok(())
}
