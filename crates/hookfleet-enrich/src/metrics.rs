//! Every metric the enrichment crate emits, declared once.

/// GeoIP database reloads by `result` (`ok`, `failed`).
pub const GEOIP_RELOADS: &str = "hookfleet_enrich_geoip_reloads_total";
/// GeoIP records that could not be decoded (a damaged database).
pub const GEOIP_DECODE_FAILURES: &str = "hookfleet_enrich_geoip_decode_failures_total";
/// Lookup-cache answers by `table` (`campaign`, `user_by_id`,
/// `user_by_referral_token`) and `result` (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "hookfleet_enrich_cache_lookups_total";

/// Registers help texts with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(GEOIP_RELOADS, "GeoIP database reloads by result.");
    metrics::describe_counter!(
        GEOIP_DECODE_FAILURES,
        "GeoIP records that could not be decoded."
    );
    metrics::describe_counter!(
        CACHE_LOOKUPS,
        "Campaign and user lookups by table and cache result (a miss queries the database)."
    );
}
