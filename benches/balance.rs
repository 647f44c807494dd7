//! Balancers side by side over 10 in-process instances with simulated latency: round robin
//! (written here, the baseline), random (what tonic's balanced channel amounts to), tower's
//! p2c over PeakEwma, and ours (`breakwater_balance::Balancer`).
//!
//! ```sh
//! cargo bench --bench balance            # every scenario, ~6 min
//! cargo bench --bench balance -- --quick # every scenario, shortened, under 60 s
//! ```
//!
//! Instances are tokio tasks that sleep for their latency (real time, multi-threaded runtime)
//! and answer `Ok` or a fast `Err` (a 503): a balancer sees exactly what it would see over a
//! socket (a latency and an outcome per request, requests in flight), without the socket
//! costs that are the same for every balancer. Every request has a 1 s timeout; a timed-out
//! request counts as failed at 1 s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use breakwater::balance::{BalanceConfig, Balancer, Endpoint};
use breakwater_circuit_breaker::error::BoxError;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::{Service, ServiceExt, service_fn};

const INSTANCES: usize = 10;
const CONCURRENCY: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(1);

const HEALTHY: u8 = 0;
const SLOW: u8 = 1;
const FAILING: u8 = 2;

type Fut = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// What every instance does now, and how many requests each got.
#[derive(Clone)]
struct Fleet {
    modes: Arc<Vec<AtomicU8>>,
    calls: Arc<Vec<AtomicUsize>>,
}

impl Fleet {
    fn new() -> Self {
        Fleet {
            modes: Arc::new((0..INSTANCES).map(|_| AtomicU8::new(HEALTHY)).collect()),
            calls: Arc::new((0..INSTANCES).map(|_| AtomicUsize::new(0)).collect()),
        }
    }

    fn set(&self, i: usize, mode: u8) {
        self.modes[i].store(mode, Ordering::Relaxed);
    }

    fn calls(&self) -> Vec<usize> {
        self.calls
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Instance `i`: healthy ones answer in 1-3 ms, a slow one in 1 s, a failing one with an
    /// error at once.
    fn instance(
        &self,
        i: usize,
    ) -> impl Service<(), Response = (), Error = BoxError, Future = Fut> + Clone + Send + Sync + use<>
    {
        let fleet = self.clone();
        service_fn(move |()| -> Fut {
            let fleet = fleet.clone();
            Box::pin(async move {
                fleet.calls[i].fetch_add(1, Ordering::Relaxed);
                match fleet.modes[i].load(Ordering::Relaxed) {
                    FAILING => Err("503 Service Unavailable".into()),
                    SLOW => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(())
                    }
                    _ => {
                        let ms = 1 + fastrand::u64(0..3);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(())
                    }
                }
            })
        })
    }
}

/// A balancer as the load driver uses it: one call per request, shared by every worker.
trait Lb: Clone + Send + Sync + 'static {
    fn send(&self) -> Fut;
}

#[derive(Clone)]
struct RoundRobin<S> {
    services: Arc<Vec<S>>,
    next: Arc<AtomicUsize>,
}

impl<S> Lb for RoundRobin<S>
where
    S: Service<(), Response = (), Error = BoxError, Future = Fut> + Clone + Send + Sync + 'static,
{
    fn send(&self) -> Fut {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.services.len();
        self.services[i].clone().oneshot(()).boxed_fut()
    }
}

#[derive(Clone)]
struct Random<S> {
    services: Arc<Vec<S>>,
}

impl<S> Lb for Random<S>
where
    S: Service<(), Response = (), Error = BoxError, Future = Fut> + Clone + Send + Sync + 'static,
{
    fn send(&self) -> Fut {
        let i = fastrand::usize(..self.services.len());
        self.services[i].clone().oneshot(()).boxed_fut()
    }
}

type TowerP2c<S> = Balance<ServiceList<Vec<PeakEwma<S>>>, ()>;

/// tower's p2c, shared behind a mutex (it is not `Clone`; its services are always ready, so
/// the lock is held for one `poll_ready` and one `call`).
struct Tower<S: Service<()>> {
    balance: Arc<Mutex<TowerP2c<S>>>,
}

impl<S: Service<()>> Clone for Tower<S> {
    fn clone(&self) -> Self {
        Tower {
            balance: self.balance.clone(),
        }
    }
}

fn tower_p2c<S>(services: Vec<S>) -> Tower<S>
where
    S: Service<(), Response = (), Error = BoxError>,
{
    let services = services
        .into_iter()
        .map(|s| {
            PeakEwma::new(
                s,
                Duration::from_millis(30),
                Duration::from_secs(10).as_nanos() as f64,
                CompleteOnResponse::default(),
            )
        })
        .collect();
    Tower {
        balance: Arc::new(Mutex::new(Balance::new(ServiceList::new(services)))),
    }
}

impl<S> Lb for Tower<S>
where
    S: Service<(), Response = (), Error = BoxError, Future = Fut> + Send + 'static,
{
    fn send(&self) -> Fut {
        let mut balance = self.balance.lock().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        match balance.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => balance.call(()).boxed_fut(),
            Poll::Ready(Err(e)) => Box::pin(std::future::ready(Err(e))),
            Poll::Pending => Box::pin(std::future::ready(Err("tower p2c not ready".into()))),
        }
    }
}

impl<S> Lb for Balancer<S>
where
    S: Service<(), Response = (), Error = BoxError, Future = Fut> + Clone + Send + Sync + 'static,
{
    fn send(&self) -> Fut {
        self.clone().call(()).boxed_fut()
    }
}

trait BoxedFut {
    fn boxed_fut(self) -> Fut;
}

impl<F, E> BoxedFut for F
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn boxed_fut(self) -> Fut {
        Box::pin(async move { self.await.map_err(Into::into) })
    }
}

fn ours(
    fleet: &Fleet,
) -> Balancer<
    impl Service<(), Response = (), Error = BoxError, Future = Fut> + Clone + Send + Sync + 'static,
> {
    let endpoints: Vec<Endpoint> = (0..INSTANCES)
        .map(|i| Endpoint::new(format!("i{i}"), "127.0.0.1", 10_000 + i as u16))
        .collect();
    let (tx, list) = tokio::sync::watch::channel(endpoints);
    std::mem::forget(tx); // the list stays as it is for the run
    let fleet = fleet.clone();
    Balancer::fixed(
        "bench",
        list,
        move |e: &Endpoint| fleet.instance(usize::from(e.port - 10_000)),
        BalanceConfig::default(),
    )
    .unwrap()
}

/// One finished request: when it was sent (since the run started), how long it took, whether
/// it succeeded, whether it found no instance.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    took: Duration,
    ok: bool,
}

/// Sends requests `CONCURRENCY` at a time for `length`, calling `script` with the time since
/// the start before each request.
async fn drive<L: Lb>(
    lb: L,
    length: Duration,
    script: impl Fn(Duration) + Send + Sync + 'static,
) -> Vec<Sample> {
    let start = Instant::now();
    let script = Arc::new(script);
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let lb = lb.clone();
        let script = script.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let at = start.elapsed();
                if at >= length {
                    return samples;
                }
                script(at);
                let sent = Instant::now();
                let result = tokio::time::timeout(TIMEOUT, lb.send()).await;
                samples.push(Sample {
                    at,
                    took: sent.elapsed().min(TIMEOUT),
                    ok: matches!(result, Ok(Ok(()))),
                });
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    success: f64,
    n: usize,
}

fn stats(samples: impl Iterator<Item = Sample>) -> Stats {
    let samples: Vec<Sample> = samples.collect();
    let mut took: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    took.sort();
    Stats {
        p50: percentile(&took, 50.0),
        p99: percentile(&took, 99.0),
        p999: percentile(&took, 99.9),
        success: samples.iter().filter(|s| s.ok).count() as f64 / samples.len().max(1) as f64,
        n: samples.len(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {} | {} | {} | {:.3} % | {} |",
        ms(s.p50),
        ms(s.p99),
        ms(s.p999),
        s.success * 100.0,
        s.n
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    RoundRobin,
    Random,
    Tower,
    Ours,
}

const KINDS: [(Kind, &str); 4] = [
    (Kind::RoundRobin, "round robin"),
    (Kind::Random, "random"),
    (Kind::Tower, "tower p2c PeakEwma"),
    (Kind::Ours, "breakwater"),
];

async fn run(
    kind: Kind,
    fleet: &Fleet,
    length: Duration,
    script: impl Fn(Duration) + Send + Sync + 'static,
) -> Vec<Sample> {
    let services: Vec<_> = (0..INSTANCES).map(|i| fleet.instance(i)).collect();
    match kind {
        Kind::RoundRobin => {
            let lb = RoundRobin {
                services: Arc::new(services),
                next: Arc::default(),
            };
            drive(lb, length, script).await
        }
        Kind::Random => {
            drive(
                Random {
                    services: Arc::new(services),
                },
                length,
                script,
            )
            .await
        }
        Kind::Tower => drive(tower_p2c(services), length, script).await,
        Kind::Ours => {
            let lb = ours(fleet);
            tokio::time::sleep(Duration::from_millis(10)).await; // discovery
            drive(lb, length, script).await
        }
    }
}

async fn slow_instance(scale: f64) {
    let length = Duration::from_secs_f64(30.0 * scale);
    let (from, to) = (length / 3, length * 2 / 3);
    println!(
        "\n### slow instance: one of 10 takes 1 s from {from:?} to {to:?} of {length:?}, concurrency {CONCURRENCY}\n"
    );
    println!("| balancer | p50 ms | p99 ms | p99.9 ms | success | requests |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut healthy_p99 = Duration::ZERO;
    let mut figures = Vec::new();
    for (kind, name) in KINDS {
        let fleet = Fleet::new();
        let f = fleet.clone();
        let samples = run(kind, &fleet, length, move |at| {
            f.set(0, if at >= from && at < to { SLOW } else { HEALTHY })
        })
        .await;
        let healthy = stats(samples.iter().copied().filter(|s| s.at < from));
        let slow = stats(
            samples
                .iter()
                .copied()
                .filter(|s| s.at >= from && s.at < to),
        );
        if kind == Kind::Ours {
            healthy_p99 = healthy.p99;
        }
        row(&format!("{name}, all healthy (first third)"), &healthy);
        row(&format!("{name}, slow window"), &slow);
        figures.push((kind, slow));
    }
    let ours = &figures.iter().find(|(k, _)| *k == Kind::Ours).unwrap().1;
    let tower = &figures.iter().find(|(k, _)| *k == Kind::Tower).unwrap().1;
    println!(
        "\nsummary: ours/tower p50 {:.2}, p99 {:.2}, p99.9 {:.2}; ours p99.9 {} ms vs all-healthy p99 {} ms ({:.2}x, target <= 2x); success {:.3} % (target >= 99.9 %)",
        ours.p50.as_secs_f64() / tower.p50.as_secs_f64(),
        ours.p99.as_secs_f64() / tower.p99.as_secs_f64(),
        ours.p999.as_secs_f64() / tower.p999.as_secs_f64(),
        ms(ours.p999),
        ms(healthy_p99),
        ours.p999.as_secs_f64() / healthy_p99.as_secs_f64(),
        ours.success * 100.0
    );
}

/// When the failing instance had its 5th request, and every instance's count then.
type Mark = (Duration, Vec<usize>);

async fn fast_failing(scale: f64) {
    let window = Duration::from_secs_f64(10.0 * scale);
    println!(
        "\n### fast-failing instance: one of 10 answers an error at once; its share over {window:?} after its 5th failure\n"
    );
    println!("| balancer | share after 5th failure | success | requests |");
    println!("|---|---:|---:|---:|");
    let mut shares = Vec::new();
    for (kind, name) in KINDS {
        let fleet = Fleet::new();
        fleet.set(0, FAILING);
        // Run until the 5th failure, then the window.
        let f = fleet.clone();
        let fifth: Arc<Mutex<Option<Mark>>> = Arc::default();
        let mark = fifth.clone();
        let samples = run(kind, &fleet, window + Duration::from_secs(2), move |at| {
            let mut mark = mark.lock().unwrap();
            if mark.is_none() && f.calls[0].load(Ordering::Relaxed) >= 5 {
                *mark = Some((at, f.calls()));
            }
        })
        .await;
        let (at, then) = fifth
            .lock()
            .unwrap()
            .clone()
            .expect("five failures happened");
        let now = fleet.calls();
        // Requests up to the window's end, approximated by all after the mark (the run ends
        // at most 2 s after the window).
        let total: usize = now.iter().zip(&then).map(|(n, t)| n - t).sum();
        let share = (now[0] - then[0]) as f64 / total.max(1) as f64;
        let s = stats(samples.iter().copied().filter(|s| s.at >= at));
        println!(
            "| {name} | {:.3} % | {:.3} % | {} |",
            share * 100.0,
            s.success * 100.0,
            s.n
        );
        shares.push((kind, share));
    }
    let get = |k: Kind| shares.iter().find(|(x, _)| *x == k).unwrap().1;
    println!(
        "\nsummary: failing instance's share after its 5th failure: ours {:.3} % vs tower p2c {:.3} % (ours/tower {:.3}; target < 1 %)",
        get(Kind::Ours) * 100.0,
        get(Kind::Tower) * 100.0,
        get(Kind::Ours) / get(Kind::Tower).max(1e-9)
    );
}

async fn failing(scale: f64, count: usize) {
    let length = Duration::from_secs_f64(10.0 * scale);
    println!("\n### {count} of 10 instances fail at once, for {length:?}, no retries\n");
    println!("| balancer | success | no-instance errors | requests to failing (share) | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut ours_success = 0.0;
    let mut tower_success = 0.0;
    for (kind, name) in KINDS {
        let fleet = Fleet::new();
        for i in 0..count {
            fleet.set(i, FAILING);
        }
        let samples = run(kind, &fleet, length, |_| {}).await;
        let calls = fleet.calls();
        let failing: usize = calls[..count].iter().sum();
        let s = stats(samples.iter().copied());
        // A request that found no instance fails at once without reaching one: count them
        // as requests that did not reach any instance.
        let reached: usize = calls.iter().sum();
        let no_instance = s.n.saturating_sub(reached);
        println!(
            "| {name} | {:.3} % | {no_instance} | {:.2} % | {} |",
            s.success * 100.0,
            failing as f64 * 100.0 / reached.max(1) as f64,
            ms(s.p99)
        );
        match kind {
            Kind::Ours => ours_success = s.success,
            Kind::Tower => tower_success = s.success,
            _ => {}
        }
    }
    println!(
        "\nsummary: {count} of 10 failing: success ours {:.3} % vs tower p2c {:.3} % (ours/tower {:.3})",
        ours_success * 100.0,
        tower_success * 100.0,
        ours_success / tower_success.max(1e-9)
    );
}

/// Nanoseconds per pick-and-call over instances that answer at once (no I/O), on `threads`
/// threads at once, each sharing the balancer; the median of five runs.
fn pick_cost(threads: usize, iterations: usize) -> (f64, f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ready = || service_fn(|()| -> Fut { Box::pin(std::future::ready(Ok(()))) });
    let endpoints: Vec<Endpoint> = (0..INSTANCES)
        .map(|i| Endpoint::new(format!("i{i}"), "127.0.0.1", 10_000 + i as u16))
        .collect();
    let (_tx, list) = tokio::sync::watch::channel(endpoints);
    let ours = runtime.block_on(async {
        let b = Balancer::fixed(
            "pick",
            list,
            move |_: &Endpoint| ready(),
            BalanceConfig::default(),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        b
    });
    let tower = tower_p2c((0..INSTANCES).map(|_| ready()).collect());
    let _guard = runtime.enter();
    let time = |f: &(dyn Fn() + Sync)| {
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..iterations {
                                f();
                            }
                        });
                    }
                });
                start.elapsed().as_nanos() as f64 / iterations as f64
            })
            .collect();
        runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        runs[2]
    };
    let ours_ns = time(&|| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = std::pin::pin!(ours.clone().call(()));
        assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    });
    let tower_ns = time(&|| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = {
            let mut balance = tower.balance.lock().unwrap();
            assert!(matches!(balance.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            Box::pin(balance.call(()))
        };
        assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    });
    (ours_ns, tower_ns)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 0.15 } else { 1.0 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        slow_instance(scale).await;
        fast_failing(scale).await;
        failing(scale, 4).await;
        failing(scale, 6).await;
    });
    drop(runtime);
    println!("\n### cost of a pick and call (no I/O), ns per request per thread, median of 5\n");
    println!("| threads | breakwater | tower p2c PeakEwma (behind a mutex) | ours/tower |");
    println!("|---:|---:|---:|---:|");
    let iterations = if quick { 50_000 } else { 500_000 };
    for threads in [1, 2] {
        let (ours, tower) = pick_cost(threads, iterations);
        println!(
            "| {threads} | {ours:.0} | {tower:.0} | {:.2} |",
            ours / tower
        );
    }
    println!(
        "\nsummary: the whole run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
