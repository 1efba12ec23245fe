//! `hookfleet-crm`: the CRM worker (SPEC §10). It drains two queues, one
//! per outbound destination, each behind its own circuit breaker, so a
//! failing CRM pauses only the CRM's queue:
//!
//! | queue | event | effect | breaker |
//! |---|---|---|---|
//! | `hookfleet-crm` | `referral.completed` | `POST {HOOKFLEET_CRM_URL}/referrals` ([`referral`]) | `crm` |
//! | `hookfleet-welcome` | `install.tracked` | after `HOOKFLEET_WELCOME_DELAY` (an SQS message timer), `POST {HOOKFLEET_WELCOME_URL}` ([`welcome`]) | `welcome` |
//!
//! Each call carries `Idempotency-Key: <event_id>` and a JSON body of the
//! event's fields ([`body`]). What an answer means — 2xx done; 429, 5xx
//! and no answer retried (honouring `Retry-After`) and counted by the
//! breaker; other statuses dead-lettered with `HTTP <status>: <first
//! line>` — is in [`destination`]. With a destination's URL unset its
//! calls are logged instead of made, and still recorded.
//!
//! # Once per event
//!
//! SQS delivers at least once, Tolinku retries send the same event again,
//! and workers crash. Every call goes through the effect ledger
//! ([`hookfleet_store::ledger`], one row per effect key
//! `crm:referral:<event_id>` or `welcome:<event_id>`; see [`effect`]):
//! claim the key for a lease, call, mark it done after a 2xx.
//!
//! What that guarantees, precisely:
//!
//! - **A redelivery or a duplicate event after the call completed makes no
//!   call**: the ledger says done; the message is deleted.
//! - **Two workers never call for the same event at the same time**: the
//!   claim excludes others for `HOOKFLEET_EFFECT_LEASE_SECS`, which is
//!   longer than the HTTP timeout, so a live holder has always finished
//!   (completed or released) before another claim can succeed.
//! - **A crash loses nothing**: a message whose worker died reappears
//!   after its visibility timeout; a claim the dead worker held is taken
//!   over once its lease has run out; a welcome delay lives in SQS, not in
//!   the process.
//! - **Not guaranteed without the destination's help**: a worker killed
//!   after the destination acted but before the ledger recorded it leaves
//!   an unfinished claim, and the event is called again after the lease.
//!   Every attempt for an event sends the same `Idempotency-Key` (the
//!   event id) and the same body, so a destination that honours the key
//!   applies the effect once. That window is one HTTP answer plus one
//!   database write wide.
//!
//! # Modules
//!
//! - [`config`]: the settings, checked at start (exit 2).
//! - [`app`]: start-up, wiring and shutdown.
//! - [`referral`], [`welcome`]: the two handlers.
//! - [`effect`]: ledger-guarded calls; [`destination`]: one HTTP call and
//!   its answer; [`body`]: what each destination receives.
//! - [`delay`]: the welcome delay; [`metrics`]: metric names, declared
//!   once.

pub mod app;
pub mod body;
pub mod config;
pub mod delay;
pub mod destination;
pub mod effect;
pub mod metrics;
pub mod referral;
pub mod welcome;

pub use app::run;
