//! The smart HTTP client: `service://NAME/path` resolved at run time, retries with a budget on
//! another instance, hedging, fan-out; shaped like reqwest, and a tower `Service`.
//!
//! ```no_run
//! use breakwater_client::Client;
//!
//! # #[derive(serde::Deserialize)] struct Charge { id: String }
//! # async fn run() -> Result<(), breakwater_client::Error> {
//! // `BREAKWATER_SERVICE_PAYMENTS=127.0.0.1:8081,127.0.0.1:8082` on a laptop,
//! // `BREAKWATER_SERVICE_PAYMENTS=dns:payments.internal:8080` where DNS knows it, Eureka in
//! // production (`Client::builder().eureka(client)`): the same URL works in all three.
//! let client = Client::new()?;
//! let charge: Charge = client
//!     .post("service://payments/v1/charge")
//!     .header("idempotency-key", "order-42")   // so a POST may be retried
//!     .json(&serde_json::json!({"amount": 1200}))
//!     .timeout(std::time::Duration::from_secs(2))
//!     .send()
//!     .await?
//!     .error_for_status()?
//!     .json()
//!     .await?;
//! # let _ = charge.id;
//! # Ok(()) }
//! ```
//!
//! # The stack
//!
//! Every call to `service://NAME` goes through, outermost first:
//!
//! 0. its fallback, when it has one ([`ClientBuilder::fallback`]): calls that fail without an
//!    answer get the fallback's, counted in the breaker as Hystrix counts them;
//! 1. the service's circuit breaker, named `NAME` in the process's
//!    [`CircuitBreakerRegistry`](breakwater_circuit_breaker::CircuitBreakerRegistry), so it
//!    shows on the Hystrix stream and takes `hystrix.command.NAME.*` settings (5xx, 408 and 429
//!    answers count as failures; a breaker the client makes has [`breaker_config`]: Hystrix's
//!    defaults with room for [`MAX_CONCURRENT_CALLS`]); then its bulkhead; then its timeout,
//!    the deadline over every attempt (a shorter [`RequestBuilder::timeout`] wins);
//! 2. the retries ([`retry`] has the rules): idempotent methods only unless told, on
//!    connection errors, resets, refused streams, 502/503/504 and 429 (`Retry-After`
//!    honoured), to another instance than the one that failed, with full-jitter back-off
//!    (25 ms, at most 250 ms), at most 3 attempts (5 whatever the settings), never while the
//!    breaker is not closed, within a budget of 20 % of requests plus 10/s over 10 s; with
//!    [`CallConfig::hedge_delay`], a second copy to another instance;
//! 3. the balancer of `breakwater-balance`: p2c over latency and failures, per-instance
//!    ejection, zones, weights, over the instances of a static list, a name's DNS records
//!    (`dns:NAME:PORT`) or Eureka;
//! 4. per attempt, trace-context injection and a client span (`breakwater-tracing-mw`), and
//!    hyper-util's pooled connection (HTTP/1.1 or HTTP/2; TLS with feature `rustls`).
//!
//! Plain `http://` and `https://` URLs skip the breaker and balancer; they are retried by the
//! same rules (one budget for all of them), on the same host.
//!
//! # Live settings
//!
//! [`Client::set_call_config`] changes a service's [`CallConfig`] for its next call;
//! [`CallConfig::set`] takes one setting by name from text ([`SETTINGS`]: Ribbon's names
//! where Ribbon has the setting, ours for the rest), and [`Client::on_service`] tells a
//! binding of each service as it is made. `breakwater-dyn-config` (feature `client`) binds
//! them to properties: `<service>.ribbon.MaxAutoRetries` and the other Ribbon names,
//! `client.<service>.*`, `hystrix.command.<service>.*` and `balance.<service>.*`.
//!
//! # The tower face
//!
//! [`Client`] is a `tower::Service<http::Request<Body>>`, so layers compose over it; put a
//! [`Deadline`] or [`RetryNonIdempotent`] in a request's extensions for what the builder's
//! `timeout` and `retry_non_idempotent` do.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `rustls` | on | `https://` URLs and instances on their secure port (rustls, aws-lc-rs, the platform's roots) |
//! | `dns` | on | `dns:NAME:PORT` sources: A and AAAA records, followed by their TTL (hickory-resolver); name servers from `BREAKWATER_DNS_SERVERS` or the system |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod builder;
mod client;
mod config;
mod durations;
mod error;
mod fanout;
mod instance;
mod metrics;
mod request;
mod response;
mod response_body;
pub mod retry;
mod transport;
mod upstream;

pub use body::Body;
pub use builder::{ClientBuilder, ENV_DNS_SERVERS, ENV_PREFIX, Fallback};
pub use client::{Client, MAX_SERVICES};
pub use config::{
    CallConfig, CallConfigError, MAX_ATTEMPTS, MAX_CONCURRENT_CALLS, SETTINGS, breaker_config,
};
pub use durations::MAX_SERIES;
pub use error::{Error, ErrorKind};
pub use metrics::CallStats;
pub use request::RequestBuilder;
pub use response::Response;
pub use response_body::ResponseBody;
pub use retry::{Deadline, RetryNonIdempotent};
