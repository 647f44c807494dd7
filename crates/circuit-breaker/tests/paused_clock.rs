//! Windows, sleeps, timeouts and latency on tokio's paused clock: no real sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use breakwater_circuit_breaker::classify::HttpStatus;
use breakwater_circuit_breaker::error::{BoxError, CircuitOpen, Elapsed, FallbackRejected};
use breakwater_circuit_breaker::fallback::FallbackLayer;
use breakwater_circuit_breaker::timeout::TimeoutLayer;
use breakwater_circuit_breaker::{
    Backoff, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, Clock, EventKind, Growth,
    Mode, SlowCalls, State, Window,
};
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// What the fake dependency does with a request.
#[derive(Clone, Copy, Debug)]
enum Do {
    Ok,
    Fail,
    Sleep(u64),
}

fn breaker(config: CircuitBreakerConfig) -> CircuitBreaker {
    CircuitBreaker::builder("dep")
        .config(config)
        .clock(Clock::tokio())
        .build()
        .unwrap()
}

fn service(
    breaker: &CircuitBreaker,
) -> impl Service<Do, Response = &'static str, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    CircuitBreakerLayer::new(breaker).layer(service_fn(|d: Do| async move {
        match d {
            Do::Ok => Ok("ok"),
            Do::Fail => Err(std::io::Error::other("boom")),
            Do::Sleep(ms) => {
                sleep(Duration::from_millis(ms)).await;
                Ok("slept")
            }
        }
    }))
}

async fn call<S>(svc: &S, d: Do) -> Result<&'static str, BoxError>
where
    S: Service<Do, Response = &'static str, Error = BoxError> + Clone,
{
    svc.clone().oneshot(d).await
}

fn is_open(r: &Result<&'static str, BoxError>) -> bool {
    matches!(r, Err(e) if e.is::<CircuitOpen>())
}

#[tokio::test(start_paused = true)]
async fn trips_sleeps_probes_and_closes() {
    let b = breaker(CircuitBreakerConfig::default());
    let svc = service(&b);
    let mut events = b.subscribe();

    // 19 failures: under the request volume threshold, stays closed.
    for _ in 0..19 {
        assert!(call(&svc, Do::Fail).await.is_err());
    }
    assert_eq!(b.state(), State::Closed);
    // The 20th call fails: 20 requests, 100% errors: open.
    assert!(call(&svc, Do::Fail).await.is_err());
    assert_eq!(b.state(), State::Open);
    let r = call(&svc, Do::Ok).await;
    assert!(is_open(&r), "{r:?}");
    assert_eq!(b.snapshot().rolling.short_circuited, 1);

    // Still open just before the 5 s sleep window ends.
    advance(Duration::from_millis(4_999)).await;
    assert!(is_open(&call(&svc, Do::Ok).await));
    advance(Duration::from_millis(1)).await;
    // One trial passes and closes the breaker.
    assert_eq!(call(&svc, Do::Ok).await.unwrap(), "ok");
    assert_eq!(b.state(), State::Closed);
    // Closing reset the health window: one failure does not re-trip.
    assert!(call(&svc, Do::Fail).await.is_err());
    assert_eq!(b.state(), State::Closed);
    let snap = b.snapshot();
    assert_eq!(snap.health.failure, 1);
    // ...but the dashboard's rolling counts still show the last 10 s.
    assert_eq!(snap.rolling.failure, 21);

    let mut seen = vec![];
    while let Ok(e) = events.try_recv() {
        if let EventKind::StateTransition { from, to } = e.kind {
            seen.push((from, to));
        }
    }
    assert_eq!(
        seen,
        vec![
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_with_growing_backoff() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 2,
        backoff: Some(Backoff {
            growth: Growth::Exponential,
            multiplier: 2.0,
            max: Duration::from_secs(15),
            jitter: 0.0,
        }),
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    call(&svc, Do::Fail).await.unwrap_err();
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(5)));
    // Trip 2: 10 s; trip 3: 20 s capped at 15 s.
    for expected in [10, 15, 15] {
        advance(b.snapshot().open_for.unwrap()).await;
        call(&svc, Do::Fail).await.unwrap_err(); // the trial fails
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(expected)));
    }
    // A successful trial closes and forgets the trips.
    advance(Duration::from_secs(15)).await;
    call(&svc, Do::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    call(&svc, Do::Fail).await.unwrap_err();
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn old_failures_roll_out_of_the_window() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 10,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    for _ in 0..9 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    // 10 s later those nine failures are out of the 10 s window.
    advance(Duration::from_secs(10)).await;
    assert_eq!(b.snapshot().rolling.failure, 0);
    assert_eq!(b.snapshot().cumulative.failure, 9);
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
    // Within one window they add up.
    advance(Duration::from_millis(500)).await;
    for _ in 0..9 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn error_percentage_threshold_is_respected() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 10,
        error_threshold_percentage: 50,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    for _ in 0..6 {
        call(&svc, Do::Ok).await.unwrap();
    }
    for _ in 0..5 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    // 5 of 11 = 45%: closed.
    assert_eq!(b.state(), State::Closed);
    call(&svc, Do::Fail).await.unwrap_err();
    // 6 of 12 = 50%: open.
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().health.error_percentage(), 50);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_breaker() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 4,
        slow_calls: Some(SlowCalls {
            duration: Duration::from_millis(100),
            rate_threshold_percentage: 50,
        }),
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    call(&svc, Do::Ok).await.unwrap();
    call(&svc, Do::Ok).await.unwrap();
    call(&svc, Do::Sleep(150)).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    call(&svc, Do::Sleep(100)).await.unwrap(); // exactly the duration counts as slow
    assert_eq!(b.state(), State::Open);
    let snap = b.snapshot();
    assert_eq!(snap.rolling.slow, 2);
    assert_eq!(snap.rolling.success, 4);
    // Latency percentiles see the slow calls (6.25% buckets).
    let p100 = snap.latency_execute.at(100.0).unwrap();
    assert!(
        p100 >= Duration::from_millis(150) && p100 <= Duration::from_millis(160),
        "{p100:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn count_based_window_remembers_the_last_calls() {
    let b = breaker(CircuitBreakerConfig {
        window: Window::Count { calls: 10 },
        request_volume_threshold: 10,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    for _ in 0..4 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    // Time does not matter for a count window.
    advance(Duration::from_secs(3600)).await;
    for _ in 0..5 {
        call(&svc, Do::Ok).await.unwrap();
    }
    assert_eq!(b.state(), State::Closed);
    call(&svc, Do::Fail).await.unwrap_err(); // 5 failures in the last 10
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().health.requests(), 10);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_n_trials() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 1,
        half_open_trial_calls: 3,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    call(&svc, Do::Fail).await.unwrap_err();
    advance(Duration::from_secs(5)).await;
    // Five slow calls at once: three trials run, two are refused.
    let calls: Vec<_> = (0..5)
        .map(|_| tokio::spawn(svc.clone().oneshot(Do::Sleep(10))))
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.is::<CircuitOpen>() => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, refused), (3, 2));
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_trial_gives_its_place_back() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 1,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    call(&svc, Do::Fail).await.unwrap_err();
    advance(Duration::from_secs(5)).await;
    let trial = svc.clone().oneshot(Do::Sleep(1_000));
    let timed_out = tokio::time::timeout(Duration::from_millis(10), trial).await;
    assert!(timed_out.is_err());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().cumulative.cancelled, 1);
    // The dropped trial did not use the only permit up.
    call(&svc, Do::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_modes() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 1,
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);

    b.update(|c| c.mode = Mode::ForcedOpen).unwrap();
    assert!(is_open(&call(&svc, Do::Ok).await));
    assert_eq!(b.snapshot().cumulative.short_circuited, 1);

    // Forced closed: failures pass through, are recorded, and trip underneath.
    b.update(|c| c.mode = Mode::ForcedClosed).unwrap();
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(call(&svc, Do::Ok).await.unwrap(), "ok");
    assert_eq!(b.state(), State::Open);
    assert!(!b.snapshot().is_open_for_hystrix());
    // Back to normal, the real state shows.
    b.update(|c| c.mode = Mode::Normal).unwrap();
    assert!(is_open(&call(&svc, Do::Ok).await));
    b.reset();

    // Metrics only: counts, never trips.
    b.update(|c| c.mode = Mode::MetricsOnly).unwrap();
    for _ in 0..30 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().rolling.failure, 31);

    // Disabled: nothing recorded at all.
    b.update(|c| c.mode = Mode::Disabled).unwrap();
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.snapshot().cumulative.failure, 31);
}

#[tokio::test(start_paused = true)]
async fn settings_change_live_and_bad_settings_are_refused() {
    let b = breaker(CircuitBreakerConfig::default());
    let svc = service(&b);
    let mut events = b.subscribe();
    b.update(|c| c.request_volume_threshold = 2).unwrap();
    call(&svc, Do::Fail).await.unwrap_err();
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.state(), State::Open);

    let err = b
        .update(|c| {
            c.window = Window::Time {
                length: Duration::from_secs(10),
                buckets: 3,
            }
        })
        .unwrap_err();
    assert_eq!(err.field, "window.length");
    assert_eq!(b.config().request_volume_threshold, 2);
    assert_eq!(events.try_recv().unwrap().kind, EventKind::ConfigChanged);
}

#[tokio::test(start_paused = true)]
async fn timeouts_follow_the_live_setting_and_count_as_timeouts() {
    let b = breaker(CircuitBreakerConfig {
        timeout: Some(Duration::from_millis(100)),
        ..CircuitBreakerConfig::default()
    });
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&b))
        .layer(TimeoutLayer::new(&b))
        .service(service_fn(|ms: u64| async move {
            sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(ms)
        }));
    assert_eq!(svc.clone().oneshot(50).await.unwrap(), 50);
    let err = svc.clone().oneshot(150).await.unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().expect("an Elapsed error");
    assert_eq!(elapsed.after(), Duration::from_millis(100));
    b.update(|c| c.timeout = Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(svc.clone().oneshot(150).await.unwrap(), 150);
    b.update(|c| c.timeout = None).unwrap();
    assert_eq!(svc.clone().oneshot(5_000).await.unwrap(), 5_000);
    let snap = b.snapshot();
    assert_eq!(snap.rolling.timeout, 1);
    assert_eq!(snap.rolling.success, 3);
    assert_eq!(snap.health.error_percentage(), 25);
}

#[tokio::test(start_paused = true)]
async fn fallbacks_are_counted_and_capped() {
    let b = breaker(CircuitBreakerConfig {
        fallback_max_concurrent_calls: 1,
        mode: Mode::MetricsOnly,
        ..CircuitBreakerConfig::default()
    });
    let running = Arc::new(AtomicU32::new(0));
    let r = running.clone();
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(&b, move |e: BoxError| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_millis(50)).await;
                if e.to_string().contains("fatal") {
                    Err::<&'static str, BoxError>("fallback failed too".into())
                } else {
                    Ok("fallback")
                }
            }
        }))
        .layer(CircuitBreakerLayer::new(&b))
        .service(service_fn(|what: &'static str| async move {
            if what == "ok" {
                Ok("primary")
            } else {
                Err(std::io::Error::other(what))
            }
        }));
    assert_eq!(svc.clone().oneshot("ok").await.unwrap(), "primary");
    assert_eq!(svc.clone().oneshot("down").await.unwrap(), "fallback");
    assert!(svc.clone().oneshot("fatal").await.is_err());
    // Two failing at once: the second fallback is over the cap.
    let (a, c) = tokio::join!(svc.clone().oneshot("down"), svc.clone().oneshot("down"));
    let rejected = [a, c]
        .into_iter()
        .filter_map(Result::err)
        .filter(|e| e.is::<FallbackRejected>())
        .count();
    assert_eq!(rejected, 1);
    let s = b.snapshot().cumulative;
    assert_eq!(s.fallback_success, 2);
    assert_eq!(s.fallback_failure, 1);
    assert_eq!(s.fallback_rejection, 1);
    assert_eq!(s.fallback_missing, 0);
    assert_eq!(s.exceptions_thrown, 2);
    // Total latency includes the fallback's 50 ms; execution latency does not.
    let snap = b.snapshot();
    assert!(snap.latency_total.at(100.0).unwrap() >= Duration::from_millis(50));
    assert!(snap.latency_execute.at(100.0).unwrap() < Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn missing_fallback_and_bad_requests_are_counted() {
    let b = breaker(CircuitBreakerConfig {
        request_volume_threshold: 1,
        ..CircuitBreakerConfig::default()
    });
    let svc = CircuitBreakerLayer::new(&b)
        .classify(HttpStatus)
        .layer(service_fn(|status: u16| async move {
            Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap())
        }));
    for status in [200, 404, 400, 404] {
        svc.clone().oneshot(status).await.unwrap();
    }
    let s = b.snapshot();
    assert_eq!(s.rolling.bad_request, 3);
    assert_eq!(s.state, State::Closed);
    svc.clone().oneshot(503).await.unwrap();
    assert_eq!(b.state(), State::Open);
    svc.clone().oneshot(200).await.unwrap_err(); // short-circuited, no fallback
    let s = b.snapshot().cumulative;
    assert_eq!(s.fallback_missing, 1);
    assert_eq!(s.exceptions_thrown, 1);
}

#[tokio::test(start_paused = true)]
async fn metrics_are_published_with_prometheus_names() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let registry = breakwater_circuit_breaker::CircuitBreakerRegistry::with_clock(Clock::tokio());
    let b = registry
        .breaker_with(
            "inventory",
            CircuitBreakerConfig {
                request_volume_threshold: 3,
                ..CircuitBreakerConfig::default()
            },
        )
        .unwrap();
    let svc = service(&b);
    call(&svc, Do::Sleep(20)).await.unwrap();
    call(&svc, Do::Fail).await.unwrap_err();
    call(&svc, Do::Fail).await.unwrap_err();
    call(&svc, Do::Ok).await.unwrap_err(); // short-circuited
    metrics::with_local_recorder(&recorder, || {
        breakwater_circuit_breaker::metrics::MetricsPublisher::new(registry.clone()).publish()
    });
    let metrics = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        metrics
            .iter()
            .find(|(key, _, _, _)| {
                key.key().name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find(
            "breakwater_circuit_breaker_calls_total",
            &[("breaker", "inventory"), ("outcome", "failure")]
        ),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find(
            "breakwater_circuit_breaker_not_permitted_calls_total",
            &[("breaker", "inventory")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            "breakwater_circuit_breaker_state",
            &[("breaker", "inventory"), ("state", "open")]
        ),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    assert_eq!(
        find(
            "breakwater_circuit_breaker_state",
            &[("breaker", "inventory"), ("state", "closed")]
        ),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    match find(
        "breakwater_circuit_breaker_call_duration_seconds",
        &[("breaker", "inventory")],
    ) {
        Some(DebugValue::Histogram(values)) => {
            assert_eq!(values.len(), 3);
            let max = values.iter().map(|v| v.into_inner()).fold(0.0, f64::max);
            assert!((0.019..0.022).contains(&max), "{max}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_and_ejections_grow_linearly() {
    // Envoy's outlier detection: 5 in a row, 30 s x ejections up to 300 s.
    let b = breaker(CircuitBreakerConfig {
        consecutive_failures: Some(5),
        request_volume_threshold: 1_000,
        sleep_window: Duration::from_secs(30),
        backoff: Some(Backoff::linear(Duration::from_secs(300))),
        ..CircuitBreakerConfig::default()
    });
    let svc = service(&b);
    // Four failures, a success, four failures: never five in a row.
    for round in 0..2 {
        for _ in 0..4 {
            call(&svc, Do::Fail).await.unwrap_err();
        }
        assert_eq!(b.state(), State::Closed, "round {round}");
        call(&svc, Do::Ok).await.unwrap();
    }
    for _ in 0..5 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(30)));
    for expected in [60, 90, 120, 150, 180, 210, 240, 270, 300, 300] {
        advance(b.snapshot().open_for.unwrap()).await;
        call(&svc, Do::Fail).await.unwrap_err(); // the half-open probe fails
        assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(expected)));
    }
    advance(Duration::from_secs(300)).await;
    call(&svc, Do::Ok).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    // Closing started the count again: four more failures keep it closed.
    for _ in 0..4 {
        call(&svc, Do::Fail).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Closed);
    call(&svc, Do::Fail).await.unwrap_err();
    assert_eq!(b.snapshot().open_for, Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn a_breaker_freed_when_dropped_goes_with_its_last_service() {
    let b = CircuitBreaker::builder("instance 10.0.0.1:80")
        .clock(Clock::tokio())
        .build_freed_when_dropped()
        .unwrap();
    let weak = b.downgrade();
    let svc = service(&b);
    drop(b);
    call(&svc, Do::Ok).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let pending = tokio::spawn({
        let svc = svc.clone();
        async move {
            let _ = rx.await;
            call(&svc, Do::Ok).await
        }
    });
    drop(svc);
    assert!(weak.upgrade().is_some(), "a call still holds it");
    tx.send(()).unwrap();
    pending.await.unwrap().unwrap();
    assert!(weak.upgrade().is_none(), "freed with the last holder");
    // A breaker for the life of the process always upgrades.
    let leaked = CircuitBreaker::new("named");
    let weak = leaked.downgrade();
    drop(leaked);
    assert_eq!(weak.upgrade().unwrap().name(), "named");
}
