//! [`CostService`]: what an instance costs to send a request to, for power-of-two-choices.
//!
//! Like tower's PeakEWMA (and Finagle's and linkerd's) the cost follows latency: a peak-
//! sensitive moving average of response times (a slower response takes over at once, faster
//! ones pull it down with a time constant, `decay`), times the requests in flight plus one.
//! Unlike it, failures cost too: an instance that answers `503` or resets *fast* looks cheap to
//! a latency-only estimate and draws ever more traffic; here a failed response never lowers
//! the latency estimate (it may raise it), a moving average of the failure share multiplies
//! the cost (by up to `1 + failure_penalty`), and the cost is divided by the instance's
//! weight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use breakwater_circuit_breaker::classify::{AnyError, Classify, Outcome};
use breakwater_circuit_breaker::error::BoxError;
use tokio::time::Instant;
use tower::Service;
use tower::load::Load;

/// Settings of the cost estimate (linkerd's defaults for latency).
#[derive(Debug, Clone, PartialEq)]
pub struct CostConfig {
    /// The latency assumed before an instance has answered (30 ms).
    pub default_rtt: Duration,
    /// The time constant of the moving averages (10 s).
    pub decay: Duration,
    /// How much an instance that only fails costs more than one that never does (100).
    pub failure_penalty: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
            failure_penalty: 100.0,
        }
    }
}

/// A comparable cost: lower is better.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cost(pub f64);

#[derive(Debug)]
struct Estimate {
    rtt_ns: f64,
    /// Whether a response other than a failure has been timed: until then the latency is the
    /// default, which the first such response replaces.
    heard: bool,
    failure: f64,
    updated: Instant,
}

/// One instance's moving averages and requests in flight: what its cost is made of. Shared
/// by the service that sends to the instance and the futures of its requests.
#[derive(Debug)]
pub(crate) struct Estimator {
    estimate: Mutex<Estimate>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
}

impl Estimator {
    pub(crate) fn new(config: &CostConfig) -> Self {
        Estimator {
            estimate: Mutex::new(Estimate {
                rtt_ns: config.default_rtt.as_nanos() as f64,
                heard: false,
                failure: 0.0,
                updated: Instant::now(),
            }),
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Estimate> {
        self.estimate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The share of the old average that remains after `since` (`exp(-since / decay)`).
    fn keep(config: &CostConfig, since: Duration) -> f64 {
        (-(since.as_nanos() as f64) / config.decay.as_nanos().max(1) as f64).exp()
    }

    /// A request goes out.
    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent since it was made.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A request ended (answered or abandoned).
    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// One response: `elapsed` after it was sent; failed, succeeded or neither (ignored).
    pub(crate) fn observe(&self, config: &CostConfig, elapsed: Duration, outcome: Outcome) {
        let failed = match outcome {
            Outcome::Success => Some(false),
            Outcome::Failure => Some(true),
            Outcome::Ignored => None,
        };
        let now = Instant::now();
        let mut e = self.lock();
        let keep = Self::keep(config, now.saturating_duration_since(e.updated));
        let sample = elapsed.as_nanos() as f64;
        // A failure tells how slow an instance can be, never how fast: a 503 or a reset that
        // comes back at once must not make the instance look cheap.
        let sample = if failed == Some(true) {
            sample.max(e.rtt_ns)
        } else {
            sample
        };
        e.rtt_ns = if !e.heard && failed != Some(true) {
            e.heard = true;
            sample
        } else if sample > e.rtt_ns {
            sample
        } else {
            e.rtt_ns * keep + sample * (1.0 - keep)
        };
        if let Some(failed) = failed {
            let x = if failed { 1.0 } else { 0.0 };
            e.failure = e.failure * keep + x * (1.0 - keep);
        }
        e.updated = now;
    }

    /// A request given up on after `elapsed` (its caller timed out or went away): the
    /// instance took at least that long, so a longer wait than the estimate raises it; a
    /// shorter one tells nothing.
    pub(crate) fn abandoned(&self, elapsed: Duration) {
        let mut e = self.lock();
        let sample = elapsed.as_nanos() as f64;
        if sample > e.rtt_ns {
            e.rtt_ns = sample;
            e.updated = Instant::now();
        }
    }

    /// Forgets the failure share: the instance is back after an ejection and a good probe.
    pub(crate) fn forgive(&self) {
        self.lock().failure = 0.0;
    }

    /// The latency estimate and the failure share, decayed to now.
    pub(crate) fn estimate(&self, config: &CostConfig) -> (Duration, f64) {
        let e = self.lock();
        let keep = Self::keep(config, Instant::now().saturating_duration_since(e.updated));
        (Duration::from_nanos(e.rtt_ns as u64), e.failure * keep)
    }

    /// What sending one more request costs, for an instance of `weight`.
    pub(crate) fn cost(&self, config: &CostConfig, weight: u32) -> Cost {
        let now = Instant::now();
        let (rtt_ns, failure) = {
            let e = self.lock();
            // The failure share decays while nothing is heard, so a penalised instance is
            // tried again.
            let keep = Self::keep(config, now.saturating_duration_since(e.updated));
            (e.rtt_ns, e.failure * keep)
        };
        let in_flight = self.in_flight() as f64;
        let penalty = 1.0 + config.failure_penalty.max(0.0) * failure;
        Cost(rtt_ns * (in_flight + 1.0) * penalty / f64::from(weight.max(1)))
    }
}

#[derive(Debug)]
struct Shared {
    estimator: Estimator,
    weight: u32,
    config: CostConfig,
}

/// A service whose [`Load`] is its [`Cost`]; `tower::balance::p2c::Balance` over these picks
/// the cheaper of two.
#[derive(Debug, Clone)]
pub struct CostService<S, C = AnyError> {
    inner: S,
    classify: C,
    shared: Arc<Shared>,
}

impl<S> CostService<S> {
    /// `inner`, of `weight` (at least 1), counting every `Err` as a failure.
    pub fn new(inner: S, weight: u32, config: CostConfig) -> Self {
        CostService::with_classifier(inner, weight, config, AnyError)
    }
}

impl<S, C> CostService<S, C> {
    /// `inner`, with `classify` telling failures (an HTTP 503 is an `Ok`, but a failure to
    /// the balancer: use `HttpStatus`).
    pub fn with_classifier(inner: S, weight: u32, config: CostConfig, classify: C) -> Self {
        CostService {
            inner,
            classify,
            shared: Arc::new(Shared {
                estimator: Estimator::new(&config),
                weight: weight.max(1),
                config,
            }),
        }
    }

    /// The latency estimate and the failure share, as they stand.
    pub fn estimate(&self) -> (Duration, f64) {
        self.shared.estimator.estimate(&self.shared.config)
    }
}

impl<S, C> Load for CostService<S, C> {
    type Metric = Cost;

    fn load(&self) -> Cost {
        self.shared
            .estimator
            .cost(&self.shared.config, self.shared.weight)
    }
}

impl<S, C, Req> Service<Req> for CostService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CostFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.shared.estimator.start();
        CostFuture {
            future: Box::pin(self.inner.call(request)),
            classify: self.classify.clone(),
            tracker: Some(Tracker {
                shared: self.shared.clone(),
                sent: Instant::now(),
            }),
        }
    }
}

/// Counts the call out when it ends, however it ends.
struct Tracker {
    shared: Arc<Shared>,
    sent: Instant,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.shared.estimator.end();
    }
}

/// The response future of a [`CostService`].
pub struct CostFuture<F, C> {
    future: Pin<Box<F>>,
    classify: C,
    tracker: Option<Tracker>,
}

impl<F, C> std::fmt::Debug for CostFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostFuture").finish_non_exhaustive()
    }
}

// Never pinned structurally: the inner future is boxed.
impl<F, C> Unpin for CostFuture<F, C> {}

impl<F, C, R, E> Future for CostFuture<F, C>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    C: Classify<R>,
{
    type Output = Result<R, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match this.future.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result.map_err(Into::into),
        };
        if let Some(tracker) = this.tracker.take() {
            let outcome = this.classify.classify(result.as_ref());
            let shared = &tracker.shared;
            shared
                .estimator
                .observe(&shared.config, tracker.sent.elapsed(), outcome);
        }
        Poll::Ready(result)
    }
}
