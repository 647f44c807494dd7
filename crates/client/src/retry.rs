//! The attempts of one call: retries on another instance, with a budget, full-jitter
//! back-off and one deadline; hedging when the service has it on.
//!
//! A failed attempt is retried when all of these hold:
//! - it failed in a way worth retrying: no connection, a reset or closed connection, a
//!   refused HTTP/2 stream or a `GOAWAY` that did not take it, an attempt timeout
//!   ([`CallConfig::read_timeout`]), or a 502, 503, 504 or 429 answer;
//! - the call may be repeated: its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT,
//!   DELETE), or the caller opted in ([`RetryNonIdempotent`], an `Idempotency-Key` header,
//!   [`CallConfig::ok_to_retry_on_all_operations`]), or the request provably was not sent
//!   (no connection, refused stream, `GOAWAY`);
//! - its body can be sent again (given whole, not as a stream);
//! - attempts are left ([`CallConfig::max_attempts`], at most 5), and so is time before the
//!   deadline for the back-off (or the `Retry-After` the answer asked for);
//! - the service's circuit breaker is closed;
//! - the service's retry budget has a retry to spend.
//!
//! The retry goes to another instance than the one that failed (after
//! [`CallConfig::max_auto_retries`] retries on the same one), while another can take it.

use std::sync::Arc;
use std::time::Duration;

use breakwater_backoff::Backoff;
use breakwater_balance::Balancer;
use breakwater_circuit_breaker::classify::HttpStatus;
use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{CircuitBreaker, State};
use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use crate::body::Body;
use crate::config::CallConfig;
use crate::error::AttemptError;
use crate::instance::{Instance, Picked};
use crate::metrics::Counters;

/// Retry this request even though its method is not idempotent (a request extension; the
/// convenience API sets it with [`RequestBuilder::retry_non_idempotent`](crate::RequestBuilder::retry_non_idempotent)).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryNonIdempotent;

/// The instant by which the whole call must be answered (a request extension; the convenience
/// API sets it from [`RequestBuilder::timeout`](crate::RequestBuilder::timeout)). The retry
/// loop does not start a back-off or an attempt past it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// Where attempts go: a balancer over a service's instances, or one host.
pub(crate) trait Target: Send + Sync + 'static {
    fn send(
        &self,
        request: Request<Body>,
        avoid: &[Arc<str>],
    ) -> BoxFuture<'static, Result<Response<Incoming>, BoxError>>;
}

impl Target for Balancer<Instance, HttpStatus> {
    fn send(
        &self,
        request: Request<Body>,
        avoid: &[Arc<str>],
    ) -> BoxFuture<'static, Result<Response<Incoming>, BoxError>> {
        Box::pin(self.call_avoiding(request, avoid))
    }
}

/// The retry state of one service (or of every plain URL): settings, budget and breaker.
pub(crate) struct Retries {
    pub(crate) config: Arc<CallConfig>,
    pub(crate) budget: Arc<TpsBudget>,
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) counters: Arc<Counters>,
}

/// What one attempt's result calls for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// The answer stands.
    Done,
    /// Worth another try: `unsent` when the request provably did not reach the service;
    /// `after` when the answer said how long to wait.
    Retry {
        unsent: bool,
        after: Option<Duration>,
    },
}

fn verdict(result: &Result<Response<Incoming>, BoxError>) -> Verdict {
    match result {
        Ok(response) => match response.status() {
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Verdict::Retry {
                unsent: false,
                after: None,
            },
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Verdict::Retry {
                unsent: false,
                after: retry_after(response.headers()),
            },
            _ => Verdict::Done,
        },
        Err(error) if error.is::<breakwater_balance::NoInstances>() => Verdict::Done,
        Err(error) => Verdict::Retry {
            unsent: not_sent(&**error),
            after: None,
        },
    }
}

/// `Retry-After` as a wait: delta-seconds or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether an error shows that the request never reached the service: no connection was
/// made, or HTTP/2 refused the stream, or a `GOAWAY` came before the server took it.
pub(crate) fn not_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && client.is_connect()
        {
            return true;
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>()
            && (h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote()))
        {
            return true;
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return true;
        }
        next = e.source();
    }
    false
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The request of one more attempt: the same head (extensions too) and the same bytes.
fn copy(head: &http::request::Parts, body: &Bytes) -> Request<Body> {
    Request::from_parts(head.clone(), body.clone().into())
}

impl Retries {
    /// Sends `request` to `target`, retrying and hedging by the rules of this module.
    pub(crate) async fn send(
        &self,
        target: &dyn Target,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        let config = &*self.config;
        self.budget.deposit();
        let (head, body) = request.into_parts();
        let deadline = head.extensions.get::<Deadline>().map(|d| d.0);
        let repeatable = idempotent(&head.method)
            || config.ok_to_retry_on_all_operations
            || head.extensions.get::<RetryNonIdempotent>().is_some()
            || head.headers.contains_key("idempotency-key");
        // What later attempts send: a copy of a body given whole (none for a stream).
        let spare = body.replayable();
        let replayable = spare.is_some();
        let max_attempts = config.max_attempts();
        let mut same_instance_left = config.max_auto_retries;
        let mut avoid: Vec<Arc<str>> = Vec::new();
        let mut first = Some(body);
        let mut attempts = 0u32;
        loop {
            let request = match first.take() {
                Some(body) => Request::from_parts(head.clone(), body),
                // Only a replayable call is retried, so there is a copy to send.
                None => match &spare {
                    Some(body) => copy(&head, body),
                    None => return Err("internal: a retry without a replayable body".into()),
                },
            };
            let hedge = config
                .hedge_delay
                .filter(|_| attempts == 0 && repeatable && replayable);
            let (result, picked, tries) = self
                .attempt(
                    target,
                    request,
                    &head,
                    spare.as_ref(),
                    &avoid,
                    hedge,
                    deadline,
                )
                .await;
            attempts += tries;
            let Verdict::Retry { unsent, after } = verdict(&result) else {
                return result;
            };
            self.counters.failed_attempt();
            let wait = after
                .filter(|after| *after <= config.max_retry_after)
                .unwrap_or_else(|| {
                    Backoff::exponential(config.backoff_max)
                        .full_jitter_delay(config.backoff_base, attempts.saturating_sub(1))
                });
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let not_retried = if attempts >= max_attempts {
                Some("no attempts left")
            } else if !(repeatable || unsent) {
                Some("the method is not idempotent (opt in per request or send an Idempotency-Key)")
            } else if !replayable {
                Some("the body cannot be replayed (a stream)")
            } else if after.is_some_and(|a| a > config.max_retry_after) {
                Some("Retry-After is longer than max_retry_after")
            } else if left.is_some_and(|left| left <= wait) {
                Some("the deadline is too near")
            } else if self
                .breaker
                .as_ref()
                .is_some_and(|b| b.state() != State::Closed)
            {
                Some("the service's circuit breaker is not closed")
            } else if !self.budget.withdraw() {
                self.counters.budget_exhausted();
                Some("the retry budget is spent")
            } else {
                None
            };
            if let Some(reason) = not_retried {
                return match result {
                    // The answer goes back as it is (a 503 is an answer).
                    Ok(response) => Ok(response),
                    Err(source) => Err(AttemptError {
                        attempts,
                        not_retried: (attempts < max_attempts || reason != "no attempts left")
                            .then_some(reason),
                        source,
                    }
                    .into()),
                };
            }
            // Let the failed answer's connection go back to the pool.
            drop(result);
            match picked {
                Some(_) if same_instance_left > 0 => same_instance_left -= 1,
                Some(id) if !avoid.contains(&id) => avoid.push(id),
                Some(_) => {}
                None => {}
            }
            self.counters.retry();
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt, or a hedged pair: the result that stands, the instance it came from (for
    /// a failure, the one to avoid next), and how many requests were sent.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        target: &dyn Target,
        mut request: Request<Body>,
        head: &http::request::Parts,
        body: Option<&Bytes>,
        avoid: &[Arc<str>],
        hedge: Option<Duration>,
        deadline: Option<Instant>,
    ) -> (Result<Response<Incoming>, BoxError>, Option<Arc<str>>, u32) {
        let picked = Picked::default();
        request.extensions_mut().insert(picked.clone());
        let primary = self.timed(target.send(request, avoid));
        let (Some(delay), Some(body)) = (hedge, body) else {
            let result = primary.await;
            return (result, picked.get(), 1);
        };
        let mut primary = std::pin::pin!(primary);
        let start_hedge_at = Instant::now() + delay;
        if deadline.is_some_and(|d| d <= start_hedge_at) {
            let result = primary.await;
            return (result, picked.get(), 1);
        }
        tokio::select! {
            result = &mut primary => return (result, picked.get(), 1),
            _ = tokio::time::sleep_until(start_hedge_at) => {}
        }
        if !self.budget.withdraw() {
            self.counters.budget_exhausted();
            let result = primary.await;
            return (result, picked.get(), 1);
        }
        let mut second = copy(head, body);
        self.counters.hedge();
        let hedged = Picked::default();
        second.extensions_mut().insert(hedged.clone());
        let mut elsewhere: Vec<Arc<str>> = avoid.to_vec();
        elsewhere.extend(picked.get());
        let secondary = std::pin::pin!(self.timed(target.send(second, &elsewhere)));
        // The first answer that stands wins; the other is dropped (cancelled). When the first
        // to come is worth a retry, the other may still stand.
        match futures::future::select(primary, secondary).await {
            Either::Left((result, other)) => {
                if verdict(&result) == Verdict::Done {
                    return (result, picked.get(), 2);
                }
                let later = other.await;
                if verdict(&later) == Verdict::Done {
                    self.counters.hedge_won();
                }
                (later, hedged.get(), 2)
            }
            Either::Right((result, other)) => {
                if verdict(&result) == Verdict::Done {
                    self.counters.hedge_won();
                    return (result, hedged.get(), 2);
                }
                let later = other.await;
                (later, picked.get(), 2)
            }
        }
    }

    /// An attempt bounded by `read_timeout`, when set.
    async fn timed(
        &self,
        send: BoxFuture<'static, Result<Response<Incoming>, BoxError>>,
    ) -> Result<Response<Incoming>, BoxError> {
        match self.config.read_timeout {
            Some(limit) => match tokio::time::timeout(limit, send).await {
                Ok(result) => result,
                Err(elapsed) => Err(Box::new(elapsed)),
            },
            None => send.await,
        }
    }
}
