//! Load run of the stream dashboard: 1,000 breakers streamed to 100 concurrent clients at
//! 2 Hz (Hystrix's default 500 ms), reporting the server's CPU share and memory over time.
//!
//! Run: `cargo bench --bench stream_load` (about 3.5 minutes; `-- --secs 20` for shorter
//! phases). The server runs in a child process (this same binary, re-executed), so its CPU
//! and memory are read from `/proc/<pid>` apart from the clients' own cost. The child also
//! drives traffic through every breaker, so the counts change on every frame as in a real
//! service; its CPU with no clients is measured first as the baseline, and the dashboard's
//! share is the difference.
//!
//! Phases, side by side in one run:
//! 1. baseline: traffic, no stream clients;
//! 2. 100 clients without compression (what `curl` or Turbine's Java client asks for);
//! 3. 100 clients accepting gzip (what browsers' `EventSource` asks for).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BREAKERS: usize = 1000;
const BULKHEADS: usize = 50;
const CLIENTS: usize = 100;
const ROLE: &str = "BREAKWATER_STREAM_LOAD_ROLE";

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("server") {
        server();
        return;
    }
    // `cargo bench` passes `--bench`; take `--secs N` for the phase length.
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    driver(Duration::from_secs(secs));
}

async fn dependency(fail: bool) -> Result<(), breakwater_circuit_breaker::error::BoxError> {
    if fail { Err("boom".into()) } else { Ok(()) }
}

/// The child: a service with 1,000 breakers under traffic and the dashboard on defaults.
fn server() {
    use breakwater_circuit_breaker::{CircuitBreakerLayer, CircuitBreakerRegistry};
    use tower::{Layer, ServiceExt, service_fn};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = CircuitBreakerRegistry::new();
        let breakers: Vec<_> = (0..BREAKERS)
            .map(|i| {
                registry
                    .register(
                        breakwater_circuit_breaker::CircuitBreaker::builder(format!(
                            "command-{i:04}"
                        ))
                        .group(format!("group-{:02}", i % BULKHEADS)),
                    )
                    .unwrap()
            })
            .collect();
        for i in 0..BULKHEADS {
            registry.bulkhead(format!("group-{i:02}"));
        }
        // 100 calls every 10 ms, round robin: 10 calls per breaker per second, 2% failing,
        // so every event changes between frames.
        tokio::spawn(async move {
            let mut n = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                for _ in 0..100 {
                    let breaker = &breakers[n % BREAKERS];
                    n += 1;
                    let service = CircuitBreakerLayer::new(breaker).layer(service_fn(dependency));
                    let _ = service.oneshot(n.is_multiple_of(50)).await;
                }
            }
        });
        let router = breakwater_stream_dashboard::Dashboard::new()
            .registry(registry)
            .router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        // Stop when the parent closes our stdin.
        let stop = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        });
        breakwater_stream_dashboard::serve(listener, router, async {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });
}

struct Sample {
    at: Instant,
    cpu_ticks: u64,
    sys_ticks: u64,
    rss_kib: u64,
    /// Frame files (memfds) the server holds open: their pages are memory too, outside RSS.
    memfd_kib: u64,
}

fn memfd_kib(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("/memfd:"))
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .map(|meta| meta.len().div_ceil(1024))
        .sum()
}

fn sample(pid: u32) -> Sample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().unwrap();
    let stime: u64 = fields[12].parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Sample {
        at: Instant::now(),
        cpu_ticks: utime + stime,
        sys_ticks: stime,
        rss_kib,
        memfd_kib: memfd_kib(pid),
    }
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Phase {
    name: &'static str,
    cpu_percent: f64,
    sys_percent: f64,
    rss_start_kib: u64,
    rss_end_kib: u64,
    rss_max_kib: u64,
    memfd_max_kib: u64,
    frames_per_client_per_sec: f64,
    mib_per_sec: f64,
}

/// Watches the child for `length`, printing a line every 5 s.
fn watch(
    name: &'static str,
    pid: u32,
    length: Duration,
    frames: &AtomicU64,
    bytes: &AtomicU64,
    clients: usize,
) -> Phase {
    let hz = clock_ticks_per_sec();
    let first = sample(pid);
    let (f0, b0) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    );
    let mut last = sample(pid);
    let mut rss_max = first.rss_kib;
    let mut memfd_max = first.memfd_kib;
    println!("  {name}:");
    while first.at.elapsed() < length {
        std::thread::sleep(Duration::from_secs(5).min(length));
        let now = sample(pid);
        let cpu = (now.cpu_ticks - last.cpu_ticks) as f64
            / hz
            / now.at.duration_since(last.at).as_secs_f64()
            * 100.0;
        rss_max = rss_max.max(now.rss_kib);
        memfd_max = memfd_max.max(now.memfd_kib);
        println!(
            "    t={:>4.0}s  cpu {:>5.1}% of one core  rss {:>7} KiB  frame files {:>6} KiB",
            now.at.duration_since(first.at).as_secs_f64(),
            cpu,
            now.rss_kib,
            now.memfd_kib
        );
        last = now;
    }
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    let frames = (frames.load(Ordering::Relaxed) - f0) as f64;
    let bytes = (bytes.load(Ordering::Relaxed) - b0) as f64;
    Phase {
        name,
        cpu_percent: (last.cpu_ticks - first.cpu_ticks) as f64 / hz / elapsed * 100.0,
        sys_percent: (last.sys_ticks - first.sys_ticks) as f64 / hz / elapsed * 100.0,
        rss_start_kib: first.rss_kib,
        rss_end_kib: last.rss_kib,
        rss_max_kib: rss_max,
        memfd_max_kib: memfd_max,
        frames_per_client_per_sec: if clients == 0 {
            0.0
        } else {
            frames / clients as f64 / elapsed
        },
        mib_per_sec: bytes / elapsed / (1 << 20) as f64,
    }
}

/// Opens `CLIENTS` streams and counts what arrives until `stop` is set.
fn clients(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    gzip: bool,
    frames: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    (0..CLIENTS)
        .map(|_| {
            let client = client.clone();
            let (frames, bytes) = (frames.clone(), bytes.clone());
            runtime.spawn(async move {
                let mut request =
                    http::Request::get(format!("http://127.0.0.1:{port}/hystrix.stream"));
                if gzip {
                    request = request.header("accept-encoding", "gzip, deflate, br");
                }
                let response = client
                    .request(request.body(Empty::new()).unwrap())
                    .await
                    .expect("stream opens");
                assert_eq!(response.status(), 200, "stream refused");
                let mut body = response.into_body();
                // A frame is one write of the server's: count data chunks by the last event's
                // name in plain streams; in gzip ones count the sync-flush markers that end
                // each frame's compressed segment.
                let marker: Vec<u8> = if gzip {
                    vec![0, 0, 0xff, 0xff]
                } else {
                    format!("\"name\":\"command-{:04}\"", BREAKERS - 1).into_bytes()
                };
                let finder = memchr::memmem::Finder::new(&marker);
                let mut tail = Vec::new();
                while let Some(Ok(frame)) = body.frame().await {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    tail.extend_from_slice(&data);
                    let seen = finder.find_iter(&tail).count();
                    frames.fetch_add(seen as u64, Ordering::Relaxed);
                    let keep = tail.len().min(marker.len() - 1);
                    tail.drain(..tail.len() - keep);
                }
            })
        })
        .collect()
}

fn driver(length: Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut child: Child = Command::new(exe)
        .env(ROLE, "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    println!(
        "stream_load: {BREAKERS} breakers + {BULKHEADS} bulkheads, {CLIENTS} clients at 500 ms, server pid {pid} on 127.0.0.1:{port}"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Let the breakers fill their windows.
    std::thread::sleep(Duration::from_secs(3));
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    // The baseline runs past the breakers' 60 s percentile window, in which their latency
    // histograms fill their checkpoint rings (memory grows, then stays flat).
    let baseline = Duration::from_secs(70).min(length + Duration::from_secs(10));
    let mut phases = vec![watch(
        "baseline: traffic, no clients",
        pid,
        baseline,
        &frames,
        &bytes,
        0,
    )];
    for (name, gzip) in [
        ("100 clients, plain (curl, Turbine)", false),
        ("100 clients, gzip (browsers)", true),
    ] {
        let tasks = clients(&runtime, port, gzip, frames.clone(), bytes.clone());
        std::thread::sleep(Duration::from_secs(2));
        phases.push(watch(name, pid, length, &frames, &bytes, CLIENTS));
        for task in tasks {
            task.abort();
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    drop(child.stdin.take());
    let _ = child.wait();

    let baseline = phases[0].cpu_percent;
    println!();
    println!(
        "| phase | server CPU (% of one core) | of which kernel | dashboard share (minus baseline) | RSS start → end (max), MiB | frame files max, MiB | frames/s per client | MiB/s sent |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for p in &phases {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} → {:.1} ({:.1}) | {:.1} | {:.2} | {:.1} |",
            p.name,
            p.cpu_percent,
            p.sys_percent,
            p.cpu_percent - baseline,
            p.rss_start_kib as f64 / 1024.0,
            p.rss_end_kib as f64 / 1024.0,
            p.rss_max_kib as f64 / 1024.0,
            p.memfd_max_kib as f64 / 1024.0,
            p.frames_per_client_per_sec,
            p.mib_per_sec
        );
    }
}
