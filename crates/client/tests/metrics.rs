//! The client's Prometheus text, read back by the official Python client's parser
//! (`prometheus_client`, installed by the README's test command): calls by outcome, retries,
//! hedges and budget refusals per service, OpenTelemetry's `http.client.request.duration` per
//! service and instance, and the balancers' series, with counts that match what the servers
//! saw.

mod common;

use std::process::Stdio;
use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_client::{CallConfig, Client};
use common::{Behaviour, Server};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The samples `text` parses into.
async fn parse(text: &str) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../balance/tests/peers/parse_metrics.py"
    );
    let mut parser = tokio::process::Command::new("python3")
        .arg(script)
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
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Value> = samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_parses_and_counts_what_the_servers_saw() {
    let failing = Server::start(Behaviour::Status(503)).await;
    let healthy = Server::start(Behaviour::Echo).await;
    let slow = Server::start(Behaviour::Slow(Duration::from_millis(300))).await;
    let flaky = Server::start(Behaviour::FailFirst).await;
    let client = Client::builder()
        .read_env(false)
        .breaker_registry(CircuitBreakerRegistry::new())
        .instances("orders", [failing.authority(), healthy.authority()])
        .unwrap()
        .instances("flaky", [flaky.authority()])
        .unwrap()
        .instances("hedged", [slow.authority(), healthy.authority()])
        .unwrap()
        .service_config(
            "hedged",
            CallConfig {
                hedge_delay: Some(Duration::from_millis(20)),
                ..CallConfig::default()
            },
        )
        .unwrap()
        .build()
        .unwrap();
    for i in 0..20 {
        let response = client
            .get(format!("service://orders/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Hedged calls: every call that went to the slow instance first is won by a hedge to
    // the healthy one, and the slow attempt is cancelled.
    for i in 0..6 {
        let response = client
            .get(format!("service://hedged/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // One retry for certain: the only instance answers 503 first.
    let retried = client.get("service://flaky/once").send().await.unwrap();
    assert_eq!(retried.status(), 200);
    let plain = client.get(healthy.url("/plain")).send().await.unwrap();
    assert_eq!(plain.status(), 200);

    let samples = parse(&client.render_prometheus()).await;
    let orders = client.stats(Some("orders")).unwrap();
    let hedged = client.stats(Some("hedged")).unwrap();
    assert_eq!(
        value(
            &samples,
            "breakwater_client_requests_total",
            &[("service", "orders"), ("outcome", "success")]
        ),
        20.0
    );
    let retries = value(
        &samples,
        "breakwater_client_retries_total",
        &[("service", "orders")],
    );
    assert_eq!(retries, orders.retries as f64);
    assert_eq!(
        value(
            &samples,
            "breakwater_client_hedges_won_total",
            &[("service", "hedged")]
        ),
        hedged.hedges_won as f64
    );

    // Durations per instance: the failing instance answered exactly the retried attempts,
    // the healthy one every call of `orders`.
    let port = |server: &Server| server.authority().rsplit_once(':').unwrap().1.to_owned();
    let (failing_port, healthy_port) = (port(&failing), port(&healthy));
    let count = "http_client_request_duration_seconds_count";
    let failing_labels = [
        ("service", "orders"),
        ("server_address", "127.0.0.1"),
        ("server_port", failing_port.as_str()),
        ("http_request_method", "GET"),
        ("http_response_status_code", "503"),
        ("error_type", "503"),
    ];
    // (p2c may never pick the failing instance first: then it has no series at all.)
    let failing_count = if retries > 0.0 {
        value(&samples, count, &failing_labels)
    } else {
        0.0
    };
    assert_eq!(failing_count, retries);
    assert_eq!(failing.hits() as f64, retries);
    let healthy_labels = [
        ("service", "orders"),
        ("server_port", healthy_port.as_str()),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(&samples, count, &healthy_labels), 20.0);
    let inf = value(
        &samples,
        "http_client_request_duration_seconds_bucket",
        &[healthy_labels.as_slice(), &[("le", "+Inf")]].concat(),
    );
    assert_eq!(inf, 20.0);
    let sum = value(
        &samples,
        "http_client_request_duration_seconds_sum",
        &healthy_labels,
    );
    assert!(sum > 0.0 && sum < 20.0, "{sum}");
    let flaky_port = port(&flaky);
    for status in ["503", "200"] {
        let labels = [
            ("service", "flaky"),
            ("server_port", flaky_port.as_str()),
            ("http_response_status_code", status),
        ];
        assert_eq!(value(&samples, count, &labels), 1.0, "{status}");
    }
    assert_eq!(
        value(
            &samples,
            "breakwater_client_retries_total",
            &[("service", "flaky")]
        ),
        1.0
    );
    // Lost hedges' attempts were cancelled, and counted so.
    if hedged.hedges_won > 0 {
        let slow_port = port(&slow);
        let cancelled = value(
            &samples,
            count,
            &[
                ("service", "hedged"),
                ("server_port", slow_port.as_str()),
                ("error_type", "cancelled"),
            ],
        );
        assert!(cancelled >= hedged.hedges_won as f64, "{cancelled}");
    }
    // A plain URL: no service.
    let plain = [
        ("service", ""),
        ("server_port", healthy_port.as_str()),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(&samples, count, &plain), 1.0);
    // The balancer's series come along.
    let balanced = value(
        &samples,
        "breakwater_balancer_requests_total",
        &[
            ("service", "orders"),
            ("instance", healthy.authority().as_str()),
        ],
    );
    assert_eq!(balanced, 20.0);
}
