//! Counts per service: requests by outcome, attempts that failed, retries, hedges, budget
//! refusals. Read them with [`Client::stats`](crate::Client::stats), or everything the client
//! knows in the Prometheus text format with
//! [`Client::render_prometheus`](crate::Client::render_prometheus):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `breakwater_client_requests_total` | counter, calls | `service`, `outcome` = success, failure |
//! | `breakwater_client_failed_attempts_total` | counter | `service` |
//! | `breakwater_client_retries_total` | counter | `service` |
//! | `breakwater_client_retry_budget_exhausted_total` | counter, retries and hedges not sent | `service` |
//! | `breakwater_client_hedges_total` | counter | `service` |
//! | `breakwater_client_hedges_won_total` | counter | `service` |
//! | `http_client_request_duration_seconds` | histogram, each attempt | `service`, `server_address`, `server_port`, `http_request_method`, `http_response_status_code`, `error_type` |
//! | `breakwater_balancer_*` | the balancers' series ([`breakwater_balance::metrics`]) | `service`, `instance`, `zone` |
//!
//! Plain `http(s)://` calls have `service=""`. The histogram is OpenTelemetry's
//! `http.client.request.duration` with its attribute names in Prometheus form; its series are
//! bounded by [`MAX_SERIES`](crate::MAX_SERIES).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use breakwater_balance::metrics::escape;

/// The counters of one service (or of every plain URL).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    hedges: AtomicU64,
    hedges_won: AtomicU64,
}

/// What a [`Client`](crate::Client) has done for one service since it first called it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls answered (any status but 5xx, 408, 429).
    pub succeeded: u64,
    /// Calls that failed (an error, or a 5xx/408/429 answer after the retries).
    pub failed: u64,
    /// Attempts that failed in a way worth retrying.
    pub failed_attempts: u64,
    /// Retries sent.
    pub retries: u64,
    /// Retries and hedges not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Calls a hedge answered first.
    pub hedges_won: u64,
}

impl Counters {
    pub(crate) fn finished(&self, success: bool) {
        if success {
            self.succeeded.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Relaxed);
    }
    pub(crate) fn hedge(&self) {
        self.hedges.fetch_add(1, Relaxed);
    }
    pub(crate) fn hedge_won(&self) {
        self.hedges_won.fetch_add(1, Relaxed);
    }

    pub(crate) fn stats(&self) -> CallStats {
        CallStats {
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            retries: self.retries.load(Relaxed),
            budget_exhausted: self.budget_exhausted.load(Relaxed),
            hedges: self.hedges.load(Relaxed),
            hedges_won: self.hedges_won.load(Relaxed),
        }
    }
}

impl crate::Client {
    /// Every series of this client in the Prometheus text format (0.0.4): calls by outcome,
    /// retries, budget refusals and hedges per service, each attempt's duration per service
    /// and instance, and the balancers' series. See the table in [`CallStats`]' module.
    pub fn render_prometheus(&self) -> String {
        let mut services: Vec<(String, CallStats)> = self
            .services()
            .into_iter()
            .filter_map(|name| Some((name.clone(), self.stats(Some(&name))?)))
            .collect();
        services.push((String::new(), self.inner.direct_counters.stats()));
        let mut out = String::new();
        type Count = fn(&CallStats) -> u64;
        let families: [(&str, &str, Count); 5] = [
            (
                "breakwater_client_failed_attempts_total",
                "Attempts that failed in a way worth retrying.",
                |s| s.failed_attempts,
            ),
            ("breakwater_client_retries_total", "Retries sent.", |s| {
                s.retries
            }),
            (
                "breakwater_client_retry_budget_exhausted_total",
                "Retries and hedges not sent because the retry budget was spent.",
                |s| s.budget_exhausted,
            ),
            ("breakwater_client_hedges_total", "Hedges sent.", |s| {
                s.hedges
            }),
            (
                "breakwater_client_hedges_won_total",
                "Calls a hedge answered first.",
                |s| s.hedges_won,
            ),
        ];
        let name = "breakwater_client_requests_total";
        let _ = writeln!(out, "# HELP {name} Calls made, by outcome (after retries).");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (service, stats) in &services {
            let service = escape(service);
            for (outcome, n) in [("success", stats.succeeded), ("failure", stats.failed)] {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{service}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        for (name, help, count) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (service, stats) in &services {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}\"}} {}",
                    escape(service),
                    count(stats)
                );
            }
        }
        self.inner.durations.render(&mut out);
        let balancers: Vec<_> = self
            .services()
            .iter()
            .filter_map(|service| self.instances(service))
            .collect();
        breakwater_balance::metrics::render(&balancers, &mut out);
        out
    }
}
