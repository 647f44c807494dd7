//! The real peers: Python services that register themselves in our embedded registry through
//! `py-eureka-client`, called through `service://` over the Eureka client's view. One is killed
//! (its registration stays, connections are refused): every call still succeeds, retried onto
//! the other. OpenTelemetry's Python SDK on the callee reads our trace id.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_client::Client;
use breakwater_discovery::{
    EurekaClient, EurekaClientConfig, InstanceRegistry, InstanceRegistryConfig,
};
use breakwater_tracing_mw::{Formats, ServerLayer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tower::{Layer, ServiceExt, service_fn};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_services_through_eureka_with_a_retry_past_a_killed_one() {
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let router = breakwater_discovery::server::router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let eureka = EurekaClient::new(
        EurekaClientConfig {
            service_urls: vec![url.clone()],
            registry_fetch_interval: Duration::from_millis(200),
            ..EurekaClientConfig::default()
        },
        None,
    )
    .unwrap();
    let _running = eureka.start();

    let mut peer = tokio::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/py_service.py"))
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (with py-eureka-client and opentelemetry-sdk: scripts/test.sh installs them)");
    let mut stdin = peer.stdin.take().unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let mut said = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the Python peer answers within 30 s")
            .unwrap()
            .expect("the Python peer is still running (are py-eureka-client and opentelemetry-sdk installed?)");
        if let Some(line) = line.strip_prefix("PEER ") {
            return line.to_owned();
        }
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let line = said().await;
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words[0], "READY", "{line}");
        ids.push(words[1].to_owned());
    }

    let client = Client::builder()
        .read_env(false)
        .eureka(eureka.clone())
        .breaker_registry(CircuitBreakerRegistry::new())
        .build()
        .unwrap();
    // Wait until the balancer sees both (the first call waits for discovery; the second
    // instance may register a fetch later).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let _ = client.get("service://py-payments/warm").send().await;
        if client
            .instances("py-payments")
            .is_some_and(|s| s.instances.len() == 2)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            client.instances("py-payments")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Calls made while serving a request of trace TRACE_ID.
    let calls = |n: usize| {
        let client = client.clone();
        let handler = service_fn(move |_: http::Request<()>| {
            let client = client.clone();
            async move {
                let mut answers = Vec::new();
                for _ in 0..n {
                    let calls = (0..4).map(|_| async {
                        let answer: Value = client
                            .get("service://py-payments/v1/charge")
                            .send()
                            .await
                            .expect("every call succeeds")
                            .json()
                            .await
                            .unwrap();
                        answer
                    });
                    answers.extend(futures::future::join_all(calls).await);
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(answers))
            }
        });
        let request = http::Request::get("/")
            .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
            .body(())
            .unwrap();
        ServerLayer::new(Formats::default())
            .layer(handler)
            .oneshot(request)
    };
    let answers = calls(5).await.unwrap().into_body();
    assert!(
        answers
            .iter()
            .all(|a| a["trace_id"] == TRACE_ID && a["parent_valid"] == true),
        "{answers:?}"
    );
    // Kill the one that served (under light load the balancer keeps to the instance it knows
    // is fast): it stays registered, its port refuses connections; every call still succeeds.
    let busiest = answers[answers.len() - 1]["instance"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = ids.iter().find(|id| **id != busiest).unwrap().clone();
    stdin
        .write_all(format!("kill {busiest}\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(said().await, format!("KILLED {busiest}"));
    let answers = calls(10).await.unwrap().into_body();
    assert!(
        answers
            .iter()
            .all(|a| a["instance"] == other.as_str() && a["trace_id"] == TRACE_ID),
        "{answers:?}"
    );
    let stats = client.stats(Some("py-payments")).unwrap();
    assert!(
        stats.retries >= 1,
        "the killed instance's calls were retried: {stats:?}"
    );
    assert_eq!(stats.failed, 0, "{stats:?}");

    stdin.write_all(b"quit\n").await.unwrap();
    assert_eq!(said().await, "STOPPED");
}
