//! `http.client.request.duration` (OpenTelemetry's HTTP semantic conventions): one histogram
//! series per service, instance (`server.address`, `server.port`), method and status code or
//! error type, recorded for every attempt from the moment it is handed to the pool until its
//! response head arrives, it fails, or it is dropped (a read timeout, the deadline, a lost
//! hedge: `error.type` `cancelled`).
//!
//! Series are bounded: past [`MAX_SERIES`] a new combination is counted in its service's one
//! overflow series (labels `_OTHER`, as OpenTelemetry SDKs do past their cardinality limit).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use breakwater_balance::metrics::escape;
use http::Method;

/// Most duration series one client keeps.
pub const MAX_SERIES: usize = 4096;

/// Bucket bounds in seconds: OpenTelemetry's advice for `http.client.request.duration`.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Where an attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Peer {
    /// The service (empty for plain URLs).
    pub(crate) service: Arc<str>,
    pub(crate) address: Arc<str>,
    pub(crate) port: u16,
}

/// How an attempt ended: a status code, or an error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum End {
    Status(u16),
    Error(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    peer: Peer,
    method: &'static str,
    end: End,
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn record(&self, seconds: f64, nanos: u64) {
        if let Some(i) = BOUNDS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// The duration series of one client.
#[derive(Default)]
pub(crate) struct Durations {
    series: RwLock<HashMap<Key, Arc<Histogram>>>,
    overflow: RwLock<HashMap<Arc<str>, Arc<Histogram>>>,
}

/// OpenTelemetry's method values: the known methods, else `_OTHER`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

impl Durations {
    fn record(&self, key: Key, elapsed: std::time::Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let seconds = elapsed.as_secs_f64();
        let read = self.series.read().unwrap_or_else(|p| p.into_inner());
        if let Some(histogram) = read.get(&key) {
            histogram.record(seconds, nanos);
            return;
        }
        drop(read);
        let mut write = self.series.write().unwrap_or_else(|p| p.into_inner());
        if write.len() < MAX_SERIES || write.contains_key(&key) {
            write.entry(key).or_default().record(seconds, nanos);
            return;
        }
        drop(write);
        let service = key.peer.service;
        let mut overflow = self.overflow.write().unwrap_or_else(|p| p.into_inner());
        // At most one per service of this client, and services are bounded.
        overflow.entry(service).or_default().record(seconds, nanos);
    }

    /// Appends the histogram family in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let name = "http_client_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of HTTP client requests (each attempt), until the response head."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut rows: Vec<(String, Arc<Histogram>)> = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(key, h)| (labels(key), h.clone()))
            .collect();
        rows.extend(
            self.overflow
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(service, h)| {
                    let labels = format!(
                        "service=\"{}\",server_address=\"_OTHER\",http_request_method=\"_OTHER\",otel_metric_overflow=\"true\"",
                        escape(service)
                    );
                    (labels, h.clone())
                }),
        );
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, h) in rows {
            // Read the count first: buckets are never behind it by more than calls in flight,
            // and the +Inf bucket is the count.
            let count = h.count.load(Relaxed);
            let mut cumulative = 0;
            for (bound, bucket) in BOUNDS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                    cumulative.min(count)
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }
}

fn labels(key: &Key) -> String {
    let mut labels = format!(
        "service=\"{}\",server_address=\"{}\",server_port=\"{}\",http_request_method=\"{}\"",
        escape(&key.peer.service),
        escape(&key.peer.address),
        key.peer.port,
        key.method
    );
    match key.end {
        End::Status(code) => {
            let _ = write!(labels, ",http_response_status_code=\"{code}\"");
            if code >= 400 {
                let _ = write!(labels, ",error_type=\"{code}\"");
            }
        }
        End::Error(kind) => {
            let _ = write!(labels, ",error_type=\"{kind}\"");
        }
    }
    labels
}

/// One attempt being timed: ended with [`Timing::end`], or counted `cancelled` when dropped.
pub(crate) struct Timing {
    durations: Arc<Durations>,
    key: Option<(Peer, &'static str)>,
    started: Instant,
}

impl Timing {
    pub(crate) fn start(durations: &Arc<Durations>, peer: Peer, method: &Method) -> Self {
        Timing {
            durations: durations.clone(),
            key: Some((peer, method_name(method))),
            started: Instant::now(),
        }
    }

    pub(crate) fn end(mut self, end: End) {
        self.finish(end);
    }

    fn finish(&mut self, end: End) {
        if let Some((peer, method)) = self.key.take() {
            let key = Key { peer, method, end };
            self.durations.record(key, self.started.elapsed());
        }
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        self.finish(End::Error("cancelled"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(service: &str, port: u16) -> Peer {
        Peer {
            service: service.into(),
            address: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn buckets_are_cumulative_and_dropped_attempts_count_as_cancelled() {
        let durations = Arc::new(Durations::default());
        Timing::start(&durations, peer("pay", 80), &Method::GET).end(End::Status(200));
        Timing::start(&durations, peer("pay", 80), &Method::GET).end(End::Status(200));
        drop(Timing::start(&durations, peer("pay", 80), &Method::GET));
        Timing::start(
            &durations,
            peer("pay", 80),
            &Method::from_bytes(b"PURGE").unwrap(),
        )
        .end(End::Status(503));
        let mut out = String::new();
        durations.render(&mut out);
        let ok = "service=\"pay\",server_address=\"127.0.0.1\",server_port=\"80\",http_request_method=\"GET\",http_response_status_code=\"200\"";
        assert!(
            out.contains(&format!("_bucket{{{ok},le=\"+Inf\"}} 2\n")),
            "{out}"
        );
        assert!(out.contains(&format!("_count{{{ok}}} 2\n")), "{out}");
        assert!(
            out.contains("http_request_method=\"GET\",error_type=\"cancelled\",le=\"10\"} 1"),
            "{out}"
        );
        assert!(out.contains("http_request_method=\"_OTHER\",http_response_status_code=\"503\",error_type=\"503\""), "{out}");
    }

    #[test]
    fn past_the_cap_new_series_fold_into_one_per_service() {
        let durations = Arc::new(Durations::default());
        for port in 0..(MAX_SERIES as u32 + 50) {
            let port = (port % 65_536) as u16;
            let service = if port < 10 { "a" } else { "b" };
            Timing::start(&durations, peer(service, port), &Method::GET).end(End::Status(200));
        }
        let mut out = String::new();
        durations.render(&mut out);
        let counts = out.lines().filter(|l| l.contains("_count{")).count();
        assert_eq!(
            counts,
            MAX_SERIES + 1,
            "the series kept and one overflow series"
        );
        let overflow = "_count{service=\"b\",server_address=\"_OTHER\",http_request_method=\"_OTHER\",otel_metric_overflow=\"true\"} 50";
        assert!(out.contains(overflow), "{out}");
    }
}
