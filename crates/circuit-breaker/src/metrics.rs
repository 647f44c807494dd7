//! Publishing breaker statistics through the [`metrics`] crate (Prometheus and others).
//!
//! Calls never touch a `metrics` recorder: that would put a shared counter on the hot path.
//! Instead a [`MetricsPublisher`] reads the registry's cumulative statistics on a timer and
//! updates these series (labels in braces):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `breakwater_circuit_breaker_calls_total` | counter | `breaker`, `outcome` = success, failure, timeout, rejected, short_circuited, bad_request, cancelled |
//! | `breakwater_circuit_breaker_not_permitted_calls_total` | counter | `breaker` (short-circuited + rejected) |
//! | `breakwater_circuit_breaker_slow_calls_total` | counter | `breaker` |
//! | `breakwater_circuit_breaker_fallback_calls_total` | counter | `breaker`, `outcome` = success, failure, missing, rejected |
//! | `breakwater_circuit_breaker_state` | gauge, 1 for the current state | `breaker`, `state` = closed, open, half_open, forced_open, forced_closed, metrics_only, disabled |
//! | `breakwater_circuit_breaker_failure_rate_percent` | gauge | `breaker` (health window) |
//! | `breakwater_circuit_breaker_concurrent_calls` | gauge | `breaker` |
//! | `breakwater_circuit_breaker_call_duration_seconds` | histogram | `breaker` (execution time) |
//! | `breakwater_bulkhead_active_calls`, `breakwater_bulkhead_max_concurrent_calls` | gauge | `bulkhead` |
//! | `breakwater_bulkhead_rejected_calls_total` | counter | `bulkhead` |
//!
//! Durations are replayed into the histogram from the breaker's own latency histogram, one
//! value per bucket (its midpoint) with the bucket's count, so exporters see every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use histogram::Histogram;
use metrics::{counter, gauge, histogram};

use crate::config::Mode;
use crate::event::State;
use crate::registry::CircuitBreakerRegistry;
use crate::snapshot::Counts;

/// Reads a registry and updates `metrics` series. Keep one per registry.
pub struct MetricsPublisher {
    registry: CircuitBreakerRegistry,
    last_latency: HashMap<Arc<str>, Histogram>,
}

impl std::fmt::Debug for MetricsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsPublisher").finish_non_exhaustive()
    }
}

const STATES: [&str; 7] = [
    "closed",
    "open",
    "half_open",
    "forced_open",
    "forced_closed",
    "metrics_only",
    "disabled",
];

fn shown_state(mode: Mode, state: State) -> &'static str {
    match mode {
        Mode::Normal => state.as_str(),
        other => other.as_str(),
    }
}

impl MetricsPublisher {
    /// A publisher for `registry`.
    pub fn new(registry: CircuitBreakerRegistry) -> Self {
        MetricsPublisher {
            registry,
            last_latency: HashMap::new(),
        }
    }

    /// Updates every series once.
    pub fn publish(&mut self) {
        for breaker in self.registry.breakers() {
            let snapshot = breaker.snapshot();
            let name = snapshot.name.to_string();
            publish_counts(&name, &snapshot.cumulative);
            let shown = shown_state(snapshot.mode, snapshot.state);
            for state in STATES {
                gauge!("breakwater_circuit_breaker_state", "breaker" => name.clone(), "state" => state)
                    .set(if state == shown { 1.0 } else { 0.0 });
            }
            gauge!("breakwater_circuit_breaker_failure_rate_percent", "breaker" => name.clone())
                .set(snapshot.health.error_percentage() as f64);
            gauge!("breakwater_circuit_breaker_concurrent_calls", "breaker" => name.clone())
                .set(snapshot.concurrent_calls as f64);

            let [execution, _] = breaker.inner.stats.latency_cumulative();
            let duration =
                histogram!("breakwater_circuit_breaker_call_duration_seconds", "breaker" => name);
            let last = self
                .last_latency
                .entry(snapshot.name.clone())
                .or_insert_with(crate::stats::new_histogram);
            for ((bucket, now), before) in execution
                .iter()
                .zip(execution.as_slice())
                .zip(last.as_slice())
            {
                let delta = now.wrapping_sub(*before);
                if delta > 0 {
                    let mid_micros = (bucket.start() + bucket.end()) as f64 / 2.0;
                    duration.record_many(mid_micros / 1e6, delta as usize);
                }
            }
            *last = execution;
        }
        for bulkhead in self.registry.bulkheads() {
            let s = bulkhead.snapshot();
            let name = s.name.to_string();
            gauge!("breakwater_bulkhead_active_calls", "bulkhead" => name.clone())
                .set(s.active as f64);
            gauge!("breakwater_bulkhead_max_concurrent_calls", "bulkhead" => name.clone())
                .set(s.max_concurrent as f64);
            counter!("breakwater_bulkhead_rejected_calls_total", "bulkhead" => name)
                .absolute(s.cumulative_rejected);
        }
    }

    /// Publishes every `interval` until the returned task is aborted. Needs a tokio runtime.
    pub fn spawn(mut self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.publish();
            }
        })
    }
}

fn publish_counts(name: &str, c: &Counts) {
    let calls = [
        ("success", c.success),
        ("failure", c.failure),
        ("timeout", c.timeout),
        ("rejected", c.rejected),
        ("short_circuited", c.short_circuited),
        ("bad_request", c.bad_request),
        ("cancelled", c.cancelled),
    ];
    for (outcome, value) in calls {
        counter!("breakwater_circuit_breaker_calls_total", "breaker" => name.to_owned(), "outcome" => outcome)
            .absolute(value);
    }
    counter!("breakwater_circuit_breaker_not_permitted_calls_total", "breaker" => name.to_owned())
        .absolute(c.short_circuited + c.rejected);
    counter!("breakwater_circuit_breaker_slow_calls_total", "breaker" => name.to_owned())
        .absolute(c.slow);
    let fallbacks = [
        ("success", c.fallback_success),
        ("failure", c.fallback_failure),
        ("missing", c.fallback_missing),
        ("rejected", c.fallback_rejection),
    ];
    for (outcome, value) in fallbacks {
        counter!("breakwater_circuit_breaker_fallback_calls_total", "breaker" => name.to_owned(), "outcome" => outcome)
            .absolute(value);
    }
}
