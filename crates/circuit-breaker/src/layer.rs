//! [`CircuitBreakerLayer`]: wraps services in a breaker.

use tower::Layer;

use crate::breaker::CircuitBreaker;
use crate::classify::AnyError;
use crate::service::CircuitBreakerService;

/// Wraps services in a [`CircuitBreaker`]; `C` classifies results (default: [`AnyError`]).
///
/// ```
/// use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, classify::HttpStatus};
/// use tower::{ServiceBuilder, service_fn};
///
/// let breaker = CircuitBreaker::new("inventory");
/// let service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(&breaker).classify(HttpStatus))
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     }));
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = AnyError> {
    breaker: CircuitBreaker,
    classify: C,
}

impl CircuitBreakerLayer {
    /// A layer for `breaker` that counts every `Err` as a failure.
    pub fn new(breaker: &CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker: breaker.clone(),
            classify: AnyError,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses another classifier.
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker.clone(),
            classify,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, &self.breaker, self.classify.clone())
    }
}
