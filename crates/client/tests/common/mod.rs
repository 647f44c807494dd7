//! Real HTTP servers on loopback for the client to call, each recording what it was sent.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// What a server does with each request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    /// 200 with a JSON echo of the request.
    Echo,
    /// Answers this status.
    Status(u16),
    /// Waits, then echoes.
    Slow(Duration),
    /// 429 with `Retry-After: 1` to the first request, then echoes.
    RetryAfterOnce,
    /// 503 to the first request, then echoes.
    FailFirst,
    /// Echoes, after 600 ms when the request's `x-slow-on` header names this server's port.
    SlowWhenNamed,
}

/// One request as a server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(behaviour: Behaviour) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::serve(listener, behaviour)
    }

    /// A server on `addr` (`None` if it is taken).
    #[allow(dead_code)]
    pub async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Option<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
        Some(Server::serve(listener, behaviour))
    }

    fn serve(listener: tokio::net::TcpListener, behaviour: Behaviour) -> Server {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let addr = listener.local_addr().unwrap();
        let state = (seen.clone(), behaviour.clone(), addr.port());
        let app = Router::new().fallback(any(handle)).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            addr,
            seen,
            behaviour,
            task: Arc::new(task),
        }
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Stops accepting: later connections are refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

type AppState = (Arc<Mutex<Vec<Seen>>>, Arc<Mutex<Behaviour>>, u16);

async fn handle(State((seen, behaviour, port)): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let first = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        seen.len() == 1
    };
    let behaviour = *behaviour.lock().unwrap();
    let echo = || {
        let json = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
            "body": String::from_utf8_lossy(&body),
            "traceparent": parts.headers.get("traceparent").and_then(|v| v.to_str().ok()),
        });
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            json.to_string(),
        )
            .into_response()
    };
    match behaviour {
        Behaviour::Echo => echo(),
        Behaviour::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Behaviour::Slow(wait) => {
            tokio::time::sleep(wait).await;
            echo()
        }
        Behaviour::RetryAfterOnce if first => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
        }
        Behaviour::RetryAfterOnce => echo(),
        Behaviour::FailFirst if first => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Behaviour::FailFirst => echo(),
        Behaviour::SlowWhenNamed => {
            let named = parts.headers.get("x-slow-on").and_then(|v| v.to_str().ok());
            if named == Some(port.to_string().as_str()) {
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            echo()
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}
