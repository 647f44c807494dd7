//! The balancers' Prometheus text, read back by the official Python client's parser
//! (`prometheus_client`, installed by the README's test command): every series parses, label
//! values with quotes and backslashes survive, and an instance's series leave with it.

use std::process::Stdio;
use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, BalancerRegistry, Endpoint};
use breakwater_circuit_breaker::error::BoxError;
use tokio::io::AsyncWriteExt;
use tower::{ServiceExt, service_fn};

/// The samples `text` parses into, as (sample name, labels, value).
async fn parse(text: &str) -> Vec<serde_json::Value> {
    let mut parser = tokio::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/parse_metrics.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut stdin = parser.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), parser.wait_with_output())
        .await
        .expect("the parser answers within 30 s")
        .unwrap();
    assert!(
        output.status.success(),
        "prometheus_client refused the text (is it installed?): {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
}

fn sample<'a>(
    samples: &'a [serde_json::Value],
    name: &str,
    instance: &str,
) -> Option<&'a serde_json::Value> {
    samples
        .iter()
        .find(|s| s["name"] == name && s["labels"]["instance"] == instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_parses_and_an_instance_s_series_leave_with_it() {
    let odd = "i-\"quoted\"\\back";
    let (tx, list) = tokio::sync::watch::channel(vec![
        Endpoint {
            zone: Some("zone-a".into()),
            ..Endpoint::new(odd, "127.0.0.1", 9_001)
        },
        Endpoint::new("plain", "127.0.0.1", 9_002),
    ]);
    let make = |e: &Endpoint| {
        let fails = e.port == 9_002;
        service_fn(move |()| async move {
            if fails {
                Err::<(), BoxError>("503".into())
            } else {
                Ok(())
            }
        })
    };
    let config = BalanceConfig {
        zone: Some("zone-a".into()),
        ..BalanceConfig::default()
    };
    let balancer = Balancer::fixed("pay \"ments\"", list, make, config).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..40 {
        let _ = balancer.clone().oneshot(()).await;
    }
    let text = BalancerRegistry::global().render_prometheus();
    let samples = parse(&text).await;
    let requests = sample(&samples, "breakwater_balancer_requests_total", odd).expect(&text);
    assert_eq!(requests["labels"]["service"], "pay \"ments\"");
    assert_eq!(requests["labels"]["zone"], "zone-a");
    let snapshot = balancer.snapshot();
    let sent: u64 = snapshot.instances.iter().map(|i| i.requests).sum();
    assert_eq!(sent, 40);
    let odd_requests = snapshot
        .instances
        .iter()
        .find(|i| i.id == odd)
        .unwrap()
        .requests;
    assert_eq!(requests["value"], odd_requests as f64);
    assert!(
        samples
            .iter()
            .any(|s| s["family"] == "breakwater_balancer_requests" && s["type"] == "counter")
    );
    for name in [
        "breakwater_balancer_latency_estimate_seconds",
        "breakwater_balancer_failure_ratio",
        "breakwater_balancer_in_flight",
        "breakwater_balancer_ejected",
        "breakwater_balancer_ejections_total",
    ] {
        assert!(
            sample(&samples, name, "plain").is_some(),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "breakwater_balancer_instances"
                && s["labels"]["state"] == "active")
    );
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "breakwater_balancer_local_share")
    );

    // The instance leaves: so do its series.
    tx.send(vec![Endpoint::new("plain", "127.0.0.1", 9_002)])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let samples = parse(&BalancerRegistry::global().render_prometheus()).await;
    assert!(sample(&samples, "breakwater_balancer_requests_total", odd).is_none());
    assert!(sample(&samples, "breakwater_balancer_requests_total", "plain").is_some());
    // The balancer goes: so do all of them.
    drop(balancer);
    let samples = parse(&BalancerRegistry::global().render_prometheus()).await;
    assert!(sample(&samples, "breakwater_balancer_requests_total", "plain").is_none());
}
