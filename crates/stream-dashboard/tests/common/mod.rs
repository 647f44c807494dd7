//! Helpers shared by the integration tests: a real server on a loopback port and a real
//! HTTP client reading its event streams.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(router: Router) -> Server {
        Server::start_with(
            router,
            breakwater_stream_dashboard::ServeConfig {
                drain: Duration::from_secs(1),
                ..breakwater_stream_dashboard::ServeConfig::default()
            },
        )
        .await
    }

    pub async fn start_with(
        router: Router,
        config: breakwater_stream_dashboard::ServeConfig,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(breakwater_stream_dashboard::serve_with_config(
            listener,
            router,
            async {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("server stops within 5 s")
            .unwrap()
            .unwrap();
    }
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An open response: status, headers, and a body read on demand.
pub struct Open {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: hyper::body::Incoming,
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Open {
    let mut request = Request::get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client().request(request.body(Empty::new()).unwrap()),
    )
    .await
    .expect("answer within 10 s")
    .expect("request succeeds");
    let (parts, body) = response.into_parts();
    Open {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Open {
    /// The next data chunk before `deadline`, or `None` once it passes; panics when the
    /// stream fails or ends (`text` is what was read so far, for the message).
    async fn next_data(&mut self, deadline: Instant, text: &[u8]) -> Option<Bytes> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(data);
                    }
                }
                Ok(Some(Err(e))) => panic!("stream failed: {e}"),
                Ok(None) => panic!(
                    "stream ended early; read so far: {}",
                    String::from_utf8_lossy(text)
                ),
                Err(_) => return None,
            }
        }
    }

    /// Reads until `done` says the text so far is enough, or panics after `within`.
    pub async fn read_until(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut text = Vec::new();
        while !done(&String::from_utf8_lossy(&text)) {
            let Some(data) = self.next_data(deadline, &text).await else {
                panic!(
                    "timed out after {within:?}; read so far ({} bytes): {}",
                    text.len(),
                    String::from_utf8_lossy(&text[..text.len().min(2000)])
                );
            };
            text.extend_from_slice(&data);
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Reads whatever arrives for `within` (the stream staying open), and returns it.
    pub async fn read_for(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut text = Vec::new();
        while let Some(data) = self.next_data(deadline, &text).await {
            text.extend_from_slice(&data);
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Reads until `needle` has been seen `n` times (counted as bytes arrive, so cheap on big
    /// streams); returns the bytes read.
    pub async fn read_count(&mut self, within: Duration, needle: &str, n: usize) -> usize {
        let deadline = Instant::now() + within;
        let needle = needle.as_bytes();
        let (mut seen, mut total) = (0, 0);
        let mut tail: Vec<u8> = Vec::new();
        while seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(left, self.body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => panic!("stream failed after {total} bytes: {e}"),
                Ok(None) => panic!("stream ended after {total} bytes"),
                Err(_) => panic!("saw {seen} of {n} within {within:?}"),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len();
            tail.extend_from_slice(&data);
            seen += tail.windows(needle.len()).filter(|w| *w == needle).count();
            // Keep the last bytes in case a needle straddles two chunks.
            let keep = tail.len().min(needle.len() - 1);
            tail.drain(..tail.len() - keep);
        }
        total
    }

    pub async fn text(self) -> String {
        let bytes = self.body.collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The JSON objects of the complete `data:` events in `text`.
pub fn events(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut parser = breakwater_stream_dashboard::sse::SseParser::new();
    parser
        .feed(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| match serde_json::from_str(&e.data).unwrap() {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

pub fn count_events(text: &str, name: &str) -> usize {
    events(text)
        .iter()
        .filter(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
        .count()
}

#[cfg(feature = "balance")]
pub mod fleet;
