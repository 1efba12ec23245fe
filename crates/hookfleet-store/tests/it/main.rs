//! The store against real databases: every scenario runs on SQLite (a
//! temporary directory) and on PostgreSQL (a fresh schema per test,
//! skipped loudly when PostgreSQL is unreachable outside CI).

mod connect;
mod outage;
mod scenarios;
mod support;

/// Declares each scenario twice, as `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::sqlite().await;
                    crate::scenarios::$name(db.store()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = hookfleet_store::testing::postgres(stringify!($name)).await
                    else {
                        return;
                    };
                    crate::scenarios::$name(db.store()).await;
                    db.drop().await;
                }
            )*
        }
    };
}

on_both_backends!(
    stores_event_with_its_columns,
    duplicate_in_same_batch_counted_once,
    duplicate_across_batches_changes_nothing,
    late_event_counts_in_its_own_minute,
    missing_campaign_counts_as_unknown,
    counts_add_up_over_several_batches,
    concurrent_overlapping_batches_count_exactly_once,
    large_batch_is_stored_in_one_call,
    empty_batch_does_nothing,
    campaign_lookup,
    user_lookups_by_id_and_referral_token,
);
