//! The server and client layers together, with the OpenTelemetry layer installed as a user
//! would have it: ids come from OpenTelemetry, the caller's context is the parent, and the
//! context follows work into spawned tasks that are instrumented with the span.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use breakwater_tracing_mw::{ClientLayer, Formats, RequestContext, ServerLayer, TraceParent};
use http::{HeaderMap, Request, Response};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tower::{Layer, ServiceExt, service_fn};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// Finished spans, as the SDK hands them to an exporter.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Captured {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn install_otel() -> &'static Captured {
    static ONCE: OnceLock<Captured> = OnceLock::new();
    ONCE.get_or_init(|| {
        let captured = Captured::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(captured.clone())
            .build();
        let tracer = provider.tracer("breakwater-tracing-mw-tests");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber)
            .expect("one subscriber per test binary");
        captured
    })
}

/// A service that, while serving, calls a downstream service from a spawned task and answers
/// with the headers that downstream call carried, plus its own RequestContext.
async fn serve(headers: &[(&str, &str)]) -> (Response<(HeaderMap, RequestContext)>, HeaderMap) {
    let sent = Arc::new(Mutex::new(HeaderMap::new()));
    let downstream = {
        let sent = sent.clone();
        ClientLayer::new(Formats::default()).layer(service_fn(move |req: Request<()>| {
            *sent.lock().unwrap() = req.headers().clone();
            async { Ok::<_, Infallible>(Response::new(())) }
        }))
    };
    let handler = service_fn(move |req: Request<()>| {
        let downstream = downstream.clone();
        async move {
            let context = req.extensions().get::<RequestContext>().cloned().unwrap();
            let task = tokio::spawn(
                async move {
                    assert_eq!(
                        RequestContext::current().as_ref(),
                        Some(&context),
                        "context follows the task"
                    );
                    downstream.oneshot(Request::new(())).await.unwrap();
                    context
                }
                .instrument(tracing::Span::current()),
            );
            let context = task.await.unwrap();
            Ok::<_, Infallible>(Response::new((HeaderMap::new(), context)))
        }
    });
    let service = ServerLayer::new(Formats::default()).layer(handler);
    let mut request = Request::new(());
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    let response = service.oneshot(request).await.unwrap();
    let sent = sent.lock().unwrap().clone();
    (response, sent)
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_continues_into_spawned_calls() {
    let captured = install_otel();
    let (response, sent) = serve(&[
        ("traceparent", TP),
        ("tracestate", "rojo=00f067aa0ba902b7"),
        ("baggage", "tenant=acme,user=alice%20b"),
        ("x-request-id", "req-42"),
    ])
    .await;
    let context = &response.body().1;
    assert_eq!(
        context.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        context.parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert_ne!(
        context.span_id.to_string(),
        "00f067aa0ba902b7",
        "a span of our own"
    );
    assert_eq!(
        response.headers()["x-request-id"],
        "req-42",
        "a valid request id is kept"
    );

    let out = TraceParent::parse(sent["traceparent"].to_str().unwrap()).unwrap();
    assert_eq!(out.trace_id, context.trace_id, "one trace id end to end");
    let spans = captured.0.lock().unwrap().clone();
    let client = spans
        .iter()
        .find(|s| s.span_context.span_id().to_bytes() == out.parent_id.to_bytes())
        .expect("the callee's parent is a span we exported");
    assert_eq!(client.span_kind, opentelemetry::trace::SpanKind::Client);
    assert_eq!(
        client.parent_span_id.to_bytes(),
        context.span_id.to_bytes(),
        "the call's span is a child of the served request's span"
    );
    let server = spans
        .iter()
        .find(|s| s.span_context.span_id().to_bytes() == context.span_id.to_bytes())
        .expect("the server span was exported");
    assert_eq!(server.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(server.parent_span_is_remote);
    assert!(out.flags.is_sampled());
    assert_eq!(sent["tracestate"], "rojo=00f067aa0ba902b7");
    assert_eq!(sent["baggage"], "tenant=acme,user=alice%20b");
    assert_eq!(sent["x-request-id"], "req-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate() {
    install_otel();
    let short = "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01";
    let (response, sent) = serve(&[
        ("traceparent", short),
        ("tracestate", "rojo=00f067aa0ba902b7"),
        ("x-request-id", "bad id with spaces"),
    ])
    .await;
    let context = &response.body().1;
    assert_ne!(
        context.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(context.parent_span_id.is_none());
    assert!(
        sent.get("tracestate").is_none(),
        "tracestate is dropped with its traceparent"
    );
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(generated.len(), 32, "a new request id");
    let out = TraceParent::parse(sent["traceparent"].to_str().unwrap()).unwrap();
    assert_eq!(out.trace_id, context.trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_callers_are_understood() {
    install_otel();
    let (response, sent) =
        serve(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]).await;
    let context = &response.body().1;
    assert_eq!(
        context.trace_id.to_string(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    assert_eq!(
        context.parent_span_id.unwrap().to_string(),
        "e457b5a2e4d86bd1"
    );
    let out = TraceParent::parse(sent["traceparent"].to_str().unwrap()).unwrap();
    assert_eq!(out.trace_id, context.trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_deny_without_ids_starts_an_unsampled_trace() {
    install_otel();
    for headers in [&[("b3", "0")][..], &[("x-b3-sampled", "0")][..]] {
        let (response, sent) = serve(headers).await;
        let context = &response.body().1;
        assert!(context.parent_span_id.is_none(), "{headers:?}");
        assert!(!context.flags.is_sampled(), "{headers:?}");
        let out = TraceParent::parse(sent["traceparent"].to_str().unwrap()).unwrap();
        assert!(
            !out.flags.is_sampled(),
            "the callee is told not to sample: {headers:?}"
        );
    }
}
