//! Streams circuit-breaker stats in the wire format of Netflix Hystrix, merges the streams of
//! many instances as Turbine does, and serves a live dashboard page.
//!
//! On-call engineers watch breakers here during incidents, so streaming must keep up and must
//! never slow the service it runs in: one frame per tick is built and compressed once for all
//! watchers, each watcher has a small bounded queue, and a watcher that stops reading is
//! disconnected.
//!
//! | route | what |
//! |---|---|
//! | `GET /hystrix.stream[?delay=ms][&extensions=all]` | this process's [`CircuitBreakerRegistry`](breakwater_circuit_breaker::CircuitBreakerRegistry) as Hystrix SSE: a `HystrixCommand` event per breaker, a `HystrixThreadPool` event per bulkhead; [extension] events (balancers' instances) only when asked |
//! | `GET /turbine.stream[?instance=i][&extensions=all]` | the merged streams of the followed instances (Turbine rules), or one of them; their extension events, unmerged, when asked |
//! | `GET /proxy.stream?origin=url` | relays an allowed upstream stream, for the stock Hystrix Dashboard |
//! | `GET /health` | `application/health+json`: `pass`, or `warn` (still 200) while a followed stream is down (`stream:connected` checks) |
//! | `GET /metrics` | Prometheus text: watchers by endpoint, frames, bytes and frames skipped, watchers cut off, refusals by reason, followed upstreams by state (promtool-checked) |
//! | `GET /` | the live dashboard page; `/dashboard/sources.json` lists what it can show |
//!
//! ```no_run
//! use breakwater_circuit_breaker::CircuitBreakerRegistry;
//! use breakwater_stream_dashboard::Dashboard;
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let registry = CircuitBreakerRegistry::global().clone();
//! let router = Dashboard::new().registry(registry).router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7979").await?;
//! breakwater_stream_dashboard::serve(listener, router, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! The router is a plain [`axum::Router`], so it can be merged into an existing service
//! instead; [`serve()`] adds the ability to cut off stalled stream clients.

//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `balance` | off | [`BalancerEvents`]: each balancer's instances (breakwater-balance) as a stream extension, shown on the page |
//! | `cli` | off | the `breakwater-dashboard` binary: flags, environment variables, log output (clap, tracing-subscriber) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
#[cfg(feature = "balance")]
pub mod balancers;
mod dashboard;
pub mod extension;
pub mod hystrix;
mod merge;
pub mod metrics;
mod page;
pub mod proxy;
pub mod serve;
pub mod sse;
pub mod stream;
#[cfg(target_os = "linux")]
mod zero_copy;

pub use aggregate::Aggregator;
#[cfg(feature = "balance")]
pub use balancers::BalancerEvents;
pub use dashboard::Dashboard;
pub use proxy::OriginAllowList;
pub use serve::{ServeConfig, serve, serve_with_config};
pub use stream::StreamConfig;
