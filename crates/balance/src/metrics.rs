//! Prometheus text for balancers: [`render`] writes the series of every live balancer of a
//! [`BalancerRegistry`](crate::BalancerRegistry), one per service and per instance, from
//! their snapshots. An instance's series go with the instance: nothing is kept for ids that
//! left (no recorder to clean).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `breakwater_balancer_instances` | gauge | `service`, `state` = active, ejected, probing |
//! | `breakwater_balancer_panic` | gauge, 1 in panic mode | `service` |
//! | `breakwater_balancer_local_share` | gauge, share kept in the caller's zone | `service` (with zones) |
//! | `breakwater_balancer_requests_total` | counter | `service`, `instance`, `zone` |
//! | `breakwater_balancer_latency_estimate_seconds` | gauge | `service`, `instance`, `zone` |
//! | `breakwater_balancer_failure_ratio` | gauge | `service`, `instance`, `zone` |
//! | `breakwater_balancer_in_flight` | gauge | `service`, `instance`, `zone` |
//! | `breakwater_balancer_ejected` | gauge, 1 while ejected or probing | `service`, `instance`, `zone` |
//! | `breakwater_balancer_ejections_total` | counter | `service`, `instance`, `zone` |

use std::fmt::Write;

use crate::snapshot::{BalancerSnapshot, InstanceState};

/// A label value with `\`, `"` and new lines escaped, as the text format wants.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the series of `balancers` to `out` in the Prometheus text format (0.0.4).
pub fn render(balancers: &[BalancerSnapshot], out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        lines(out);
    };
    family(
        "breakwater_balancer_instances",
        "gauge",
        "Instances known to a balancer, by state.",
        &mut |out| {
            for b in balancers {
                let service = escape(&b.service);
                for state in ["active", "ejected", "probing"] {
                    let n = b
                        .instances
                        .iter()
                        .filter(|i| i.state.as_str() == state)
                        .count();
                    let _ = writeln!(
                        out,
                        "breakwater_balancer_instances{{service=\"{service}\",state=\"{state}\"}} {n}"
                    );
                }
            }
        },
    );
    family(
        "breakwater_balancer_panic",
        "gauge",
        "1 while too few instances are healthy and ejections are not honoured.",
        &mut |out| {
            for b in balancers {
                let _ = writeln!(
                    out,
                    "breakwater_balancer_panic{{service=\"{}\"}} {}",
                    escape(&b.service),
                    u8::from(b.panic)
                );
            }
        },
    );
    family(
        "breakwater_balancer_local_share",
        "gauge",
        "Share of requests kept in the caller's zone.",
        &mut |out| {
            for b in balancers {
                if let Some(share) = b.local_share {
                    let _ = writeln!(
                        out,
                        "breakwater_balancer_local_share{{service=\"{}\"}} {share}",
                        escape(&b.service)
                    );
                }
            }
        },
    );
    type Value = fn(&crate::snapshot::InstanceSnapshot) -> f64;
    let per_instance: [(&str, &str, &str, Value); 6] = [
        (
            "breakwater_balancer_requests_total",
            "counter",
            "Requests sent to an instance.",
            |i| i.requests as f64,
        ),
        (
            "breakwater_balancer_latency_estimate_seconds",
            "gauge",
            "An instance's latency estimate (peak-sensitive moving average).",
            |i| i.latency.as_secs_f64(),
        ),
        (
            "breakwater_balancer_failure_ratio",
            "gauge",
            "An instance's failure share (moving average).",
            |i| i.failure_rate,
        ),
        (
            "breakwater_balancer_in_flight",
            "gauge",
            "Requests in flight to an instance.",
            |i| i.in_flight as f64,
        ),
        (
            "breakwater_balancer_ejected",
            "gauge",
            "1 while an instance is ejected or probing.",
            |i| f64::from(u8::from(i.state != InstanceState::Active)),
        ),
        (
            "breakwater_balancer_ejections_total",
            "counter",
            "Times an instance was ejected.",
            |i| i.ejections as f64,
        ),
    ];
    for (name, kind, help, value) in per_instance {
        family(name, kind, help, &mut |out| {
            for b in balancers {
                let service = escape(&b.service);
                for i in &b.instances {
                    let _ = writeln!(
                        out,
                        "{name}{{service=\"{service}\",instance=\"{}\",zone=\"{}\"}} {}",
                        escape(&i.id),
                        escape(i.zone.as_deref().unwrap_or("")),
                        value(i)
                    );
                }
            }
        });
    }
}

impl crate::BalancerRegistry {
    /// The series of every live balancer, in the Prometheus text format: see [`render`].
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        render(&self.snapshot(), &mut out);
        out
    }
}
