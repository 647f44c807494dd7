//! `/hystrix.stream` over real loopback sockets: framing, headers, interval, cap, access
//! control, compression, and isolation from clients that stop reading.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_stream_dashboard::{Dashboard, StreamConfig};
use common::{Server, count_events, events, get};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn registry_with(names: &[&str]) -> CircuitBreakerRegistry {
    let registry = CircuitBreakerRegistry::new();
    for name in names {
        registry.breaker(name);
    }
    registry
}

#[tokio::test]
async fn streams_one_event_per_breaker_and_bulkhead_with_hystrix_headers() {
    let registry = registry_with(&["payments", "inventory"]);
    registry.bulkhead("payments-pool");
    let server = Server::start(Dashboard::new().registry(registry).router()).await;
    let mut open = get(
        &server.url("/hystrix.stream?delay=100"),
        &[("Origin", "http://elsewhere")],
    )
    .await;
    assert_eq!(open.status, StatusCode::OK);
    let h = &open.headers;
    assert_eq!(h["content-type"], "text/event-stream;charset=UTF-8");
    assert_eq!(
        h["cache-control"],
        "no-cache, no-store, max-age=0, must-revalidate"
    );
    assert_eq!(h["pragma"], "no-cache");
    // No CORS unless origins are configured: a page elsewhere cannot read the stream.
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    assert!(h.get("content-encoding").is_none(), "no gzip unless asked");
    let started = Instant::now();
    let text = open
        .read_until(Duration::from_secs(10), |t| {
            count_events(t, "payments") >= 6
        })
        .await;
    let elapsed = started.elapsed();
    // Six frames at 100 ms: the first at once, five ticks later.
    assert!(
        elapsed < Duration::from_secs(3),
        "delay=100 honoured: {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(350),
        "frames are paced: {elapsed:?}"
    );
    let all = events(&text);
    let pools = all
        .iter()
        .filter(|e| e["type"] == "HystrixThreadPool")
        .count();
    let inventory = count_events(&text, "inventory");
    assert!(
        pools >= 5 && inventory >= 5,
        "{pools} pool and {inventory} inventory events"
    );
    assert!(
        text.lines()
            .all(|l| l.is_empty() || l.starts_with("data: {"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_long_delay_slows_the_stream_down() {
    // The other direction of `?delay=`: a slow machine can only make frames fewer, so this
    // holds however loaded the machine is. At the 500 ms default, 1.5 s would bring 3-4.
    let registry = registry_with(&["payments"]);
    let server = Server::start(Dashboard::new().registry(registry).router()).await;
    let mut open = get(&server.url("/hystrix.stream?delay=2000"), &[]).await;
    assert_eq!(open.status, StatusCode::OK);
    let text = open.read_for(Duration::from_millis(1500)).await;
    assert_eq!(
        count_events(&text, "payments"),
        1,
        "one frame at once, the next after 2 s: {text}"
    );
}

#[tokio::test]
async fn an_empty_registry_sends_pings() {
    let server = Server::start(
        Dashboard::new()
            .registry(CircuitBreakerRegistry::new())
            .router(),
    )
    .await;
    let mut open = get(&server.url("/hystrix.stream?delay=100"), &[]).await;
    let text = open
        .read_until(Duration::from_secs(5), |t| {
            t.matches("ping: \n\n").count() >= 2
        })
        .await;
    assert!(events(&text).is_empty());
}

#[tokio::test]
async fn bad_delay_is_refused_with_the_reason() {
    let server = Server::start(
        Dashboard::new()
            .registry(CircuitBreakerRegistry::new())
            .router(),
    )
    .await;
    for (query, says) in [
        ("delay=abc", "\"abc\" is not a whole number"),
        ("delay=5", "5 ms is outside 100..=60000 ms"),
        ("delay=-1", "is not a whole number"),
    ] {
        let open = get(&server.url(&format!("/hystrix.stream?{query}")), &[]).await;
        assert_eq!(open.status, StatusCode::BAD_REQUEST, "{query}");
        let body = open.text().await;
        assert!(
            body.contains("delay") && body.contains(says),
            "{query}: {body}"
        );
    }
    let open = get(&server.url("/turbine.stream"), &[]).await;
    assert_eq!(open.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_slots_free_on_disconnect() {
    let settings = StreamConfig {
        max_connections: 2,
        ..StreamConfig::default()
    };
    let router = Dashboard::new()
        .registry(registry_with(&["a"]))
        .stream_config(settings)
        .router();
    let server = Server::start(router).await;
    let url = server.url("/hystrix.stream");
    let first = get(&url, &[]).await;
    let second = get(&url, &[]).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = get(&url, &[]).await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        third.text().await.trim(),
        "MaxConcurrentConnections reached: 2"
    );
    drop(first);
    // The slot comes back once the server notices the disconnect.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let next = get(&url, &[]).await;
        if next.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed after disconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

#[tokio::test]
async fn bearer_token_is_required_when_set() {
    let router = Dashboard::new()
        .registry(registry_with(&["a"]))
        .bearer_token("s3cret")
        .allow_cors_origin("http://other")
        .unwrap()
        .router();
    let server = Server::start(router).await;
    let url = server.url("/hystrix.stream");
    let open = get(&url, &[]).await;
    assert_eq!(open.status, StatusCode::UNAUTHORIZED);
    assert_eq!(open.headers["www-authenticate"], "Bearer");
    let open = get(&url, &[("Authorization", "Bearer wrong")]).await;
    assert_eq!(open.status, StatusCode::UNAUTHORIZED);
    let mut open = get(&url, &[("Authorization", "Bearer s3cret")]).await;
    assert_eq!(open.status, StatusCode::OK);
    open.read_until(Duration::from_secs(5), |t| count_events(t, "a") >= 1)
        .await;
    let open = get(&server.url("/hystrix.stream?access_token=s3cret"), &[]).await;
    assert_eq!(open.status, StatusCode::OK);
    let page = get(&server.url("/?access_token=s3cret"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let page = get(&server.url("/"), &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    // The page's own assets hold no data and load without the token; its data does not.
    for (path, status) in [
        ("/dashboard/app.js", StatusCode::OK),
        ("/dashboard/app.css", StatusCode::OK),
        ("/dashboard/sources.json", StatusCode::UNAUTHORIZED),
        ("/dashboard/instances.json", StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(get(&server.url(path), &[]).await.status, status, "{path}");
    }
    // A CORS preflight carries no credentials and is answered anyway.
    let preflight = common::client()
        .request(
            http::Request::builder()
                .method("OPTIONS")
                .uri(&url)
                .header("Origin", "http://other")
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization")
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://other"
    );
    let elsewhere = get(
        &server.url("/hystrix.stream?access_token=s3cret"),
        &[("Origin", "http://elsewhere")],
    )
    .await;
    assert!(
        elsewhere
            .headers
            .get("access-control-allow-origin")
            .is_none(),
        "only configured origins get CORS"
    );
    assert!(Dashboard::new().allow_cors_origin("*").is_err());
    assert!(
        Dashboard::new()
            .allow_cors_origin("https://a.example/path")
            .is_err()
    );
}

#[tokio::test]
async fn gzip_clients_get_one_growing_gzip_stream() {
    let registry = registry_with(&["payments", "inventory"]);
    let server = Server::start(Dashboard::new().registry(registry).router()).await;
    let mut open = get(
        &server.url("/hystrix.stream?delay=100"),
        &[("Accept-Encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(open.headers["content-encoding"], "gzip");
    assert_eq!(open.headers["vary"], "Accept-Encoding");
    let mut compressed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut plain = String::new();
    while count_events(&plain, "payments") < 4 {
        assert!(Instant::now() < deadline, "decoded so far: {plain}");
        let frame = tokio::time::timeout(Duration::from_secs(5), open.body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        compressed.extend_from_slice(&frame.into_data().unwrap());
        // Decode what has arrived; the stream has no end, so stop at the bytes we have.
        let mut decoder = flate2::read::GzDecoder::new(&compressed[..]);
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = decoder.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        plain = String::from_utf8(out).unwrap();
    }
    let payments = count_events(&plain, "payments");
    assert!(payments >= 4);
    assert!(
        compressed.len() * 3 < plain.len(),
        "compressed {} bytes for {} plain",
        compressed.len(),
        plain.len()
    );
}

/// A client that stops reading must not hold the others back, must not hold memory, and is
/// cut off after the stall timeout, which frees its connection slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_is_cut_off_and_does_not_slow_the_others() {
    // Big frames (about 600 kB) fill the stuck client's socket buffers within a few ticks.
    let names: Vec<String> = (0..300).map(|i| format!("command-{i:04}")).collect();
    let registry = CircuitBreakerRegistry::new();
    for name in &names {
        registry.breaker(name);
    }
    let settings = StreamConfig {
        max_connections: 2,
        stall_timeout: Duration::from_secs(1),
        min_interval: Duration::from_millis(50),
        ..StreamConfig::default()
    };
    let router = Dashboard::new()
        .registry(registry)
        .stream_config(settings)
        .router();
    let server = Server::start(router).await;

    // The stuck client: a raw socket that sends its request and reads nothing.
    let mut stuck = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stuck
        .write_all(b"GET /hystrix.stream?delay=50 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // A healthy client keeps getting frames at its pace meanwhile.
    let mut healthy = get(&server.url("/hystrix.stream?delay=100"), &[]).await;
    let started = Instant::now();
    healthy
        .read_count(Duration::from_secs(20), "\"name\":\"command-0299\"", 20)
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "healthy client slowed: 20 frames in {took:?}"
    );

    // Once its buffers are full it stalls, and after the stall timeout it is cut off, which
    // frees its slot. With the healthy client gone too, both slots of the cap are free again
    // (two new clients get in). Wait for that before reading from the stuck one: a stuck
    // client that starts reading is no longer stuck.
    drop(healthy);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let first = get(&server.url("/hystrix.stream"), &[]).await;
        let second = get(&server.url("/hystrix.stream"), &[]).await;
        if first.status == StatusCode::OK && second.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck client still holds its slot after 30 s"
        );
        drop((first, second));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The stuck one was dropped: reading now drains what the kernel buffered, then ends.
    let mut drained = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stuck.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "stuck client still connected after {drained} bytes drained"
    );
    // It stalled long before its share: a reading client got far more frames.
    assert!(
        drained < 200 << 20,
        "{drained} bytes were queued for the stuck client"
    );
}

/// The same through `/proxy.stream`: a proxy client that stops reading is cut off after the
/// proxy's stall timeout, freeing its slot, even when the upstream itself would wait for it
/// much longer (as Java Hystrix's servlet waits for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_proxy_client_is_cut_off_and_its_slot_freed() {
    use breakwater_stream_dashboard::OriginAllowList;
    let registry = CircuitBreakerRegistry::new();
    for i in 0..300 {
        registry.breaker(format!("command-{i:04}"));
    }
    let patient = StreamConfig {
        stall_timeout: Duration::from_secs(600),
        min_interval: Duration::from_millis(50),
        ..StreamConfig::default()
    };
    let upstream = Server::start(
        Dashboard::new()
            .registry(registry)
            .stream_config(patient)
            .router(),
    )
    .await;
    let proxy_settings = StreamConfig {
        max_connections: 1,
        stall_timeout: Duration::from_secs(1),
        ..StreamConfig::default()
    };
    let allow = OriginAllowList::new()
        .allow(&upstream.addr.to_string())
        .unwrap();
    let proxy = Server::start(
        Dashboard::new()
            .proxy_allow_list(allow)
            .stream_config(proxy_settings)
            .router(),
    )
    .await;
    let path = format!(
        "/proxy.stream?origin={}/hystrix.stream&delay=50",
        upstream.addr
    );

    let mut stuck = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stuck
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // While it holds the only slot, others are turned away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&proxy.url(&path), &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Once its buffers are full it stalls, and a second later it is cut off: the slot frees.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let next = get(&proxy.url(&path), &[]).await;
        if next.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck proxy client still holds the only slot after 30 s"
        );
        drop(next);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And its connection is gone: draining what the kernel buffered reaches the end.
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = stuck.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stuck proxy client is still connected");
}

#[tokio::test]
async fn three_hundred_half_sent_requests_are_cut_off() {
    let server = Server::start_with(
        Dashboard::new().registry(registry_with(&["a"])).router(),
        breakwater_stream_dashboard::ServeConfig {
            header_read_timeout: Duration::from_millis(500),
            drain: Duration::from_secs(1),
            ..breakwater_stream_dashboard::ServeConfig::default()
        },
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /hystrix.stream HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (n, stream) in slow.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 256];
        let closed = matches!(
            tokio::time::timeout(left, stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        assert!(closed, "half-sent request {n} still open after 5 s");
    }
    let mut open = get(&server.url("/hystrix.stream"), &[]).await;
    assert_eq!(
        open.status,
        StatusCode::OK,
        "and the dashboard still streams"
    );
    assert!(
        open.read_until(Duration::from_secs(5), |t| t.contains("data:"))
            .await
            .contains("data:")
    );
    server.stop().await;
}

#[tokio::test]
async fn health_is_health_json_and_warns_while_a_followed_stream_is_down() {
    let alone = Server::start(Dashboard::new().registry(registry_with(&["a"])).router()).await;
    let answer = get(&alone.url("/health"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/health+json");
    let body: serde_json::Value =
        serde_json::from_slice(&answer.body.collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["status"], "pass");

    // Following an instance where nothing listens: warn, still 200, the reason given.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let url: http::Uri = format!("http://{addr}/hystrix.stream").parse().unwrap();
    let following = Server::start(Dashboard::new().instances([url]).router()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(&following.url("/health"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body: serde_json::Value =
            serde_json::from_slice(&answer.body.collect().await.unwrap().to_bytes()).unwrap();
        let check = &body["checks"]["stream:connected"][0];
        if check["output"].is_string() {
            assert_eq!(body["status"], "warn");
            assert_eq!(check["status"], "warn");
            assert_eq!(check["componentId"], addr.to_string());
            break;
        }
        assert!(Instant::now() < deadline, "no reason given: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `promtool check metrics` on `text` (Debian's `prometheus`, installed by the README's test
/// command): its complaints, empty when it has none.
fn promtool(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        String::new()
    } else {
        said
    }
}

async fn metrics_text(server: &Server) -> String {
    let answer = get(&server.url("/metrics"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = answer.body.collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_watchers_frames_and_refusals() {
    let settings = StreamConfig {
        max_connections: 1,
        ..StreamConfig::default()
    };
    let router = Dashboard::new()
        .registry(registry_with(&["payments"]))
        .stream_config(settings)
        .router();
    let server = Server::start(router).await;
    let mut open = get(&server.url("/hystrix.stream?delay=100"), &[]).await;
    assert_eq!(open.status, StatusCode::OK);
    open.read_until(Duration::from_secs(5), |t| count_events(t, "payments") >= 2)
        .await;
    // Past the cap: 503, counted.
    let refused = get(&server.url("/hystrix.stream"), &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    // The proxy refuses an origin not on its allow-list: 403, counted.
    let forbidden = get(
        &server.url("/proxy.stream?origin=http%3A%2F%2F127.0.0.1%3A9%2Fhystrix.stream"),
        &[],
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let text = metrics_text(&server).await;
    assert_eq!(promtool(&text), "", "promtool's complaints about\n{text}");
    let hystrix = "{endpoint=\"hystrix\"}";
    assert_eq!(
        sample(
            &text,
            &format!("breakwater_dashboard_stream_connections{hystrix}")
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            &format!("breakwater_dashboard_frames_sent_total{hystrix}")
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            &format!("breakwater_dashboard_bytes_sent_total{hystrix}")
        ) > 100.0
    );
    assert_eq!(
        sample(
            &text,
            "breakwater_dashboard_stream_refused_total{reason=\"full\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "breakwater_dashboard_stream_refused_total{reason=\"proxy_forbidden\"}"
        ),
        1.0
    );

    // The watcher goes: its connection leaves the gauge.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(
        &metrics_text(&server).await,
        &format!("breakwater_dashboard_stream_connections{hystrix}"),
    ) != 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the closed watcher is still counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
