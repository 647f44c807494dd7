//! One client span per attempt, under the caller's span, with the OpenTelemetry subscriber
//! installed as a user has it: a retried call has two attempt spans, both children of the
//! caller, each the parent named in the `traceparent` its attempt carried; a hedged call's
//! two attempts likewise; and a call sent through a `tower::Buffer` keeps the caller's trace.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_client::{CallConfig, Client};
use common::{Behaviour, Server};
use opentelemetry::trace::{SpanKind, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::ServiceExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
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
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(captured.clone())
            .build();
        let tracer = provider.tracer("breakwater-client-tests");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber)
            .expect("one subscriber per test binary");
        captured
    })
}

/// The (trace id, parent span id) of each `traceparent` `server` saw.
fn parents(server: &Server) -> Vec<(String, String)> {
    server
        .seen()
        .iter()
        .map(|s| {
            let header = s.headers["traceparent"].to_str().unwrap().to_owned();
            let parts: Vec<&str> = header.split('-').collect();
            (parts[1].to_owned(), parts[2].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_has_its_own_client_span_under_the_callers() {
    let captured = install_otel();
    let flaky = Server::start(Behaviour::FailFirst).await;
    let slow = Server::start(Behaviour::Slow(Duration::from_millis(300))).await;
    let fast = Server::start(Behaviour::Echo).await;
    let client = Client::builder()
        .read_env(false)
        .breaker_registry(CircuitBreakerRegistry::new())
        .instances("flaky", [flaky.authority()])
        .unwrap()
        .instances("hedged", [slow.authority()])
        .unwrap()
        .service_config(
            "hedged",
            CallConfig {
                hedge_delay: Some(Duration::from_millis(20)),
                ..CallConfig::default()
            },
        )
        .unwrap()
        .build()
        .unwrap();

    let caller = tracing::info_span!("checkout");
    let (trace_id, caller_id) = {
        let context = caller.context();
        let span = context.span();
        let ids = span.span_context();
        (ids.trace_id().to_string(), ids.span_id().to_string())
    };
    let work = {
        let (client, slow, fast) = (client.clone(), slow.clone(), fast.clone());
        async move {
            // A retried call: 503, then 200 from the one instance.
            let response = client.get("service://flaky/retried").send().await.unwrap();
            assert_eq!(response.status(), 200);
            // A hedged call: the first attempt goes to the slow instance, the only one; the
            // hedge, 20 ms later, to the instance added meanwhile.
            let call = client.get("service://hedged/h").send();
            let add = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                client
                    .set_instances("hedged", [slow.authority(), fast.authority()])
                    .unwrap();
            };
            let (response, ()) = tokio::join!(call, add);
            assert_eq!(response.unwrap().status(), 200);
            assert_eq!(client.stats(Some("hedged")).unwrap().hedges, 1);
            // Through a Buffer: the attempt runs on the Buffer's worker task.
            let buffered = tower::buffer::Buffer::new(client.clone(), 4);
            let request = client.get(fast.url("/buffered")).build().unwrap();
            let response = buffered.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    work.instrument(caller).await;

    // The retried call: two attempts, two client spans, both children of the caller, each
    // the parent its attempt's traceparent names.
    let sent = parents(&flaky);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(trace, _)| *trace == trace_id), "{sent:?}");
    assert_ne!(sent[0].1, sent[1].1, "each attempt its own span");
    let spans = captured.0.lock().unwrap().clone();
    let client_span = |id: &str| {
        spans
            .iter()
            .find(|s| s.span_context.span_id().to_string() == id)
            .unwrap_or_else(|| panic!("no span {id} among {} spans", spans.len()))
    };
    for (_, parent) in &sent {
        let span = client_span(parent);
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.parent_span_id.to_string(), caller_id);
        assert_eq!(span.span_context.trace_id().to_string(), trace_id);
    }
    let statuses: Vec<String> = sent
        .iter()
        .map(|(_, id)| {
            client_span(id)
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "http.response.status_code")
                .map(|kv| kv.value.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(statuses, ["503", "200"]);

    // The hedged call: an attempt on each instance, each with its own span under the caller.
    let hedged: Vec<(String, String)> = parents(&slow)
        .into_iter()
        .chain(parents(&fast).into_iter().take(1))
        .collect();
    let hedge_attempts: Vec<&(String, String)> = hedged
        .iter()
        .filter(|(_, id)| {
            spans
                .iter()
                .any(|s| s.span_context.span_id().to_string() == *id)
        })
        .collect();
    assert_eq!(hedge_attempts.len(), 2, "{hedged:?}");
    for (trace, id) in &hedge_attempts {
        assert_eq!(*trace, trace_id);
        assert_eq!(client_span(id).parent_span_id.to_string(), caller_id);
    }

    // Through the Buffer: the caller's trace, and a client span under the caller.
    let buffered = fast
        .seen()
        .into_iter()
        .find(|s| s.path_and_query == "/buffered")
        .unwrap();
    let header = buffered.headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts[1], trace_id);
    assert_eq!(client_span(parts[2]).parent_span_id.to_string(), caller_id);
}
