//! Breakwater: resilient, observable networked services, as Tower layers and the tools to
//! watch them. This facade re-exports the workspace's crates behind features (all on by
//! default):
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `balance` | [`balance`] | `breakwater-balance`: `Balancer` (p2c over latency and failures, per-instance ejection with breakers, panic threshold, zones, live settings) over discovery streams (Eureka, static lists) |
//! | `client` | [`client`] | `breakwater-client`: the smart HTTP client (`service://` URLs through the balancer, retries with a budget on another instance, hedging, fan-out; reqwest-shaped and a tower `Service`) |
//! | `circuit-breaker` | [`circuit_breaker`] | `breakwater-circuit-breaker`: breakers, timeouts, bulkheads, fallbacks, registry and snapshots |
//! | `stream-dashboard` | [`stream_dashboard`] | `breakwater-stream-dashboard`: `/hystrix.stream`, Turbine-style aggregation, the live page |
//! | `discovery` | [`discovery`] | `breakwater-discovery`: Eureka client and embedded Eureka-compatible registry |
//! | `tracing-mw` | [`tracing_mw`] | `breakwater-tracing-mw`: trace-context propagation layers, OTLP export and log correlation |
//! | `dyn-config` | [`dyn_config`] | `breakwater-dyn-config`: typed dynamic properties over override/env/file, feature flags, Hystrix binding |
//!
//! Heavy parts have features of their own, also on by default:
//!
//! | feature | adds |
//! |---|---|
//! | `eureka-server` | the embedded Eureka registry and its REST API (`discovery::registry`, `discovery::server`; axum, tower-http) |
//! | `otlp` | `tracing_mw::init`: the subscriber, the OpenTelemetry SDK and OTLP export (tonic, hyper) |
//! | `dynamodb` | the DynamoDB layer and admin API (`dyn_config::DynamoDbSource`, `dyn_config::admin`; the AWS SDK) |
//! | `cli` | the `breakwater-eureka`, `breakwater-dashboard` and `breakwater-config` binaries |
//!
//! A program that needs only some of it depends on the crates themselves, each of which is
//! light by default (`breakwater-dyn-config` without `dynamodb` compiles no AWS SDK), or on
//! this package with `default-features = false` and the features it wants.

#![forbid(unsafe_code)]

#[cfg(feature = "balance")]
pub use breakwater_balance as balance;
#[cfg(feature = "circuit-breaker")]
pub use breakwater_circuit_breaker as circuit_breaker;
#[cfg(feature = "client")]
pub use breakwater_client as client;
#[cfg(feature = "discovery")]
pub use breakwater_discovery as discovery;
#[cfg(feature = "dyn-config")]
pub use breakwater_dyn_config as dyn_config;
#[cfg(feature = "stream-dashboard")]
pub use breakwater_stream_dashboard as stream_dashboard;
#[cfg(feature = "tracing-mw")]
pub use breakwater_tracing_mw as tracing_mw;
