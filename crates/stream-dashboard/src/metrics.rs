//! `/metrics` of the dashboard, in the Prometheus text format (0.0.4).
//!
//! | name | kind | labels | an alert on it means |
//! |---|---|---|---|
//! | `breakwater_dashboard_stream_connections` | gauge | `endpoint` = hystrix, turbine, proxy | watchers now; near `max_connections`, new ones get 503 |
//! | `breakwater_dashboard_stream_refused_total` | counter | `reason` = full, proxy_bad_request, proxy_forbidden, proxy_upstream | watchers turned away: the cap is too low, or a proxy client asks for what it may not |
//! | `breakwater_dashboard_frames_sent_total` | counter | `endpoint` | frames handed to watchers (a rate near zero with watchers open: the streams are stuck) |
//! | `breakwater_dashboard_bytes_sent_total` | counter | `endpoint` | bytes of those frames (after gzip) |
//! | `breakwater_dashboard_frames_skipped_total` | counter | `endpoint` | frames a slow watcher missed |
//! | `breakwater_dashboard_clients_cut_off_total` | counter | `endpoint` | watchers disconnected for reading nothing for the stall timeout |
//! | `breakwater_dashboard_upstreams` | gauge | `state` = connected, disconnected | followed instances whose stream is down: the aggregate is missing them |

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The stream endpoints, in label order.
pub(crate) const ENDPOINTS: [&str; 3] = ["hystrix", "turbine", "proxy"];

/// Why a stream request was refused, in label order.
pub(crate) const REASONS: [&str; 4] = [
    "full",
    "proxy_bad_request",
    "proxy_forbidden",
    "proxy_upstream",
];

#[derive(Debug, Default)]
struct PerEndpoint {
    open: AtomicI64,
    frames: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    cut_off: AtomicU64,
}

/// The counts of one dashboard.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    endpoints: [PerEndpoint; 3],
    refused: [AtomicU64; 4],
}

/// What one stream endpoint counts into.
#[derive(Debug, Clone)]
pub(crate) struct Counting {
    stats: Arc<StreamStats>,
    endpoint: usize,
}

impl Counting {
    pub(crate) fn new(stats: &Arc<StreamStats>, endpoint: &str) -> Self {
        Counting {
            stats: stats.clone(),
            endpoint: ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(0),
        }
    }

    fn of(&self) -> &PerEndpoint {
        &self.stats.endpoints[self.endpoint]
    }

    /// A watcher came; the guard counts it until dropped.
    pub(crate) fn opened(&self) -> OpenGuard {
        self.of().open.fetch_add(1, Relaxed);
        OpenGuard(self.clone())
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.of().frames.fetch_add(1, Relaxed);
        self.of().bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn skipped(&self) {
        self.of().skipped.fetch_add(1, Relaxed);
    }

    pub(crate) fn cut_off(&self) {
        self.of().cut_off.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.stats.refused(reason);
    }
}

/// Counts an open watcher until dropped.
#[derive(Debug)]
pub(crate) struct OpenGuard(Counting);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.of().open.fetch_sub(1, Relaxed);
    }
}

impl StreamStats {
    pub(crate) fn refused(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    /// The whole text; `upstreams` is (connected, disconnected) when the dashboard follows
    /// instances.
    pub(crate) fn render(&self, upstreams: Option<(usize, usize)>) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "breakwater_dashboard_stream_connections",
            "gauge",
            "Stream watchers connected now, by endpoint.",
        );
        for (endpoint, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            let _ = writeln!(
                out,
                "breakwater_dashboard_stream_connections{{endpoint=\"{endpoint}\"}} {}",
                e.open.load(Relaxed).max(0)
            );
        }
        type Count = fn(&PerEndpoint) -> u64;
        let counters: [(&str, &str, Count); 4] = [
            (
                "breakwater_dashboard_frames_sent_total",
                "Frames handed to stream watchers.",
                |e| e.frames.load(Relaxed),
            ),
            (
                "breakwater_dashboard_bytes_sent_total",
                "Bytes of the frames handed to watchers (after gzip).",
                |e| e.bytes.load(Relaxed),
            ),
            (
                "breakwater_dashboard_frames_skipped_total",
                "Frames a slow watcher missed.",
                |e| e.skipped.load(Relaxed),
            ),
            (
                "breakwater_dashboard_clients_cut_off_total",
                "Watchers disconnected for reading nothing for the stall timeout.",
                |e| e.cut_off.load(Relaxed),
            ),
        ];
        for (name, help, count) in counters {
            family(&mut out, name, "counter", help);
            for (endpoint, e) in ENDPOINTS.iter().zip(&self.endpoints) {
                let _ = writeln!(out, "{name}{{endpoint=\"{endpoint}\"}} {}", count(e));
            }
        }
        let name = "breakwater_dashboard_stream_refused_total";
        family(
            &mut out,
            name,
            "counter",
            "Stream requests refused, by reason.",
        );
        for (reason, n) in REASONS.iter().zip(&self.refused) {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", n.load(Relaxed));
        }
        if let Some((connected, disconnected)) = upstreams {
            let name = "breakwater_dashboard_upstreams";
            family(
                &mut out,
                name,
                "gauge",
                "Followed instances, by the state of their stream.",
            );
            let _ = writeln!(out, "{name}{{state=\"connected\"}} {connected}");
            let _ = writeln!(out, "{name}{{state=\"disconnected\"}} {disconnected}");
        }
        out
    }
}
