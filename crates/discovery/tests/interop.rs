//! A real Eureka peer against our registry: `py-eureka-client` (PyPI; `scripts/test.sh`
//! installs it) registers, heartbeats, fetches full and delta registries, discovers a service
//! we registered through our own client, and deregisters when it stops. A counting layer in
//! front of the registry shows that its heartbeats are renewals (not registrations again) and
//! that it fetches deltas.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use breakwater_discovery::{
    EurekaClient, EurekaClientConfig, Instance, InstanceRegistry, InstanceRegistryConfig, Port,
    Status,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Requests of PY-SERVICE's kinds that reached the registry.
#[derive(Default)]
struct Seen {
    registrations: AtomicUsize,
    renewals: AtomicUsize,
    deltas: AtomicUsize,
}

async fn start() -> (Arc<InstanceRegistry>, String, Arc<Seen>) {
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    let router = breakwater_discovery::server::router(registry.clone()).layer(
        tower::util::MapRequestLayer::new(move |request: http::Request<axum::body::Body>| {
            let path = request.uri().path().to_ascii_uppercase();
            let counter = match *request.method() {
                http::Method::POST if path.ends_with("/APPS/PY-SERVICE") => {
                    Some(&counts.registrations)
                }
                http::Method::PUT if path.ends_with("/APPS/PY-SERVICE/PY-SERVICE-1") => {
                    Some(&counts.renewals)
                }
                http::Method::GET if path.ends_with("/APPS/DELTA") => Some(&counts.deltas),
                _ => None,
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            request
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (registry, url, seen)
}

/// Registers RUST-SERVICE with our own client (the body our services send).
async fn register_rust_service(url: &str) -> EurekaClient {
    let instance = Instance {
        instance_id: "rust-service-1".into(),
        app: "RUST-SERVICE".into(),
        host_name: "127.0.0.1".into(),
        ip_addr: "127.0.0.1".into(),
        status: Status::Up,
        port: Some(Port {
            port: 8088,
            enabled: true,
        }),
        vip_address: Some("rust-service".into()),
        ..Instance::default()
    };
    let config = EurekaClientConfig {
        service_urls: vec![url.to_owned()],
        ..EurekaClientConfig::default()
    };
    let client = EurekaClient::new(config, Some(instance)).unwrap();
    client.register().await.expect("our client registers");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_eureka_client_registers_heartbeats_discovers_and_deregisters() {
    let (registry, url, seen) = start().await;
    let rust_service = register_rust_service(&url).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/py_eureka_peer.py");
    let mut peer = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    // The peer's own lines start with "PEER "; py-eureka-client logs to stdout too.
    let mut next = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
            .await
            .expect("the Python peer answers within 40 s")
            .unwrap()
            .expect("the Python peer is still running (is py-eureka-client installed? run scripts/test.sh)");
        eprintln!("py-eureka-client peer: {line}");
        if let Some(said) = line.strip_prefix("PEER ") {
            return said.to_owned();
        }
    };
    assert_eq!(next().await, "REGISTERED");
    let py = registry
        .instance(Some("PY-SERVICE"), "py-service-1")
        .expect("py-eureka-client registered with our registry");
    assert_eq!(py.status, Status::Up);
    assert_eq!(py.metadata.get("lang").map(String::as_str), Some("python"));
    assert_eq!(py.lease_info.duration_secs, 5);

    let discovered = next().await;
    assert_eq!(
        discovered, "DISCOVERED 127.0.0.1:8088",
        "it found our service"
    );

    // And our client finds it.
    let ours = EurekaClient::new(
        EurekaClientConfig {
            service_urls: vec![url.clone()],
            ..EurekaClientConfig::default()
        },
        None,
    )
    .unwrap();
    ours.fetch().await.unwrap();
    let found = ours.instances("py-service");
    assert_eq!(found.len(), 1, "our client discovers the Python service");
    assert_eq!(found[0].port.map(|p| p.port), Some(9099));

    // Heartbeats arrive: the lease is renewed after registration.
    let first = registry
        .instance(None, "py-service-1")
        .unwrap()
        .lease_info
        .last_renewal_timestamp;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = registry
            .instance(None, "py-service-1")
            .unwrap()
            .lease_info
            .last_renewal_timestamp;
        if now > first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat from py-eureka-client within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Renewed by heartbeats, not by registering again; and it follows the registry by delta.
    assert_eq!(seen.registrations.load(Ordering::SeqCst), 1);
    assert!(seen.renewals.load(Ordering::SeqCst) >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.deltas.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "py-eureka-client fetched no delta within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut stdin = peer.stdin.take().unwrap();
    stdin.write_all(b"stop\n").await.unwrap();
    assert_eq!(next().await, "STOPPED");
    assert!(
        registry.instance(None, "py-service-1").is_none(),
        "py-eureka-client cancelled its registration on stop"
    );
    let deleted = registry
        .delta(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        )
        .instances()
        .any(|i| {
            i.id() == "py-service-1"
                && i.action_type == Some(breakwater_discovery::wire::ActionType::Deleted)
        });
    assert!(deleted, "the cancellation is in the delta");
    assert!(peer.wait().await.unwrap().success());
    rust_service.cancel().await.expect("our client cancels");
    assert!(registry.instance(None, "rust-service-1").is_none());
}
