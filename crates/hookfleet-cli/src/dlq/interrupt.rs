//! Ctrl-C while messages are held: stop at the next safe point (never
//! between a send and its delete), hand back what is held, and report.
//! A second Ctrl-C quits at once; what was held then reappears when its
//! visibility timeout runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dlq::sqs::SQS_MAX_BATCH;

/// Set once Ctrl-C was pressed.
#[derive(Debug, Clone)]
pub(crate) struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Starts listening for Ctrl-C. Call it only once the command no
    /// longer asks anything on the terminal: from then on Ctrl-C no longer
    /// ends the process by itself.
    pub(crate) fn listen() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            set.store(true, Ordering::SeqCst);
            eprintln!(
                "\ninterrupted: stopping after this batch of up to {SQS_MAX_BATCH} (Ctrl-C again \
                 quits now; held messages then reappear when their visibility runs out)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(hookfleet_telemetry::EXIT_FAILURE);
            }
        });
        Self(flag)
    }

    /// Whether Ctrl-C was pressed.
    pub(crate) fn pressed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
