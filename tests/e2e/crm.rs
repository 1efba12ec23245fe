//! `hookfleet-crm` against LocalStack, on PostgreSQL (a fresh schema per
//! test) and on the embedded SQLite file, with local HTTP receivers
//! standing in for the CRM API and the welcome workflow.
//!
//! What is asserted is what the design guarantees (see the crate docs of
//! `hookfleet-crm`):
//!
//! - one call per event, with its body and `Idempotency-Key`, however
//!   often the event is delivered (Tolinku retries, SQS duplicates, two
//!   replicas draining the same queues);
//! - a worker killed while its call is in flight leaves a claim that no
//!   one else acts on until its lease ends; after that the event is called
//!   once more, with the same `Idempotency-Key` and body — the destination
//!   sees one key, and the ledger records the effect done once;
//! - the welcome call comes after the delay, through a follow-up message,
//!   even when the worker is killed while the timer runs;
//! - a CRM outage longer than `maxReceiveCount` × visibility puts nothing
//!   in the DLQ, the welcome calls keep flowing meanwhile, and every
//!   referral is delivered once after recovery;
//! - a 400 dead-letters the event with the status in `error`.

mod config;
mod failures;
mod fleet;
mod once;

use failures::{
    a_400_from_the_crm_dead_letters_the_event_with_its_status,
    a_crm_outage_loses_nothing_and_does_not_stop_welcome_calls,
};
use once::{
    a_worker_killed_during_its_call_leaves_one_effective_call,
    each_event_is_called_once_even_when_delivered_twice,
    the_welcome_call_comes_after_the_delay_even_across_a_restart,
};

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

/// Declares each scenario twice, as `postgres::<name>` and
/// `sqlite::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
    };
}

on_both_backends!(
    each_event_is_called_once_even_when_delivered_twice,
    a_worker_killed_during_its_call_leaves_one_effective_call,
    the_welcome_call_comes_after_the_delay_even_across_a_restart,
    a_crm_outage_loses_nothing_and_does_not_stop_welcome_calls,
    a_400_from_the_crm_dead_letters_the_event_with_its_status,
);
