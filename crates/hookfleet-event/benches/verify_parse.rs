//! The ingest hot path without the network: verify the signature, parse
//! the envelope and hash the event id, for a 1 KB event.
//!
//! Run: `cargo bench -p hookfleet-event --bench verify_parse`. Prints
//! nanoseconds of CPU per event (thread CPU time, not wall time).

use std::hint::black_box;
use std::time::Duration;

use hookfleet_event::{Envelope, EventId, Verifier, sign};

fn main() {
    let body = one_kilobyte_event();
    let secret = "whsec_benchmark_secret";
    let verifier = Verifier::from_list(&format!("whsec_newer_secret,{secret}")).unwrap();
    let signature = format!("sha256={}", sign(secret, &body));

    let run = |iterations: u32| {
        for _ in 0..iterations {
            let position = verifier.verify(black_box(&body), Some(&signature)).unwrap();
            let envelope = Envelope::parse(black_box(&body)).unwrap();
            let id = EventId::of_body(&body);
            black_box((position, envelope.event_type().len(), id));
        }
    };
    run(20_000);

    let iterations = 200_000;
    let before = thread_cpu();
    run(iterations);
    let per_event = (thread_cpu() - before) / iterations;
    println!(
        "verify+parse+event_id, {} byte body, 2 secrets (match on the 2nd): {:.2} µs CPU per event",
        body.len(),
        per_event.as_nanos() as f64 / 1000.0
    );

    let one_secret = Verifier::from_list(secret).unwrap();
    let before = thread_cpu();
    for _ in 0..iterations {
        black_box(
            one_secret
                .verify(black_box(&body), Some(&signature))
                .unwrap(),
        );
    }
    let verify_only = (thread_cpu() - before) / iterations;
    println!(
        "verify only, 1 secret: {:.2} µs CPU per event",
        verify_only.as_nanos() as f64 / 1000.0
    );
}

fn one_kilobyte_event() -> Vec<u8> {
    let filler = "x".repeat(735);
    format!(
        r#"{{"event":"link.clicked","timestamp":"2026-12-03T10:15:30Z","data":{{"ip":"81.2.69.142","campaign":"spring-sale","country":"GB","platform":"ios","device_type":"phone","url":"https://example.test/l/abc","prefix":"l","token":"abc123","hostname":"example.test","source":"newsletter","note":"{filler}"}}}}"#
    )
    .into_bytes()
}

fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // utime and stime are fields 14 and 15, in clock ticks; too coarse for
    // one event, fine over 200k. Use the schedstat nanoseconds when present.
    if let Ok(schedstat) = std::fs::read_to_string("/proc/thread-self/schedstat")
        && let Some(ns) = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
    {
        return Duration::from_nanos(ns);
    }
    let fields: Vec<&str> = text
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}
