//! Fallbacks over real sockets: a call that gets no answer (connections refused, the breaker
//! forced open) is answered by the service's fallback, marked so and counted in its breaker;
//! an answer the service gave is returned as it is; a fallback that declines hands back the
//! original failure; services without one are untouched.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use breakwater_circuit_breaker::{CircuitBreakerRegistry, Mode};
use breakwater_client::{Client, ErrorKind};
use common::{Behaviour, Server, closed_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_get_the_fallbacks_answer_and_answers_stay_answers() {
    let down = closed_port().await;
    let failing = Server::start(Behaviour::Status(503)).await;
    let seen_kinds = Arc::new(std::sync::Mutex::new(Vec::new()));
    let declined = Arc::new(AtomicU32::new(0));
    let registry = CircuitBreakerRegistry::new();
    let client = Client::builder()
        .read_env(false)
        .breaker_registry(registry.clone())
        .instances("recommendations", [down.clone()])
        .unwrap()
        .instances("answers", [failing.authority()])
        .unwrap()
        .instances("declines", [down.clone()])
        .unwrap()
        .instances("plain", [down.clone()])
        .unwrap()
        .fallback("recommendations", {
            let seen_kinds = seen_kinds.clone();
            move |failure| {
                seen_kinds.lock().unwrap().push(failure.kind());
                let mut answer = http::Response::new(r#"["bestsellers"]"#.into());
                answer
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                Some(answer)
            }
        })
        .fallback("answers", |_| Some(http::Response::new("fallback".into())))
        .fallback("declines", {
            let declined = declined.clone();
            move |_| {
                declined.fetch_add(1, Ordering::SeqCst);
                None
            }
        })
        .build()
        .unwrap();

    // Connections refused on every attempt: the fallback answers.
    let response = client
        .get("service://recommendations/top")
        .send()
        .await
        .unwrap();
    assert!(response.is_fallback());
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let top: Vec<String> = response.json().await.unwrap();
    assert_eq!(top, ["bestsellers"]);
    assert_eq!(*seen_kinds.lock().unwrap(), [ErrorKind::Connect]);

    // The breaker forced open: the call is not made, the fallback answers.
    let breaker = client.breaker("recommendations").unwrap();
    breaker.update(|c| c.mode = Mode::ForcedOpen).unwrap();
    let response = client
        .get("service://recommendations/top")
        .send()
        .await
        .unwrap();
    assert!(response.is_fallback());
    assert_eq!(
        seen_kinds.lock().unwrap().last(),
        Some(&ErrorKind::CircuitOpen)
    );
    let counts = breaker.snapshot().cumulative;
    assert_eq!(counts.fallback_success, 2, "{counts:?}");

    // A 503 is an answer: returned as it is, after the retries.
    let response = client.get("service://answers/x").send().await.unwrap();
    assert!(!response.is_fallback());
    assert_eq!(response.status(), 503);

    // A fallback that declines: the original failure, with its attempts, and counted.
    let error = client.get("service://declines/x").send().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.attempts(), 3, "{error}");
    assert!(error.to_string().contains("service://declines"), "{error}");
    assert_eq!(declined.load(Ordering::SeqCst), 1);
    let counts = client.breaker("declines").unwrap().snapshot().cumulative;
    assert_eq!(counts.fallback_failure, 1, "{counts:?}");

    // No fallback: the failure, and no fallback counted.
    let error = client.get("service://plain/x").send().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    let counts = client.breaker("plain").unwrap().snapshot().cumulative;
    assert_eq!(counts.fallback_success + counts.fallback_failure, 0);
}
