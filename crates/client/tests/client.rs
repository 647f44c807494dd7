//! The client over real sockets: reqwest's API, `service://` over a static list, the retry
//! rules, the budget, `Retry-After`, deadlines, hedging, fan-out, the breaker and the tower face.

mod common;

use std::time::{Duration, Instant};

use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerRegistry};
use breakwater_client::{Body, CallConfig, Client, ErrorKind};
use common::{Behaviour, Server, closed_port};
use serde_json::Value;
use tower::ServiceExt;

fn client_over(service: &str, instances: &[String]) -> Client {
    client_with(
        service,
        instances,
        CircuitBreakerRegistry::new(),
        CallConfig::default(),
    )
}

fn client_with(
    service: &str,
    instances: &[String],
    registry: CircuitBreakerRegistry,
    config: CallConfig,
) -> Client {
    Client::builder()
        .read_env(false)
        .breaker_registry(registry)
        .call_config(config)
        .unwrap()
        .instances(service, instances)
        .unwrap()
        .build()
        .unwrap()
}

/// A registry whose `service` breaker never opens on its own and allows `timeout`.
fn lenient(service: &str, timeout: Duration) -> CircuitBreakerRegistry {
    let registry = CircuitBreakerRegistry::new();
    registry
        .register(
            CircuitBreaker::builder(service).config(CircuitBreakerConfig {
                request_volume_threshold: u32::MAX,
                timeout: Some(timeout),
                ..CircuitBreakerConfig::default()
            }),
        )
        .unwrap();
    registry
}

#[tokio::test]
async fn reqwest_shaped_calls_to_a_plain_url() {
    let server = Server::start(Behaviour::Echo).await;
    let client = Client::builder().read_env(false).build().unwrap();
    let echo: Value = client
        .post(server.url("/v1/charge"))
        .query(&[("currency", "EUR"), ("note", "a b&c")])
        .header("x-caller", "test")
        .json(&serde_json::json!({"amount": 1200}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/v1/charge?currency=EUR&note=a%20b%26c");
    assert_eq!(echo["body"], r#"{"amount":1200}"#);
    let seen = server.seen();
    assert_eq!(seen[0].headers["x-caller"], "test");
    assert_eq!(seen[0].headers["content-type"], "application/json");

    let response = client.get(server.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.text().await.unwrap().contains("\"GET\""));

    server.set(Behaviour::Status(404));
    let error = client
        .get(server.url("/missing?token=secret"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(
        error.to_string().contains("/missing") && !error.to_string().contains("secret"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_input_gets_typed_errors_that_name_it() {
    let client = Client::builder().read_env(false).build().unwrap();
    let cases = [
        ("not a url", ErrorKind::InvalidUrl),
        ("ftp://example.com/file", ErrorKind::UnsupportedScheme),
        ("/relative/path", ErrorKind::InvalidUrl),
        ("service://nobody-knows/x", ErrorKind::UnknownService),
        ("service://bad%20name/x", ErrorKind::InvalidUrl),
    ];
    for (url, kind) in cases {
        let error = client.get(url).send().await.unwrap_err();
        assert_eq!(error.kind(), kind, "{url}: {error}");
        assert!(
            error
                .to_string()
                .contains(url.split('/').nth(2).unwrap_or(url))
                || error.to_string().contains(url),
            "{url}: {error}"
        );
    }
    let error = client
        .get("http://127.0.0.1:1/")
        .header("bad header", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Builder, "{error}");
    assert!(Client::builder().instances("pay", ["no-port"]).is_err());

    // A body over the limit.
    let big = Server::start(Behaviour::Echo).await;
    let small = Client::builder()
        .read_env(false)
        .call_config(CallConfig {
            max_response_bytes: 16,
            ..CallConfig::default()
        })
        .unwrap()
        .build()
        .unwrap();
    let error = small
        .get(big.url("/much"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BodyTooLarge, "{error}");
    assert!(error.to_string().contains("16 bytes"), "{error}");
    let error = small
        .get(big.url("/much"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BodyTooLarge);
}

#[tokio::test]
async fn a_service_url_is_balanced_over_its_instances() {
    let servers = [
        Server::start(Behaviour::Echo).await,
        Server::start(Behaviour::Echo).await,
    ];
    let client = client_over(
        "payments",
        &servers.iter().map(Server::authority).collect::<Vec<_>>(),
    );
    // Eight at a time: the balancer weighs requests in flight.
    for _ in 0..10 {
        let calls = (0..8).map(|_| async {
            let echo: Value = client
                .get("service://payments/v1/ping?x=1")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(echo["path"], "/v1/ping?x=1");
        });
        futures::future::join_all(calls).await;
    }
    assert!(servers.iter().all(|s| s.hits() > 0), "both instances used");
    assert_eq!(client.services(), ["payments"]);
    assert_eq!(client.instances("payments").unwrap().instances.len(), 2);
    // Names are not case-sensitive (Eureka's are upper case).
    assert!(client.get("service://PAYMENTS/x").send().await.is_ok());
}

#[tokio::test]
async fn a_breaker_the_client_makes_lets_many_calls_wait_at_once() {
    // Hystrix's default bulkhead (10) would refuse half of these; the client's allows
    // `MAX_CONCURRENT_CALLS`.
    let server = Server::start(Behaviour::Slow(Duration::from_millis(200))).await;
    let registry = CircuitBreakerRegistry::new();
    let client = client_with(
        "ledger",
        &[server.authority()],
        registry.clone(),
        CallConfig::default(),
    );
    let calls = (0..20).map(|_| client.get("service://ledger/x").send());
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().status(), 200);
    }
    let breaker = registry.get("ledger").unwrap();
    assert_eq!(
        breaker.config().max_concurrent_calls,
        breakwater_client::MAX_CONCURRENT_CALLS
    );
    // A breaker registered first keeps its own settings.
    let registry = lenient("ledger", Duration::from_secs(5));
    let client = client_with(
        "ledger",
        &[server.authority()],
        registry.clone(),
        CallConfig::default(),
    );
    let calls = (0..20).map(|_| client.get("service://ledger/x").send());
    let refused = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::Rejected))
        .count();
    assert_eq!(refused, 10);
}

#[tokio::test]
async fn retries_go_to_another_instance_and_only_when_safe() {
    let failing = Server::start(Behaviour::Status(503)).await;
    let healthy = Server::start(Behaviour::Echo).await;
    let client = client_over("orders", &[failing.authority(), healthy.authority()]);
    for i in 0..60 {
        let response = client
            .get(format!("service://orders/o/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "call {i} was retried elsewhere");
    }
    // Every attempt on the failing instance was retried on the healthy one, never on itself.
    let failed_paths: Vec<String> = failing
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    let mut unique = failed_paths.clone();
    unique.dedup();
    assert_eq!(
        failed_paths.len(),
        unique.len(),
        "a retry went back to the failing instance"
    );
    let stats = client.stats(Some("orders")).unwrap();
    assert_eq!(stats.retries as usize, failing.hits());
    assert_eq!(stats.succeeded, 60);

    // A POST is not retried: its 503 comes back, and the instance saw it once.
    let only_failing = client_over("refunds", &[failing.authority()]);
    let before = failing.hits();
    let status = only_failing
        .post("service://refunds/r")
        .body("x")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    assert_eq!(failing.hits() - before, 1, "the POST was retried");

    // With an Idempotency-Key, or opted in, it is (three attempts; the only instance left
    // takes them all).
    let before = failing.hits();
    let keyed = only_failing
        .post("service://refunds/r")
        .header("idempotency-key", "k1")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 503);
    assert_eq!(failing.hits() - before, 3);
    let before = failing.hits();
    let opted = only_failing
        .post("service://refunds/r")
        .retry_non_idempotent()
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(opted.status(), 503);
    assert_eq!(failing.hits() - before, 3);
    // The bodies were sent again, whole.
    assert!(
        failing
            .seen()
            .iter()
            .rev()
            .take(6)
            .all(|s| &s.body[..] == b"x")
    );
}

#[tokio::test]
async fn an_unsent_request_is_retried_whatever_its_method_and_a_stream_is_not() {
    let refused = closed_port().await;
    let healthy = Server::start(Behaviour::Echo).await;
    let client = client_over("ledger", &[refused.clone(), healthy.authority()]);
    for _ in 0..30 {
        // Connection refused: the POST never left, so it goes to the other instance.
        let response = client
            .post("service://ledger/entries")
            .body("e")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(healthy.hits(), 30);

    // A body that cannot be replayed is not retried, and the error says why.
    let only_refused = client_over("vault", &[refused]);
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"s"));
    let error = only_refused
        .put("service://vault/k")
        .body(Body::wrap_stream(stream))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(
        error.not_retried(),
        Some("the body cannot be replayed (a stream)"),
        "{error}"
    );
    assert!(error.to_string().contains("service://vault"), "{error}");
}

#[tokio::test]
async fn the_budget_holds_retries_to_a_fifth_of_requests_plus_a_reserve() {
    let servers = [
        Server::start(Behaviour::Status(503)).await,
        Server::start(Behaviour::Status(503)).await,
        Server::start(Behaviour::Status(503)).await,
    ];
    let config = CallConfig {
        backoff_base: Duration::from_micros(100),
        backoff_max: Duration::from_micros(100),
        ..CallConfig::default()
    };
    let client = client_with(
        "down",
        &servers.iter().map(Server::authority).collect::<Vec<_>>(),
        lenient("down", Duration::from_secs(30)),
        config,
    );
    let calls = 1_000u64;
    for _ in 0..calls {
        let status = client
            .get("service://down/x")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 503);
    }
    let stats = client.stats(Some("down")).unwrap();
    let attempts: usize = servers.iter().map(Server::hits).sum();
    let extra = attempts as u64 - calls;
    // 20 % of the requests, plus the reserve of 10/s over the 10 s window.
    let allowed = calls / 5 + 10 * 10 + 1;
    assert!(
        extra <= allowed,
        "{extra} extra attempts for {calls} calls; allowed {allowed}"
    );
    assert!(
        extra >= calls / 5,
        "the budget let retries through: {extra}"
    );
    assert_eq!(stats.retries, extra);
    assert!(stats.budget_exhausted > 0, "{stats:?}");
    println!(
        "all instances failing: {calls} calls, {extra} extra attempts (a fixed 3-attempt policy: {})",
        calls * 2
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_deadline_covers_every_attempt() {
    let busy = Server::start(Behaviour::RetryAfterOnce).await;
    let client = client_with(
        "busy",
        &[busy.authority()],
        lenient("busy", Duration::from_secs(5)),
        CallConfig::default(),
    );
    let start = Instant::now();
    let response = client.get("service://busy/x").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(busy.hits(), 2);

    // A deadline shorter than the wait: the 429 comes back at once rather than waiting past it.
    busy.seen.lock().unwrap().clear();
    let start = Instant::now();
    let response = client
        .get("service://busy/x")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(start.elapsed() < Duration::from_millis(300));

    // One deadline over all attempts: a slow instance and a short timeout.
    let slow = Server::start(Behaviour::Slow(Duration::from_secs(3))).await;
    let client = client_over("slow", &[slow.authority()]);
    let start = Instant::now();
    let error = client
        .get("service://slow/x")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    // The breaker's own timeout (Hystrix's 1 s) bounds a call with none of its own.
    let start = Instant::now();
    let error = client.get("service://slow/x").send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        start.elapsed() < Duration::from_millis(1800),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_open_breaker_short_circuits_without_retrying() {
    let failing = Server::start(Behaviour::Status(500)).await;
    let registry = CircuitBreakerRegistry::new();
    registry
        .register(
            CircuitBreaker::builder("fragile").config(CircuitBreakerConfig {
                request_volume_threshold: 5,
                ..CircuitBreakerConfig::default()
            }),
        )
        .unwrap();
    let client = client_with(
        "fragile",
        &[failing.authority()],
        registry.clone(),
        CallConfig::default(),
    );
    let mut open = None;
    for _ in 0..30 {
        match client.get("service://fragile/x").send().await {
            Ok(response) => assert_eq!(response.status(), 500),
            Err(error) => {
                open = Some(error);
                break;
            }
        }
    }
    let error = open.expect("the breaker opened");
    assert_eq!(error.kind(), ErrorKind::CircuitOpen, "{error}");
    assert_eq!(error.attempts(), 0);
    // Shown like any command: the breaker is in the registry under the service's name.
    assert!(registry.snapshot().iter().any(|s| &*s.name == "fragile"));
}

#[tokio::test]
async fn a_hedge_to_another_instance_answers_for_a_slow_one() {
    let a = Server::start(Behaviour::SlowWhenNamed).await;
    let b = Server::start(Behaviour::SlowWhenNamed).await;
    let config = CallConfig {
        hedge_delay: Some(Duration::from_millis(30)),
        ..CallConfig::default()
    };
    // Each fresh client picks between two unknown instances at random; when it picks `a`
    // (slow for these calls), the hedge goes to `b` and answers first.
    let mut hedged = 0;
    for _ in 0..16 {
        let client = client_with(
            "quotes",
            &[a.authority(), b.authority()],
            lenient("quotes", Duration::from_secs(5)),
            config.clone(),
        );
        let before = (a.hits(), b.hits());
        let start = Instant::now();
        let response = client
            .get("service://quotes/q")
            .header("x-slow-on", a.addr.port().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let took = start.elapsed();
        let stats = client.stats(Some("quotes")).unwrap();
        if stats.hedges == 1 {
            hedged += 1;
            assert_eq!(stats.hedges_won, 1, "{stats:?}");
            assert_eq!(
                (a.hits() - before.0, b.hits() - before.1),
                (1, 1),
                "one copy each"
            );
            assert!(
                took < Duration::from_millis(400),
                "the hedge answered: {took:?}"
            );
        } else {
            assert_eq!(b.hits() - before.1, 1, "only a fast call goes unhedged");
        }
    }
    assert!(
        hedged >= 1,
        "no call picked the slow instance first in 16 tries"
    );
}

#[tokio::test]
async fn fan_out_keeps_order_and_gives_each_call_its_own_result() {
    let server = Server::start(Behaviour::Echo).await;
    let client = client_over("catalog", &[server.authority()]);
    let requests = (0..12).map(|i| {
        if i == 5 {
            client.get("service://unknown-one/x")
        } else {
            client.get(format!("service://catalog/item/{i}"))
        }
    });
    let results = client.fan_out(requests, 4, Duration::from_secs(5)).await;
    assert_eq!(results.len(), 12);
    for (i, result) in results.into_iter().enumerate() {
        if i == 5 {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::UnknownService);
        } else {
            let echo: Value = result.unwrap().json().await.unwrap();
            assert_eq!(echo["path"], format!("/item/{i}"));
        }
    }
    // One deadline for all: slow calls past it fail on their own.
    let slow = Server::start(Behaviour::Slow(Duration::from_millis(400))).await;
    let client = client_over("slowcat", &[slow.authority()]);
    let start = Instant::now();
    let results = client
        .fan_out(
            (0..6).map(|i| client.get(format!("service://slowcat/{i}"))),
            3,
            Duration::from_millis(600),
        )
        .await;
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    assert!(results[..3].iter().all(|r| r.is_ok()));
    assert!(
        results[3..]
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.is_timeout()))
    );
}

#[tokio::test]
async fn the_tower_face_takes_http_requests() {
    let server = Server::start(Behaviour::Echo).await;
    let client = client_over("inventory", &[server.authority()]);
    let request = http::Request::get("service://inventory/stock/7")
        .body(Body::empty())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let request = client
        .get("service://inventory/stock/8")
        .header("x-a", "b")
        .build()
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.seen()[1].headers["x-a"], "b");
}
