//! Lease expiry: eviction, held back by self-preservation when too few instances renew.

use std::collections::BTreeMap;

use super::InstanceRegistry;

/// Where self-preservation stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preservation {
    /// Whether it holds evictions back now.
    pub active: bool,
    /// Instances that renewed in the last full minute.
    pub renewed: u64,
    /// At or below this many, it holds: the share of instances expected to renew in a minute
    /// times `renewal_percent_threshold`, rounded down.
    pub threshold: f64,
}

impl InstanceRegistry {
    /// True while self-preservation holds evictions back: the instances that renewed in the
    /// last full minute are at or below the threshold of those expected to. Instances are
    /// counted once however often they renew, so one chatty client cannot hold the count up
    /// while every other lease lapses.
    pub fn self_preserving(&self, now_ms: i64) -> bool {
        self.preservation(now_ms).active
    }

    /// Self-preservation's figures now (with `active` false when it is turned off).
    pub fn preservation(&self, now_ms: i64) -> Preservation {
        let state = self.lock();
        let clients: usize = state.apps.values().map(BTreeMap::len).sum();
        // With renewals less often than once a minute, only a share renews in any minute.
        let share = (60_000.0 / self.config.expected_renewal_interval_ms.max(1) as f64).min(1.0);
        let expected = clients as f64 * share;
        let threshold = (expected * self.config.renewal_percent_threshold.clamp(0.0, 1.0)).floor();
        let renewed = state.renewals.last_full_minute(now_ms);
        Preservation {
            active: self.config.self_preservation && clients > 0 && (renewed as f64) <= threshold,
            renewed: renewed as u64,
            threshold,
        }
    }

    /// Removes leases not renewed within their duration, unless self-preservation holds;
    /// at most 15 % of the registry per run (Eureka's limit). Returns the evicted ids.
    pub fn evict(&self, now_ms: i64) -> Vec<String> {
        if self.self_preserving(now_ms) {
            tracing::warn!("self-preservation: renewals below the threshold; not evicting");
            return Vec::new();
        }
        let state = self.lock();
        let size: usize = state.apps.values().map(BTreeMap::len).sum();
        let kept = (size as f64 * self.config.renewal_percent_threshold.clamp(0.0, 1.0)).floor();
        let limit = size.saturating_sub(kept as usize);
        let expired: Vec<(String, String)> = state
            .apps
            .iter()
            .flat_map(|(app, leases)| {
                leases
                    .iter()
                    .filter(|(_, l)| l.last_renewal_ms + l.duration_ms < now_ms)
                    .map(|(id, _)| (app.clone(), id.clone()))
            })
            .take(limit.max(1))
            .collect();
        drop(state);
        let mut evicted = Vec::new();
        for (app, id) in expired {
            if self.cancel(&app, &id, now_ms).is_ok() {
                tracing::info!(%app, %id, "lease expired; instance evicted");
                self.count(|a| a.evictions += 1);
                evicted.push(id);
            }
        }
        evicted
    }
}
