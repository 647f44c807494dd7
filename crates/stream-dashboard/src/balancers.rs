//! The instances behind each balancer of `breakwater-balance`, as `BreakwaterBalancer` stream
//! events (feature `balance`).
//!
//! One event per balancer, named after its service, each instance with its state, ejection
//! end, latency estimate, requests in flight, share of traffic and zone. Instance breakers are
//! never `HystrixCommand` events: a fleet of hundreds of instances would bury the commands on
//! the stock dashboard. They are an [extension](crate::extension), so a stream carries them
//! only when asked (`?extensions=BreakwaterBalancer` or `all`), and our page shows them in a
//! section of their own.
//!
//! ```
//! use breakwater_balance::BalancerRegistry;
//! use breakwater_stream_dashboard::{BalancerEvents, Dashboard};
//!
//! let dashboard = Dashboard::new().extension(BalancerEvents::new(BalancerRegistry::global()));
//! ```
//!
//! An event (instances sorted ejected first, then probing, then active; at most
//! [`MAX_INSTANCES`] of them, `instancesOmitted` counting the rest):
//!
//! ```json
//! {"type": "BreakwaterBalancer", "name": "payments", "currentTime": 1764780000000,
//!  "zone": "eu-west-1a", "panic": false, "localShare": 0.9, "instancesOmitted": 0,
//!  "instances": [{"id": "payments-7f9c", "authority": "10.0.0.7:8080", "zone": "eu-west-1a",
//!    "local": true, "weight": 1, "state": "ejected", "ejectedUntil": 1764780030000,
//!    "latencyMs": 12.5, "failureRate": 0.8, "inFlight": 0, "requests": 940, "share": 0.09,
//!    "ejections": 1}]}
//! ```

use std::time::SystemTime;

use breakwater_balance::{BalancerRegistry, BalancerSnapshot, InstanceSnapshot, InstanceState};
use serde::Serialize;

use crate::extension::StreamExtension;
use crate::hystrix::epoch_millis;
use crate::sse;

/// The `type` of the events.
pub const EVENT_TYPE: &str = "BreakwaterBalancer";
/// Most instances listed in one balancer's event.
pub const MAX_INSTANCES: usize = 500;

/// The balancers of a [`BalancerRegistry`] as a stream extension.
#[derive(Debug, Clone, Copy)]
pub struct BalancerEvents {
    registry: &'static BalancerRegistry,
}

impl BalancerEvents {
    /// The balancers of `registry` (usually [`BalancerRegistry::global`]).
    pub fn new(registry: &'static BalancerRegistry) -> Self {
        BalancerEvents { registry }
    }
}

impl StreamExtension for BalancerEvents {
    fn event_type(&self) -> &'static str {
        EVENT_TYPE
    }

    fn write_events(&self, out: &mut Vec<u8>) {
        let now = epoch_millis(SystemTime::now());
        for snapshot in self.registry.snapshot() {
            sse::write_data(&BalancerEvent::new(&snapshot, now), out);
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BalancerEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    current_time: u64,
    zone: Option<&'a str>,
    panic: bool,
    local_share: Option<f64>,
    instances_omitted: usize,
    instances: Vec<InstanceEvent<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceEvent<'a> {
    id: &'a str,
    authority: &'a str,
    zone: Option<&'a str>,
    local: bool,
    weight: u32,
    state: &'static str,
    ejected_until: Option<u64>,
    latency_ms: f64,
    failure_rate: f64,
    in_flight: usize,
    requests: u64,
    share: f64,
    ejections: u64,
}

impl<'a> BalancerEvent<'a> {
    fn new(snapshot: &'a BalancerSnapshot, now: u64) -> Self {
        let mut instances: Vec<&InstanceSnapshot> = snapshot.instances.iter().collect();
        // The instances an engineer looks for first: out of service, then coming back.
        instances.sort_by_key(|i| match i.state {
            InstanceState::Ejected { .. } => 0,
            InstanceState::Probing => 1,
            InstanceState::Active => 2,
        });
        let omitted = instances.len().saturating_sub(MAX_INSTANCES);
        instances.truncate(MAX_INSTANCES);
        BalancerEvent {
            kind: EVENT_TYPE,
            name: &snapshot.service,
            current_time: now,
            zone: snapshot.zone.as_deref(),
            panic: snapshot.panic,
            local_share: snapshot.local_share.map(finite),
            instances_omitted: omitted,
            instances: instances.into_iter().map(InstanceEvent::new).collect(),
        }
    }
}

impl<'a> InstanceEvent<'a> {
    fn new(i: &'a InstanceSnapshot) -> Self {
        let ejected_until = match i.state {
            InstanceState::Ejected { until } => Some(epoch_millis(until)),
            _ => None,
        };
        InstanceEvent {
            id: &i.id,
            authority: &i.authority,
            zone: i.zone.as_deref(),
            local: i.local,
            weight: i.weight,
            state: i.state.as_str(),
            ejected_until,
            latency_ms: finite(i.latency.as_secs_f64() * 1e3),
            failure_rate: finite(i.failure_rate),
            in_flight: i.in_flight,
            requests: i.requests,
            share: finite(i.share),
            ejections: i.ejections,
        }
    }
}

/// JSON has no NaN or infinity.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}
