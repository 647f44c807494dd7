//! The smart client against its peers, over loopback HTTP/1.1 to hyper servers in this
//! process. Four parts, each printed as a markdown table:
//!
//! 1. **Overhead**: fixed concurrency (32 tasks on one client thread; the servers have a thread
//!    of their own) against a server that answers `200 ok` at once. Rows: the raw hyper-util
//!    pooled client (the baseline), reqwest (default features off: no TLS, no proxy lookup),
//!    ours on `service://bench/` with every default on (breaker, bulkhead, deadline, retries,
//!    budget, balancer, trace injection and a client span per attempt), and ours on the plain
//!    `http://` URL (no breaker, no balancer). Three rounds, interleaved; medians. Then the
//!    same three rounds again with the OpenTelemetry subscriber of `breakwater_tracing_mw::init`
//!    installed globally (export off), so every row pays what a traced service pays.
//! 2. **Budget**: three instances that all answer 503, the breaker kept closed (so retries are
//!    what is measured): extra attempts of ours (20 % of requests + 10/s over 10 s) beside a
//!    fixed 3-attempt policy written here over hyper-util.
//! 3. **Another instance**: five instances, each answering 503 to 10 % of requests at random:
//!    the share of retries that went to another instance than the attempt that failed.
//! 4. **Hedging**: five instances answering in 5 ms, 2 % of requests at random in 50 ms; p99
//!    and requests sent, with and without `hedge_delay` = 10 ms. Three rounds each, interleaved.
//!
//! ```sh
//! cargo bench --features client --bench client             # ~2 min
//! cargo bench --features client --bench client -- --quick  # every part, shortened
//! ```
//!
//! Figures: benches/README.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breakwater::client::{CallConfig, Client};
use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerRegistry};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const CONCURRENCY: usize = 32;
const CALL_HEADER: &str = "x-bench-call";

/// What one instance does with a request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `200 ok` at once.
    Ok,
    /// `503` at once.
    Fail,
    /// `503` to this share of requests at random, else `200`.
    FailSome(f64),
    /// `200` after `base`, or after `slow` for this share of requests at random.
    Latency {
        base: Duration,
        slow: Duration,
        share: f64,
    },
}

/// One request an instance saw: the call it belongs to and whether it failed.
#[derive(Clone, Copy)]
struct Hit {
    call: u64,
    instance: usize,
    failed: bool,
}

#[derive(Default)]
struct Log {
    requests: AtomicU64,
    /// Requests with a call id, kept only while `keep` is set.
    hits: Mutex<Vec<Hit>>,
    keep: AtomicBool,
}

impl Log {
    fn take(&self) -> (u64, Vec<Hit>) {
        (
            self.requests.swap(0, Relaxed),
            std::mem::take(&mut *self.hits.lock().unwrap()),
        )
    }
}

/// Servers on a runtime of their own (one thread), so clients and servers do not share one.
struct Servers {
    runtime: tokio::runtime::Runtime,
    log: Arc<Log>,
}

impl Servers {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Servers {
            runtime,
            log: Arc::default(),
        }
    }

    /// Starts `n` instances doing `behaviour`.
    fn start(&self, n: usize, behaviour: Behaviour) -> Vec<SocketAddr> {
        (0..n)
            .map(|instance| {
                let log = self.log.clone();
                self.runtime
                    .block_on(serve(instance, behaviour, log))
                    .unwrap()
            })
            .collect()
    }
}

async fn serve(
    instance: usize,
    behaviour: Behaviour,
    log: Arc<Log>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = log.clone();
                    async move { Ok::<_, Infallible>(answer(instance, behaviour, &log, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(
    instance: usize,
    behaviour: Behaviour,
    log: &Log,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    log.requests.fetch_add(1, Relaxed);
    let failed = match behaviour {
        Behaviour::Ok => false,
        Behaviour::Fail => true,
        Behaviour::FailSome(share) => fastrand::f64() < share,
        Behaviour::Latency { base, slow, share } => {
            let wait = if fastrand::f64() < share { slow } else { base };
            tokio::time::sleep(wait).await;
            false
        }
    };
    if log.keep.load(Relaxed)
        && let Some(call) = request
            .headers()
            .get(CALL_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    {
        log.hits.lock().unwrap().push(Hit {
            call,
            instance,
            failed,
        });
    }
    let status = if failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = status;
    response
}

/// The raw hyper-util client, as the baseline peer uses it.
type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

/// A call as one of the peers makes it: `Ok(true)` for a 2xx answer read to the end.
#[derive(Clone)]
enum Peer {
    /// Boxed: the pooled client is several times the size of the other peers.
    Hyper(Box<HyperClient>, String),
    Reqwest(reqwest::Client, String),
    Ours(Client, String),
}

impl Peer {
    async fn call(&self, call: u64) -> bool {
        match self {
            Peer::Hyper(client, url) => {
                let request = Request::get(url.as_str())
                    .header(CALL_HEADER, call)
                    .body(Empty::new())
                    .unwrap();
                match client.request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        response.into_body().collect().await.is_ok() && ok
                    }
                    Err(_) => false,
                }
            }
            Peer::Reqwest(client, url) => {
                match client.get(url).header(CALL_HEADER, call).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        response.bytes().await.is_ok() && ok
                    }
                    Err(_) => false,
                }
            }
            Peer::Ours(client, url) => match client.get(url).header(CALL_HEADER, call).send().await
            {
                Ok(response) => {
                    let ok = response.status().is_success();
                    response.bytes().await.is_ok() && ok
                }
                Err(_) => false,
            },
        }
    }
}

/// What one load run measured.
struct Run {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    calls: u64,
    failed: u64,
}

/// `concurrency` tasks calling back to back for `length`; latencies of every call.
async fn load(peer: &Peer, concurrency: usize, length: Duration) -> Run {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let peer = peer.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut failed = 0u64;
                while started.elapsed() < length {
                    let call = next.fetch_add(1, Relaxed);
                    let at = Instant::now();
                    if !peer.call(call).await {
                        failed += 1;
                    }
                    latencies.push(at.elapsed().as_nanos() as u64);
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies = vec![];
    let mut failed = 0;
    for task in tasks {
        let (l, f) = task.await.unwrap();
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    Run {
        per_second: latencies.len() as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
        calls: latencies.len() as u64,
        failed,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn hyper_client() -> HyperClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector)
}

fn ours(instances: &[SocketAddr], registry: CircuitBreakerRegistry, config: CallConfig) -> Client {
    Client::builder()
        .read_env(false)
        .breaker_registry(registry)
        .call_config(config)
        .unwrap()
        .instances("bench", instances.iter().map(|a| a.to_string()))
        .unwrap()
        .build()
        .unwrap()
}

/// A registry whose `bench` breaker never opens, so every call reaches the retries.
fn closed_breaker() -> CircuitBreakerRegistry {
    let registry = CircuitBreakerRegistry::new();
    registry
        .register(
            CircuitBreaker::builder("bench").config(CircuitBreakerConfig {
                request_volume_threshold: u32::MAX,
                ..breakwater::client::breaker_config()
            }),
        )
        .unwrap();
    registry
}

fn overhead(
    client_runtime: &tokio::runtime::Runtime,
    servers: &Servers,
    length: Duration,
    rounds: usize,
) {
    let addr = servers.start(1, Behaviour::Ok)[0];
    let plain = format!("http://{addr}/");
    let peers = [
        (
            "hyper-util (baseline)",
            Peer::Hyper(Box::new(hyper_client()), plain.clone()),
        ),
        (
            "reqwest",
            Peer::Reqwest(reqwest::Client::new(), plain.clone()),
        ),
        (
            "**breakwater, service://, defaults**",
            Peer::Ours(
                ours(
                    &[addr],
                    CircuitBreakerRegistry::new(),
                    CallConfig::default(),
                ),
                "service://bench/".into(),
            ),
        ),
        (
            "breakwater, plain http://",
            Peer::Ours(
                ours(
                    &[addr],
                    CircuitBreakerRegistry::new(),
                    CallConfig::default(),
                ),
                plain.clone(),
            ),
        ),
    ];
    let mut guard = None;
    for subscriber in [false, true] {
        if subscriber {
            guard = Some(
                breakwater_tracing_mw::init::Telemetry::new()
                    .export(breakwater_tracing_mw::init::Export::Off)
                    .install()
                    .unwrap(),
            );
        }
        let mut runs: Vec<Vec<Run>> = peers.iter().map(|_| vec![]).collect();
        client_runtime.block_on(async {
            for (_, peer) in &peers {
                load(peer, CONCURRENCY, length / 4).await; // warm the pools
            }
            for _ in 0..rounds {
                for (i, (_, peer)) in peers.iter().enumerate() {
                    runs[i].push(load(peer, CONCURRENCY, length).await);
                }
            }
        });
        let stat = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
        let (base_rps, base_p99) = (stat(0, |r| r.per_second), stat(0, |r| r.p99_us));
        println!(
            "\n### overhead, {}: {CONCURRENCY} concurrent calls, one client thread, medians of {rounds} runs of {:.1} s\n",
            if subscriber {
                "OpenTelemetry subscriber installed (export off)"
            } else {
                "no tracing subscriber"
            },
            length.as_secs_f64()
        );
        println!("| client | calls/s | vs hyper-util | p50 µs | p99 µs | p99 added µs | failed |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (i, (name, _)) in peers.iter().enumerate() {
            let rps = stat(i, |r| r.per_second);
            let p99 = stat(i, |r| r.p99_us);
            let failed: u64 = runs[i].iter().map(|r| r.failed).sum();
            println!(
                "| {name} | {rps:.0} | {:+.1} % | {:.0} | {p99:.0} | {:+.0} | {failed} |",
                (rps / base_rps - 1.0) * 100.0,
                stat(i, |r| r.p50_us),
                p99 - base_p99,
            );
        }
    }
    drop(guard);
}

fn budget(client_runtime: &tokio::runtime::Runtime, servers: &Servers, length: Duration) {
    let instances = servers.start(3, Behaviour::Fail);
    let ours = Peer::Ours(
        ours(&instances, closed_breaker(), CallConfig::default()),
        "service://bench/".into(),
    );
    let fixed = FixedRetries {
        client: hyper_client(),
        urls: instances.iter().map(|a| format!("http://{a}/")).collect(),
    };
    println!(
        "\n### every instance failing: 3 instances answer 503, 8 concurrent calls for {:.1} s\n",
        length.as_secs_f64()
    );
    println!(
        "| policy | calls | attempts | extra attempts | extra / calls | allowed: 20 % + 10/s x 10 s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    servers.log.take();
    let run = client_runtime.block_on(load(&ours, 8, length));
    let (attempts, _) = servers.log.take();
    // The budget's reserve: 10/s over its 10 s window, on top of 20 % of the calls.
    let allowed = 0.2 * run.calls as f64 + 100.0;
    let extra = attempts - run.calls;
    println!(
        "| **breakwater defaults** | {} | {attempts} | {extra} | {:.1} % | {allowed:.0} |",
        run.calls,
        100.0 * extra as f64 / run.calls as f64
    );
    let calls = client_runtime.block_on(fixed.run(8, length));
    let (attempts, _) = servers.log.take();
    let extra = attempts - calls;
    println!(
        "| fixed 3 attempts (hyper-util, written here) | {calls} | {attempts} | {extra} | {:.1} % | - |",
        100.0 * extra as f64 / calls as f64
    );
}

/// The policy users write by hand: three attempts, round robin over the instances.
struct FixedRetries {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    >,
    urls: Vec<String>,
}

impl FixedRetries {
    async fn run(&self, concurrency: usize, length: Duration) -> u64 {
        let calls = AtomicU64::new(0);
        let started = Instant::now();
        let worker = || async {
            while started.elapsed() < length {
                let call = calls.fetch_add(1, Relaxed) as usize;
                for attempt in 0..3 {
                    let url = &self.urls[(call + attempt) % self.urls.len()];
                    let request = Request::get(url.as_str()).body(Empty::new()).unwrap();
                    if let Ok(response) = self.client.request(request).await {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        if ok {
                            break;
                        }
                    }
                }
            }
        };
        futures::future::join_all((0..concurrency).map(|_| worker())).await;
        calls.load(Relaxed)
    }
}

fn other_instance(client_runtime: &tokio::runtime::Runtime, servers: &Servers, length: Duration) {
    let instances = servers.start(5, Behaviour::FailSome(0.1));
    let peer = Peer::Ours(
        ours(&instances, closed_breaker(), CallConfig::default()),
        "service://bench/".into(),
    );
    servers.log.take();
    servers.log.keep.store(true, Relaxed);
    let run = client_runtime.block_on(load(&peer, 8, length));
    servers.log.keep.store(false, Relaxed);
    let (_, hits) = servers.log.take();
    // Per call, its attempts in the order the instances saw them.
    let mut by_call: std::collections::HashMap<u64, Vec<Hit>> = Default::default();
    for hit in hits {
        by_call.entry(hit.call).or_default().push(hit);
    }
    let (mut retries, mut elsewhere) = (0u64, 0u64);
    for attempts in by_call.values() {
        for pair in attempts.windows(2) {
            if pair[0].failed {
                retries += 1;
                elsewhere += u64::from(pair[0].instance != pair[1].instance);
            }
        }
    }
    println!(
        "\n### retries to another instance: 5 instances, each failing 10 % of requests, 8 concurrent calls for {:.1} s\n",
        length.as_secs_f64()
    );
    println!("| calls | failed calls | retries | to another instance | share |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {retries} | {elsewhere} | **{:.2} %** |",
        run.calls,
        run.failed,
        100.0 * elsewhere as f64 / retries.max(1) as f64
    );
}

fn hedging(
    client_runtime: &tokio::runtime::Runtime,
    servers: &Servers,
    length: Duration,
    rounds: usize,
) {
    let instances = servers.start(
        5,
        Behaviour::Latency {
            base: Duration::from_millis(5),
            slow: Duration::from_millis(50),
            share: 0.02,
        },
    );
    let plain = Peer::Ours(
        ours(&instances, closed_breaker(), CallConfig::default()),
        "service://bench/".into(),
    );
    let hedged = Peer::Ours(
        ours(
            &instances,
            closed_breaker(),
            CallConfig {
                hedge_delay: Some(Duration::from_millis(10)),
                ..CallConfig::default()
            },
        ),
        "service://bench/".into(),
    );
    let mut results: [Vec<(Run, u64)>; 2] = [vec![], vec![]];
    client_runtime.block_on(async {
        for _ in 0..rounds {
            for (i, peer) in [&plain, &hedged].into_iter().enumerate() {
                servers.log.take();
                let run = load(peer, 16, length).await;
                let (requests, _) = servers.log.take();
                results[i].push((run, requests));
            }
        }
    });
    println!(
        "\n### hedging: 5 instances, 5 ms, 2 % of requests 50 ms; 16 concurrent calls, medians of {rounds} runs of {:.1} s\n",
        length.as_secs_f64()
    );
    println!("| | p50 ms | p99 ms | requests / calls | failed |");
    println!("|---|---:|---:|---:|---:|");
    let mut p99s = vec![];
    for (i, name) in ["no hedging (default)", "**hedge_delay 10 ms**"]
        .iter()
        .enumerate()
    {
        let runs = &results[i];
        let p99 = median(runs.iter().map(|(r, _)| r.p99_us / 1e3).collect());
        p99s.push(p99);
        println!(
            "| {name} | {:.1} | {p99:.1} | {:.3} | {} |",
            median(runs.iter().map(|(r, _)| r.p50_us / 1e3).collect()),
            median(
                runs.iter()
                    .map(|(r, n)| *n as f64 / r.calls as f64)
                    .collect()
            ),
            runs.iter().map(|(r, _)| r.failed).sum::<u64>(),
        );
    }
    println!(
        "\np99 improvement: {:.0} %",
        (1.0 - p99s[1] / p99s[0]) * 100.0
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (length, rounds) = if quick {
        (Duration::from_millis(300), 1)
    } else {
        (Duration::from_secs(3), 3)
    };
    let started = Instant::now();
    let servers = Servers::new();
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    budget(&client_runtime, &servers, length);
    other_instance(&client_runtime, &servers, length);
    hedging(&client_runtime, &servers, length, rounds);
    // Last: it installs the global subscriber.
    overhead(&client_runtime, &servers, length, rounds);
    println!(
        "\nsummary: the whole run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
