//! [`BalancerSnapshot`]: what a balancer knows of its instances, for pages and metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use breakwater_circuit_breaker::State;

use crate::balancer::{Balancer, Shared};

/// Where an instance stands with the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Takes requests.
    Active,
    /// Ejected: no requests (outside panic mode) until its breaker lets a probe through.
    Ejected {
        /// When the next probe may go.
        until: SystemTime,
    },
    /// Its ejection is over; one probe request decides whether it is back.
    Probing,
}

impl InstanceState {
    /// `active`, `ejected` or `probing`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Active => "active",
            InstanceState::Ejected { .. } => "ejected",
            InstanceState::Probing => "probing",
        }
    }
}

/// One instance, now.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSnapshot {
    /// Its instance id.
    pub id: String,
    /// `host:port`.
    pub authority: String,
    /// Its zone, if known.
    pub zone: Option<String>,
    /// In the caller's zone.
    pub local: bool,
    /// Its weight.
    pub weight: u32,
    /// Active, ejected or probing.
    pub state: InstanceState,
    /// The latency estimate (peak-sensitive moving average).
    pub latency: Duration,
    /// The failure share (moving average, 0..=1).
    pub failure_rate: f64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests sent since it joined.
    pub requests: u64,
    /// Its part of the requests sent to the instances known now (0..=1).
    pub share: f64,
    /// Times ejected since it joined.
    pub ejections: u64,
}

/// Every instance of one balancer, now.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerSnapshot {
    /// The service the balancer is for.
    pub service: Arc<str>,
    /// The caller's zone, when zones are looked at.
    pub zone: Option<String>,
    /// Too few instances are healthy: ejections are not honoured.
    pub panic: bool,
    /// The share of requests kept in the caller's zone, when zones are looked at.
    pub local_share: Option<f64>,
    /// The instances, by id.
    pub instances: Vec<InstanceSnapshot>,
}

impl<S, C> Shared<S, C> {
    pub(crate) fn snapshot(&self) -> BalancerSnapshot {
        let members = self.members.load_full();
        let settings = self.core.settings.load();
        let total: u64 = members.all.iter().map(|m| m.estimator.sent()).sum();
        let mut instances: Vec<InstanceSnapshot> = members
            .all
            .iter()
            .map(|m| {
                let (latency, failure_rate) = m.estimator.estimate(&settings.cost);
                let state = match m.breaker.state() {
                    State::Closed => InstanceState::Active,
                    State::HalfOpen => InstanceState::Probing,
                    State::Open => match m.breaker.open_until() {
                        Some(until) if until > SystemTime::now() => {
                            InstanceState::Ejected { until }
                        }
                        _ => InstanceState::Probing,
                    },
                };
                let requests = m.estimator.sent();
                InstanceSnapshot {
                    id: m.endpoint.id.clone(),
                    authority: m.endpoint.authority(),
                    zone: m.endpoint.zone.clone(),
                    local: m.local.load(Ordering::Relaxed),
                    weight: m.endpoint.weight,
                    state,
                    latency,
                    failure_rate,
                    in_flight: m.estimator.in_flight(),
                    requests,
                    share: if total == 0 {
                        0.0
                    } else {
                        requests as f64 / total as f64
                    },
                    ejections: m.ejections.load(Ordering::Relaxed),
                }
            })
            .collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let zoned = !members.local.is_empty() && !members.remote.is_empty();
        BalancerSnapshot {
            service: self.core.service.clone(),
            zone: settings
                .config
                .zone
                .clone()
                .filter(|_| settings.config.zone_affinity),
            panic: members.panicking(&settings, self.core.ejected.load(Ordering::Relaxed)),
            local_share: zoned
                .then(|| members.local_share(self.core.ejected_local.load(Ordering::Relaxed))),
            instances,
        }
    }
}

impl<S, C> Balancer<S, C> {
    /// Every instance as it stands. `share` is each instance's part of all requests sent
    /// since the instances joined.
    pub fn snapshot(&self) -> BalancerSnapshot {
        self.shared.snapshot()
    }
}
