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

use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer};
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

/// Polls a future until it is ready. Every service here is ready at once on one thread;
/// tower-resilience's future can be pending while another thread holds its state lock, and is
/// polled again (its lock hands the permit over and marks the waiter ready).
#[inline]
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::hint::spin_loop(),
        }
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
    loop {
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => panic!("not ready: {e:?}"),
            Poll::Pending => std::hint::spin_loop(),
        }
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

/// recloser's synchronous API: no future at all, its cheapest path.
#[derive(Clone)]
struct RecloserSyncCaller(Arc<recloser::Recloser>);

impl Caller for RecloserSyncCaller {
    #[inline]
    fn run(&mut self, i: u64) {
        let r = self.0.call(|| Ok::<u64, std::io::Error>(black_box(i)));
        black_box(r.is_ok());
    }
}

/// failsafe's synchronous API.
#[derive(Clone)]
struct FailsafeSyncCaller<B>(B);

impl<B> Caller for FailsafeSyncCaller<B>
where
    B: failsafe::CircuitBreaker + Clone + Send + 'static,
{
    #[inline]
    fn run(&mut self, i: u64) {
        let r = self.0.call(|| Ok::<u64, std::io::Error>(black_box(i)));
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
        CircuitBreakerConfig {
            record_latency: false,
            ..CircuitBreakerConfig::default()
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

/// `threads` threads, each with its own clone, calling at once. Criterion's time per
/// iteration is wall time per call per thread: the same for 1 and 2 threads under perfect
/// scaling, so throughput(2) / throughput(1) = 2 * time(1) / time(2).
fn threads<C: Caller>(c: &mut Criterion, threads: usize, group: &str, name: &str, caller: C) {
    let mut g = c.benchmark_group(group);
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(threads + 1));
            let handles: Vec<_> = (0..threads)
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
    one_thread(
        c,
        t1,
        "recloser_sync_api",
        RecloserSyncCaller(Arc::new(recloser::Recloser::default())),
    );
    one_thread(
        c,
        t1,
        "failsafe_sync_api",
        FailsafeSyncCaller(failsafe::Config::new().build()),
    );

    for (n, group) in [
        (1, "closed_success_threads_1"),
        (2, "closed_success_threads_2"),
    ] {
        threads(c, n, group, "bare_service", TowerCaller(Noop));
        threads(
            c,
            n,
            group,
            "breakwater_default",
            TowerCaller(breakwater_default()),
        );
        threads(
            c,
            n,
            group,
            "breakwater_no_latency",
            TowerCaller(breakwater_no_latency()),
        );
        threads(c, n, group, "recloser", recloser());
        threads(
            c,
            n,
            group,
            "recloser_sync_api",
            RecloserSyncCaller(Arc::new(recloser::Recloser::default())),
        );
        threads(c, n, group, "failsafe", failsafe());
        threads(
            c,
            n,
            group,
            "tower_resilience",
            TowerCaller(tower_resilience()),
        );
    }
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
