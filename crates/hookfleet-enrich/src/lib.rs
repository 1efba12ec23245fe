//! Event enrichment for the hookfleet workers (SPEC §8).
//!
//! Three parts, used together by analytics and separately by alerts:
//!
//! - [`geo`]: [`GeoIp`] answers country, region and city for an IP address
//!   from a memory-mapped MaxMind City database (`HOOKFLEET_GEOIP_DB`),
//!   swapped for a new version when the file is replaced
//!   ([`GeoIp::watch`]). Private and reserved addresses get no answer.
//! - [`lookups`]: [`Lookups`] reads campaigns and users through a bounded
//!   cache with a TTL, "not found" included (for less long), so a hot
//!   campaign is not a query per event.
//! - [`enrich`]: [`Enricher::enrich`] turns one received event into the
//!   [`NewEvent`](hookfleet_store::NewEvent) row to store, with the rules
//!   written in that module.
//!
//! Wiring, in a worker's `main`:
//!
//! ```no_run
//! # async fn example(store: hookfleet_store::Store, shutdown: tokio_util::sync::CancellationToken)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use hookfleet_enrich::{CacheConfig, Enricher, GeoIp, Lookups, geo};
//!
//! let path = std::env::var_os("HOOKFLEET_GEOIP_DB").map(std::path::PathBuf::from);
//! let geo = GeoIp::from_setting(path.as_deref())?; // logs "geo enrichment off" when unset
//! let watcher = geo.as_ref().map(|g| g.watch(geo::DEFAULT_RELOAD_INTERVAL, shutdown.clone()));
//! let enricher = Enricher::new(geo, Arc::new(Lookups::new(store, CacheConfig::default())));
//! # let _ = (watcher, enricher);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
pub mod enrich;
pub mod geo;
pub mod lookups;
pub mod metrics;

pub use enrich::{EnrichError, Enricher, Incoming};
pub use geo::{DatabaseInfo, GeoError, GeoFix, GeoIp};
pub use lookups::{CacheConfig, LookupSource, Lookups};
