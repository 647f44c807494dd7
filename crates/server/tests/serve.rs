//! The serve loop against real sockets on loopback: slow and silent clients, the connection
//! cap, graceful shutdown, body limits and closing a connection from a handler.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use breakwater_server::{ConnectionHandle, ServeConfig, read_body, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "slow done"
            }),
        )
        .route(
            "/upload",
            post(|body: Body| async move {
                match read_body(body, 1024).await {
                    Ok(bytes) => format!("{} bytes", bytes.len()).into_response(),
                    Err(error) => error.into_response(),
                }
            }),
        )
        .route(
            "/close",
            get(
                |Extension(handle): Extension<ConnectionHandle>| async move {
                    handle.close();
                    "closing"
                },
            ),
        )
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: ServeConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        router(),
        async move {
            let _ = stopped.await;
        },
        config,
    ));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Reads until the server closes the connection (or 5 s pass: then `None`).
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get_once(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_to_close(&mut stream).await.expect("an answer")
}

fn short_headers() -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off() {
    let server = start(short_headers()).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut silent).await;
    assert!(
        answer.is_some(),
        "a silent connection was kept open for 5 s"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server still answers others.
    assert!(get_once(server.addr, "/").await.contains("hello"));
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let server = start(short_headers()).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        // A header line now and then, never the end of the headers.
        tokio::time::sleep(Duration::from_millis(150)).await;
        if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
            break;
        }
    }
    let answer = read_to_close(&mut slow).await;
    assert!(answer.is_some(), "a trickling client was kept open for 5 s");
    assert!(!answer.unwrap().contains("hello"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_is_closed_at_once() {
    let server = start(ServeConfig {
        max_connections: 2,
        ..ServeConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // Keep-alive connections that have been served: they stay open and hold their place.
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
        held.push(stream);
    }
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let started = Instant::now();
    let answer = read_to_close(&mut third)
        .await
        .expect("closed, not left hanging");
    assert!(!answer.contains("hello"), "served past the cap: {answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A place freed is a place taken again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get_once(server.addr, "/").await.contains("hello") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_takes_no_new_ones() {
    let mut server = start(ServeConfig::default()).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { get_once(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let answer = in_flight.await.unwrap();
    assert!(
        answer.contains("200 OK") && answer.contains("slow done"),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(3), &mut server.task)
        .await
        .expect("serve returns after the drain")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_announced_or_not() {
    let server = start(ServeConfig::default()).await;
    let post = |headers: &str, body: &[u8]| {
        let mut request =
            format!("POST /upload HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}\r\n")
                .into_bytes();
        request.extend_from_slice(body);
        async move {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            read_to_close(&mut stream).await.expect("an answer")
        }
    };
    let small = post("content-length: 10\r\n", b"0123456789").await;
    assert!(
        small.contains("200 OK") && small.contains("10 bytes"),
        "{small}"
    );
    let announced = post("content-length: 10000000\r\n", b"").await;
    assert!(announced.contains("413"), "{announced}");
    assert!(announced.contains("larger than 1024 bytes"), "{announced}");
    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'a'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let unannounced = post("transfer-encoding: chunked\r\n", &chunked).await;
    assert!(unannounced.contains("413"), "{unannounced}");
}

#[tokio::test]
async fn a_handler_can_close_its_connection() {
    let server = start(ServeConfig::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Keep-alive was asked for, yet the server ends the connection.
    assert!(read_to_close(&mut stream).await.is_some());
}
