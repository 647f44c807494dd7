//! Fallbacks: a second way to answer when the call fails, times out, is rejected or is
//! short-circuited.
//!
//! Put the [`FallbackLayer`] outermost, around the breaker. It counts fallback successes,
//! failures and rejections into the breaker's statistics, records end-to-end latency (Hystrix's
//! `latencyTotal`), and caps how many fallbacks run at once
//! ([`CircuitBreakerConfig::fallback_max_concurrent_calls`](crate::CircuitBreakerConfig::fallback_max_concurrent_calls)).
//!
//! ```
//! use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, fallback::FallbackLayer};
//! use breakwater_circuit_breaker::error::BoxError;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let breaker = CircuitBreaker::new("recommendations");
//! let service = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(&breaker, |_err: BoxError| async { Ok(vec!["bestsellers"]) }))
//!     .layer(CircuitBreakerLayer::new(&breaker))
//!     .service(service_fn(|_user: u64| async {
//!         Err::<Vec<&str>, _>(std::io::Error::other("recommender down"))
//!     }));
//! assert_eq!(service.oneshot(7).await.unwrap(), vec!["bestsellers"]);
//! assert_eq!(breaker.snapshot().cumulative.fallback_success, 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::breaker::CircuitBreaker;
use crate::error::{BoxError, FallbackRejected};
use crate::stats;

/// Adds a fallback `F: Fn(BoxError) -> impl Future<Output = Result<Response, BoxError>>`.
#[derive(Debug, Clone)]
pub struct FallbackLayer<F> {
    breaker: CircuitBreaker,
    fallback: F,
}

impl<F> FallbackLayer<F> {
    /// A layer answering failed calls of `breaker` with `fallback`.
    pub fn new(breaker: &CircuitBreaker, fallback: F) -> Self {
        breaker.mark_has_fallback();
        FallbackLayer {
            breaker: breaker.clone(),
            fallback,
        }
    }
}

impl<S, F: Clone> Layer<S> for FallbackLayer<F> {
    type Service = FallbackService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService {
            inner,
            breaker: self.breaker.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

/// A service with a fallback.
#[derive(Debug, Clone)]
pub struct FallbackService<S, F> {
    inner: S,
    breaker: CircuitBreaker,
    fallback: F,
}

impl<S, F, Fut, Req> Service<Req> for FallbackService<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(BoxError) -> Fut + Clone,
    Fut: Future<Output = Result<S::Response, BoxError>>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = FallbackFuture<S::Future, F, Fut>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let start = self.breaker.now_nanos();
        FallbackFuture {
            state: FallbackState::Primary {
                future: self.inner.call(request),
            },
            breaker: self.breaker.clone(),
            fallback: self.fallback.clone(),
            start,
            slot: None,
        }
    }
}

/// A running fallback's place under the cap.
struct FallbackSlot {
    breaker: CircuitBreaker,
}

impl Drop for FallbackSlot {
    fn drop(&mut self) {
        self.breaker
            .inner
            .fallbacks_running
            .fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// The future of [`FallbackService`].
    pub struct FallbackFuture<P, F, Fut> {
        #[pin]
        state: FallbackState<P, Fut>,
        breaker: CircuitBreaker,
        fallback: F,
        start: u64,
        slot: Option<FallbackSlot>,
    }
}

pin_project! {
    #[project = StateProj]
    enum FallbackState<P, Fut> {
        Primary { #[pin] future: P },
        Fallback { #[pin] future: Fut },
    }
}

impl<P, F, Fut, Res, E> Future for FallbackFuture<P, F, Fut>
where
    P: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    F: Fn(BoxError) -> Fut,
    Fut: Future<Output = Result<Res, BoxError>>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary { future } => {
                    let error = match ready!(future.poll(cx)) {
                        Ok(response) => {
                            record_total(this.breaker, *this.start);
                            return Poll::Ready(Ok(response));
                        }
                        Err(e) => e.into(),
                    };
                    let inner = &this.breaker.inner;
                    let limit = inner.fallback_limit.load(Ordering::Relaxed);
                    let admitted = inner
                        .fallbacks_running
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                            (n < limit).then_some(n + 1)
                        })
                        .is_ok();
                    if !admitted {
                        this.breaker.count(stats::FALLBACK_REJECTION);
                        this.breaker.count(stats::EXCEPTIONS_THROWN);
                        record_total(this.breaker, *this.start);
                        return Poll::Ready(Err(FallbackRejected {
                            name: inner.name.clone(),
                            max_concurrent: limit,
                            source: error,
                        }
                        .into()));
                    }
                    *this.slot = Some(FallbackSlot {
                        breaker: this.breaker.clone(),
                    });
                    let future = (this.fallback)(error);
                    this.state.set(FallbackState::Fallback { future });
                }
                StateProj::Fallback { future } => {
                    let result = ready!(future.poll(cx));
                    this.slot.take();
                    match &result {
                        Ok(_) => this.breaker.count(stats::FALLBACK_SUCCESS),
                        Err(_) => {
                            this.breaker.count(stats::FALLBACK_FAILURE);
                            this.breaker.count(stats::EXCEPTIONS_THROWN);
                        }
                    }
                    record_total(this.breaker, *this.start);
                    return Poll::Ready(result);
                }
            }
        }
    }
}

fn record_total(breaker: &CircuitBreaker, start: u64) {
    let elapsed = breaker.now_nanos().saturating_sub(start);
    breaker
        .inner
        .stats
        .record_latency_here(stats::Latency::Total, elapsed);
}
