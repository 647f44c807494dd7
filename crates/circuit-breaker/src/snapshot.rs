//! A read-only picture of a breaker: everything the Hystrix stream and a metrics exporter need.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{CircuitBreakerConfig, Mode};
use crate::event::State;

/// Counts of each kind of call outcome and event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls that succeeded.
    pub success: u64,
    /// Calls that failed.
    pub failure: u64,
    /// Calls abandoned by the timeout layer.
    pub timeout: u64,
    /// Calls rejected by a bulkhead (Hystrix `semaphoreRejected`).
    pub rejected: u64,
    /// Calls refused because the breaker was open.
    pub short_circuited: u64,
    /// Calls classified as ignored (bad requests); not counted for health.
    pub bad_request: u64,
    /// Calls dropped by the caller before they finished; not counted for health.
    pub cancelled: u64,
    /// Executed calls at least as long as the slow-call duration (also counted by outcome).
    pub slow: u64,
    /// Fallbacks that produced a response.
    pub fallback_success: u64,
    /// Fallbacks that failed.
    pub fallback_failure: u64,
    /// Failed calls that had no fallback.
    pub fallback_missing: u64,
    /// Fallbacks refused because too many were running.
    pub fallback_rejection: u64,
    /// Errors handed back to the caller.
    pub exceptions_thrown: u64,
}

impl Counts {
    pub(crate) fn from_totals(t: &crate::stats::Totals) -> Counts {
        use crate::stats::*;
        Counts {
            success: t[SUCCESS],
            failure: t[FAILURE],
            timeout: t[TIMEOUT],
            rejected: t[REJECTED],
            short_circuited: t[SHORT_CIRCUITED],
            bad_request: t[BAD_REQUEST],
            cancelled: t[CANCELLED],
            slow: t[SLOW],
            fallback_success: t[FALLBACK_SUCCESS],
            fallback_failure: t[FALLBACK_FAILURE],
            fallback_missing: t[FALLBACK_MISSING],
            fallback_rejection: t[FALLBACK_REJECTION],
            exceptions_thrown: t[EXCEPTIONS_THROWN],
        }
    }

    /// Calls that count for health: success + failure + timeout + rejected (Hystrix's request
    /// count; short-circuits and bad requests are left out).
    pub fn requests(&self) -> u64 {
        self.success + self.failure + self.timeout + self.rejected
    }

    /// failure + timeout + rejected.
    pub fn errors(&self) -> u64 {
        self.failure + self.timeout + self.rejected
    }

    /// Error percentage, truncated to an integer as Hystrix does; 0 with no requests.
    pub fn error_percentage(&self) -> u64 {
        (self.errors() * 100)
            .checked_div(self.requests())
            .unwrap_or(0)
    }
}

/// The percentiles Hystrix reports, in its order.
pub const PERCENTILES: [f64; 9] = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 100.0];

/// Latency over the percentile window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Number of calls measured.
    pub count: u64,
    /// Mean.
    pub mean: Duration,
    /// `(percentile, value)` for each of [`PERCENTILES`]; values are bucket upper bounds
    /// (6.25% precision). All zero with no calls.
    pub percentiles: Vec<(f64, Duration)>,
}

impl Latency {
    pub(crate) fn from_histogram(h: &histogram::Histogram) -> Latency {
        let mut count = 0u64;
        let mut sum = 0u128;
        for bucket in h.iter() {
            if bucket.count() > 0 {
                count += bucket.count();
                let mid = (bucket.start() as u128 + bucket.end() as u128) / 2;
                sum += mid * bucket.count() as u128;
            }
        }
        let quantiles = PERCENTILES.map(|p| p / 100.0);
        let percentiles = match h.quantiles(&quantiles) {
            Ok(Some(result)) => PERCENTILES
                .iter()
                .zip(result.entries().values())
                .map(|(&p, bucket)| (p, Duration::from_micros(bucket.end())))
                .collect(),
            _ => PERCENTILES.iter().map(|&p| (p, Duration::ZERO)).collect(),
        };
        let mean = (sum / count.max(1) as u128) as u64;
        Latency {
            count,
            mean: Duration::from_micros(mean),
            percentiles,
        }
    }

    /// The value at a percentile of [`PERCENTILES`], if it is one.
    pub fn at(&self, percentile: f64) -> Option<Duration> {
        self.percentiles
            .iter()
            .find(|(p, _)| *p == percentile)
            .map(|(_, d)| *d)
    }
}

/// Everything known about one breaker at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The breaker's name (Hystrix command key).
    pub name: Arc<str>,
    /// Its group (Hystrix group key).
    pub group: Arc<str>,
    /// The bulkhead it reports with (Hystrix thread-pool key): its group unless set.
    pub thread_pool: Arc<str>,
    /// When the snapshot was taken.
    pub taken_at: SystemTime,
    /// The state machine's state.
    pub state: State,
    /// The mode (normal or forced).
    pub mode: Mode,
    /// Time left in the sleep window while open.
    pub open_for: Option<Duration>,
    /// Counts over the rolling statistical window (time-based).
    pub rolling: Counts,
    /// Counts since the breaker was created.
    pub cumulative: Counts,
    /// Counts of the health window the breaker decides on (the count-based window when
    /// configured, otherwise the same as `rolling` since the last reset).
    pub health: Counts,
    /// Calls in flight now.
    pub concurrent_calls: u64,
    /// Most calls in flight at once over the rolling window. Exact when the calls pass a
    /// bulkhead of this breaker's (which counts them anyway); otherwise sampled at bucket
    /// boundaries and snapshots, so that calls need not share a counter.
    pub rolling_max_concurrent_calls: u64,
    /// Inner service time over the percentile window.
    pub latency_execute: Latency,
    /// End-to-end time (fallback included) over the percentile window; equal to
    /// `latency_execute` when no fallback layer is used.
    pub latency_total: Latency,
    /// The settings in force.
    pub config: CircuitBreakerConfig,
}

impl Snapshot {
    /// What Hystrix's `isCircuitBreakerOpen` means: true when forced open, false when forced
    /// closed, and in normal mode true while open or half-open (Java Hystrix reports its
    /// half-open state as open; [`Snapshot::state`] tells them apart).
    pub fn is_open_for_hystrix(&self) -> bool {
        match self.mode {
            Mode::ForcedOpen => true,
            Mode::Normal => self.state != State::Closed,
            Mode::ForcedClosed | Mode::MetricsOnly | Mode::Disabled => false,
        }
    }
}
