//! Hystrix-style circuit breakers for [`tower`] services.
//!
//! A [`CircuitBreaker`] watches the calls of one dependency over a rolling window. When enough
//! of them fail (by default at least 20 calls in 10 s with at least 50% errors) it *opens*:
//! calls fail at once with [`CircuitOpen`](error::CircuitOpen) instead of waiting on a sick
//! dependency. After a sleep window (5 s) it goes *half-open* and lets a set number of trial
//! calls through; if they succeed it closes, if one fails it opens again.
//!
//! The pieces, each a `Layer` + `Service` + `Future` in the manner of tower:
//!
//! | layer | does |
//! |---|---|
//! | [`CircuitBreakerLayer`] | admits or short-circuits calls, classifies results, records statistics |
//! | [`timeout::TimeoutLayer`] | abandons calls after the breaker's live `timeout` |
//! | [`bulkhead::BulkheadLayer`] | rejects calls at once beyond `max_concurrent_calls` |
//! | [`fallback::FallbackLayer`] | answers failed calls another way |
//!
//! Stack them in Hystrix's order, fallback outermost:
//!
//! ```
//! use std::time::Duration;
//! use breakwater_circuit_breaker::{
//!     CircuitBreakerLayer, CircuitBreakerRegistry, bulkhead::BulkheadLayer, classify::HttpStatus,
//!     error::BoxError, fallback::FallbackLayer, timeout::TimeoutLayer,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let registry = CircuitBreakerRegistry::new();
//! let breaker = registry.breaker("pricing");
//! let pricing = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(&breaker, |_e: BoxError| async {
//!         Ok(http::Response::new("list price"))
//!     }))
//!     .layer(CircuitBreakerLayer::new(&breaker).classify(HttpStatus))
//!     .layer(BulkheadLayer::new(breaker.bulkhead()))
//!     .layer(TimeoutLayer::new(&breaker))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, std::io::Error>(http::Response::new("live price"))
//!     }));
//!
//! let response = pricing.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(*response.body(), "live price");
//!
//! // What the stream dashboard and metrics exporters read:
//! let snapshot = breaker.snapshot();
//! assert_eq!(snapshot.rolling.success, 1);
//!
//! // Settings change at run time, for the next call, without rebuilding the stack:
//! breaker.update(|c| c.timeout = Some(Duration::from_millis(200))).unwrap();
//! # });
//! ```
//!
//! # Cost
//!
//! On the closed path a call costs two reads of the time-stamp counter (for latency), a few
//! relaxed atomic adds on a cache line of the calling thread's own, and one load of the state.
//! No lock, no allocation, no shared counter: threads do not slow each other down. See
//! `benches/README.md` in the repository for measured figures.
//!
//! # Observability
//!
//! * [`CircuitBreaker::snapshot`] / [`CircuitBreakerRegistry::snapshot`]: rolling and cumulative counts,
//!   error percentage, state, concurrency, latency percentiles and the settings in force.
//! * [`CircuitBreaker::subscribe`] / [`CircuitBreakerRegistry::subscribe`]: state transitions and setting
//!   changes, also logged through `tracing`.
//! * [`metrics::MetricsPublisher`]: Prometheus-friendly series through the `metrics` crate.

//!
//! # Features
//!
//! None: the crate is what every other Breakwater crate builds on, and stays small
//! (tower's traits, tokio's `sync`, `time` and `rt`, and the pieces of the hot path).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod breaker;
pub mod bulkhead;
pub mod classify;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod fallback;
mod future;
mod layer;
pub mod metrics;
mod registry;
mod service;
pub mod snapshot;
mod stats;
pub mod timeout;

pub use breaker::{Builder, CircuitBreaker, WeakCircuitBreaker};
pub use classify::{Classify, Outcome};
pub use clock::Clock;
pub use config::{Backoff, CircuitBreakerConfig, Growth, Mode, SlowCalls, Window};
pub use event::{Event, EventKind, State};
pub use future::{CallPermit, CircuitBreakerFuture};
pub use layer::CircuitBreakerLayer;
pub use registry::CircuitBreakerRegistry;
pub use service::CircuitBreakerService;
pub use snapshot::Snapshot;
