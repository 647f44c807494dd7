//! Turbine-style aggregation and the proxy over real sockets, fed by the stream Java Hystrix
//! wrote (the fixture) and by our own server.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_stream_dashboard::{Dashboard, OriginAllowList};
use common::{Server, count_events, events, get};
use http::{StatusCode, Uri};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

fn fixture() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/hystrix/netflix-dashboard-sample.stream"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A stand-in for a Java Hystrix instance: answers every GET with `body` as an event stream,
/// then pings until it is stopped (which closes its connections).
struct Replay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Replay {
    async fn start(body: String) -> Replay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let body = body.clone();
                connections.spawn(async move {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\nConnection: close\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    loop {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if socket.write_all(b":ping\n\n").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Replay { addr, task }
    }

    fn url(&self) -> Uri {
        format!("http://{}/hystrix.stream", self.addr)
            .parse()
            .unwrap()
    }

    /// Stops it; dropping the task drops its connections.
    fn stop(self) {
        self.task.abort();
    }
}

/// The last event per (type, name) in a stream's text, as an aggregator should keep it.
fn last_events(text: &str) -> BTreeMap<(String, String), Map<String, Value>> {
    let mut last = BTreeMap::new();
    for e in events(text) {
        let key = (
            e["type"].as_str().unwrap().to_owned(),
            e["name"].as_str().unwrap().to_owned(),
        );
        last.insert(key, e);
    }
    last
}

/// The first event for `name` from `hosts` hosts that satisfies `settled` (an aggregator
/// takes a moment to read every instance's stream to its end).
async fn merged_event(
    url: &str,
    name: &str,
    hosts: u64,
    settled: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    let mut open = get(url, &[]).await;
    assert_eq!(open.status, StatusCode::OK);
    let wanted =
        |e: &Map<String, Value>| e["name"] == name && e["reportingHosts"] == hosts && settled(e);
    // The stream goes on frame after frame; read until one shows what we wait for.
    let text = open
        .read_until(Duration::from_secs(15), |t| events(t).iter().any(wanted))
        .await;
    events(&text).into_iter().rev().find(wanted).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_java_hystrix_streams_and_subtracts_an_instance_that_leaves() {
    let text = fixture();
    let last = last_events(&text);
    let credit = &last[&("HystrixCommand".to_owned(), "CreditCardCommand".to_owned())];
    let pool_key = last
        .keys()
        .find(|(t, _)| t == "HystrixThreadPool")
        .expect("fixture has thread pools")
        .clone();

    // Instance one also sends an unreadable event first: it is refused, the rest serves.
    let one = Replay::start(format!("data: {{broken\n\n{text}")).await;
    let two = Replay::start(text.clone()).await;
    let ours = CircuitBreakerRegistry::new();
    ours.breaker("rust-only-command");
    let local = Server::start(Dashboard::new().registry(ours).router()).await;
    let router = Dashboard::new()
        .instances([
            one.url(),
            two.url(),
            local.url("/hystrix.stream").parse().unwrap(),
        ])
        .router();
    let dashboard = Server::start(router).await;
    let turbine = dashboard.url("/turbine.stream?delay=100");

    let credit_requests = credit["requestCount"].as_u64().unwrap();
    // Settled: both instances have read to the end (the newest time is the last event's).
    let merged = merged_event(&turbine, "CreditCardCommand", 2, |e| {
        e["requestCount"] == 2 * credit_requests && e["currentTime"] == credit["currentTime"]
    })
    .await;
    for key in [
        "requestCount",
        "errorCount",
        "rollingCountSuccess",
        "latencyExecute_mean",
    ] {
        assert_eq!(
            merged[key].as_u64().unwrap(),
            2 * credit[key].as_u64().unwrap(),
            "{key} is summed"
        );
    }
    for p in ["0", "50", "99.5", "100"] {
        assert_eq!(
            merged["latencyExecute"][p].as_u64().unwrap(),
            2 * credit["latencyExecute"][p].as_u64().unwrap(),
            "percentile {p} is summed"
        );
    }
    // Agreeing strings, booleans and properties stay single values.
    for key in [
        "group",
        "isCircuitBreakerOpen",
        "propertyValue_circuitBreakerRequestVolumeThreshold",
        "propertyValue_executionIsolationStrategy",
    ] {
        assert_eq!(merged[key], credit[key], "{key}");
    }
    let pool = merged_event(&turbine, &pool_key.1, 2, |_| true).await;
    assert_eq!(pool["type"], "HystrixThreadPool");
    let ours = merged_event(&turbine, "rust-only-command", 1, |_| true).await;
    assert_eq!(ours["circuitBreakerState"], "CLOSED");

    let status = get(&dashboard.url("/dashboard/instances.json"), &[])
        .await
        .text()
        .await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let first = &status["instances"][0];
    assert_eq!(first["connected"], true);
    assert!(first["rejected"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        first["last_error"]
            .as_str()
            .unwrap()
            .contains("line 2: event is not JSON"),
        "{status}"
    );

    // One instance alone.
    let mut alone = get(&dashboard.url("/turbine.stream?instance=1&delay=100"), &[]).await;
    let text_one = alone
        .read_until(Duration::from_secs(10), |t| {
            count_events(t, "CreditCardCommand") >= 1
        })
        .await;
    assert_eq!(count_events(&text_one, "rust-only-command"), 0);
    let bad = get(&dashboard.url("/turbine.stream?instance=9"), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Instance two leaves: its values leave the sums.
    two.stop();
    let merged = merged_event(&turbine, "CreditCardCommand", 1, |_| true).await;
    assert_eq!(merged["requestCount"], credit["requestCount"]);
    assert_eq!(merged["latencyExecute"], credit["latencyExecute"]);

    // The sources the page offers: aggregated, then each instance.
    let sources = get(&dashboard.url("/dashboard/sources.json"), &[])
        .await
        .text()
        .await;
    let sources: Value = serde_json::from_str(&sources).unwrap();
    assert_eq!(sources["default"], "all");
    assert_eq!(sources["sources"].as_array().unwrap().len(), 4);
    one.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_relays_allowed_origins_only() {
    let registry = CircuitBreakerRegistry::new();
    registry.breaker("proxied-command");
    let upstream = Server::start(Dashboard::new().registry(registry).router()).await;
    let allow = OriginAllowList::new()
        .allow(&upstream.addr.to_string())
        .unwrap()
        .allow("127.0.0.1:9")
        .unwrap();
    let proxy = Server::start(Dashboard::new().proxy_allow_list(allow).router()).await;

    let origin = format!("{}/hystrix.stream", upstream.addr);
    let mut open = get(
        &proxy.url(&format!("/proxy.stream?origin={origin}&delay=100")),
        &[],
    )
    .await;
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(
        open.headers["content-type"],
        "text/event-stream;charset=UTF-8"
    );
    let started = Instant::now();
    let text = open
        .read_until(Duration::from_secs(10), |t| {
            count_events(t, "proxied-command") >= 4
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "delay passed on"
    );
    assert!(events(&text).iter().all(|e| e["name"] == "proxied-command"));
    // And a long delay slows the relayed stream (fewer frames can only come from a slow
    // machine, never more): one frame at once, the next after 2 s.
    let mut slow = get(
        &proxy.url(&format!("/proxy.stream?origin={origin}&delay=2000")),
        &[],
    )
    .await;
    assert_eq!(slow.status, StatusCode::OK);
    let text = slow.read_for(Duration::from_millis(1500)).await;
    assert_eq!(count_events(&text, "proxied-command"), 1, "{text}");

    let refused = get(
        &proxy.url("/proxy.stream?origin=http://169.254.169.254/latest/meta-data"),
        &[],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .contains("169.254.169.254:80 is not on this proxy's allow-list")
    );
    let missing = get(&proxy.url("/proxy.stream"), &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(
        missing
            .text()
            .await
            .contains("Required parameter 'origin' missing")
    );
    // Allowed but nobody listens there.
    let down = get(
        &proxy.url("/proxy.stream?origin=127.0.0.1:9/hystrix.stream"),
        &[],
    )
    .await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);
    assert!(
        down.text()
            .await
            .contains("failed opening connection to http://127.0.0.1:9/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_relays_event_streams_only_without_cookies_or_unasked_credentials() {
    use axum::routing::get as route;
    let registry = CircuitBreakerRegistry::new();
    registry.breaker("proxied-command");
    // An upstream with an admin page, a stream path that is no stream, and cookies on
    // every answer; it records the Authorization it is sent.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let upstream_router = Dashboard::new()
        .registry(registry)
        .router()
        .route("/admin", route(|| async { "secret admin page" }))
        .route(
            "/html/hystrix.stream",
            route(|| async { axum::response::Html("<html>not a stream</html>") }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let record = record.clone();
                async move {
                    if let Some(auth) = request.headers().get("authorization") {
                        record
                            .lock()
                            .unwrap()
                            .push(auth.to_str().unwrap().to_owned());
                    }
                    let mut response = next.run(request).await;
                    response.headers_mut().insert(
                        "set-cookie",
                        http::HeaderValue::from_static("session=upstream; HttpOnly"),
                    );
                    response
                }
            },
        ));
    let upstream = Server::start(upstream_router).await;
    let plain = Server::start(
        Dashboard::new()
            .proxy_allow_list(
                OriginAllowList::new()
                    .allow(&upstream.addr.to_string())
                    .unwrap(),
            )
            .router(),
    )
    .await;
    let origin = |path: &str| format!("/proxy.stream?origin={}{path}", upstream.addr);

    let admin = get(&plain.url(&origin("/admin")), &[]).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    assert!(admin.text().await.contains("\"/admin\""));
    let html = get(&plain.url(&origin("/html/hystrix.stream")), &[]).await;
    assert_eq!(html.status, StatusCode::BAD_GATEWAY);
    assert!(html.text().await.contains("not an event stream"));

    let mut open = get(
        &plain.url(&origin("/hystrix.stream")),
        &[("Cookie", "dashboard-session=mine")],
    )
    .await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(
        open.headers.get("set-cookie").is_none(),
        "{:?}",
        open.headers
    );
    open.read_until(Duration::from_secs(5), |t| {
        count_events(t, "proxied-command") >= 1
    })
    .await;

    // Credentials go only where configured.
    let with_auth = origin("/hystrix.stream") + "&authorization=Basic%20dTpw";
    let refused = get(&plain.url(&with_auth), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().await.contains("sends no credentials"));
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
    let trusting = Server::start(
        Dashboard::new()
            .proxy_allow_list(
                OriginAllowList::new()
                    .allow_with_credentials(&upstream.addr.to_string())
                    .unwrap(),
            )
            .router(),
    )
    .await;
    let mut open = get(&trusting.url(&with_auth), &[]).await;
    assert_eq!(open.status, StatusCode::OK);
    open.read_until(Duration::from_secs(5), |t| {
        count_events(t, "proxied-command") >= 1
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), ["Basic dTpw"]);
}
