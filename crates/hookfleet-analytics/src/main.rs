//! `hookfleet-analytics`: see the library crate's documentation.

use hookfleet_analytics::app::{QUEUE, WORKER};
use hookfleet_analytics::config::Config;
use hookfleet_enrich::GeoIp;
use hookfleet_enrich::geo::GEOIP_DB_VAR;
use hookfleet_telemetry::exit_config_error;

#[tokio::main]
async fn main() {
    let config: Config = hookfleet_telemetry::parse_args();
    let worker = config.worker.validate(WORKER, &[QUEUE]);
    let settings = config.analytics.validate();
    if config.worker.check_config {
        if let Some(path) = &settings.geoip_db {
            GeoIp::open(path).unwrap_or_else(|e| exit_config_error(GEOIP_DB_VAR, e));
        }
        println!(
            "configuration ok: {}; {}",
            worker.summary(),
            settings.summary()
        );
        return;
    }
    let prometheus = hookfleet_worker::start_logging_and_metrics(&config.worker);

    if let Err(error) = hookfleet_analytics::run(worker, settings, prometheus).await {
        tracing::error!(error = format!("{error:#}"), "analytics failed");
        std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
    }
}
