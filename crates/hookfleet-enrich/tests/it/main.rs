//! The enrichment crate against the committed GeoIP fixtures and real
//! stores (SQLite in a temporary directory, and PostgreSQL in a fresh
//! schema, skipped loudly when unreachable outside CI).

mod enrich_and_store;
mod fixture;
mod geo;
mod lookups;

use std::path::PathBuf;

/// The generator of the fixtures, compiled in so a test can check that the
/// committed files are what it writes.
#[path = "../../examples/make_geoip_fixture.rs"]
mod make_geoip_fixture;

/// `tests/fixtures/` at the workspace root.
fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The committed base database.
fn base_fixture() -> PathBuf {
    fixtures_dir().join(make_geoip_fixture::BASE_FILE)
}

/// The committed updated database.
fn updated_fixture() -> PathBuf {
    fixtures_dir().join(make_geoip_fixture::UPDATED_FILE)
}
