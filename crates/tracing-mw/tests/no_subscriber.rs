//! Without any `tracing` subscriber, calls made while serving still carry the served
//! request's context (the layers do not depend on OpenTelemetry being installed).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use breakwater_tracing_mw::{ClientLayer, Formats, RequestContext, ServerLayer, TraceParent};
use http::{HeaderMap, Request, Response};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn calls_carry_the_served_context_without_a_subscriber() {
    let sent = Arc::new(Mutex::new(HeaderMap::new()));
    let downstream = {
        let sent = sent.clone();
        ClientLayer::new(Formats::default()).layer(service_fn(move |req: Request<()>| {
            *sent.lock().unwrap() = req.headers().clone();
            async { Ok::<_, Infallible>(Response::new(())) }
        }))
    };
    let service = ServerLayer::new(Formats::default()).layer(service_fn(move |req: Request<()>| {
        let downstream = downstream.clone();
        async move {
            tokio::task::yield_now().await; // across a suspension point too
            downstream.oneshot(Request::new(())).await?;
            Ok::<_, Infallible>(Response::new(
                req.extensions().get::<RequestContext>().cloned().unwrap(),
            ))
        }
    }));
    let request = Request::get("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("tracestate", "rojo=1, congo=2")
        .header("x-request-id", "abc-1")
        .body(())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let context = response.body();
    let sent = sent.lock().unwrap().clone();
    let out = TraceParent::parse(sent["traceparent"].to_str().unwrap()).unwrap();
    assert_eq!(out.trace_id, context.trace_id);
    assert_eq!(
        out.parent_id, context.span_id,
        "no client span without a subscriber"
    );
    assert_ne!(context.span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(sent["tracestate"], "rojo=1,congo=2");
    assert_eq!(sent["x-request-id"], "abc-1");
    assert!(
        RequestContext::current().is_none(),
        "nothing is left behind once the request is served"
    );
}
