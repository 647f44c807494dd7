//! [`BalancerFuture`]: a request on its way to the instance picked for it, and what its end
//! tells the instance's cost and breaker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use breakwater_circuit_breaker::CallPermit;
use breakwater_circuit_breaker::classify::{Classify, Outcome};
use breakwater_circuit_breaker::error::{BoxError, Elapsed};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;
use tower::util::Oneshot;

use crate::member::Member;
use crate::pick::Picked;

/// Reports the request to its member when it ends, however it ends.
struct Guard<S> {
    member: Arc<Member<S>>,
    permit: Option<CallPermit>,
    sent: Instant,
    done: bool,
}

impl<S> Guard<S> {
    fn finish(&mut self, outcome: Outcome, timed_out: bool) {
        self.done = true;
        let settings = self.member.core.settings.load();
        self.member
            .estimator
            .observe(&settings.cost, self.sent.elapsed(), outcome);
        if let Some(permit) = self.permit.take() {
            if timed_out {
                permit.timed_out();
            } else {
                permit.finish(outcome);
            }
        }
    }
}

impl<S> Drop for Guard<S> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned: the caller timed out or went away. The breaker counts it cancelled
            // (the permit's drop); the latency estimate learns the instance took this long.
            self.member.estimator.abandoned(self.sent.elapsed());
        }
        self.permit = None;
        self.member.estimator.end();
        self.member.sync();
    }
}

pin_project! {
    /// A request sent to one picked instance.
    pub(crate) struct Call<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        inner: Oneshot<S, Req>,
        guard: Guard<S>,
        classify: C,
    }
}

impl<S, Req, C> Call<S, Req, C>
where
    S: Service<Req> + Clone,
{
    pub(crate) fn new(picked: Picked<S>, request: Req, classify: C) -> Self {
        picked.member.estimator.start();
        Call {
            inner: Oneshot::new(picked.member.service.clone(), request),
            guard: Guard {
                member: picked.member,
                permit: picked.permit,
                sent: Instant::now(),
                done: false,
            },
            classify,
        }
    }
}

impl<S, Req, C> Future for Call<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let timed_out = matches!(&result, Err(e) if e.is::<Elapsed>());
        let outcome = if timed_out {
            Outcome::Failure
        } else {
            this.classify.classify(result.as_ref())
        };
        this.guard.finish(outcome, timed_out);
        Poll::Ready(result)
    }
}

type Boxed<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

pin_project! {
    /// The response future of a [`Balancer`](crate::Balancer): the instance's answer, its
    /// error boxed, or [`NoInstances`](crate::NoInstances).
    pub struct BalancerFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req, C>
    where
        S: Service<Req>,
    {
        Calling { #[pin] call: Call<S, Req, C> },
        Waiting { future: Boxed<S::Response> },
        Failed { error: Option<BoxError> },
    }
}

impl<S, Req, C> BalancerFuture<S, Req, C>
where
    S: Service<Req>,
{
    pub(crate) fn calling(call: Call<S, Req, C>) -> Self {
        BalancerFuture {
            kind: Kind::Calling { call },
        }
    }

    pub(crate) fn waiting(future: Boxed<S::Response>) -> Self {
        BalancerFuture {
            kind: Kind::Waiting { future },
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        BalancerFuture {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<S, Req, C> std::fmt::Debug for BalancerFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerFuture").finish_non_exhaustive()
    }
}

impl<S, Req, C> Future for BalancerFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Calling { call } => call.poll(cx),
            KindProj::Waiting { future } => future.as_mut().poll(cx),
            KindProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "balancer future polled after completion".into()))),
        }
    }
}
