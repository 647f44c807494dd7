//! [`CircuitBreakerService`]: the service a [`CircuitBreakerLayer`](crate::CircuitBreakerLayer)
//! builds.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use crate::breaker::CircuitBreaker;
use crate::error::BoxError;
use crate::future::{CallGuard, ResponseFuture};

/// A service guarded by a circuit breaker.
///
/// The breaker decides in `call`: while open it answers at once with
/// [`CircuitOpen`](crate::error::CircuitOpen) without calling the inner service. `poll_ready`
/// is the inner service's.
///
/// Each clone has a handle of its own that its response futures share, so that tasks on
/// different threads never touch one reference count per call: clone the service per task or
/// connection (as hyper and axum do), rather than sharing one behind a lock.
#[derive(Debug)]
pub struct CircuitBreakerService<S, C> {
    inner: S,
    handle: Arc<CircuitBreaker>,
    classify: C,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, breaker: &CircuitBreaker, classify: C) -> Self {
        CircuitBreakerService {
            inner,
            handle: Arc::new(breaker.clone()),
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

impl<S: Clone, C: Clone> Clone for CircuitBreakerService<S, C> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            // A fresh handle: see the type's documentation.
            handle: Arc::new((*self.handle).clone()),
            classify: self.classify.clone(),
        }
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
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.handle.acquire() {
            Ok(permit) => ResponseFuture::running(
                self.inner.call(request),
                CallGuard::new(self.handle.clone(), permit),
                self.classify.clone(),
            ),
            Err(open) => {
                if !self.handle.has_fallback() {
                    self.handle.unhandled_error(crate::stats::SHORT_CIRCUITED);
                }
                ResponseFuture::rejected(open)
            }
        }
    }
}
