//! Many threads at once: no count is lost, and half-open admits exactly N trials.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use breakwater_circuit_breaker::error::{BoxError, CircuitOpen};
use breakwater_circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, Clock, Outcome, State,
};
use tokio::sync::oneshot;
use tower::{Layer, Service};

const THREADS: usize = 4;

fn poll_now<F: Future>(future: F) -> Poll<F::Output> {
    pin!(future).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn no_count_is_lost() {
    const CALLS: u64 = 60_000;
    let (clock, _hand) = Clock::manual();
    let breaker = CircuitBreaker::builder("stress")
        .config(CircuitBreakerConfig {
            error_threshold_percentage: 100,
            ..CircuitBreakerConfig::default()
        })
        .clock(clock)
        .build()
        .unwrap();
    // i % 3: 0 success, 1 failure, 2 ignored (bad request).
    let classify = |r: Result<&u64, &BoxError>| match r {
        Ok(i) if i % 3 == 2 => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let service = CircuitBreakerLayer::new(&breaker)
        .classify(classify)
        .layer(tower::service_fn(|i: u64| async move {
            if i % 3 == 1 {
                Err::<u64, BoxError>("failed".into())
            } else {
                Ok(i)
            }
        }));
    let barrier = Arc::new(Barrier::new(THREADS));
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let mut service = service.clone();
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                for i in 0..CALLS {
                    let _ = poll_now(service.call(i));
                }
            });
        }
    });
    let snap = breaker.snapshot();
    let per_kind = THREADS as u64 * CALLS / 3;
    for counts in [snap.cumulative, snap.rolling] {
        assert_eq!(counts.success, per_kind);
        assert_eq!(counts.failure, per_kind);
        assert_eq!(counts.bad_request, per_kind);
        assert_eq!(counts.cancelled, 0);
    }
    assert_eq!(snap.state, State::Closed);
    assert_eq!(snap.concurrent_calls, 0);
    assert_eq!(snap.latency_execute.count, THREADS as u64 * CALLS);
}

#[test]
fn half_open_admits_exactly_n_trials_under_contention() {
    for trials in [1u32, 3, 7] {
        for round in 0..10 {
            let (clock, hand) = Clock::manual();
            let breaker = CircuitBreaker::builder("trials")
                .config(CircuitBreakerConfig {
                    half_open_trial_calls: trials,
                    ..CircuitBreakerConfig::default()
                })
                .clock(clock)
                .build()
                .unwrap();
            breaker.trip();
            hand.advance(Duration::from_secs(5));
            let service = CircuitBreakerLayer::new(&breaker).layer(tower::service_fn(
                |rx: oneshot::Receiver<()>| async move {
                    rx.await.map_err(|_| -> BoxError { "dropped".into() })
                },
            ));
            let barrier = Arc::new(Barrier::new(THREADS));
            let admitted: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let mut service = service.clone();
                        let barrier = barrier.clone();
                        s.spawn(move || {
                            barrier.wait();
                            let mut mine = vec![];
                            for _ in 0..200 {
                                let (tx, rx) = oneshot::channel();
                                let mut future = Box::pin(service.call(rx));
                                match poll_now(future.as_mut()) {
                                    Poll::Pending => mine.push((future, tx)),
                                    Poll::Ready(Err(e)) => {
                                        assert!(e.is::<CircuitOpen>(), "{e}")
                                    }
                                    Poll::Ready(Ok(())) => panic!("cannot finish unanswered"),
                                }
                            }
                            mine
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            assert_eq!(
                admitted.len(),
                trials as usize,
                "trials {trials}, round {round}"
            );
            assert_eq!(breaker.state(), State::HalfOpen);
            assert_eq!(
                breaker.snapshot().cumulative.short_circuited,
                THREADS as u64 * 200 - trials as u64
            );
            for (mut future, tx) in admitted {
                tx.send(()).unwrap();
                assert!(matches!(poll_now(future.as_mut()), Poll::Ready(Ok(()))));
            }
            assert_eq!(breaker.state(), State::Closed);
        }
    }
}
