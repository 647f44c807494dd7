//! Client-side load balancing over discovered instances.
//!
//! - [`Balancer`]: a tower `Service` (cheap to clone) that sends each request to one instance:
//!   power of two choices over a [`cost`] that follows latency like PeakEWMA *and* counts
//!   failures, among the instances whose breaker (one per instance, from
//!   `breakwater-circuit-breaker`, freed when the instance leaves) has not ejected them; the
//!   caller's zone first; every instance when too many are ejected (the panic threshold).
//!   Settings: [`BalanceConfig`], changeable at run time. State: [`Balancer::snapshot`] and
//!   [`BalancerRegistry`].
//! - [`EurekaDiscover`]: the instances of one application (or VIP address) in the view of an
//!   [`EurekaClient`](breakwater_discovery::EurekaClient), `UP` only: an instance that goes
//!   `DOWN`, `OUT_OF_SERVICE` or `STARTING`, or leaves, is removed; one whose address, port,
//!   zone or weight changed is inserted again under its id (which replaces it).
//! - [`StaticDiscover`]: a list of [`Endpoint`]s that can change at run time (from dyn-config
//!   or the environment), through a `tokio::sync::watch` channel.
//! - `dns::DnsDiscover` (feature `dns`): a name's A and AAAA records as such a list, resolved
//!   again when their TTL runs out (hickory-resolver); a failed lookup keeps the last list.
//! - [`CostService`]: the same cost for tower's own `p2c::Balance`.
//!
//! The discovery streams yield `Change<String, S>`, keyed by instance id, where `S` is what a
//! closure makes of an [`Endpoint`] (the endpoint itself, for a [`Balancer`]).
//!
//! ```
//! use breakwater_balance::{Endpoint, StaticDiscover};
//! use tower::discover::{Change, Discover};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (list, updates) = tokio::sync::watch::channel(vec![
//!     Endpoint::new("a", "10.0.0.1", 8080),
//!     Endpoint::new("b", "10.0.0.2", 8080),
//! ]);
//! let mut discover = StaticDiscover::new(updates, |e: &Endpoint| e.authority());
//! let mut ids = Vec::new();
//! for _ in 0..2 {
//!     let change = std::future::poll_fn(|cx| std::pin::Pin::new(&mut discover).poll_discover(cx));
//!     if let Some(Ok(Change::Insert(id, authority))) = change.await {
//!         ids.push(format!("{id} {authority}"));
//!     }
//! }
//! assert_eq!(ids, ["a 10.0.0.1:8080", "b 10.0.0.2:8080"]);
//! # drop(list);
//! # }
//! ```

//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `dns` | off | `dns`: instances from DNS records (adds hickory-resolver) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod balancer;
pub mod config;
pub mod cost;
mod discover;
#[cfg(feature = "dns")]
pub mod dns;
mod endpoint;
mod future;
mod member;
pub mod metrics;
mod pick;
mod registry;
mod snapshot;

pub use balancer::{Balancer, NoInstances};
pub use config::{BalanceConfig, SettingError};
pub use cost::{Cost, CostConfig, CostService};
pub use discover::{EurekaDiscover, StaticDiscover};
pub use endpoint::{Endpoint, MAX_WEIGHT};
pub use future::BalancerFuture;
pub use registry::BalancerRegistry;
pub use snapshot::{BalancerSnapshot, InstanceSnapshot, InstanceState};
