//! One trace whatever the path: the trace id of the request being served reaches the callee on
//! every attempt (retries, hedges, fan-out, a `tower::Buffer`, a request sent from a spawned
//! task), without any tracing subscriber installed.

mod common;

use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_client::{Body, CallConfig, Client};
use breakwater_tracing_mw::{Formats, ServerLayer};
use common::{Behaviour, Server};
use tower::{Layer, ServiceExt, service_fn};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn trace_ids(server: &Server) -> Vec<String> {
    server
        .seen()
        .iter()
        .map(|s| {
            let header = s
                .headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned());
            let header =
                header.unwrap_or_else(|| panic!("{} came without traceparent", s.path_and_query));
            header.split('-').nth(1).unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_reaches_every_attempt() {
    let failing = Server::start(Behaviour::Status(503)).await;
    let healthy = Server::start(Behaviour::Echo).await;
    let flaky = Server::start(Behaviour::FailFirst).await;
    let client = Client::builder()
        .read_env(false)
        .breaker_registry(CircuitBreakerRegistry::new())
        .service_config(
            "hedged",
            CallConfig {
                hedge_delay: Some(Duration::from_millis(5)),
                ..CallConfig::default()
            },
        )
        .unwrap()
        .instances("orders", [failing.authority(), healthy.authority()])
        .unwrap()
        .instances("hedged", [failing.authority(), healthy.authority()])
        .unwrap()
        .instances("flaky", [flaky.authority()])
        .unwrap()
        .build()
        .unwrap();

    let handler = {
        let client = client.clone();
        service_fn(move |_request: http::Request<()>| {
            let client = client.clone();
            async move {
                // Plain calls, retried off the failing instance.
                for i in 0..10 {
                    let response = client
                        .get(format!("service://orders/plain/{i}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                }
                // A retry: the first attempt is answered 503.
                let response = client.get("service://flaky/retried").send().await.unwrap();
                assert_eq!(response.status(), 200);
                // Fan-out.
                let calls = (0..6).map(|i| client.get(format!("service://orders/fan/{i}")));
                for result in client.fan_out(calls, 3, Duration::from_secs(5)).await {
                    assert_eq!(result.unwrap().status(), 200);
                }
                // Through a Buffer: the attempts run on its worker task.
                let buffered = tower::buffer::Buffer::new(client.clone(), 8);
                for i in 0..4 {
                    let request = client
                        .get(format!("service://orders/buffer/{i}"))
                        .build()
                        .unwrap();
                    let response = buffered.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                }
                // Built here, sent from a spawned task (not under the served request's poll).
                let request = client.get("service://orders/spawned/1").build().unwrap();
                let spawned = tokio::spawn(client.clone().oneshot(request));
                assert_eq!(spawned.await.unwrap().unwrap().status(), 200);
                let send = client.get("service://orders/spawned/2").send();
                assert_eq!(tokio::spawn(send).await.unwrap().unwrap().status(), 200);
                // Hedged calls.
                for i in 0..4 {
                    client
                        .get(format!("service://hedged/hedge/{i}"))
                        .send()
                        .await
                        .unwrap();
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }
        })
    };
    let server = ServerLayer::new(Formats::default()).layer(handler);
    let request = http::Request::get("/checkout")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .body(())
        .unwrap();
    server.oneshot(request).await.unwrap();

    let ids: Vec<String> = [&failing, &healthy, &flaky]
        .into_iter()
        .flat_map(trace_ids)
        .collect();
    assert!(ids.len() >= 26, "{} attempts seen", ids.len());
    assert!(ids.iter().all(|id| id == TRACE_ID), "{ids:?}");
    assert_eq!(flaky.hits(), 2, "the flaky call was retried");
    // Nothing was lost on the way to a Buffer's worker or a spawned task.
    assert!(
        healthy
            .seen()
            .iter()
            .any(|s| s.path_and_query.starts_with("/buffer/"))
    );
    assert!(
        healthy
            .seen()
            .iter()
            .any(|s| s.path_and_query.starts_with("/spawned/"))
    );
}
