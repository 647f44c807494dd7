//! Eureka-compatible service discovery.
//!
//! - [`wire`]: Eureka's documents in JSON and XML, read tolerantly and written as current
//!   servers write them; the `apps__hashcode` and delta reconciliation.

#![warn(missing_docs)]

pub mod wire;
