//! Typed dynamic configuration: properties with defaults whose values follow layered
//! sources while the service runs, so an operator can change a setting everywhere within
//! seconds, without a deploy.
//!
//! - [`ConfigStore`]: the layered store. Precedence: runtime override > DynamoDB > environment >
//!   file > the default in code.
//! - [`Property`]: a typed handle; `get()` is a lock-free load; `on_change` callbacks and
//!   `watch()` streams; invalid text (by type or validator) is refused with a logged error
//!   naming the key and where the text came from, and the last good value stays.
//! - [`source`]: the environment, properties files, and `DynamoDbSource` (feature
//!   `dynamodb`; table layout in [`table`]) with scope rows (environment, region, zone, app, instance; the most specific
//!   matching row wins) and change detection pushed by DynamoDB Streams or by polling one
//!   version item.
//! - [`validate`]: the checks known keys must pass, shared by properties and the CLI.
//! - [`metrics`]: what is published (refusals, staleness, poll and stream errors).
//! - [`FeatureFlag`]: on, off, or a percentage rollout sticky per subject.
//! - [`hystrix`]: Hystrix property names drive circuit breakers, checked against the breaker's
//!   own limits.
//! - `balance` (feature `balance`): `balance.<service>.*` properties drive a balancer's
//!   settings.
//! - `client` (feature `client`): Ribbon's `<service>.ribbon.*` names, our `client.<service>.*`
//!   and the Hystrix and balance properties drive every service a breakwater-client calls.
//! - `admin::Admin` (feature `dynamodb`) and the `breakwater-config` binary (feature `cli`):
//!   conditional writes with audit attributes, history and rollback.
//! - [`origin`]: where a value came from ([`SourceKind`], [`Origin`]), for every message.
//!
//! ```
//! use breakwater_dyn_config::{ConfigStore, FeatureFlag};
//!
//! let config = ConfigStore::new();
//! let retries = config.property_validated("orders.retries", 3u32, |n| {
//!     if *n <= 10 { Ok(()) } else { Err("at most 10".into()) }
//! });
//! retries.on_change(|n| println!("retries now {n}"));
//! config.set_override("orders.retries", "5");
//! assert_eq!(retries.get(), 5);
//! config.set_override("orders.retries", "50"); // refused: the validator says no
//! assert_eq!(retries.get(), 5);
//! assert!(retries.last_error().unwrap().to_string().contains("orders.retries"));
//! ```

//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `dynamodb` | off | `DynamoDbSource` (polled, or pushed by DynamoDB Streams) and `admin`: the AWS SDK (`aws-config`, `aws-sdk-dynamodb`, `aws-sdk-dynamodbstreams`) |
//! | `balance` | off | `balance`: balancer settings from properties (adds `breakwater-balance`) |
//! | `client` | off | `client`: a breakwater-client's services follow properties (implies `balance`; adds `breakwater-client`) |
//! | `cli` | off | the `breakwater-config` binary (implies `dynamodb`; adds clap and serde_json) |
//!
//! Without features the crate is the store, properties, flags, the environment and file
//! layers and the Hystrix binding: no AWS SDK is compiled.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "dynamodb")]
pub mod admin;
#[cfg(feature = "balance")]
pub mod balance;
#[cfg(feature = "client")]
pub mod client;
pub mod error;
pub mod flag;
pub mod hystrix;
pub mod metrics;
pub mod origin;
pub mod property;
#[cfg(feature = "balance")]
mod scoped;
pub mod source;
pub mod store;
pub mod table;
pub mod validate;
pub mod value;

pub use error::{InvalidValue, SourceError};
pub use flag::{FeatureFlag, Rollout};
pub use origin::{Origin, SourceKind, Sourced};
pub use property::{CachedProperty, Property};
#[cfg(feature = "dynamodb")]
pub use source::dynamodb::DynamoDbSource;
pub use store::ConfigStore;
pub use table::Scope;
pub use value::FromConfig;
