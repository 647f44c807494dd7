//! Bad settings are refused with an error naming the field; accepted settings never make the
//! breaker panic, whatever their values.

use std::time::Duration;

use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{
    Backoff, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, Clock, Growth, Mode,
    SlowCalls, Window,
};
use proptest::prelude::*;
use tower::{Layer, Service};

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..100_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_nanos),
    ]
}

fn wild_config() -> impl Strategy<Value = CircuitBreakerConfig> {
    let window = prop_oneof![
        (duration(), any::<u32>()).prop_map(|(length, buckets)| Window::Time { length, buckets }),
        (duration(), 0u32..20).prop_map(|(length, buckets)| Window::Time { length, buckets }),
        any::<u32>().prop_map(|calls| Window::Count {
            calls: calls % 3_000_000
        }),
    ];
    let backoff = proptest::option::of(
        (
            prop_oneof![any::<f64>(), 0.0f64..10.0],
            duration(),
            prop_oneof![any::<f64>(), 0.0f64..1.0],
        )
            .prop_map(|(multiplier, max, jitter)| Backoff {
                growth: Growth::Exponential,
                multiplier,
                max,
                jitter,
            }),
    );
    let slow =
        proptest::option::of(
            (duration(), any::<u8>()).prop_map(|(duration, rate)| SlowCalls {
                duration,
                rate_threshold_percentage: rate,
            }),
        );
    (
        window,
        any::<u32>(),
        any::<u8>(),
        slow,
        duration(),
        backoff,
        prop_oneof![any::<u32>(), 0u32..5],
        proptest::option::of(duration()),
        (any::<u32>(), any::<u32>(), any::<bool>()),
        (duration(), prop_oneof![any::<u32>(), 1u32..10]),
    )
        .prop_map(
            |(
                window,
                volume,
                threshold,
                slow_calls,
                sleep,
                backoff,
                trials,
                timeout,
                (mc, fmc, lat),
                (pw, pb),
            )| {
                CircuitBreakerConfig {
                    mode: Mode::Normal,
                    window,
                    request_volume_threshold: volume % 50,
                    error_threshold_percentage: threshold,
                    slow_calls,
                    consecutive_failures: (volume % 5 == 0).then_some(volume % 3),
                    sleep_window: sleep,
                    backoff,
                    half_open_trial_calls: trials,
                    timeout,
                    max_concurrent_calls: mc,
                    fallback_max_concurrent_calls: fmc,
                    record_latency: lat,
                    percentile_window: pw,
                    percentile_buckets: pb,
                }
            },
        )
}

/// Valid settings, reaching to the limits validation allows.
fn valid_config() -> impl Strategy<Value = CircuitBreakerConfig> {
    let day_ms = 24 * 3600 * 1000u64;
    let window = prop_oneof![
        (1u32..20, 1u64..1000).prop_map(|(buckets, ms)| Window::Time {
            length: Duration::from_millis(ms * buckets as u64),
            buckets,
        }),
        Just(Window::Time {
            length: Duration::from_secs(24 * 3600),
            buckets: 10_000
        }),
        prop_oneof![1u32..100, Just(1 << 20)].prop_map(|calls| Window::Count { calls }),
    ];
    (
        window,
        0u32..30,
        0u8..=100,
        proptest::option::of((1u64..=day_ms, 1u8..=100).prop_map(|(ms, rate)| SlowCalls {
            duration: Duration::from_millis(ms),
            rate_threshold_percentage: rate,
        })),
        prop_oneof![1u64..10_000, Just(day_ms)],
        proptest::option::of((prop_oneof![1.0f64..4.0, Just(1e300)], 0.0f64..=1.0)),
        prop_oneof![1u32..5, Just(32_767)],
        proptest::option::of(prop_oneof![1u64..5_000, Just(day_ms)]),
        (1u32..100, any::<bool>()),
        (1u32..10, 1u64..10_000),
    )
        .prop_map(
            move |(
                window,
                volume,
                threshold,
                slow_calls,
                sleep_ms,
                backoff,
                trials,
                timeout,
                (mc, lat),
                (pb, pms),
            )| {
                CircuitBreakerConfig {
                    mode: Mode::Normal,
                    window,
                    request_volume_threshold: volume,
                    error_threshold_percentage: threshold,
                    slow_calls,
                    consecutive_failures: (threshold % 4 == 0).then_some(1 + volume % 10),
                    sleep_window: Duration::from_millis(sleep_ms),
                    backoff: backoff.map(|(multiplier, jitter)| Backoff {
                        growth: if multiplier > 3.0 {
                            Growth::Linear
                        } else {
                            Growth::Exponential
                        },
                        multiplier,
                        max: Duration::from_millis(day_ms),
                        jitter,
                    }),
                    half_open_trial_calls: trials,
                    timeout: timeout.map(Duration::from_millis),
                    max_concurrent_calls: mc,
                    fallback_max_concurrent_calls: mc,
                    record_latency: lat,
                    percentile_window: Duration::from_millis(pms * pb as u64),
                    percentile_buckets: pb,
                }
            },
        )
}

fn config() -> impl Strategy<Value = CircuitBreakerConfig> {
    prop_oneof![wild_config(), valid_config()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn valid_settings_are_accepted(config in valid_config()) {
        prop_assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn any_settings_are_refused_or_work(config in config(), steps in prop::collection::vec((any::<bool>(), 0u64..5_000), 1..40)) {
        let validated = config.validate();
        let (clock, hand) = Clock::manual();
        let built = CircuitBreaker::builder("input").config(config.clone()).clock(clock).build();
        match (validated, built) {
            (Err(e1), Err(e2)) => {
                prop_assert_eq!(&e1, &e2);
                prop_assert!(e1.to_string().contains(e1.field), "{}", e1);
            }
            (Ok(()), Ok(breaker)) => {
                let mut service = CircuitBreakerLayer::new(&breaker).layer(tower::service_fn(
                    |ok: bool| async move { if ok { Ok(()) } else { Err::<(), BoxError>("no".into()) } },
                ));
                for (ok, ms) in steps {
                    let _ = futures_now(service.call(ok));
                    hand.advance(Duration::from_millis(ms));
                    let _ = breaker.snapshot();
                }
                // The same settings, applied at run time, are accepted too.
                prop_assert!(breaker.set_config(config).is_ok());
            }
            (v, b) => prop_assert!(false, "validate {:?} but build {:?}", v, b.map(|_| ())),
        }
    }
}

fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
