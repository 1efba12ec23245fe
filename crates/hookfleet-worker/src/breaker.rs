//! A circuit breaker per outbound destination (SPEC §7).
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ───────────────────────────────────────▶ Open { until }
//!     ▲                                               │ cooldown over
//!     │ probe succeeds        probe fails             ▼
//!     └──────────────── HalfOpen ─────────────────▶ Open { until }
//! ```
//!
//! - **Closed**: every call may go; a success resets the failure count.
//! - **Open**: no call goes until `until`. The queue's receivers do not
//!   receive at all, so waiting messages keep their receive count; a
//!   message already in hand goes back with the remaining cooldown as its
//!   visibility.
//! - **HalfOpen**: exactly one call (the probe) goes; its result closes or
//!   reopens the breaker. A probe permit dropped without a result (the
//!   message was poison, or the receive came back empty) frees the probe
//!   slot for another one.
//!
//! Results of calls admitted while closed are ignored once the breaker has
//! left `Closed`: only the probe decides a half-open breaker.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::BREAKER_STATE;

/// How long a message waits when it arrives while a probe is deciding:
/// short, because the probe usually settles within a handler's run.
pub const HALF_OPEN_RETRY: Duration = Duration::from_secs(1);

/// A breaker's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe.
    pub cooldown: Duration,
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// No call goes until `until`.
    Open {
        /// When the cooldown ends.
        until: Instant,
    },
    /// One probe call decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// Whether calls go through.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge_value(&self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open { .. } => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// What a queue's receivers may do now.
#[derive(Debug)]
pub enum Admission {
    /// Receive as usual.
    Receive,
    /// Receive one message, the probe, and process it with this permit.
    Probe(BreakerPermit),
    /// Do not receive for `remaining`.
    Open {
        /// The rest of the cooldown.
        remaining: Duration,
    },
    /// A probe is out; wait for its verdict ([`CircuitBreaker::changed`]).
    ProbeInFlight,
}

/// A call refused because the breaker is open or a probe is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// How long to wait before trying again.
    pub remaining: Duration,
}

/// A clock, injectable so the state machine is tested without sleeping.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The breaker of one destination. Share it as `Arc<CircuitBreaker>`.
pub struct CircuitBreaker {
    destination: String,
    config: BreakerConfig,
    clock: Clock,
    inner: Mutex<Inner>,
    changed: Notify,
    gauge: metrics::Gauge,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    probe_out: bool,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("destination", &self.destination)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker for `destination` (a short name such as `crm`,
    /// used as the metric label).
    pub fn new(destination: impl Into<String>, config: BreakerConfig) -> Arc<Self> {
        Self::with_clock(destination, config, Arc::new(Instant::now))
    }

    /// The same, reading time from `clock`.
    pub fn with_clock(
        destination: impl Into<String>,
        config: BreakerConfig,
        clock: Clock,
    ) -> Arc<Self> {
        let destination = destination.into();
        let gauge = metrics::gauge!(BREAKER_STATE, "destination" => destination.clone());
        gauge.set(BreakerState::Closed.gauge_value());
        Arc::new(Self {
            destination,
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                cooldown: config.cooldown,
            },
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                probe_out: false,
            }),
            changed: Notify::new(),
            gauge,
        })
    }

    /// The destination this breaker guards.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The current state (an open breaker whose cooldown is over reads as
    /// half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner);
        inner.state
    }

    /// Asks to make one call to the destination.
    pub fn try_acquire(self: &Arc<Self>) -> Result<BreakerPermit, Rejected> {
        let mut inner = self.lock();
        self.advance(&mut inner);
        match inner.state {
            BreakerState::Closed => Ok(self.permit(false)),
            BreakerState::Open { until } => Err(Rejected {
                remaining: until.saturating_duration_since((self.clock)()),
            }),
            BreakerState::HalfOpen if inner.probe_out => Err(Rejected {
                remaining: HALF_OPEN_RETRY.min(self.config.cooldown),
            }),
            BreakerState::HalfOpen => {
                inner.probe_out = true;
                Ok(self.permit(true))
            }
        }
    }

    /// What a queue's receivers may do now; a half-open breaker hands its
    /// probe permit to the first receiver that asks.
    pub fn admit(self: &Arc<Self>) -> Admission {
        match self.try_acquire() {
            Ok(permit) if permit.probe => Admission::Probe(permit),
            Ok(_closed) => Admission::Receive,
            Err(_) if self.lock().probe_out => Admission::ProbeInFlight,
            Err(Rejected { remaining }) => Admission::Open { remaining },
        }
    }

    /// Resolves at the next state change or when a probe slot frees up.
    /// Create it before checking the state, then await it.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn permit(self: &Arc<Self>, probe: bool) -> BreakerPermit {
        BreakerPermit {
            breaker: Arc::clone(self),
            probe,
            settled: false,
        }
    }

    fn record(&self, probe: bool, success: bool) {
        let mut inner = self.lock();
        self.advance(&mut inner);
        if probe {
            inner.probe_out = false;
            if success {
                inner.failures = 0;
                self.transition(&mut inner, BreakerState::Closed);
            } else {
                self.open(&mut inner);
            }
            return;
        }
        if inner.state != BreakerState::Closed {
            return;
        }
        if success {
            inner.failures = 0;
        } else {
            inner.failures += 1;
            if inner.failures >= self.config.failure_threshold {
                self.open(&mut inner);
            }
        }
    }

    fn abandon_probe(&self) {
        self.lock().probe_out = false;
        self.changed.notify_waiters();
    }

    fn open(&self, inner: &mut Inner) {
        let until = (self.clock)() + self.config.cooldown;
        self.transition(inner, BreakerState::Open { until });
    }

    /// Open with the cooldown over becomes half-open.
    fn advance(&self, inner: &mut Inner) {
        if let BreakerState::Open { until } = inner.state
            && (self.clock)() >= until
        {
            self.transition(inner, BreakerState::HalfOpen);
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        inner.state = to;
        if std::mem::discriminant(&from) == std::mem::discriminant(&to) {
            return;
        }
        if to == BreakerState::Closed {
            inner.failures = 0;
        }
        self.gauge.set(to.gauge_value());
        match to {
            BreakerState::Open { .. } => tracing::warn!(
                destination = %self.destination,
                from = from.label(),
                cooldown_secs = self.config.cooldown.as_secs_f64(),
                "breaker opened"
            ),
            BreakerState::HalfOpen => tracing::info!(
                destination = %self.destination,
                "breaker half-open; probing"
            ),
            BreakerState::Closed => tracing::info!(
                destination = %self.destination,
                "breaker closed"
            ),
        }
        self.changed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every
        // update is a single assignment.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Leave to make one call. Report its result with [`success`] or
/// [`failure`]; dropping it unreported is neutral (and frees the probe
/// slot of a half-open breaker).
///
/// [`success`]: BreakerPermit::success
/// [`failure`]: BreakerPermit::failure
#[derive(Debug)]
pub struct BreakerPermit {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    settled: bool,
}

impl BreakerPermit {
    /// Whether this is a half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The destination answered.
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.record(self.probe, true);
    }

    /// The destination failed (5xx, 429, timeout).
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        now: Arc<Mutex<Instant>>,
        breaker: Arc<CircuitBreaker>,
    }

    impl Fixture {
        fn new(failure_threshold: u32, cooldown_secs: u64) -> Self {
            let now = Arc::new(Mutex::new(Instant::now()));
            let clock_now = Arc::clone(&now);
            let breaker = CircuitBreaker::with_clock(
                "test",
                BreakerConfig {
                    failure_threshold,
                    cooldown: Duration::from_secs(cooldown_secs),
                },
                Arc::new(move || *clock_now.lock().unwrap()),
            );
            Self { now, breaker }
        }

        fn advance(&self, secs: u64) {
            *self.now.lock().unwrap() += Duration::from_secs(secs);
        }

        fn fail(&self) {
            self.breaker.try_acquire().expect("admitted").failure();
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let f = Fixture::new(3, 10);
        f.fail();
        f.fail();
        f.breaker.try_acquire().unwrap().success();
        f.fail();
        f.fail();
        assert_eq!(f.breaker.state(), BreakerState::Closed);
        f.fail();
        assert!(matches!(f.breaker.state(), BreakerState::Open { .. }));
        assert_eq!(
            f.breaker.try_acquire().unwrap_err(),
            Rejected {
                remaining: Duration::from_secs(10)
            }
        );
        f.advance(4);
        assert!(matches!(
            f.breaker.admit(),
            Admission::Open { remaining } if remaining == Duration::from_secs(6)
        ));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let f = Fixture::new(1, 10);
        f.fail();
        f.advance(10);
        assert_eq!(f.breaker.state(), BreakerState::HalfOpen);

        let Admission::Probe(probe) = f.breaker.admit() else {
            panic!("expected the probe");
        };
        assert!(probe.is_probe());
        assert!(matches!(f.breaker.admit(), Admission::ProbeInFlight));
        assert_eq!(
            f.breaker.try_acquire().unwrap_err().remaining,
            HALF_OPEN_RETRY
        );

        probe.success();
        assert_eq!(f.breaker.state(), BreakerState::Closed);
        assert!(matches!(f.breaker.admit(), Admission::Receive));
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cooldown() {
        let f = Fixture::new(2, 10);
        f.fail();
        f.fail();
        f.advance(11);
        let probe = f.breaker.try_acquire().unwrap();
        assert!(probe.is_probe());
        probe.failure();
        assert_eq!(
            f.breaker.try_acquire().unwrap_err().remaining,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_dropped_probe_frees_the_slot() {
        let f = Fixture::new(1, 5);
        f.fail();
        f.advance(5);
        let probe = f.breaker.try_acquire().unwrap();
        drop(probe);
        assert_eq!(f.breaker.state(), BreakerState::HalfOpen);
        assert!(f.breaker.try_acquire().unwrap().is_probe());
    }

    #[test]
    fn late_results_of_closed_calls_do_not_decide_a_half_open_breaker() {
        let f = Fixture::new(1, 5);
        let slow = f.breaker.try_acquire().unwrap();
        f.fail();
        f.advance(5);
        let probe = f.breaker.try_acquire().unwrap();
        slow.success();
        assert_eq!(f.breaker.state(), BreakerState::HalfOpen);
        probe.failure();
        assert!(matches!(f.breaker.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn labels_and_gauge_values() {
        let open = BreakerState::Open {
            until: Instant::now(),
        };
        assert_eq!(
            [BreakerState::Closed, open, BreakerState::HalfOpen].map(|s| s.gauge_value()),
            [0.0, 1.0, 2.0]
        );
        assert_eq!(open.label(), "open");
    }
}
