//! Our Eureka client against our registry over loopback: lifecycle, deltas and their hash,
//! re-registration, failover, the last good registry while servers are down, zones, basic
//! auth, and cancelling on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use breakwater_discovery::wire::MAX_DOCUMENT;
use breakwater_discovery::{
    EurekaClient, EurekaClientConfig, EurekaClientError, Instance, InstanceRegistry,
    InstanceRegistryConfig, Port, Renewal, Status,
};

struct Eureka {
    registry: Arc<InstanceRegistry>,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Eureka {
    /// Stops the server and closes its connections, idle keep-alive ones included.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn eureka_with(config: InstanceRegistryConfig, auth: Option<&'static str>) -> Eureka {
    let registry = Arc::new(InstanceRegistry::new(config));
    let mut router = breakwater_discovery::server::router(registry.clone());
    if let Some(expected) = auth {
        router = router.layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                let ok = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    == Some(expected);
                if ok {
                    next.run(req).await
                } else {
                    (http::StatusCode::UNAUTHORIZED, "who are you").into_response() as Response
                }
            },
        ));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Eureka {
        registry,
        url,
        stop,
        task,
    }
}

async fn eureka() -> Eureka {
    eureka_with(InstanceRegistryConfig::default(), None).await
}

fn me(app: &str, id: &str, zone: &str) -> Instance {
    let mut i = Instance {
        instance_id: id.into(),
        app: app.into(),
        host_name: "127.0.0.1".into(),
        ip_addr: "127.0.0.1".into(),
        status: Status::Up,
        port: Some(Port {
            port: 8080,
            enabled: true,
        }),
        vip_address: Some(app.to_ascii_lowercase()),
        ..Instance::default()
    };
    i.metadata.insert("zone".into(), zone.into());
    i
}

fn fast(urls: Vec<String>) -> EurekaClientConfig {
    EurekaClientConfig {
        service_urls: urls,
        renewal_interval: Duration::from_millis(200),
        registry_fetch_interval: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        ..EurekaClientConfig::default()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_heartbeats_watches_and_cancels_on_shutdown() {
    let server = eureka().await;
    let client = EurekaClient::new(
        fast(vec![server.url.clone()]),
        Some(me("orders", "orders-1", "a")),
    )
    .unwrap();
    let mut changes = client.watch();
    let running = client.start();
    until("registration", || {
        server.registry.instance(None, "orders-1").is_some()
    })
    .await;
    let first = server
        .registry
        .instance(None, "orders-1")
        .unwrap()
        .lease_info
        .last_renewal_timestamp;
    until("a heartbeat", || {
        server
            .registry
            .instance(None, "orders-1")
            .unwrap()
            .lease_info
            .last_renewal_timestamp
            > first
    })
    .await;
    // Another service appears; the watch tells.
    let other = EurekaClient::new(
        fast(vec![server.url.clone()]),
        Some(me("payments", "payments-1", "b")),
    )
    .unwrap();
    other.register().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            changes.changed().await.unwrap();
            if changes.borrow().instances().any(|i| i.id() == "payments-1") {
                break;
            }
        }
    })
    .await
    .expect("the watch reports the new service");
    assert_eq!(client.instances("PAYMENTS").len(), 1);
    assert_eq!(client.instances("payments").len(), 1, "by VIP address too");

    // Status override on the server: UP-only filtering hides it.
    other
        .set_status_override(Status::OutOfService)
        .await
        .unwrap();
    until("the override to arrive by delta", || {
        client.instances("payments").is_empty()
    })
    .await;
    other.remove_status_override().await.unwrap();
    until("the instance back", || {
        client.instances("payments").len() == 1
    })
    .await;
    other
        .update_metadata(&[("weight", "5 / 10")])
        .await
        .unwrap();
    assert_eq!(
        server
            .registry
            .instance(None, "payments-1")
            .unwrap()
            .metadata["weight"],
        "5 / 10"
    );

    running.shutdown().await.unwrap();
    assert!(
        server.registry.instance(None, "orders-1").is_none(),
        "cancelled on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_are_checked_by_hash_and_fall_back_to_a_full_fetch() {
    // A server whose delta forgets at once: the client's copy cannot match its hash.
    let forgetful = eureka_with(
        InstanceRegistryConfig {
            delta_retention_ms: -1,
            ..InstanceRegistryConfig::default()
        },
        None,
    )
    .await;
    let client = EurekaClient::new(fast(vec![forgetful.url.clone()]), None).unwrap();
    forgetful.registry.register(me("a", "a-1", "z"), 1).unwrap();
    assert!(
        client.fetch().await.unwrap(),
        "the first fetch is a full one"
    );
    forgetful.registry.register(me("b", "b-1", "z"), 2).unwrap();
    assert!(
        client.fetch().await.unwrap(),
        "hash mismatch after an empty delta: full fetch"
    );
    assert_eq!(client.applications().len(), 2);

    // A server that refuses deltas (403, Eureka's disableDelta): every fetch is a full one.
    let no_deltas = eureka_with(
        InstanceRegistryConfig {
            disable_delta: true,
            ..InstanceRegistryConfig::default()
        },
        None,
    )
    .await;
    let client = EurekaClient::new(fast(vec![no_deltas.url.clone()]), None).unwrap();
    no_deltas
        .registry
        .register(me("a", "a-1", "z"), now())
        .unwrap();
    assert!(client.fetch().await.unwrap());
    no_deltas
        .registry
        .register(me("b", "b-1", "z"), now())
        .unwrap();
    assert!(
        client.fetch().await.unwrap(),
        "a refused delta falls back to a full fetch"
    );
    assert_eq!(client.applications().len(), 2);

    let server = eureka().await;
    let client = EurekaClient::new(fast(vec![server.url.clone()]), None).unwrap();
    server
        .registry
        .register(me("a", "a-1", "z"), now())
        .unwrap();
    assert!(client.fetch().await.unwrap());
    server
        .registry
        .register(me("b", "b-1", "z"), now())
        .unwrap();
    server.registry.cancel("A", "a-1", now()).unwrap();
    assert!(
        !client.fetch().await.unwrap(),
        "a good delta is applied locally"
    );
    let ids: Vec<String> = client
        .applications()
        .instances()
        .map(|i| i.id().to_owned())
        .collect();
    assert_eq!(ids, ["b-1"]);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_registers_again_when_the_server_forgot() {
    let server = eureka().await;
    let client = EurekaClient::new(
        fast(vec![server.url.clone()]),
        Some(me("orders", "orders-1", "a")),
    )
    .unwrap();
    client.register().await.unwrap();
    assert_eq!(client.renew().await.unwrap(), Renewal::Renewed);
    server.registry.cancel("ORDERS", "orders-1", now()).unwrap();
    assert_eq!(client.renew().await.unwrap(), Renewal::Reregistered);
    assert!(server.registry.instance(None, "orders-1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_and_keeps_the_last_good_registry_while_all_are_down() {
    // Nothing listens on the first URL.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/eureka/", l.local_addr().unwrap())
    };
    let server = eureka().await;
    server
        .registry
        .register(me("orders", "orders-9", "a"), now())
        .unwrap();
    let client = EurekaClient::new(
        fast(vec![dead, server.url.clone()]),
        Some(me("web", "web-1", "a")),
    )
    .unwrap();
    client
        .register()
        .await
        .expect("fails over to the live server");
    client.fetch().await.unwrap();
    assert_eq!(client.instances("orders").len(), 1);

    server.stop().await;
    let error = client.fetch().await.unwrap_err();
    assert!(
        error.to_string().contains("no Eureka server answered"),
        "{error}"
    );
    assert_eq!(
        client.instances("orders").len(),
        1,
        "the last good registry keeps serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefers_its_zone_and_sends_basic_auth_from_the_url() {
    // "user:p@ss" in base64.
    let server = eureka_with(
        InstanceRegistryConfig::default(),
        Some("Basic dXNlcjpwQHNz"),
    )
    .await;
    let url = server.url.replace("http://", "http://user:p%40ss@");
    for (id, zone) in [("o-1", "eu-1a"), ("o-2", "eu-1b"), ("o-3", "eu-1a")] {
        server
            .registry
            .register(me("orders", id, zone), now())
            .unwrap();
    }
    let config = EurekaClientConfig {
        zone: Some("eu-1a".into()),
        ..fast(vec![url])
    };
    let client = EurekaClient::new(config, None).unwrap();
    client
        .fetch()
        .await
        .expect("basic auth from the URL is accepted");
    let ids: Vec<String> = client
        .instances("orders")
        .iter()
        .map(|i| i.id().to_owned())
        .collect();
    assert_eq!(ids, ["o-1", "o-3"]);
    let config = EurekaClientConfig {
        zone: Some("us-2".into()),
        ..fast(vec![server.url.replace("http://", "http://user:p%40ss@")])
    };
    let elsewhere = EurekaClient::new(config, None).unwrap();
    elsewhere.fetch().await.unwrap();
    assert_eq!(
        elsewhere.instances("orders").len(),
        3,
        "no instance in our zone: all of them"
    );

    let anonymous = EurekaClient::new(fast(vec![server.url.clone()]), None).unwrap();
    let error = anonymous.fetch().await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(EurekaClient::new(fast(vec!["https://x/eureka".into()]), None).is_err());
}

/// A stand-in Eureka server that counts requests and answers an empty registry while
/// healthy, 503 otherwise.
struct Counting {
    url: String,
    hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
}

impl Counting {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

async fn counting(healthy: bool) -> Counting {
    let hits = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(AtomicBool::new(healthy));
    let router = {
        let (hits, up) = (hits.clone(), up.clone());
        axum::Router::new().fallback(move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if up.load(Ordering::SeqCst) {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    r#"{"applications":{"versions__delta":"1","apps__hashcode":"","application":[]}}"#,
                )
                    .into_response()
            } else {
                (http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Counting {
        url,
        hits,
        healthy: up,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_servers_are_quarantined_until_most_of_them_are() {
    let servers = [
        counting(false).await,
        counting(true).await,
        counting(true).await,
        counting(true).await,
    ];
    let [a, b, c, d] = &servers;
    let config = EurekaClientConfig {
        tries: 4,
        ..fast(servers.iter().map(|s| s.url.clone()).collect())
    };
    let client = EurekaClient::new(config, None).unwrap();
    let hits = || servers.iter().map(Counting::hits).collect::<Vec<_>>();

    // A fails and is quarantined; B answers and becomes the preferred server.
    client.fetch_full().await.unwrap();
    assert_eq!(hits(), [1, 1, 0, 0]);
    client.fetch_full().await.unwrap();
    assert_eq!(hits(), [1, 2, 0, 0], "the server that answered is kept");

    // A recovers but stays quarantined (1 of 4): B, C and D fail, A is not tried.
    a.set_healthy(true);
    for s in [b, c, d] {
        s.set_healthy(false);
    }
    let error = client.fetch_full().await.unwrap_err();
    assert!(
        error.to_string().contains("no Eureka server answered"),
        "{error}"
    );
    assert_eq!(hits(), [1, 3, 1, 1], "the quarantined server is skipped");

    // Now all four are quarantined: the quarantine is lifted and A is tried again.
    client.fetch_full().await.unwrap();
    assert_eq!(hits(), [2, 4, 2, 2], "the quarantine is lifted");
    // A answered: it is preferred and no longer quarantined.
    client.fetch_full().await.unwrap();
    assert_eq!(hits(), [3, 4, 2, 2]);

    // Three of four quarantined is "most": the next request lifts the quarantine as well.
    let config = EurekaClientConfig {
        tries: 4,
        ..fast(servers.iter().map(|s| s.url.clone()).collect())
    };
    for s in &servers {
        s.set_healthy(false);
    }
    d.set_healthy(true);
    let client = EurekaClient::new(config, None).unwrap();
    client.fetch_full().await.unwrap(); // A, B, C fail (quarantined); D answers.
    assert_eq!(hits(), [4, 5, 3, 3]);
    d.set_healthy(false);
    a.set_healthy(true);
    client.fetch_full().await.unwrap(); // lifted: D fails, then A answers.
    assert_eq!(hits(), [5, 5, 3, 4]);
}

/// A server that answers 200 with a body of more than `wire::MAX_DOCUMENT` bytes, either
/// announced by `Content-Length` or streamed in chunks, and then holds the connection open.
async fn oversized(announced: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let chunk = vec![b' '; 1 << 20];
                let total = MAX_DOCUMENT / chunk.len() + 16;
                if announced {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        total * chunk.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(b"{\"applications\":").await;
                } else {
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for _ in 0..total {
                        let frame =
                            [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                        if socket.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                }
                // Never finish the answer.
                tokio::time::sleep(Duration::from_secs(120)).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_are_refused_while_reading() {
    for announced in [true, false] {
        let url = oversized(announced).await;
        let config = EurekaClientConfig {
            request_timeout: Duration::from_secs(60),
            ..fast(vec![url])
        };
        let client = EurekaClient::new(config, None).unwrap();
        let started = Instant::now();
        let error = client.fetch_full().await.unwrap_err();
        assert!(
            matches!(error, EurekaClientError::TooLarge { limit, .. } if limit == MAX_DOCUMENT),
            "announced {announced}: {error:?}"
        );
        assert!(
            error.to_string().contains(&MAX_DOCUMENT.to_string()),
            "the message names the limit: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "refused while reading, not after the timeout"
        );
        assert!(client.applications().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_reserved_characters_are_percent_encoded_in_paths() {
    let server = eureka().await;
    // Decoys where a wrongly split path would land.
    server
        .registry
        .register(me("orders", "host:svc", "a"), now())
        .unwrap();
    server
        .registry
        .register(me("orders", "a", "a"), now())
        .unwrap();
    for id in ["host:svc/1 a", "a?b=c#d", "50%25 off", "x;y+z&w", "ünï"] {
        let client =
            EurekaClient::new(fast(vec![server.url.clone()]), Some(me("orders", id, "a"))).unwrap();
        client.register().await.unwrap();
        let on_server = || server.registry.instance(Some("ORDERS"), id);
        assert!(on_server().is_some(), "{id:?} registered");
        assert_eq!(client.renew().await.unwrap(), Renewal::Renewed, "{id:?}");

        client
            .set_status_override(Status::OutOfService)
            .await
            .unwrap();
        assert_eq!(on_server().unwrap().status, Status::OutOfService, "{id:?}");
        client.remove_status_override().await.unwrap();
        assert_eq!(on_server().unwrap().status, Status::Up, "{id:?}");

        client.update_metadata(&[("k", "v")]).await.unwrap();
        assert_eq!(on_server().unwrap().metadata["k"], "v", "{id:?}");

        client.cancel().await.unwrap();
        assert!(on_server().is_none(), "{id:?} cancelled");
        for decoy in ["host:svc", "a"] {
            let decoy = server.registry.instance(Some("ORDERS"), decoy).unwrap();
            assert_eq!(decoy.status, Status::Up);
            assert!(!decoy.metadata.contains_key("k"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_defaults_to_the_clients_own_instance() {
    let server = eureka().await;
    for (id, zone) in [("o-1", "eu-1a"), ("o-2", "eu-1b"), ("o-3", "eu-1a")] {
        server
            .registry
            .register(me("orders", id, zone), now())
            .unwrap();
    }
    let ids = |client: &EurekaClient| -> Vec<String> {
        client
            .instances("orders")
            .iter()
            .map(|i| i.id().to_owned())
            .collect()
    };

    // From the metadata "zone" of the client's own instance.
    let client = EurekaClient::new(
        fast(vec![server.url.clone()]),
        Some(me("web", "w-1", "eu-1b")),
    )
    .unwrap();
    client.fetch().await.unwrap();
    assert_eq!(ids(&client), ["o-2"]);

    // From Amazon's availability-zone.
    let mut amazon = me("web", "w-2", "");
    amazon.metadata.clear();
    amazon.data_center_info.class = breakwater_discovery::wire::AMAZON_CLASS.into();
    amazon.data_center_info.name = "Amazon".into();
    amazon
        .data_center_info
        .metadata
        .insert("availability-zone".into(), "eu-1a".into());
    let client = EurekaClient::new(fast(vec![server.url.clone()]), Some(amazon)).unwrap();
    client.fetch().await.unwrap();
    assert_eq!(ids(&client), ["o-1", "o-3"]);

    // The configured zone wins over the instance's.
    let config = EurekaClientConfig {
        zone: Some("eu-1a".into()),
        ..fast(vec![server.url.clone()])
    };
    let client = EurekaClient::new(config, Some(me("web", "w-3", "eu-1b"))).unwrap();
    client.fetch().await.unwrap();
    assert_eq!(ids(&client), ["o-1", "o-3"]);

    // No zone anywhere: no preference.
    let mut nowhere = me("web", "w-4", "");
    nowhere.metadata.clear();
    let client = EurekaClient::new(fast(vec![server.url.clone()]), Some(nowhere)).unwrap();
    client.fetch().await.unwrap();
    assert_eq!(ids(&client).len(), 3);
}

/// A server whose full registry is small and whose delta is over the answer limit (announced,
/// so the client refuses it before reading). Serves any number of requests per connection.
async fn oversized_delta() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let full = breakwater_discovery::wire::applications_document(
        &breakwater_discovery::Applications {
            versions_delta: "1".into(),
            apps_hashcode: "UP_1_".into(),
            applications: vec![breakwater_discovery::Application {
                name: "ORDERS".into(),
                instances: vec![me("orders", "orders-1", "a")],
            }],
        },
        breakwater_discovery::wire::Format::Json,
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let full = full.clone();
            tokio::spawn(async move {
                loop {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    if request.starts_with(b"GET /eureka/apps/delta") {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            MAX_DOCUMENT + 1
                        );
                        // The client hangs up once it sees the length; so does this task.
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.read(&mut buf).await;
                        return;
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{full}",
                        full.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_over_the_answer_limit_falls_back_to_a_full_fetch() {
    let url = oversized_delta().await;
    let client = EurekaClient::new(fast(vec![url]), None).unwrap();
    assert!(
        client.fetch().await.unwrap(),
        "the first fetch is a full one"
    );
    assert_eq!(client.applications().len(), 1);
    // Every later fetch asks for the delta, is refused it, and fetches all instead.
    for _ in 0..2 {
        assert!(client.fetch().await.unwrap(), "fell back to a full fetch");
        assert_eq!(client.applications().len(), 1);
    }
}

#[tokio::test]
async fn a_registry_that_lost_most_instances_is_believed_after_three_fetches() {
    let server = eureka().await;
    let client = EurekaClient::new(fast(vec![server.url.clone()]), None).unwrap();
    for n in 0..4 {
        server
            .registry
            .register(me("orders", &format!("o-{n}"), "a"), now())
            .unwrap();
    }
    client.fetch_full().await.unwrap();
    assert_eq!(client.applications().len(), 4);
    // The registry restarted with one instance (more than half gone): held twice.
    for n in 1..4 {
        server
            .registry
            .cancel("ORDERS", &format!("o-{n}"), now())
            .unwrap();
    }
    for _ in 0..2 {
        client.fetch_full().await.unwrap();
        assert_eq!(client.applications().len(), 4, "not believed yet");
    }
    client.fetch_full().await.unwrap();
    assert_eq!(
        client.applications().len(),
        1,
        "three fetches in a row: believed"
    );
    // Losing half or less goes through at once; so does growth.
    server
        .registry
        .register(me("orders", "o-5", "a"), now())
        .unwrap();
    client.fetch_full().await.unwrap();
    assert_eq!(client.applications().len(), 2);
    server.registry.cancel("ORDERS", "o-5", now()).unwrap();
    client.fetch_full().await.unwrap();
    assert_eq!(client.applications().len(), 1);
    // An empty answer is held the same way.
    server.registry.cancel("ORDERS", "o-0", now()).unwrap();
    for _ in 0..2 {
        client.fetch_full().await.unwrap();
        assert_eq!(client.applications().len(), 1);
    }
    client.fetch_full().await.unwrap();
    assert!(client.applications().is_empty());
    // With confirmations off, a fetch is believed at once.
    let client = EurekaClient::new(
        EurekaClientConfig {
            drop_confirmations: 0,
            ..fast(vec![server.url.clone()])
        },
        None,
    )
    .unwrap();
    server
        .registry
        .register(me("orders", "o-6", "a"), now())
        .unwrap();
    client.fetch_full().await.unwrap();
    server.registry.cancel("ORDERS", "o-6", now()).unwrap();
    client.fetch_full().await.unwrap();
    assert!(client.applications().is_empty());
    server.stop().await;
}
