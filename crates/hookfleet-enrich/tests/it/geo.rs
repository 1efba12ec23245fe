//! GeoIP lookups against the committed fixture, and reloads.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use hookfleet_enrich::{GeoFix, GeoIp};
use tokio_util::sync::CancellationToken;

use crate::{base_fixture, updated_fixture};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn fix(country: &str, region: Option<&str>, city: Option<&str>) -> Option<GeoFix> {
    Some(GeoFix {
        country: Some(country.into()),
        region: region.map(Into::into),
        city: city.map(Into::into),
    })
}

fn city_of(geo: &GeoIp, address: &str) -> Option<String> {
    geo.lookup(ip(address)).and_then(|f| f.city)
}

/// Writes `source`'s bytes to `dest` the safe way: a new file renamed over
/// the old one, as geoipupdate does.
fn replace_by_rename(source: &Path, dest: &Path) {
    let staging = dest.with_extension("mmdb.tmp");
    std::fs::copy(source, &staging).unwrap();
    std::fs::rename(&staging, dest).unwrap();
}

fn write_by_rename(bytes: &[u8], dest: &Path) {
    let staging = dest.with_extension("mmdb.tmp");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(&staging, dest).unwrap();
}

#[test]
fn ipv4_lookups() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    assert_eq!(
        geo.lookup(ip("81.2.69.142")),
        fix("GB", Some("ENG"), Some("London"))
    );
    assert_eq!(
        geo.lookup(ip("216.160.83.56")),
        fix("US", Some("WA"), Some("Milton"))
    );
}

#[test]
fn ipv6_lookup() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    assert_eq!(
        geo.lookup(ip("2a02:ff0::1")),
        fix("SE", Some("AB"), Some("Stockholm"))
    );
    assert_eq!(
        geo.lookup(ip("2a02:ff0:ffff:ffff::1")),
        fix("SE", Some("AB"), Some("Stockholm"))
    );
}

#[test]
fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    assert_eq!(
        geo.lookup(ip("::ffff:81.2.69.142")),
        fix("GB", Some("ENG"), Some("London"))
    );
}

#[test]
fn record_with_country_only() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    assert_eq!(geo.lookup(ip("175.16.199.1")), fix("CN", None, None));
}

#[test]
fn private_and_reserved_addresses_are_never_looked_up() {
    // The fixture has decoy records on 10.0.0.0/8 and 2001:db8::/32: a
    // lookup that reached the database would find them.
    let geo = GeoIp::open(base_fixture()).unwrap();
    for address in [
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "2001:db8::1",
        "127.0.0.1",
        "::1",
        "192.168.1.10",
        "fd00::1",
        "fe80::1",
        "0.0.0.0",
        "::",
    ] {
        assert_eq!(geo.lookup(ip(address)), None, "{address}");
    }
}

#[test]
fn public_addresses_not_in_the_database_are_unknown() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    assert_eq!(geo.lookup(ip("8.8.8.8")), None);
    assert_eq!(geo.lookup(ip("2606:4700:4700::1111")), None);
}

#[test]
fn info_describes_the_database() {
    let geo = GeoIp::open(base_fixture()).unwrap();
    let info = geo.info();
    assert_eq!(info.database_type, "GeoIP2-City");
    assert_eq!(info.build_epoch, 1_767_225_600);
    assert_eq!(info.path, base_fixture());
}

#[test]
fn from_setting_opens_the_named_file() {
    let geo = GeoIp::from_setting(Some(&base_fixture())).unwrap().unwrap();
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("London"));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City.mmdb");
    std::fs::write(&path, b"this is not a maxmind database").unwrap();

    let error = GeoIp::open(&path).unwrap_err();

    assert!(
        matches!(error, hookfleet_enrich::GeoError::Invalid { .. }),
        "{error:?}"
    );
}

#[test]
fn unchanged_file_is_not_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City.mmdb");
    std::fs::copy(base_fixture(), &path).unwrap();
    let geo = GeoIp::open(&path).unwrap();

    assert!(!geo.reload_if_changed());
    assert!(!geo.reload_if_changed());
}

#[test]
fn broken_replacement_keeps_the_previous_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City.mmdb");
    std::fs::copy(base_fixture(), &path).unwrap();
    let geo = GeoIp::open(&path).unwrap();

    // Half a database (its metadata is at the end), then garbage.
    let whole = std::fs::read(updated_fixture()).unwrap();
    write_by_rename(&whole[..whole.len() / 2], &path);
    assert!(!geo.reload_if_changed());
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("London"));
    assert!(
        !geo.reload_if_changed(),
        "the same broken file is not retried"
    );

    write_by_rename(b"garbage", &path);
    assert!(!geo.reload_if_changed());
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("London"));

    // A missing file (between an unlink and a rename) changes nothing.
    std::fs::remove_file(&path).unwrap();
    assert!(!geo.reload_if_changed());
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("London"));

    // A good file after broken ones is taken.
    replace_by_rename(&updated_fixture(), &path);
    assert!(geo.reload_if_changed());
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("Manchester"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reloads_after_the_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City.mmdb");
    std::fs::copy(base_fixture(), &path).unwrap();
    let geo = GeoIp::open(&path).unwrap();
    let shutdown = CancellationToken::new();
    let watcher = geo.watch(Duration::from_millis(50), shutdown.clone());
    assert_eq!(city_of(&geo, "81.2.69.142").as_deref(), Some("London"));

    replace_by_rename(&updated_fixture(), &path);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if city_of(&geo, "81.2.69.142").as_deref() == Some("Manchester") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new database was not picked up within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(geo.info().build_epoch, 1_767_225_600 + 7 * 86_400);
    // The rest of the database answers as before.
    assert_eq!(city_of(&geo, "2a02:ff0::1").as_deref(), Some("Stockholm"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watcher stops when cancelled")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoIP2-City.mmdb");
    std::fs::copy(base_fixture(), &path).unwrap();
    let geo = GeoIp::open(&path).unwrap();
    let clone = geo.clone();

    replace_by_rename(&updated_fixture(), &path);
    assert!(geo.reload_if_changed());

    assert_eq!(
        city_of(&clone, "81.2.69.142").as_deref(),
        Some("Manchester")
    );
}
