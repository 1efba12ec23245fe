//! One opened GeoIP database file: the memory map, the reader over it, and
//! the identity of the file it came from.

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use maxminddb::{Reader, geoip2};
use memmap2::Mmap;

use super::{GeoError, GeoFix};

/// What identifies one version of the database file: when a new file is
/// renamed into place the inode changes; when one is written in place the
/// modification time or length does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file `path` names now (following symlinks).
    pub(crate) fn of_path(path: &Path) -> std::io::Result<Self> {
        Ok(Self::of(&std::fs::metadata(path)?))
    }

    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: inode(metadata),
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> u64 {
    0
}

/// An opened database.
pub(crate) struct Database {
    reader: Reader<Mmap>,
    stamp: FileStamp,
    /// Set once a record failed to decode, so the warning is logged once
    /// per database rather than once per event.
    decode_failure_logged: AtomicBool,
}

impl Database {
    /// Maps the file at `path` and checks that it is a MaxMind database.
    pub(crate) fn open(path: &Path) -> Result<Self, GeoError> {
        let file = File::open(path).map_err(|e| GeoError::open(path, e))?;
        // The stamp comes from the file handle that is mapped, so it always
        // describes the bytes this reader sees.
        let stamp = FileStamp::of(&file.metadata().map_err(|e| GeoError::open(path, e))?);

        #[allow(unsafe_code)]
        // SAFETY: a memory map is only sound while nobody truncates or
        // rewrites the file under it. MaxMind's updater (geoipupdate), and
        // any careful deploy, writes a new file and renames it over the old
        // one: the old inode, still mapped here, stays intact until the
        // reader is dropped. Rewriting the file in place is documented as
        // unsupported in the `geo` module docs, and the maxminddb
        // decoder bounds-checks every read against the length mapped here.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| GeoError::open(path, e))?;

        let reader = Reader::from_source(map).map_err(|e| GeoError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            reader,
            stamp,
            decode_failure_logged: AtomicBool::new(false),
        })
    }

    pub(crate) fn stamp(&self) -> &FileStamp {
        &self.stamp
    }

    /// The `database_type` from the metadata, e.g. `GeoIP2-City`.
    pub(crate) fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, seconds since the Unix epoch.
    pub(crate) fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// Looks `ip` up and decodes what is there, to catch a corrupt tree or
    /// data section when the file is opened.
    pub(crate) fn probe(&self, ip: IpAddr) -> Result<(), String> {
        if !self.holds(ip) {
            return Ok(());
        }
        self.reader
            .lookup(ip)
            .and_then(|found| found.decode::<geoip2::City<'_>>())
            .map(|_| ())
            .map_err(|e| format!("lookup of {ip} failed: {e}"))
    }

    /// Whether the database can answer for `ip`'s family: an IPv4-only
    /// database has nothing for IPv6.
    fn holds(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() || self.reader.metadata().ip_version == 6
    }

    /// The location of `ip` (already known to be public), if the database
    /// knows anything about it.
    pub(crate) fn locate(&self, ip: IpAddr) -> Option<GeoFix> {
        if !self.holds(ip) {
            return None;
        }
        let record = self
            .reader
            .lookup(ip)
            .and_then(|found| found.decode::<geoip2::City<'_>>());
        match record {
            Ok(Some(city)) => GeoFix::from_city(&city),
            Ok(None) => None,
            Err(error) => {
                if !self.decode_failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %error,
                        "geoip record could not be decoded; such addresses get no geo fields"
                    );
                }
                metrics::counter!(crate::metrics::GEOIP_DECODE_FAILURES).increment(1);
                None
            }
        }
    }
}
