//! [`CircuitBreakerFuture`]: the future a [`CircuitBreakerService`](crate::CircuitBreakerService)
//! returns.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::breaker::{CircuitBreaker, Permit};
use crate::classify::{Classify, Outcome};
use crate::error::{BoxError, CircuitOpen, Elapsed, Rejected};
use crate::stats;

/// A call's admission by [`CircuitBreaker::try_acquire`]: report how the call went with
/// [`finish`](Self::finish). Dropped unfinished, it reports the call as cancelled, so an
/// abandoned half-open trial never leaves the breaker stuck.
pub struct CallPermit {
    guard: CallGuard,
}

impl CallPermit {
    pub(crate) fn new(breaker: CircuitBreaker, permit: Permit) -> Self {
        CallPermit {
            guard: CallGuard::new(breaker, permit),
        }
    }

    /// Reports the call: a success, a failure (counts for health, may trip the breaker) or
    /// ignored (a bad request).
    pub fn finish(mut self, outcome: Outcome) {
        self.guard.finish(counter_of(outcome));
    }

    /// Reports the call as timed out (a failure for health, counted as a timeout).
    pub fn timed_out(mut self) {
        self.guard.finish(stats::TIMEOUT);
    }

    /// The breaker that admitted the call.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.guard.breaker
    }
}

impl std::fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPermit")
            .field("breaker", &self.guard.breaker.name())
            .finish()
    }
}

/// Holds a call's admission; reports the call as cancelled if it is dropped unfinished, so an
/// abandoned half-open trial never leaves the breaker stuck.
pub(crate) struct CallGuard {
    breaker: CircuitBreaker,
    permit: Permit,
    /// 1 once the call has been reported (a word, not a bool: see [`Permit`]).
    done: usize,
}

impl CallGuard {
    pub(crate) fn new(breaker: CircuitBreaker, permit: Permit) -> Self {
        CallGuard {
            breaker,
            permit,
            done: 0,
        }
    }

    #[inline]
    fn finish(&mut self, counter: usize) {
        if self.done == 0 {
            self.done = 1;
            self.breaker.complete(self.permit, counter);
        }
    }
}

impl Drop for CallGuard {
    #[inline]
    fn drop(&mut self) {
        self.finish(stats::CANCELLED);
    }
}

pin_project! {
    /// Resolves to the inner service's response, or to a boxed error: the inner error, or
    /// [`CircuitOpen`] when the breaker refused the call.
    pub struct CircuitBreakerFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Running {
            #[pin]
            future: F,
            guard: CallGuard,
            classify: C,
        },
        Rejected {
            error: Option<CircuitOpen>,
        },
    }
}

impl<F, C> CircuitBreakerFuture<F, C> {
    pub(crate) fn running(future: F, guard: CallGuard, classify: C) -> Self {
        CircuitBreakerFuture {
            kind: Kind::Running {
                future,
                guard,
                classify,
            },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        CircuitBreakerFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

/// Which counter a result goes to. This crate's own errors are recognised first.
pub(crate) fn counter_for<Res, C: Classify<Res>>(
    classify: &C,
    result: Result<&Res, &BoxError>,
) -> usize {
    if let Err(error) = result {
        if error.is::<Elapsed>() {
            return stats::TIMEOUT;
        }
        if error.is::<Rejected>() {
            return stats::REJECTED;
        }
    }
    counter_of(classify.classify(result))
}

/// The counter an outcome goes to.
fn counter_of(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => stats::SUCCESS,
        Outcome::Failure => stats::FAILURE,
        Outcome::Ignored => stats::BAD_REQUEST,
    }
}

impl<F, C, Res, E> Future for CircuitBreakerFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classify<Res>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running {
                future,
                guard,
                classify,
            } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let counter = counter_for(classify, result.as_ref());
                guard.finish(counter);
                if result.is_err() && !guard.breaker.has_fallback() {
                    guard.breaker.unhandled_error(counter);
                }
                Poll::Ready(result)
            }
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(e) => e.into(),
                None => "circuit breaker future polled after completion".into(),
            })),
        }
    }
}
