//! A client's services follow properties over real sockets: Ribbon's retry counts and
//! timeouts, our hedging setting, the Hystrix breaker and the balancer, each applied from
//! the first call and changed while the client runs; refused text keeps the last good value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use breakwater_circuit_breaker::{CircuitBreakerRegistry, Mode};
use breakwater_client::{Client, ErrorKind};
use breakwater_dyn_config::{ConfigStore, client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An HTTP/1.1 server on loopback that answers every request with `status` after `delay`,
/// and counts requests.
struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl Server {
    async fn start(status: u16, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, status, delay, counted.clone()));
            }
        });
        Server { addr, requests }
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, status: u16, delay: Duration, requests: Arc<AtomicU64>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        // Requests here have no body: each ends at its blank line.
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            requests.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if buffer.len() + n <= 64 * 1024 => buffer.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    }
}

fn client_of(services: &[(&str, Vec<String>)]) -> Client {
    let mut builder = Client::builder()
        .read_env(false)
        .breaker_registry(CircuitBreakerRegistry::new());
    for (service, instances) in services {
        builder = builder.instances(service, instances).unwrap();
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ribbon_retry_counts_follow_properties_from_the_first_call_and_live() {
    let failing = Server::start(503, Duration::ZERO).await;
    let client = client_of(&[("payments", vec![failing.authority()])]);
    let config = ConfigStore::new();
    // Set before the service exists: applied when its first call makes it.
    config.set_override("payments.ribbon.MaxAutoRetriesNextServer", "0");
    let _binding = client::bind(&config, &client);

    let response = client.get("service://payments/a").send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        failing.requests(),
        1,
        "no retry with MaxAutoRetriesNextServer 0"
    );

    // Changed while running: one retry on the same instance (the only one).
    config.set_override("payments.ribbon.MaxAutoRetries", "1");
    let response = client.get("service://payments/b").send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(failing.requests(), 3, "the first attempt and one retry");
    assert_eq!(client.stats(Some("payments")).unwrap().retries, 1);

    // Refused text: logged, the last good value stays.
    config.set_override("payments.ribbon.MaxAutoRetries", "lots");
    assert_eq!(client.call_config("payments").max_auto_retries, 1);
    // A default scope applies where the service has no key of its own...
    config.clear_override("payments.ribbon.MaxAutoRetries");
    config.set_override("ribbon.MaxAutoRetries", "2");
    assert_eq!(client.call_config("payments").max_attempts(), 3);
    // ...and with no key at all, the setting the client was built with comes back.
    config.clear_override("ribbon.MaxAutoRetries");
    config.clear_override("payments.ribbon.MaxAutoRetriesNextServer");
    assert_eq!(client.call_config("payments"), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeout_moves_a_slow_attempt_to_another_instance() {
    let slow = Server::start(200, Duration::from_secs(5)).await;
    let fast = Server::start(200, Duration::ZERO).await;
    let client = client_of(&[("orders", vec![slow.authority(), fast.authority()])]);
    let config = ConfigStore::new();
    config.set_override(
        "hystrix.command.orders.execution.isolation.thread.timeoutInMilliseconds",
        "3000",
    );
    config.set_override("orders.ribbon.ReadTimeout", "100");
    let _binding = client::bind(&config, &client);
    for i in 0..6 {
        let started = Instant::now();
        let response = client
            .get(format!("service://orders/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(fast.requests(), 6);
    let breaker = client.breaker("orders").unwrap();
    assert_eq!(breaker.config().timeout, Some(Duration::from_millis(3000)));
}

/// A loopback listener that never accepts, its queue filled: a new connection to it hangs
/// in the handshake, as to a host that drops packets.
async fn stalled() -> (TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            _ => break,
        }
    }
    (listener, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_follows_its_property() {
    let (listener, _held) = stalled().await;
    let addr = listener.local_addr().unwrap().to_string();
    let client = client_of(&[("stuck", vec![addr])]);
    let config = ConfigStore::new();
    config.set_override("stuck.ribbon.MaxAutoRetriesNextServer", "0");
    config.set_override("stuck.ribbon.ConnectTimeout", "100");
    let _binding = client::bind(&config, &client);
    let started = Instant::now();
    let error = client.get("service://stuck/").send().await.unwrap_err();
    let short = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(
        short >= Duration::from_millis(100) && short < Duration::from_millis(700),
        "{short:?}"
    );

    config.set_override("stuck.ribbon.ConnectTimeout", "400");
    let started = Instant::now();
    let error = client.get("service://stuck/").send().await.unwrap_err();
    let long = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(long >= Duration::from_millis(400), "{long:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_balancer_and_hedging_follow_and_stop_when_unbound() {
    let server = Server::start(200, Duration::ZERO).await;
    let client = client_of(&[("ledger", vec![server.authority()])]);
    let config = ConfigStore::new();
    config.set_override("balance.ledger.ejection.consecutiveFailures", "2");
    let binding = client::bind(&config, &client);
    assert_eq!(
        client
            .get("service://ledger/")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .balance_config("ledger")
            .unwrap()
            .consecutive_failures,
        2
    );

    config.set_override("client.default.hedge.delayMs", "40");
    assert_eq!(
        client.call_config("ledger").hedge_delay,
        Some(Duration::from_millis(40))
    );
    config.set_override("client.ledger.hedge.delayMs", "off");
    assert_eq!(client.call_config("ledger").hedge_delay, None);

    // An operator forces the breaker open: calls are refused without reaching the server.
    config.set_override("hystrix.command.ledger.circuitBreaker.forceOpen", "true");
    assert_eq!(
        client.breaker("ledger").unwrap().config().mode,
        Mode::ForcedOpen
    );
    let error = client.get("service://ledger/").send().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen, "{error}");
    assert_eq!(server.requests(), 1);
    config.set_override("hystrix.command.ledger.circuitBreaker.forceOpen", "false");
    assert_eq!(
        client
            .get("service://ledger/")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Unbound: properties no longer reach the client, which keeps what it had.
    drop(binding);
    config.set_override("ledger.ribbon.MaxAutoRetries", "3");
    config.set_override("hystrix.command.ledger.circuitBreaker.forceOpen", "true");
    assert_eq!(client.call_config("ledger").max_auto_retries, 0);
    assert_eq!(
        client
            .get("service://ledger/")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
