//! Per-request cost of trace propagation: a request that arrives with `traceparent`,
//! `tracestate`, `baggage` and `x-request-id` is served by a handler that makes one outgoing
//! call. Side by side in one run:
//!
//! - `bare`: the same handler and call without any layer (request building included, so the
//!   differences below are the layers' cost). As in real services, the call carries an
//!   `accept` header and the answer a `content-type`, so header maps exist with or without
//!   the layers;
//! - `otel-propagators`: the peer a user would otherwise write by hand: the OpenTelemetry SDK's
//!   W3C trace-context + baggage propagators extracting on the way in and injecting on the way
//!   out (no spans, no request id);
//! - `layers, no subscriber`: `ServerLayer` + `ClientLayer` (strict parsing, request id, inject),
//!   with no `tracing` subscriber installed: extract + inject alone, which the <= 1 µs
//!   propagation target is about;
//! - `layers + telemetry, export off`: what [`init`] gives with `OTEL_TRACES_EXPORTER=none`:
//!   tracing-opentelemetry spans with real ids (server and client span), JSON logs (no line is
//!   written on this path), nothing exported: extract + inject plus building two spans;
//! - `layers + telemetry, OTLP/HTTP export`: the same with every span batched and sent to an
//!   OTLP/HTTP receiver on loopback.
//!
//! Run: `cargo bench --bench propagation`. Figures: benches/README.md.
//!
//! [`init`]: breakwater_tracing_mw::init

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use breakwater_tracing_mw::init::{Export, Protocol, Telemetry};
use breakwater_tracing_mw::{ClientLayer, Formats, ServerLayer};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Request, Response};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use tower::{Layer, Service};

const HEADERS: &[(&str, &str)] = &[
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ("baggage", "tenant=acme,region=eu-west-1"),
    ("x-request-id", "3f7e2a9c-1b4d-4c8e-9a61-5d2f0e7b8c14"),
    ("host", "checkout.internal"),
    ("user-agent", "bench/1.0"),
];

fn incoming() -> Request<()> {
    let mut request = Request::get("http://checkout.internal/cart");
    for (name, value) in HEADERS {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

fn outgoing() -> Request<()> {
    Request::get("http://inventory.internal/items/42")
        .header(http::header::ACCEPT, "application/json")
        .body(())
        .unwrap()
}

/// The dependency: answers at once.
#[derive(Clone, Copy)]
struct Downstream;

impl Service<Request<()>> for Downstream {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        black_box(&request);
        let response = Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(())
            .unwrap();
        ready(Ok(response))
    }
}

/// The handler: makes one call through `D` and answers.
#[derive(Clone)]
struct Handler<D> {
    downstream: D,
}

impl<D> Service<Request<()>> for Handler<D>
where
    D: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone + Send + 'static,
    D::Future: Send,
{
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response<()>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        black_box(&request);
        let call = self.downstream.call(outgoing());
        Box::pin(call)
    }
}

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("every service here answers at once"),
    }
}

fn serve<S>(service: &mut S) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    poll_once(service.call(incoming())).unwrap()
}

/// The OpenTelemetry SDK's propagators around the same handler, by hand.
fn with_otel_propagators(propagator: &TextMapCompositePropagator) -> Response<()> {
    let request = incoming();
    let extractor: HashMap<String, String> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let cx = propagator.extract(&extractor);
    black_box(&request);
    let mut call = outgoing();
    let mut injected = HashMap::new();
    propagator.inject_context(&cx, &mut injected);
    let headers: &mut HeaderMap = call.headers_mut();
    for (k, v) in injected {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            headers.insert(k, v);
        }
    }
    poll_once(Downstream.call(call)).unwrap()
}

/// An OTLP/HTTP receiver on loopback that accepts every export (an empty protobuf body is an
/// empty ExportTraceServiceResponse).
async fn otlp_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn bench(c: &mut Criterion) {
    // The exporter runs on this runtime's worker while the bench thread serves requests.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let formats = Formats::default();
    let layered = || {
        let client = ClientLayer::new(formats.clone()).layer(Downstream);
        ServerLayer::new(formats.clone()).layer(Handler { downstream: client })
    };
    let mut group = c.benchmark_group("propagation");

    let mut bare = Handler {
        downstream: Downstream,
    };
    group.bench_function("bare", |b| b.iter(|| serve(&mut bare)));

    let propagator = TextMapCompositePropagator::new(vec![
        Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
        Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
    ]);
    group.bench_function("otel-propagators", |b| {
        b.iter(|| with_otel_propagators(&propagator))
    });

    let mut service = layered();
    group.bench_function("layers, no subscriber", |b| b.iter(|| serve(&mut service)));

    let telemetry = |export: Export| {
        let _enter = runtime.enter();
        Telemetry::new()
            .service_name("bench")
            .export(export)
            .filter("info")
            .log_writer(std::io::sink)
            .build()
            .unwrap()
    };

    let (subscriber, guard) = telemetry(Export::Off);
    tracing::subscriber::with_default(subscriber, || {
        let mut service = layered();
        group.bench_function("layers + telemetry, export off", |b| {
            b.iter(|| serve(&mut service))
        });
    });
    runtime.block_on(guard.shutdown()).unwrap();

    let endpoint = runtime.block_on(otlp_receiver());
    let (subscriber, guard) = telemetry(Export::Otlp {
        protocol: Protocol::HttpProtobuf,
        endpoint: Some(endpoint),
    });
    tracing::subscriber::with_default(subscriber, || {
        let mut service = layered();
        group.bench_function("layers + telemetry, OTLP/HTTP export", |b| {
            b.iter(|| serve(&mut service))
        });
    });
    runtime.block_on(guard.shutdown()).unwrap();
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
