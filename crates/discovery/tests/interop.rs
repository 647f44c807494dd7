//! A real Eureka peer against our registry: `py-eureka-client` (PyPI; `scripts/test.sh`
//! installs it) registers, heartbeats, fetches full and delta registries, discovers a service
//! we registered, and deregisters when it stops.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater_discovery::client::{ClientConfig, EurekaClient};
use breakwater_discovery::registry::{Registry, RegistryConfig};
use breakwater_discovery::wire::Status;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn start() -> (Arc<Registry>, String) {
    let registry = Arc::new(Registry::new(RegistryConfig::default()));
    let router = breakwater_discovery::server::router(registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (registry, url)
}

/// Registers RUST-SERVICE through the REST API, as a JSON client would.
async fn register_rust_service(url: &str) {
    let body = serde_json::json!({"instance": {
        "instanceId": "rust-service-1", "hostName": "127.0.0.1", "app": "RUST-SERVICE",
        "ipAddr": "127.0.0.1", "status": "UP", "port": {"$": 8088, "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
        "vipAddress": "rust-service"
    }});
    let status = post(&format!("{url}apps/RUST-SERVICE"), &body.to_string()).await;
    assert_eq!(status, 204);
}

async fn post(url: &str, body: &str) -> u16 {
    // A minimal HTTP/1.1 request over a real socket.
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_eureka_client_registers_heartbeats_discovers_and_deregisters() {
    let (registry, url) = start().await;
    register_rust_service(&url).await;
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
        ClientConfig {
            service_urls: vec![url.clone()],
            ..ClientConfig::default()
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
}
