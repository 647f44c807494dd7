//! Per-call overhead of a circuit breaker on the closed success path, above a no-op service,
//! side by side with the bare service and the breakers of `recloser`, `failsafe` and
//! `tower-resilience-circuitbreaker`, on one thread and on two.
//!
//! Run: `cargo bench --bench breaker_overhead`. Figures and how to read them: benches/README.md.

use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, Config};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, Service};

/// The dependency: answers at once.
#[derive(Clone, Copy)]
struct Noop;

impl Service<u64> for Noop {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u64) -> Self::Future {
        ready(Ok(request))
    }
}

/// Polls a future that is expected to be ready at once.
#[inline]
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmark's services are always ready"),
    }
}

/// One call through a tower service, as a caller makes it: poll_ready, call, poll.
#[inline]
fn tower_call<S>(service: &mut S, i: u64)
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    let response = poll_once(service.call(black_box(i))).expect("the call succeeds");
    black_box(response);
}

/// Something that makes one call per `run`; cloned once per thread.
trait Caller: Clone + Send + 'static {
    fn run(&mut self, i: u64);
}

#[derive(Clone)]
struct TowerCaller<S>(S);

impl<S> Caller for TowerCaller<S>
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
{
    #[inline]
    fn run(&mut self, i: u64) {
        tower_call(&mut self.0, i);
    }
}

#[derive(Clone)]
struct RecloserCaller(Arc<recloser::AsyncRecloser>);

impl Caller for RecloserCaller {
    #[inline]
    fn run(&mut self, i: u64) {
        let r = poll_once(self.0.call(ready(Ok::<u64, std::io::Error>(black_box(i)))));
        black_box(r.is_ok());
    }
}

#[derive(Clone)]
struct FailsafeCaller<B>(B);

impl<B> Caller for FailsafeCaller<B>
where
    B: failsafe::futures::CircuitBreaker + Clone + Send + 'static,
{
    #[inline]
    fn run(&mut self, i: u64) {
        let r = poll_once(self.0.call(ready(Ok::<u64, std::io::Error>(black_box(i)))));
        black_box(r.is_ok());
    }
}

fn breakwater_default()
-> impl Service<u64, Response = u64, Error = breakwater_circuit_breaker::error::BoxError>
+ Clone
+ Send
+ 'static {
    let breaker = CircuitBreaker::new("bench");
    CircuitBreakerLayer::new(&breaker).layer(Noop)
}

fn breakwater_no_latency()
-> impl Service<u64, Response = u64, Error = breakwater_circuit_breaker::error::BoxError>
+ Clone
+ Send
+ 'static {
    let breaker = CircuitBreaker::with_config(
        "bench-no-latency",
        Config {
            record_latency: false,
            ..Config::default()
        },
    )
    .expect("valid");
    CircuitBreakerLayer::new(&breaker).layer(Noop)
}

fn breakwater_precise_clock()
-> impl Service<u64, Response = u64, Error = breakwater_circuit_breaker::error::BoxError>
+ Clone
+ Send
+ 'static {
    let breaker = CircuitBreaker::builder("bench-precise")
        .clock(breakwater_circuit_breaker::Clock::precise())
        .build()
        .expect("valid");
    CircuitBreakerLayer::new(&breaker).layer(Noop)
}

fn tower_resilience()
-> impl Service<u64, Response = u64, Error: std::fmt::Debug> + Clone + Send + 'static {
    let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .build()
        .expect("valid");
    layer.layer(Noop)
}

fn recloser() -> RecloserCaller {
    RecloserCaller(Arc::new(recloser::AsyncRecloser::from(
        recloser::Recloser::default(),
    )))
}

fn failsafe() -> FailsafeCaller<impl failsafe::futures::CircuitBreaker + Clone + Send + 'static> {
    FailsafeCaller(failsafe::Config::new().build())
}

fn one_thread<C: Caller>(c: &mut Criterion, group: &str, name: &str, mut caller: C) {
    let mut g = c.benchmark_group(group);
    g.bench_function(name, |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            caller.run(i)
        })
    });
    g.finish();
}

/// Two threads, each with its own clone, calling at once. Criterion's time per iteration is
/// wall time per call per thread: equal to the one-thread figure under perfect scaling.
fn two_threads<C: Caller>(c: &mut Criterion, group: &str, name: &str, caller: C) {
    let mut g = c.benchmark_group(group);
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(3));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let mut caller = caller.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        for i in 0..iters {
                            caller.run(i);
                        }
                        barrier.wait();
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            barrier.wait();
            let elapsed = start.elapsed();
            for h in handles {
                h.join().expect("bench thread");
            }
            elapsed
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let t1 = "closed_success_1_thread";
    one_thread(c, t1, "bare_service", TowerCaller(Noop));
    one_thread(
        c,
        t1,
        "breakwater_default",
        TowerCaller(breakwater_default()),
    );
    one_thread(
        c,
        t1,
        "breakwater_no_latency",
        TowerCaller(breakwater_no_latency()),
    );
    one_thread(
        c,
        t1,
        "breakwater_precise_clock",
        TowerCaller(breakwater_precise_clock()),
    );
    one_thread(c, t1, "recloser", recloser());
    one_thread(c, t1, "failsafe", failsafe());
    one_thread(c, t1, "tower_resilience", TowerCaller(tower_resilience()));

    let t2 = "closed_success_2_threads";
    two_threads(c, t2, "bare_service", TowerCaller(Noop));
    two_threads(
        c,
        t2,
        "breakwater_default",
        TowerCaller(breakwater_default()),
    );
    two_threads(
        c,
        t2,
        "breakwater_no_latency",
        TowerCaller(breakwater_no_latency()),
    );
    two_threads(c, t2, "recloser", recloser());
    two_threads(c, t2, "failsafe", failsafe());
    two_threads(c, t2, "tower_resilience", TowerCaller(tower_resilience()));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
