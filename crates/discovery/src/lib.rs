//! Eureka-compatible service discovery.
//!
//! - [`client`]: register, heartbeat and fetch against Eureka servers, with failover.
//! - [`wire`]: Eureka's documents in JSON and XML, read tolerantly and written as current
//!   servers write them; the `apps__hashcode` and delta reconciliation.
//! - [`registry`]: the state of an embedded Eureka registry (leases, overrides, delta queue,
//!   eviction, self-preservation).
//! - [`server`]: that registry's REST API, under `/eureka/apps` and `/eureka/v2/apps`.

#![warn(missing_docs)]

pub mod client;
pub mod registry;
pub mod server;
pub mod wire;
