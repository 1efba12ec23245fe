//! `hookfleet-ingest`: see the library crate's documentation.

use hookfleet_ingest::config::Config;

#[tokio::main]
async fn main() {
    let config: Config = hookfleet_telemetry::parse_args();
    let settings = config.validate();
    if config.check_config {
        if let Err(e) = hookfleet_bus::aws::check_environment() {
            hookfleet_telemetry::exit_config_error(e.setting, e.reason);
        }
        println!(
            "configuration ok: listen {}, topic {}, {} webhook secret(s)",
            settings.listen,
            settings.publisher.topic_name,
            settings.verifier.len()
        );
        return;
    }
    hookfleet_telemetry::init_logging(config.log_format, "info");
    let prometheus = hookfleet_telemetry::install_metrics();

    if let Err(error) = hookfleet_ingest::run(settings, prometheus).await {
        tracing::error!(error = format!("{error:#}"), "ingest failed");
        std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
    }
}
