//! Discovery as a stream of changes, against a static list, our embedded registry over real
//! sockets, and instances that register themselves from Python through `py-eureka-client`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint, EurekaDiscover, StaticDiscover};
use breakwater_circuit_breaker::error::BoxError;
use breakwater_discovery::{
    EurekaClient, EurekaClientConfig, Instance, InstanceRegistry, InstanceRegistryConfig, Port,
    Status,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;
use tower::discover::{Change, Discover};

/// The next change, or `None` when none comes within `within` (the stream stays usable).
async fn next<D>(discover: &mut D, within: Duration) -> Option<Change<String, Endpoint>>
where
    D: Discover<Key = String, Service = Endpoint> + Unpin,
    D::Error: std::fmt::Debug,
{
    let change = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *discover).poll_discover(cx));
    match tokio::time::timeout(within, change).await {
        Ok(Some(change)) => Some(change.unwrap()),
        Ok(None) => panic!("the stream ended"),
        Err(_) => None,
    }
}

fn describe(change: &Change<String, Endpoint>) -> String {
    match change {
        Change::Insert(id, e) => format!("+{id}@{}:{}", e.authority(), e.weight),
        Change::Remove(id) => format!("-{id}"),
    }
}

/// One HTTP/1.1 GET of `/` from `authority`; the body (the instance's id).
async fn http_get(authority: String) -> Result<String, BoxError> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, BoxError>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange).await??;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {head}").into());
    }
    Ok(body.to_owned())
}

/// Waits until the balancer has `n` instances.
async fn wait_for<S>(balancer: &Balancer<S>, n: usize) {
    let deadline = tokio::time::Instant::now() + SOON;
    while balancer.snapshot().instances.len() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            balancer.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SOON: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_static_list_yields_inserts_removals_and_replacements() {
    let (list, updates) = tokio::sync::watch::channel(vec![
        Endpoint::new("a", "10.0.0.1", 80),
        Endpoint::new("b", "10.0.0.2", 80),
    ]);
    let mut discover = StaticDiscover::new(updates, Endpoint::clone);
    let mut seen = Vec::new();
    while let Some(change) = next(&mut discover, QUIET).await {
        seen.push(describe(&change));
    }
    assert_eq!(seen, ["+a@10.0.0.1:80:1", "+b@10.0.0.2:80:1"]);
    let mut b = Endpoint::new("b", "10.0.0.2", 81);
    b.weight = 5;
    list.send(vec![b, Endpoint::new("c", "::1", 82)]).unwrap();
    let mut seen = Vec::new();
    while let Some(change) = next(&mut discover, QUIET).await {
        seen.push(describe(&change));
    }
    assert_eq!(seen, ["-a", "+b@10.0.0.2:81:5", "+c@[::1]:82:1"]);
    // The same list again changes nothing.
    list.send_modify(|_| {});
    assert!(next(&mut discover, QUIET).await.is_none());
    drop(list);
    let end = std::future::poll_fn(|cx| std::pin::Pin::new(&mut discover).poll_discover(cx)).await;
    assert!(end.is_none(), "the stream ends with its sender");
}

fn instance(app: &str, id: &str, port: u16, status: Status) -> Instance {
    Instance {
        instance_id: id.into(),
        app: app.into(),
        host_name: format!("{id}.local"),
        ip_addr: "10.1.0.1".into(),
        status,
        port: Some(Port {
            port,
            enabled: true,
        }),
        vip_address: Some(format!("{}-vip", app.to_ascii_lowercase())),
        ..Instance::default()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn the_eureka_view_yields_up_instances_of_one_service() {
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let router = breakwater_discovery::server::router(registry.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = EurekaClient::new(
        EurekaClientConfig {
            service_urls: vec![url],
            request_timeout: Duration::from_secs(2),
            ..EurekaClientConfig::default()
        },
        None,
    )
    .unwrap();
    registry
        .register(instance("ORDERS", "o-1", 8080, Status::Up), now())
        .unwrap();
    let mut weighted = instance("ORDERS", "o-2", 8081, Status::Up);
    weighted.metadata.insert("weight".into(), "7".into());
    registry.register(weighted, now()).unwrap();
    registry
        .register(instance("ORDERS", "o-3", 8082, Status::Starting), now())
        .unwrap();
    let mut portless = instance("ORDERS", "o-4", 8083, Status::Up);
    portless.port = Some(Port {
        port: 8083,
        enabled: false,
    });
    registry.register(portless, now()).unwrap();
    registry
        .register(instance("CARTS", "c-1", 9090, Status::Up), now())
        .unwrap();
    client.fetch_full().await.unwrap();

    // By VIP address as well as by name.
    let mut discover = EurekaDiscover::new(&client, "orders-vip", Endpoint::clone);
    let mut seen = Vec::new();
    while let Some(change) = next(&mut discover, QUIET).await {
        seen.push(describe(&change));
    }
    assert_eq!(
        seen,
        ["+o-1@10.1.0.1:8080:1", "+o-2@10.1.0.1:8081:7"],
        "UP only, no portless instance, no other service"
    );

    // Out of service: removed. Starting to UP: inserted. A changed port: inserted again.
    registry
        .set_status_override("ORDERS", "o-1", Status::OutOfService, None, now())
        .unwrap();
    let mut started = instance("ORDERS", "o-3", 8082, Status::Up);
    started.last_dirty_timestamp = now() + 1;
    registry.register(started, now()).unwrap();
    let mut moved = instance("ORDERS", "o-2", 9999, Status::Up);
    moved.metadata.insert("weight".into(), "7".into());
    moved.last_dirty_timestamp = now() + 1;
    registry.register(moved, now()).unwrap();
    client.fetch_full().await.unwrap();
    let mut seen = Vec::new();
    while let Some(change) = next(&mut discover, QUIET).await {
        seen.push(describe(&change));
    }
    assert_eq!(
        seen,
        ["-o-1", "+o-2@10.1.0.1:9999:7", "+o-3@10.1.0.1:8082:1"]
    );

    // The registry goes away: the client keeps its view, and nothing is removed.
    server.abort();
    assert!(client.fetch_full().await.is_err());
    assert!(next(&mut discover, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_register_themselves_from_python_are_discovered_and_dropped() {
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let router = breakwater_discovery::server::router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = EurekaClient::new(
        EurekaClientConfig {
            service_urls: vec![url.clone()],
            registry_fetch_interval: Duration::from_millis(200),
            ..EurekaClientConfig::default()
        },
        None,
    )
    .unwrap();
    let running = client.start();
    let mut peer = tokio::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/py_instances.py"
        ))
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (with py-eureka-client: the README's test command installs it)");
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let mut said = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the Python peer answers within 30 s")
            .unwrap()
            .expect("the Python peer is still running (is py-eureka-client installed?)");
        if let Some(line) = line.strip_prefix("PEER ") {
            return line.to_owned();
        }
    };
    let mut ready = Vec::new();
    for _ in 0..3 {
        let line = said().await;
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words[0], "READY", "{line}");
        ready.push(format!("+{}@127.0.0.1:{}:{}", words[1], words[2], words[3]));
    }

    let mut discover = EurekaDiscover::new(&client, "PY-BACKEND", Endpoint::clone);
    // And a balancer over the same view, sending real HTTP requests to the Python servers.
    let balancer = Balancer::eureka(
        &client,
        "py-backend",
        |e: &Endpoint| {
            let authority = e.authority();
            tower::service_fn(move |()| http_get(authority.clone()))
        },
        BalanceConfig::default(),
    )
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = next(&mut discover, SOON)
            .await
            .expect("all three are discovered");
        if let Change::Insert(_, endpoint) = &change {
            // Each is a real server that answers with its own id.
            let mut stream = tokio::net::TcpStream::connect(endpoint.authority())
                .await
                .unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            assert!(answer.ends_with(&endpoint.id), "{answer}");
            assert_eq!(endpoint.zone.as_deref(), Some("zone-a"));
        }
        seen.push(describe(&change));
    }
    seen.sort();
    assert_eq!(seen, ready);
    let answered = |n| {
        let balancer = balancer.clone();
        async move {
            // All at once: requests in flight are part of the cost, so they spread.
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                tasks.spawn(balancer.clone().oneshot(()));
            }
            let mut ids = std::collections::BTreeSet::new();
            while let Some(id) = tasks.join_next().await {
                ids.insert(id.unwrap().expect("a Python instance answers"));
            }
            ids.into_iter().collect::<Vec<String>>()
        }
    };
    assert_eq!(
        answered(60).await,
        ["py-backend-0", "py-backend-1", "py-backend-2"]
    );

    let mut stdin = peer.stdin.take().unwrap();
    stdin.write_all(b"out py-backend-1\n").await.unwrap();
    assert_eq!(said().await, "OUT py-backend-1");
    let change = next(&mut discover, SOON)
        .await
        .expect("out of service is removed");
    assert_eq!(describe(&change), "-py-backend-1");
    wait_for(&balancer, 2).await;
    assert_eq!(answered(40).await, ["py-backend-0", "py-backend-2"]);
    stdin.write_all(b"stop py-backend-2\n").await.unwrap();
    assert_eq!(said().await, "STOPPED py-backend-2");
    let change = next(&mut discover, SOON)
        .await
        .expect("a deregistered one is removed");
    assert_eq!(describe(&change), "-py-backend-2");
    wait_for(&balancer, 1).await;
    assert_eq!(answered(20).await, ["py-backend-0"]);
    stdin.write_all(b"quit\n").await.unwrap();
    assert_eq!(said().await, "STOPPED");
    assert!(peer.wait().await.unwrap().success());
    running.shutdown().await.unwrap();
    assert!(registry.applications().len() <= 1);
}
