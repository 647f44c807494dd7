//! One service the client calls: its balancer, circuit breaker, retry budget and settings,
//! and the stack a call to it goes through.
//!
//! The order, outermost first: the service's fallback (when it has one), its circuit breaker (named after the service, so it
//! shows on the Hystrix stream like any command; 5xx, 408 and 429 count as failures), its
//! bulkhead, its timeout (the deadline over every attempt), the retries, the balancer (p2c
//! with per-instance ejection), and per attempt the traced transport (a client span and the
//! trace context in the headers).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use breakwater_balance::{Balancer, Endpoint, EurekaDiscover, StaticDiscover};
use breakwater_circuit_breaker::bulkhead::BulkheadLayer;
use breakwater_circuit_breaker::classify::HttpStatus;
use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::fallback::FallbackLayer;
use breakwater_circuit_breaker::timeout::TimeoutLayer;
use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
use breakwater_discovery::EurekaClient;
use http::{Request, Response};
use tokio::sync::watch;
use tower::retry::budget::TpsBudget;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, service_fn};

use crate::body::Body;
use crate::client::Inner;
use crate::config::{CallConfig, CallConfigError};
use crate::error::Error;
use crate::instance::Instance;
use crate::metrics::Counters;
use crate::response::FromFallback;
use crate::response_body::ResponseBody;
use crate::retry::Retries;
use crate::transport::ConnectTimeout;

pub(crate) type Stack = BoxCloneSyncService<Request<Body>, Response<ResponseBody>, BoxError>;

/// Where a service's instances come from.
pub(crate) enum Source<'a> {
    /// A list that can change at run time.
    Static(watch::Receiver<Vec<Endpoint>>),
    /// The Eureka client's view, by application name or VIP address.
    Eureka(&'a EurekaClient),
}

pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) balancer: Balancer<Instance, HttpStatus>,
    pub(crate) retries: Arc<ArcSwap<Retries>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stack: Stack,
    /// The pool's connect timeout: the settings' `connect_timeout`, else `default_connect`.
    connect_timeout: ConnectTimeout,
    default_connect: Duration,
}

pub(crate) fn budget(config: &CallConfig) -> Arc<TpsBudget> {
    Arc::new(TpsBudget::new(
        config.budget_window,
        config.budget_min_per_second,
        config.budget_retry_percent / 100.0,
    ))
}

impl Upstream {
    pub(crate) fn new(
        name: &str,
        source: Source<'_>,
        client: &Inner,
        breaker: CircuitBreaker,
        config: CallConfig,
    ) -> Result<Self, BoxError> {
        let default_connect = client.connect_timeout;
        let balance = client.balance.clone();
        let connect_timeout =
            ConnectTimeout::new(config.connect_timeout.unwrap_or(default_connect));
        let transport = client.transports.pool(connect_timeout.clone());
        let (service, durations) = (Arc::<str>::from(name), client.durations.clone());
        let make = move |e: &Endpoint| Instance::new(&service, e, transport.clone(), &durations);
        let balancer = match source {
            Source::Static(list) => Balancer::with_classifier(
                name,
                StaticDiscover::new(list, Endpoint::clone),
                make,
                balance,
                HttpStatus,
            )?,
            Source::Eureka(client) => Balancer::with_classifier(
                name,
                EurekaDiscover::new(client, name, Endpoint::clone),
                make,
                balance,
                HttpStatus,
            )?,
        };
        let counters = Arc::new(Counters::default());
        let retries = Arc::new(ArcSwap::from_pointee(Retries {
            budget: budget(&config),
            config: Arc::new(config),
            breaker: Some(breaker.clone()),
            counters: counters.clone(),
        }));
        let attempts = {
            let (retries, balancer) = (retries.clone(), balancer.clone());
            service_fn(move |request: Request<Body>| {
                let (retries, balancer) = (retries.load_full(), balancer.clone());
                async move {
                    let response = retries.send(&balancer, request).await?;
                    Ok::<_, BoxError>(response.map(ResponseBody::from))
                }
            })
        };
        let stack = ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(&breaker).classify(HttpStatus))
            .layer(BulkheadLayer::new(breaker.bulkhead()))
            .layer(TimeoutLayer::new(&breaker))
            .service(attempts);
        let stack = match client.fallbacks.get(name) {
            None => BoxCloneSyncService::new(stack),
            Some(fallback) => {
                let (fallback, target) = (
                    fallback.clone(),
                    Arc::<str>::from(format!("service://{name}")),
                );
                let answer = move |error: BoxError| {
                    let error = Error::from_stack(&target, error);
                    let answer = match fallback(&error) {
                        Some(response) => {
                            let mut response = response.map(ResponseBody::full);
                            response.extensions_mut().insert(FromFallback);
                            Ok(response)
                        }
                        None => Err(BoxError::from(error)),
                    };
                    std::future::ready(answer)
                };
                BoxCloneSyncService::new(FallbackLayer::new(&breaker, answer).layer(stack))
            }
        };
        Ok(Upstream {
            name: name.into(),
            breaker,
            balancer,
            retries,
            counters,
            stack,
            connect_timeout,
            default_connect,
        })
    }

    /// The call settings in force.
    pub(crate) fn config(&self) -> CallConfig {
        (*self.retries.load().config).clone()
    }

    /// Replaces the call settings; the budget keeps its count unless its settings changed.
    pub(crate) fn set_config(&self, config: CallConfig) -> Result<(), CallConfigError> {
        config.validate()?;
        let current = self.retries.load();
        let same_budget = current.config.budget_window == config.budget_window
            && current.config.budget_min_per_second == config.budget_min_per_second
            && current.config.budget_retry_percent == config.budget_retry_percent;
        let budget = if same_budget {
            current.budget.clone()
        } else {
            budget(&config)
        };
        self.connect_timeout
            .set(config.connect_timeout.unwrap_or(self.default_connect));
        self.retries.store(Arc::new(Retries {
            config: Arc::new(config),
            budget,
            breaker: Some(self.breaker.clone()),
            counters: self.counters.clone(),
        }));
        Ok(())
    }

    /// The deadline the breaker's timeout sets, if any.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.breaker.config().timeout
    }
}
