//! Timeouts whose length follows the breaker's live settings.
//!
//! Put the [`TimeoutLayer`] inside the breaker, so that timeouts count as such (Hystrix's
//! `rollingCountTimeout`) and toward health. The length is read for every call from
//! [`CircuitBreakerConfig::timeout`](crate::CircuitBreakerConfig::timeout), so an operator can shorten it during an incident.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::breaker::CircuitBreaker;
use crate::error::{BoxError, Elapsed};

/// Applies the breaker's timeout to each call.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    breaker: CircuitBreaker,
}

impl TimeoutLayer {
    /// A layer that times calls out after `breaker`'s current `timeout`.
    pub fn new(breaker: &CircuitBreaker) -> Self {
        TimeoutLayer {
            breaker: breaker.clone(),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// A service whose calls fail with [`Elapsed`] when they take too long. The inner future is
/// dropped at the deadline, which cancels it.
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S, Req> Service<Req> for TimeoutService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let nanos = self.breaker.inner.timeout_nanos.load(Ordering::Relaxed);
        let (sleep, after) = if nanos == 0 {
            (None, Duration::ZERO)
        } else {
            let after = Duration::from_nanos(nanos);
            (Some(tokio::time::sleep(after)), after)
        };
        TimeoutFuture {
            future: self.inner.call(request),
            sleep,
            after,
            breaker: self.breaker.clone(),
        }
    }
}

pin_project! {
    /// The future of [`TimeoutService`].
    pub struct TimeoutFuture<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: Option<Sleep>,
        after: Duration,
        breaker: CircuitBreaker,
    }
}

impl<F, Res, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => match sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed {
                    name: this.breaker.inner.name.clone(),
                    after: *this.after,
                }
                .into())),
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Pending,
        }
    }
}
