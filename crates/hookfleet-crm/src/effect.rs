//! One side effect, once: claim it in the ledger, call the destination,
//! then complete or release the claim, and tell the runtime what became
//! of the message.
//!
//! | ledger / answer | ledger after | message |
//! |---|---|---|
//! | already done | unchanged | `Skipped`: deleted, nothing called |
//! | held by another claim | unchanged | `Wait` until that claim's lease ends |
//! | claimed, 2xx (or URL unset: logged) | done | `Done` |
//! | claimed, 429 / 5xx / no answer | released | `Retry` (after `Retry-After` if given) |
//! | claimed, other status | released | `GiveUp`: dead letter with `HTTP <status>: …` |
//! | database unavailable | unchanged | `Wait` |
//!
//! `Skipped` and `Wait` leave the destination's breaker alone: they say
//! nothing about whether the CRM or the welcome endpoint is healthy.
//!
//! A refused effect is released rather than marked done, so that a
//! redrive from the dead-letter queue (after the cause is fixed) can make
//! it again.
//!
//! If completing the claim fails after a 2xx the message is still `Done`:
//! the effect happened, and retrying the message would only call again
//! once the lease ran out. The claim is then left to expire, so a later
//! copy of the event (a Tolinku retry) would call again, with the same
//! `Idempotency-Key`.

use std::time::Duration;

use hookfleet_store::{Claim, Store};
use hookfleet_worker::Outcome;
use time::OffsetDateTime;

use crate::destination::{Answer, Destination};
use crate::metrics::EffectOutcome;

/// The shortest wait before looking again at an effect held by another
/// claim.
const MIN_HELD_RETRY: Duration = Duration::from_secs(1);

/// The ledger and the lease every claim takes.
#[derive(Debug, Clone)]
pub struct Effects {
    store: Store,
    lease: Duration,
}

/// One effect to perform.
#[derive(Debug)]
pub struct Effect<'a> {
    /// The ledger key: `<destination>:<what>:<event_id>`.
    pub key: String,
    /// Sent as `Idempotency-Key`: the event id.
    pub idempotency_key: &'a str,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Effects {
    /// Effects recorded in `store`, each claim held for `lease` (longer
    /// than a call can take).
    pub fn new(store: Store, lease: Duration) -> Self {
        Self { store, lease }
    }

    /// Performs `effect` at `destination` unless it was performed before;
    /// see the module table.
    pub async fn perform(&self, destination: &Destination, effect: &Effect<'_>) -> Outcome {
        let metrics = destination.metrics();
        let claim = match self.store.claim_effect(&effect.key, self.lease).await {
            Ok(Claim::Claimed(claim)) => claim,
            Ok(Claim::AlreadyDone) => {
                metrics.effect(EffectOutcome::Duplicate);
                tracing::info!(
                    destination = destination.name(),
                    effect = effect.key,
                    "effect already done; not calling again"
                );
                return Outcome::Skipped;
            }
            Ok(Claim::HeldByOther { until }) => {
                metrics.effect(EffectOutcome::Held);
                let left: Duration = (until - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or_default();
                return Outcome::Wait {
                    after: Some(left.max(MIN_HELD_RETRY)),
                    reason: format!("effect {} is held by another claim", effect.key),
                };
            }
            Err(error) if error.is_retryable() => {
                return Outcome::wait(format!("effect ledger: {error}"));
            }
            Err(error) => return Outcome::give_up(format!("effect ledger: {error}")),
        };

        match destination.post(&effect.body, effect.idempotency_key).await {
            Answer::Accepted | Answer::Logged => {
                metrics.effect(EffectOutcome::Performed);
                if let Err(error) = self.store.complete_effect(&claim).await {
                    tracing::error!(
                        destination = destination.name(),
                        effect = effect.key,
                        %error,
                        "effect performed but not recorded as done; its claim will expire"
                    );
                }
                Outcome::Done
            }
            Answer::Retry { after, reason } => {
                self.release(&claim).await;
                Outcome::Retry { after, reason }
            }
            Answer::Refused { reason } => {
                self.release(&claim).await;
                Outcome::GiveUp { reason }
            }
        }
    }

    /// Releases a claim after a failed call; if that fails too, the claim
    /// simply expires with its lease.
    async fn release(&self, claim: &hookfleet_store::EffectClaim) {
        if let Err(error) = self.store.release_effect(claim).await {
            tracing::warn!(
                effect = claim.effect_key(),
                %error,
                "cannot release the claim; it expires with its lease"
            );
        }
    }
}
