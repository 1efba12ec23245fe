//! `hookfleet-crm`: see the library crate's documentation.

use hookfleet_crm::app::{QUEUES, WORKER};
use hookfleet_crm::config::Config;

#[tokio::main]
async fn main() {
    let config: Config = hookfleet_telemetry::parse_args();
    let worker = config.worker.validate(WORKER, &QUEUES);
    let settings = config.crm.validate();
    if config.worker.check_config {
        println!(
            "configuration ok: {}; {}",
            worker.summary(),
            settings.summary()
        );
        return;
    }
    // reqwest is built without a default crypto provider: ring, as for the
    // AWS clients.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prometheus = hookfleet_worker::start_logging_and_metrics(&config.worker);

    if let Err(error) = hookfleet_crm::run(worker, settings, prometheus).await {
        tracing::error!(error = format!("{error:#}"), "crm failed");
        std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
    }
}
