//! Eureka-compatible service discovery.
//!
//! - [`client`]: register, heartbeat and fetch against Eureka servers, with failover.
//! - [`wire`]: Eureka's documents in JSON and XML, read tolerantly and written as current
//!   servers write them; the `apps__hashcode` and delta reconciliation. The model
//!   ([`Instance`], [`Application`], [`Applications`], [`Status`], ...) is re-exported here.
//! - `registry` (feature `server`): the state of an embedded Eureka registry (leases, overrides, delta queue,
//!   eviction, self-preservation).
//! - `server` (feature `server`): that registry's REST API, under `/eureka/apps` and `/eureka/v2/apps`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `server` | off | the embedded registry: `registry` (leases, eviction, delta queue) and `server` (its REST API as an axum `Router`; pulls in axum and tower-http) |
//! | `cli` | off | the `breakwater-eureka` binary (implies `server`; adds clap and tracing-subscriber) |
//!
//! The client alone needs neither: `breakwater-discovery = "0.1"` is the client and the wire model.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

pub use client::{EurekaClient, EurekaClientConfig, EurekaClientError, Renewal, Running};
#[cfg(feature = "server")]
pub use registry::{Activity, InstanceRegistry, InstanceRegistryConfig, InstanceRegistryError};
pub use wire::{
    ActionType, Application, Applications, DataCenterInfo, Instance, LeaseInfo, Port, Status,
    WireError,
};
