//! GeoIP: country, region and city of an IP address, from a MaxMind
//! GeoIP2/GeoLite2 City database that is replaced without a restart.
//!
//! [`GeoIp`] memory-maps the file (`HOOKFLEET_GEOIP_DB`) and answers
//! [`GeoIp::lookup`] from whatever version is current. Readers never wait:
//! the current database sits behind an atomically swapped pointer, and a
//! lookup holds its version only for the microseconds it takes.
//!
//! # Replacing the file
//!
//! [`GeoIp::watch`] polls the file's modification time, length and inode
//! every few seconds. When they change and the new file opens cleanly (a
//! MaxMind database whose probe lookups decode), it becomes current; a
//! file that does not open is logged once and the previous database keeps
//! answering, until the file changes again.
//!
//! Replace the file the way MaxMind's `geoipupdate` does: write the new
//! version next to it and rename it over the old one (`mv`, not `cp`).
//! The running reader keeps its mapping of the old file until the swap.
//! Rewriting the file in place under a running worker is not supported:
//! the memory map would see the bytes change, which can make lookups
//! answer garbage or the process fail until the reload.

mod database;
mod special;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use maxminddb::geoip2;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use database::{Database, FileStamp};

/// The variable naming the database file (SPEC §3).
pub const GEOIP_DB_VAR: &str = "HOOKFLEET_GEOIP_DB";

/// How often [`GeoIp::watch`] checks the file, unless told otherwise.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Addresses looked up when a file is opened, to reject a database whose
/// tree or data section is corrupt before it replaces a good one.
const PROBES: [IpAddr; 3] = [
    IpAddr::V4(std::net::Ipv4Addr::new(1, 1, 1, 1)),
    IpAddr::V4(std::net::Ipv4Addr::new(81, 2, 69, 142)),
    IpAddr::V6(std::net::Ipv6Addr::new(
        0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111,
    )),
];

/// Where an address is, as far as the database knows. Absent fields are
/// unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GeoFix {
    /// ISO 3166-1 alpha-2 country code, e.g. `GB`.
    pub country: Option<String>,
    /// ISO code of the largest subdivision, e.g. `ENG` or `WA`.
    pub region: Option<String>,
    /// City name in English, e.g. `London`.
    pub city: Option<String>,
}

impl GeoFix {
    /// The fix a City record gives, or `None` when it has none of the three.
    fn from_city(city: &geoip2::City<'_>) -> Option<Self> {
        let fix = Self {
            country: city.country.iso_code.map(str::to_owned),
            region: city
                .subdivisions
                .first()
                .and_then(|s| s.iso_code)
                .map(str::to_owned),
            city: city.city.names.english.map(str::to_owned),
        };
        (fix != Self::default()).then_some(fix)
    }
}

/// Why a database file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be opened, read or mapped.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a readable MaxMind database.
    #[error("{path}: not a usable MaxMind database: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl GeoError {
    fn open(path: &Path, source: std::io::Error) -> Self {
        Self::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// Facts about the database in use, for logs and `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseInfo {
    /// The file.
    pub path: PathBuf,
    /// The metadata's `database_type`, e.g. `GeoIP2-City`.
    pub database_type: String,
    /// When it was built, seconds since the Unix epoch.
    pub build_epoch: u64,
}

/// A GeoIP database that can be replaced while in use. Cheap to clone:
/// clones share the database and see the same reloads.
#[derive(Clone)]
pub struct GeoIp {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    current: ArcSwap<Database>,
    /// The stamp of the last file that failed to open, so a broken file is
    /// reported once, not at every poll. Also serialises reloads.
    failed: Mutex<Option<FileStamp>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl GeoIp {
    /// Opens the database at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, GeoError> {
        let path = path.into();
        let database = open_checked(&path)?;
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                current: ArcSwap::from_pointee(database),
                failed: Mutex::new(None),
            }),
        })
    }

    /// What a binary does at start with the `HOOKFLEET_GEOIP_DB` setting:
    /// unset means geo enrichment is off, logged once here; set means the
    /// file must open (an error here is a configuration error: exit 2
    /// naming [`GEOIP_DB_VAR`]).
    pub fn from_setting(path: Option<&Path>) -> Result<Option<Self>, GeoError> {
        let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else {
            tracing::info!("geo enrichment off: {GEOIP_DB_VAR} is not set");
            return Ok(None);
        };
        let geo = Self::open(path)?;
        let info = geo.info();
        tracing::info!(
            path = %info.path.display(),
            database_type = %info.database_type,
            build_epoch = info.build_epoch,
            "geo enrichment on"
        );
        if !info.database_type.contains("City") && !info.database_type.contains("Enterprise") {
            tracing::warn!(
                database_type = %info.database_type,
                "the geoip database is not a City database; region and city will stay empty"
            );
        }
        Ok(Some(geo))
    }

    /// The location of `ip`, or `None` when the address is private,
    /// reserved or otherwise special (IPv4 and IPv6), or the database has
    /// nothing for it.
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoFix> {
        let ip = special::public_address(ip)?;
        self.shared.current.load().locate(ip)
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Facts about the database now in use.
    pub fn info(&self) -> DatabaseInfo {
        let current = self.shared.current.load();
        DatabaseInfo {
            path: self.shared.path.clone(),
            database_type: current.database_type().to_owned(),
            build_epoch: current.build_epoch(),
        }
    }

    /// Checks the file once: when it changed since the current database
    /// was opened and the new version opens cleanly, swaps it in and
    /// returns `true`. A file that is missing or broken leaves the current
    /// database in place; it is logged once per version of the file.
    ///
    /// Blocking (file system calls): from async code, run it on a blocking
    /// thread, as [`GeoIp::watch`] does.
    pub fn reload_if_changed(&self) -> bool {
        let shared = &self.shared;
        let stamp = match FileStamp::of_path(&shared.path) {
            Ok(stamp) => stamp,
            Err(error) => {
                // Between an unlink and a rename, or a path being fixed.
                tracing::debug!(path = %shared.path.display(), %error, "geoip database not readable");
                return false;
            }
        };
        // Held while opening, so that concurrent checks reload once.
        let mut failed = shared.failed.lock().unwrap_or_else(|e| e.into_inner());
        if stamp == *shared.current.load().stamp() || failed.as_ref() == Some(&stamp) {
            return false;
        }

        match open_checked(&shared.path) {
            Ok(database) => {
                let build_epoch = database.build_epoch();
                shared.current.store(Arc::new(database));
                *failed = None;
                metrics::counter!(crate::metrics::GEOIP_RELOADS, "result" => "ok").increment(1);
                tracing::info!(
                    path = %shared.path.display(),
                    build_epoch,
                    "geoip database reloaded"
                );
                true
            }
            Err(error) => {
                *failed = Some(stamp);
                metrics::counter!(crate::metrics::GEOIP_RELOADS, "result" => "failed").increment(1);
                tracing::warn!(
                    %error,
                    "geoip database changed but cannot be used; keeping the previous one"
                );
                false
            }
        }
    }

    /// Starts a task that calls [`GeoIp::reload_if_changed`] every
    /// `every` until `shutdown` is cancelled. Await the handle after
    /// cancelling to join it.
    pub fn watch(
        &self,
        every: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let geo = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // The first tick is immediate; the file was just opened.
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let geo = geo.clone();
                if let Err(error) =
                    tokio::task::spawn_blocking(move || geo.reload_if_changed()).await
                {
                    tracing::error!(%error, "geoip reload check panicked");
                }
            }
        })
    }
}

/// Opens `path` and probes it, so that a corrupt file is refused up front.
fn open_checked(path: &Path) -> Result<Database, GeoError> {
    let database = Database::open(path)?;
    for ip in PROBES {
        database.probe(ip).map_err(|reason| GeoError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
    }
    Ok(database)
}

#[cfg(test)]
mod tests {
    use maxminddb::geoip2::{Names, city};

    use super::*;

    #[test]
    fn fix_takes_iso_codes_and_english_city() {
        let record = geoip2::City {
            country: city::Country {
                iso_code: Some("GB"),
                ..Default::default()
            },
            subdivisions: vec![
                city::Subdivision {
                    iso_code: Some("ENG"),
                    ..Default::default()
                },
                city::Subdivision {
                    iso_code: Some("OXF"),
                    ..Default::default()
                },
            ],
            city: city::City {
                names: Names {
                    english: Some("Oxford"),
                    german: Some("Oxford (de)"),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            GeoFix::from_city(&record),
            Some(GeoFix {
                country: Some("GB".into()),
                region: Some("ENG".into()),
                city: Some("Oxford".into()),
            })
        );
    }

    #[test]
    fn empty_record_is_no_fix() {
        assert_eq!(GeoFix::from_city(&geoip2::City::default()), None);
    }

    #[test]
    fn unset_setting_means_off() {
        assert!(GeoIp::from_setting(None).unwrap().is_none());
        assert!(GeoIp::from_setting(Some(Path::new(""))).unwrap().is_none());
    }

    #[test]
    fn missing_file_is_an_open_error_naming_it() {
        let error = GeoIp::open("/nonexistent/GeoIP2-City.mmdb").unwrap_err();
        assert!(matches!(error, GeoError::Open { .. }));
        assert!(error.to_string().contains("/nonexistent/GeoIP2-City.mmdb"));
    }
}
