//! `/metrics` of the registry, in the Prometheus text format (0.0.4): what Eureka's own server
//! shows, with Prometheus names.
//!
//! | name | kind | labels | an alert on it means |
//! |---|---|---|---|
//! | `breakwater_eureka_instances` | gauge | `application`, `status` | instances `UP` fell: callers have fewer places to go |
//! | `breakwater_eureka_registrations_total` | counter | | a rate far above the fleet's size: instances restarting in a loop |
//! | `breakwater_eureka_renewals_total` | counter | | a rate falling: instances cannot reach the registry |
//! | `breakwater_eureka_cancellations_total` | counter | | instances leaving (scale-down, deploys) |
//! | `breakwater_eureka_evictions_total` | counter | | leases lapsing: instances died without cancelling |
//! | `breakwater_eureka_self_preservation` | gauge, 1 while active | | too few renewals: evictions are held back, the registry may list dead instances |
//! | `breakwater_eureka_renewals_last_minute` | gauge | | instances that renewed in the last full minute |
//! | `breakwater_eureka_renewal_threshold` | gauge | | at or below it, self-preservation holds |
//! | `breakwater_eureka_delta_queue_entries` | gauge | | changes clients fetch as deltas |
//! | `breakwater_eureka_delta_queue_bytes` | gauge | | about how much memory they hold |
//! | `breakwater_eureka_requests_refused_total` | counter | | requests refused with 400: a misbehaving client |

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use super::{REFUSED_TOTAL, Shared, now_ms};

/// A label value with `\`, `"` and new lines escaped, as the text format wants.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) async fn metrics(State(registry): Shared) -> Response {
    let mut out = String::new();
    let mut by_status: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for app in registry.applications().applications {
        for instance in &app.instances {
            *by_status
                .entry((app.name.clone(), instance.status.as_str()))
                .or_default() += 1;
        }
    }
    family(
        &mut out,
        "breakwater_eureka_instances",
        "gauge",
        "Instances registered, by application and status.",
    );
    for ((app, status), n) in &by_status {
        let _ = writeln!(
            out,
            "breakwater_eureka_instances{{application=\"{}\",status=\"{status}\"}} {n}",
            escape(app)
        );
    }
    let totals = registry.totals();
    for (name, help, value) in [
        (
            "breakwater_eureka_registrations_total",
            "Registrations, new and repeated.",
            totals.registrations,
        ),
        (
            "breakwater_eureka_renewals_total",
            "Lease renewals.",
            totals.renewals,
        ),
        (
            "breakwater_eureka_cancellations_total",
            "Cancellations, evictions included.",
            totals.cancellations,
        ),
        (
            "breakwater_eureka_evictions_total",
            "Leases evicted for not being renewed.",
            totals.evictions,
        ),
        (
            "breakwater_eureka_requests_refused_total",
            "Requests refused with 400.",
            REFUSED_TOTAL.load(Ordering::Relaxed),
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let preservation = registry.preservation(now_ms());
    let (entries, bytes) = registry.delta_queue();
    for (name, help, value) in [
        (
            "breakwater_eureka_self_preservation",
            "1 while self-preservation holds evictions back.",
            f64::from(u8::from(preservation.active)),
        ),
        (
            "breakwater_eureka_renewals_last_minute",
            "Instances that renewed in the last full minute.",
            preservation.renewed as f64,
        ),
        (
            "breakwater_eureka_renewal_threshold",
            "At or below this many renewals a minute, self-preservation holds.",
            preservation.threshold,
        ),
        (
            "breakwater_eureka_delta_queue_entries",
            "Changes held for delta fetches.",
            entries as f64,
        ),
        (
            "breakwater_eureka_delta_queue_bytes",
            "About how many bytes the delta queue holds.",
            bytes as f64,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
