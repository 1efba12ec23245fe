//! `hookfleet-alerts`: see the library crate's documentation.

use hookfleet_alerts::config::Config;

#[tokio::main]
async fn main() {
    let config: Config = hookfleet_telemetry::parse_args();
    let settings = config.validate();
    if config.worker.check_config {
        println!("configuration ok: {}", settings.summary());
        return;
    }
    // reqwest is built without a default TLS provider: ring, as the rest
    // of the workspace uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prometheus = hookfleet_worker::start_logging_and_metrics(&config.worker);

    if let Err(error) = hookfleet_alerts::run(settings, prometheus).await {
        tracing::error!(error = format!("{error:#}"), "alerts worker failed");
        std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
    }
}
