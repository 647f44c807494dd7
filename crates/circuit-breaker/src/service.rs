//! [`CircuitBreakerService`]: the service a [`CircuitBreakerLayer`](crate::CircuitBreakerLayer)
//! builds.

use std::task::{Context, Poll};

use tower::Service;

use crate::breaker::CircuitBreaker;
use crate::error::BoxError;
use crate::future::{CallGuard, CircuitBreakerFuture};

/// A service guarded by a circuit breaker.
///
/// The breaker decides in `call`: while open it answers at once with
/// [`CircuitOpen`](crate::error::CircuitOpen) without calling the inner service. `poll_ready`
/// is the inner service's.
///
/// Clones share the breaker; cloning costs what cloning `S` and `C` costs.
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C> {
    inner: S,
    handle: CircuitBreaker,
    classify: C,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, breaker: &CircuitBreaker, classify: C) -> Self {
        CircuitBreakerService {
            inner,
            handle: breaker.clone(),
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.handle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: crate::classify::Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CircuitBreakerFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.handle.acquire() {
            Ok(permit) => CircuitBreakerFuture::running(
                self.inner.call(request),
                CallGuard::new(self.handle.clone(), permit),
                self.classify.clone(),
            ),
            Err(open) => {
                if !self.handle.has_fallback() {
                    self.handle.unhandled_error(crate::stats::SHORT_CIRCUITED);
                }
                CircuitBreakerFuture::rejected(open)
            }
        }
    }
}
