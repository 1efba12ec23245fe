//! `hookfleet-crm`'s handler of the `hookfleet-crm` queue: each
//! `referral.completed` becomes one `POST {HOOKFLEET_CRM_URL}/referrals`.

use hookfleet_worker::{Delivery, Handler, Outcome};

use crate::body::referral_update;
use crate::destination::Destination;
use crate::effect::{Effect, Effects};

/// The event type this queue carries (SPEC §4).
pub const REFERRAL_COMPLETED: &str = "referral.completed";

/// Sends each completed referral to the CRM, once.
#[derive(Debug)]
pub struct ReferralHandler {
    effects: Effects,
    crm: Destination,
}

impl ReferralHandler {
    /// Records effects in `effects` and calls `crm`.
    pub fn new(effects: Effects, crm: Destination) -> Self {
        Self { effects, crm }
    }
}

/// The ledger key of an event's CRM update.
pub fn effect_key(event_id: &str) -> String {
    format!("crm:referral:{event_id}")
}

impl Handler for ReferralHandler {
    async fn handle(&self, delivery: &Delivery<'_>) -> Outcome {
        if delivery.event_type() != REFERRAL_COMPLETED {
            // Misrouted (a filter policy changed, a redrive to the wrong
            // queue): the operator should see it, not lose it.
            return Outcome::give_up(format!(
                "{} on the CRM queue, which takes only {REFERRAL_COMPLETED}",
                delivery.event_type()
            ));
        }
        let event_id = delivery.event_id.to_hex();
        let body = match referral_update(delivery.envelope, &event_id) {
            Ok(body) => body,
            Err(reason) => return Outcome::give_up(reason),
        };
        let effect = Effect {
            key: effect_key(&event_id),
            idempotency_key: &event_id,
            body,
        };
        self.effects.perform(&self.crm, &effect).await
    }
}
