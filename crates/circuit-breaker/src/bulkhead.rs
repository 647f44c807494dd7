//! Bulkheads: a cap on calls in flight that rejects at once when full, like Hystrix's
//! semaphore isolation, instead of queueing callers behind a stuck dependency.
//!
//! Put the [`BulkheadLayer`] inside the breaker so that rejections count toward its health,
//! as in Hystrix:
//!
//! ```
//! use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, bulkhead::BulkheadLayer};
//! use tower::{ServiceBuilder, service_fn};
//!
//! let breaker = CircuitBreaker::new("search");
//! let service = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(&breaker))
//!     .layer(BulkheadLayer::new(breaker.bulkhead()))
//!     .service(service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) }));
//! # let _ = service;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use crossbeam_utils::CachePadded;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::clock::Clock;
use crate::error::{BoxError, Rejected};
use crate::stats::{self, Stats};

const STATS_BUCKET: (u64, u32) = (1_000_000_000, 10);

struct Inner {
    name: Arc<str>,
    max: AtomicU32,
    active: CachePadded<AtomicU32>,
    clock: Clock,
    stats: Stats,
}

/// A named cap on concurrent calls. Cheap to clone: clones share one bulkhead.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("active", &self.active())
            .field("max_concurrent", &self.max_concurrent())
            .finish()
    }
}

/// What a bulkhead reports (the Hystrix thread-pool event).
#[derive(Debug, Clone)]
pub struct BulkheadSnapshot {
    /// The bulkhead's name.
    pub name: Arc<str>,
    /// When the snapshot was taken.
    pub taken_at: SystemTime,
    /// Calls in flight now.
    pub active: u32,
    /// The cap.
    pub max_concurrent: u32,
    /// Calls admitted and finished over the rolling window.
    pub rolling_executed: u64,
    /// Calls rejected over the rolling window.
    pub rolling_rejected: u64,
    /// Most calls in flight at once over the rolling window.
    pub rolling_max_active: u64,
    /// Calls admitted and finished since creation.
    pub cumulative_executed: u64,
    /// Calls rejected since creation.
    pub cumulative_rejected: u64,
    /// Length of the rolling window.
    pub window: Duration,
}

impl Bulkhead {
    /// A bulkhead admitting at most `max_concurrent` calls at once (at least 1).
    pub fn new(name: impl AsRef<str>, max_concurrent: u32) -> Self {
        Self::with_clock(name.as_ref().into(), max_concurrent, Clock::new())
    }

    pub(crate) fn with_clock(name: Arc<str>, max_concurrent: u32, clock: Clock) -> Self {
        let now = clock.now_nanos();
        Bulkhead {
            inner: Arc::new(Inner {
                name,
                max: AtomicU32::new(max_concurrent.max(1)),
                active: CachePadded::new(AtomicU32::new(0)),
                stats: Stats::new(now, STATS_BUCKET, (60_000_000_000, 1)),
                clock,
            }),
        }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Changes the cap; calls already in flight are not interrupted.
    pub fn set_max_concurrent(&self, max_concurrent: u32) {
        self.inner
            .max
            .store(max_concurrent.max(1), Ordering::Release);
    }

    /// The cap.
    pub fn max_concurrent(&self) -> u32 {
        self.inner.max.load(Ordering::Acquire)
    }

    /// Calls in flight.
    pub fn active(&self) -> u32 {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Current figures.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        let now = self.inner.clock.now_nanos();
        let window = self.inner.stats.window(now, false);
        let totals = self.inner.stats.totals();
        BulkheadSnapshot {
            name: self.inner.name.clone(),
            taken_at: SystemTime::now(),
            active: self.active(),
            max_concurrent: self.max_concurrent(),
            rolling_executed: window.totals[stats::SUCCESS],
            rolling_rejected: window.totals[stats::REJECTED],
            rolling_max_active: window.max_in_flight.max(0) as u64,
            cumulative_executed: totals[stats::SUCCESS],
            cumulative_rejected: totals[stats::REJECTED],
            window: Duration::from_nanos(STATS_BUCKET.0 * STATS_BUCKET.1 as u64),
        }
    }

    fn try_acquire(&self) -> Result<BulkheadPermit, Rejected> {
        let inner = &self.inner;
        let max = inner.max.load(Ordering::Acquire);
        let admitted = inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        let Ok(before) = admitted else {
            inner.stats.count(stats::REJECTED, inner.clock.now_nanos());
            return Err(Rejected {
                name: inner.name.clone(),
                max_concurrent: max,
            });
        };
        inner.stats.begin();
        inner.stats.observe_concurrency(before as i64 + 1);
        Ok(BulkheadPermit {
            bulkhead: self.clone(),
        })
    }
}

/// A place in the bulkhead, given back on drop.
struct BulkheadPermit {
    bulkhead: Bulkhead,
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        let inner = &self.bulkhead.inner;
        inner.active.fetch_sub(1, Ordering::AcqRel);
        inner
            .stats
            .finish(stats::SUCCESS, inner.clock.now_nanos(), false, None);
    }
}

/// Wraps services in a [`Bulkhead`].
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer for `bulkhead`.
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// A service behind a [`Bulkhead`]. Full means an immediate [`Rejected`] error, never a wait.
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BulkheadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Ok(permit) => BulkheadFuture {
                future: Some(self.inner.call(request)),
                permit: Some(permit),
                rejected: None,
            },
            Err(rejected) => BulkheadFuture {
                future: None,
                permit: None,
                rejected: Some(rejected),
            },
        }
    }
}

pin_project! {
    /// The future of a [`BulkheadService`].
    pub struct BulkheadFuture<F> {
        #[pin]
        future: Option<F>,
        permit: Option<BulkheadPermit>,
        rejected: Option<Rejected>,
    }
}

impl<F, Res, E> Future for BulkheadFuture<F>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.future.as_pin_mut() {
            Some(future) => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                this.permit.take();
                Poll::Ready(result)
            }
            None => Poll::Ready(Err(match this.rejected.take() {
                Some(r) => r.into(),
                None => "bulkhead future polled after completion".into(),
            })),
        }
    }
}

/// Bulkheads by name: a registry's, shared with its breakers, which add theirs when first
/// asked for (breakers hold it weakly, so a dropped registry is not kept alive).
#[derive(Default)]
pub(crate) struct Bulkheads(std::sync::RwLock<std::collections::BTreeMap<Arc<str>, Bulkhead>>);

impl Bulkheads {
    pub(crate) fn get(&self, name: &str) -> Option<Bulkhead> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Adds `bulkhead` unless one has its name; returns the one registered.
    pub(crate) fn add(&self, bulkhead: Bulkhead) -> Bulkhead {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(bulkhead.name().into())
            .or_insert(bulkhead)
            .clone()
    }

    pub(crate) fn all(&self) -> Vec<Bulkhead> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn rejects_at_once_when_full_and_frees_on_drop() {
        let bulkhead = Bulkhead::new("pool", 2);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let svc = BulkheadLayer::new(bulkhead.clone()).layer(tower::service_fn(move |_: ()| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
                Ok::<_, std::io::Error>(())
            }
        }));
        let a = tokio::spawn(svc.clone().oneshot(()));
        let b = tokio::spawn(svc.clone().oneshot(()));
        while bulkhead.active() < 2 {
            tokio::task::yield_now().await;
        }
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(err.is::<Rejected>(), "{err}");
        assert!(err.to_string().contains("pool"), "{err}");
        tx.send(true).unwrap();
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(bulkhead.active(), 0);
        let snap = bulkhead.snapshot();
        assert_eq!(snap.cumulative_executed, 2);
        assert_eq!(snap.cumulative_rejected, 1);
        assert_eq!(snap.rolling_rejected, 1);
        assert!(snap.rolling_max_active >= 2);
        // A dropped call frees its place.
        let pending = svc.clone().oneshot(());
        drop(pending);
        bulkhead.set_max_concurrent(1);
        assert_eq!(bulkhead.max_concurrent(), 1);
    }
}
