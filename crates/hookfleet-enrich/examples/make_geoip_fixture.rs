//! Writes the GeoIP test databases under `tests/fixtures/`:
//!
//! ```text
//! cargo run -p hookfleet-enrich --example make_geoip_fixture [-- OUT_DIR]
//! ```
//!
//! Both files are small GeoIP2-City-layout MaxMind databases with made-up
//! but plausible records (see [`NETWORKS`]), written with `mmdb-writer`
//! from `maxminddb`'s own typed `geoip2::City` records, so they decode
//! exactly like MaxMind's files. The output is reproducible: the build
//! time is fixed, so running this again gives the same bytes (a test
//! checks that the committed files match).
//!
//! - `GeoIP2-City-Test.mmdb`: the base database.
//! - `GeoIP2-City-Test-Updated.mmdb`: "next week's" version, in which
//!   `81.2.69.0/24` moved from London to Manchester; the reload test swaps
//!   it in.
//!
//! Decoy records sit on private and documentation ranges so that tests can
//! show such addresses are never looked up.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use maxminddb::geoip2::{self, Names, city};
use mmdb_writer::Writer;

/// The base database's file name.
pub(crate) const BASE_FILE: &str = "GeoIP2-City-Test.mmdb";
/// The updated database's file name.
pub(crate) const UPDATED_FILE: &str = "GeoIP2-City-Test-Updated.mmdb";

/// Which version of the database to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// The base database.
    Base,
    /// One week later: `81.2.69.0/24` is in Manchester.
    Updated,
}

/// One network and where it is.
struct Network {
    net: &'static str,
    continent: (&'static str, &'static str),
    country: (&'static str, &'static str, u32),
    /// (ISO code, English name) of the first subdivision, if any.
    region: Option<(&'static str, &'static str)>,
    /// (English name, geoname id), if any.
    city: Option<(&'static str, u32)>,
}

/// The records of the base database.
const NETWORKS: &[Network] = &[
    Network {
        net: "81.2.69.0/24",
        continent: ("EU", "Europe"),
        country: ("GB", "United Kingdom", 2_635_167),
        region: Some(("ENG", "England")),
        city: Some(("London", 2_643_743)),
    },
    Network {
        net: "216.160.83.0/24",
        continent: ("NA", "North America"),
        country: ("US", "United States", 6_252_001),
        region: Some(("WA", "Washington")),
        city: Some(("Milton", 5_803_556)),
    },
    Network {
        net: "2a02:ff0::/32",
        continent: ("EU", "Europe"),
        country: ("SE", "Sweden", 2_661_886),
        region: Some(("AB", "Stockholm County")),
        city: Some(("Stockholm", 2_673_730)),
    },
    Network {
        // Country only: no subdivision, no city.
        net: "175.16.199.0/24",
        continent: ("AS", "Asia"),
        country: ("CN", "China", 1_814_991),
        region: None,
        city: None,
    },
    // Decoys in non-public space: a lookup must never reach them.
    Network {
        net: "10.0.0.0/8",
        continent: ("AN", "Antarctica"),
        country: ("AQ", "Antarctica", 6_697_173),
        region: None,
        city: Some(("Decoy (private)", 1)),
    },
    Network {
        net: "2001:db8::/32",
        continent: ("AN", "Antarctica"),
        country: ("AQ", "Antarctica", 6_697_173),
        region: None,
        city: Some(("Decoy (documentation)", 2)),
    },
];

/// The database `version`, as bytes.
pub(crate) fn build(version: Version) -> Vec<u8> {
    let days = match version {
        Version::Base => 0,
        Version::Updated => 7,
    };
    // 2026-01-01T00:00:00Z, plus a week for the update.
    let built = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + days * 86_400);
    let mut writer = Writer::builder("GeoIP2-City")
        .languages(["en"])
        .description(&[(
            "en",
            "hookfleet test fixture (made-up records, not MaxMind data)",
        )])
        .build_epoch(built)
        .build();

    for network in NETWORKS {
        let mut network_city = network.city;
        if version == Version::Updated && network.net == "81.2.69.0/24" {
            network_city = Some(("Manchester", 2_643_123));
        }
        let record = record(network, network_city);
        let net: IpNet = network.net.parse().expect("fixture network");
        writer.insert(net, &record).expect("insert fixture record");
    }
    writer.to_bytes().expect("serialise fixture database")
}

fn record(network: &Network, network_city: Option<(&'static str, u32)>) -> geoip2::City<'static> {
    let english = |name: &'static str| Names {
        english: Some(name),
        ..Names::default()
    };
    let (country_code, country_name, country_id) = network.country;
    let country = city::Country {
        geoname_id: Some(country_id),
        iso_code: Some(country_code),
        names: english(country_name),
        ..Default::default()
    };
    geoip2::City {
        continent: city::Continent {
            code: Some(network.continent.0),
            names: english(network.continent.1),
            ..Default::default()
        },
        registered_country: country.clone(),
        country,
        subdivisions: network
            .region
            .map(|(code, name)| city::Subdivision {
                iso_code: Some(code),
                names: english(name),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        city: network_city
            .map(|(name, id)| city::City {
                geoname_id: Some(id),
                names: english(name),
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

#[allow(dead_code)] // Also compiled into the tests, which only use `build`.
fn main() {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out).expect("create the output directory");
    for (version, name) in [(Version::Base, BASE_FILE), (Version::Updated, UPDATED_FILE)] {
        let path = out.join(name);
        std::fs::write(&path, build(version)).expect("write the fixture");
        let shown = path.canonicalize().unwrap_or(path);
        println!("wrote {}", shown.display());
    }
}
