//! The committed fixtures are exactly what the generator writes.

use crate::make_geoip_fixture::{Version, build};
use crate::{base_fixture, updated_fixture};

#[test]
fn committed_fixtures_match_the_generator() {
    for (path, version) in [
        (base_fixture(), Version::Base),
        (updated_fixture(), Version::Updated),
    ] {
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == build(version),
            "{} differs from what the generator writes; regenerate it with \
             `cargo run -p hookfleet-enrich --example make_geoip_fixture`",
            path.display()
        );
    }
}

#[test]
fn fixture_is_a_geoip2_city_database() {
    let bytes = std::fs::read(base_fixture()).unwrap();
    let reader = maxminddb::Reader::from_source(bytes).unwrap();
    assert_eq!(reader.metadata().database_type, "GeoIP2-City");
    assert_eq!(reader.metadata().ip_version, 6);
    reader.verify().expect("a well-formed database");
}
