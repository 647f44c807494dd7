//! Interop with real peers over loopback:
//!
//! a Python service using the OpenTelemetry Python SDK calls our Rust service (ServerLayer),
//! which calls a second Python service (ClientLayer); our spans go through the one-call set-up
//! ([`Telemetry`]) and `opentelemetry-otlp` to a real OTLP receiver (`@elastic/mockotlpserver`),
//! once over gRPC and once over HTTP. One trace id end to end, each parent right, and our log
//! lines carry the ids.
//!
//! Peers come from `tests/peers` (`npm ci` there, and `pip install opentelemetry-sdk`; the
//! README's test command does both). A peer that cannot start fails the test.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater_tracing_mw::init::{Export, Protocol, Telemetry};
use breakwater_tracing_mw::{ClientLayer, Formats, RequestContext, ServerLayer};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tower::{Layer, ServiceExt, service_fn};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");

/// A child process killed when the test ends, whatever the outcome.
struct Peer {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    async fn start(what: &str, program: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(PEERS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({program} {args:?}): {e}"));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer {
            _child: child,
            lines,
        }
    }

    /// The next JSON line the peer prints, within `limit`.
    async fn next(&mut self, what: &str, limit: Duration) -> Value {
        let line = tokio::time::timeout(limit, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} printed nothing within {limit:?}"))
            .unwrap_or_else(|e| panic!("reading {what}: {e}"))
            .unwrap_or_else(|| panic!("{what} exited early (see its stderr above)"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what} printed {line:?}: {e}"))
    }
}

async fn otlp_receiver() -> (Peer, String, String) {
    assert!(
        std::path::Path::new(PEERS)
            .join("node_modules/@elastic/mockotlpserver")
            .is_dir(),
        "the OTLP receiver is not installed: run `npm ci` in {PEERS} (the README's test command does)"
    );
    let mut peer = Peer::start("the OTLP receiver", "node", &["otlp-receiver.js"]).await;
    let ready = peer
        .next("the OTLP receiver", Duration::from_secs(20))
        .await;
    let url = |k: &str| {
        ready["ready"][k]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    };
    (peer, url("http"), url("grpc"))
}

async fn python_downstream() -> (Peer, u16) {
    let mut peer = Peer::start(
        "the Python downstream service",
        "python3",
        &["otel_peer.py", "server"],
    )
    .await;
    let ready = peer
        .next("the Python downstream service", Duration::from_secs(20))
        .await;
    let port = ready["ready"].as_u64().expect("a port") as u16;
    (peer, port)
}

/// Log lines written by the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Our service: serves `/checkout` under the ServerLayer and calls the downstream service
/// through the ClientLayer; answers with its RequestContext and what downstream answered.
async fn start_rust_service(downstream_port: u16) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let downstream = ClientLayer::new(Formats::default()).layer(client);
    let handler = service_fn(move |req: Request<hyper::body::Incoming>| {
        let downstream = downstream.clone();
        async move {
            let context = req.extensions().get::<RequestContext>().cloned().unwrap();
            tracing::info!(path = req.uri().path(), "handling checkout");
            let call = Request::get(format!("http://127.0.0.1:{downstream_port}/inventory"))
                .body(Empty::new())
                .unwrap();
            let answer = downstream.oneshot(call).await.expect("downstream answers");
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            let downstream: Value = serde_json::from_slice(&body).unwrap();
            let body = json!({
                "server": {
                    "trace_id": context.trace_id.to_string(),
                    "span_id": context.span_id.to_string(),
                    "parent_span_id": context.parent_span_id.map(|s| s.to_string()),
                    "request_id": context.request_id.as_str(),
                },
                "downstream": downstream,
            });
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                body.to_string(),
            ))))
        }
    });
    let service = ServerLayer::new(Formats::default()).layer(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn hex_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn one_trace_end_to_end(protocol: Protocol) {
    let (mut receiver, http_url, grpc_url) = otlp_receiver().await;
    let (_downstream, downstream_port) = python_downstream().await;

    let logs = Captured::default();
    let endpoint = match protocol {
        Protocol::Grpc => grpc_url,
        Protocol::HttpProtobuf => http_url,
    };
    let (subscriber, telemetry) = Telemetry::new()
        .service_name("rust-middle")
        .export(Export::Otlp {
            protocol,
            endpoint: Some(endpoint),
        })
        .filter("info")
        .log_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .build()
        .expect("telemetry builds");
    let _default = tracing::subscriber::set_default(subscriber);

    let port = start_rust_service(downstream_port).await;
    let caller = Command::new("python3")
        .args([
            "otel_peer.py",
            "client",
            &format!("http://127.0.0.1:{port}/checkout?card=4111"),
        ])
        .current_dir(PEERS)
        .stderr(Stdio::inherit())
        .output();
    let caller = tokio::time::timeout(Duration::from_secs(30), caller)
        .await
        .expect("the Python caller finishes within 30 s")
        .expect("the Python caller starts (is opentelemetry-sdk installed?)");
    assert!(caller.status.success(), "the Python caller failed");
    let caller: Value = serde_json::from_slice(&caller.stdout).expect("the caller prints JSON");

    // Send our spans now, then read them back from the receiver.
    telemetry.shutdown().await.expect("spans flushed");
    let mut ours = Vec::new();
    while ours.len() < 2 {
        let line = receiver
            .next("the OTLP receiver", Duration::from_secs(20))
            .await;
        let span = line["span"].clone();
        if span["service"] == "rust-middle" {
            ours.push(span);
        }
    }

    let a = &caller["span"]; // Python caller's client span
    let b = &caller["answer"]["downstream"]["span"]; // Python downstream's server span
    let answered = &caller["answer"]["server"];
    let server = ours
        .iter()
        .find(|s| s["spanId"] == answered["span_id"])
        .unwrap_or_else(|| panic!("our server span reached the receiver: {ours:#?}"));
    let client = ours
        .iter()
        .find(|s| s["spanId"] != answered["span_id"])
        .unwrap();

    let trace_id = hex_of(&a["trace_id"]);
    assert_eq!(trace_id.len(), 32);
    for (who, id) in [
        ("our server span", hex_of(&server["traceId"])),
        ("our client span", hex_of(&client["traceId"])),
        ("the downstream span", hex_of(&b["trace_id"])),
        ("our RequestContext", hex_of(&answered["trace_id"])),
    ] {
        assert_eq!(id, trace_id, "{who} is in the caller's trace");
    }
    assert_eq!(
        server["parentSpanId"], a["span_id"],
        "caller -> our server span"
    );
    assert_eq!(
        client["parentSpanId"], server["spanId"],
        "our server span -> our client span"
    );
    assert_eq!(
        b["parent_span_id"], client["spanId"],
        "our client span -> downstream"
    );
    assert_eq!(b["parent_is_remote"], true);
    assert_eq!(answered["parent_span_id"], a["span_id"]);
    let kind = |s: &Value| s["kind"].to_string();
    assert!(
        kind(server).contains("SERVER") || kind(server) == "2",
        "{server}"
    );
    assert!(
        kind(client).contains("CLIENT") || kind(client) == "3",
        "{client}"
    );
    assert_eq!(server["attributes"]["http.request.method"], "GET");
    assert_eq!(server["attributes"]["url.path"], "/checkout");
    assert_eq!(server["attributes"]["network.protocol.version"], "1.1");
    assert_eq!(
        client["attributes"]["url.full"],
        format!("http://127.0.0.1:{downstream_port}/inventory")
    );
    // OTLP's JSON mapping writes 64-bit integers as strings.
    assert_eq!(server["attributes"]["http.response.status_code"], "200");
    assert_eq!(client["attributes"]["http.response.status_code"], "200");

    // Request id and baggage went through; the request id came back to the caller.
    let received = &caller["answer"]["downstream"]["received"];
    assert_eq!(received["x-request-id"], "py-req-1");
    assert_eq!(received["baggage"], "tenant=acme");
    assert_eq!(caller["echoed_request_id"], "py-req-1");

    // Our log line names the trace and our server span; the query (card number) is nowhere.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line: Value = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every log line is JSON"))
        .find(|l| l["message"] == "handling checkout")
        .unwrap_or_else(|| panic!("no log line from the handler in {logs}"));
    assert_eq!(hex_of(&line["trace_id"]), trace_id, "{line}");
    assert_eq!(line["span_id"], server["spanId"], "{line}");
    assert!(
        !logs.contains("4111"),
        "the query string was logged: {logs}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn python_to_rust_to_python_over_otlp_grpc() {
    one_trace_end_to_end(Protocol::Grpc).await;
}

#[tokio::test(flavor = "current_thread")]
async fn python_to_rust_to_python_over_otlp_http() {
    one_trace_end_to_end(Protocol::HttpProtobuf).await;
}
