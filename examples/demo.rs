//! The live demo: a service runs as two instances that register in an embedded
//! Eureka-compatible registry; breakers guard three simulated dependencies that fail and
//! recover; their settings follow dynamic config (Hystrix property names); the dashboard finds
//! the instances through the registry; state and statistics print every second.
//!
//! `cargo run --release --example demo` (runs until Ctrl-C; `-- --seconds 20` to stop by itself,
//! `-- --port 8080` for another dashboard port).
//!
//! The service runs as two instances (replicas with their own breakers; the second one's
//! dependencies misbehave five seconds later than the first's). The dashboard, at the URL the
//! demo prints, shows each instance and both merged, Turbine-style; each instance also serves
//! its raw `/hystrix.stream`, which the stock Netflix Hystrix Dashboard can show.
//!
//! * `inventory` is healthy but for a 2% error rate; at 20 s into each minute an operator sets
//!   `hystrix.command.inventory.circuitBreaker.forceOpen=true` in the dynamic config (a runtime
//!   override here; the DynamoDB table and `breakwater-config` CLI in production) for 5 s, and
//!   both instances' breakers follow it.
//! * `payments` fails hard from 8 s to 18 s of each 30 s cycle: its breaker opens, probes every
//!   2 s (half-open), and closes when the dependency is back.
//! * `recommendations` turns slow from 5 s to 15 s of each 20 s cycle: calls time out after
//!   100 ms, the breaker opens on timeouts, and a fallback answers meanwhile.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use breakwater::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerRegistry, EventKind,
    Mode, Snapshot, bulkhead::BulkheadLayer, error::BoxError, fallback::FallbackLayer,
    timeout::TimeoutLayer,
};
use breakwater::discovery::{
    EurekaClient, EurekaClientConfig, Instance, InstanceRegistry, InstanceRegistryConfig, Port,
    Status,
};
use breakwater::dyn_config::{ConfigStore, hystrix};
use breakwater::stream_dashboard::{Dashboard, serve};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Seconds since the demo started, as the simulated dependencies see it.
fn phase(start: Instant, cycle_secs: u64) -> f64 {
    start.elapsed().as_secs_f64() % cycle_secs as f64
}

/// A cheap deterministic "random" number in [0, 1) per call.
fn unit(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

async fn dependency(name: &'static str, start: Instant, n: u64) -> Result<String, BoxError> {
    match name {
        "inventory" => {
            tokio::time::sleep(Duration::from_millis(2 + n % 5)).await;
            if unit(n) < 0.02 {
                return Err("inventory: 500 Internal Server Error".into());
            }
            Ok("12 in stock".into())
        }
        "payments" => {
            tokio::time::sleep(Duration::from_millis(10 + n % 20)).await;
            if (8.0..18.0).contains(&phase(start, 30)) {
                return Err("payments: connection refused".into());
            }
            Ok("authorised".into())
        }
        _ => {
            let slow = (5.0..15.0).contains(&phase(start, 20));
            let ms = if slow { 150 + n % 100 } else { 5 + n % 30 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok("personalised picks".into())
        }
    }
}

/// The full stack, in Hystrix's order: fallback, breaker, bulkhead, timeout.
fn guarded(
    breaker: CircuitBreaker,
    name: &'static str,
    start: Instant,
) -> impl Service<u64, Response = String, Error = BoxError, Future: Send> + Clone + Send {
    let fallback = FallbackLayer::new(&breaker, move |_e: BoxError| async move {
        if name == "recommendations" {
            Ok("bestsellers (fallback)".to_string())
        } else {
            Err::<String, BoxError>("no fallback for this dependency".into())
        }
    });
    ServiceBuilder::new()
        .layer(fallback)
        .layer(CircuitBreakerLayer::new(&breaker))
        .layer(BulkheadLayer::new(breaker.bulkhead()))
        .layer(TimeoutLayer::new(&breaker))
        .service(service_fn(move |n: u64| dependency(name, start, n)))
}

fn row(s: &Snapshot) -> String {
    let state = match s.mode {
        Mode::Normal => s.state.as_str().to_uppercase(),
        other => other.as_str().to_uppercase(),
    };
    let window = match s.config.window {
        breakwater::circuit_breaker::Window::Time { length, .. } => length.as_secs_f64(),
        _ => 10.0,
    };
    let r = &s.rolling;
    format!(
        "{:<16} {:<13} {:>6.1} {:>5}% {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>7.1} {:>7.1} {:>4}",
        s.name,
        state,
        r.requests() as f64 / window,
        r.error_percentage(),
        r.success,
        r.failure,
        r.timeout,
        r.short_circuited,
        r.rejected,
        r.fallback_success,
        s.latency_execute.at(50.0).unwrap_or_default().as_secs_f64() * 1e3,
        s.latency_execute.at(99.0).unwrap_or_default().as_secs_f64() * 1e3,
        s.concurrent_calls,
    )
}

/// One instance of the service: its breakers, and callers driving ~50 calls per second into
/// each dependency. `lag` shifts when its dependencies misbehave.
fn start_instance(lag: Duration) -> CircuitBreakerRegistry {
    let start = Instant::now().checked_sub(lag).unwrap_or_else(Instant::now);
    let registry = CircuitBreakerRegistry::new();
    let fast_recovery = CircuitBreakerConfig {
        sleep_window: Duration::from_secs(2),
        timeout: Some(Duration::from_millis(100)),
        max_concurrent_calls: 20,
        ..CircuitBreakerConfig::default()
    };
    let names = ["inventory", "payments", "recommendations"];
    for name in names {
        registry
            .breaker_with(name, fast_recovery.clone())
            .expect("valid settings");
    }
    for (i, name) in names.into_iter().enumerate() {
        let breaker = registry.get(name).expect("registered above");
        let service = guarded(breaker, name, start);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            let mut n = i as u64 * 1_000_000;
            loop {
                ticker.tick().await;
                n += 1;
                let call = service.clone().oneshot(n);
                tokio::spawn(async move {
                    let _ = call.await;
                });
            }
        });
    }
    registry
}

fn flag(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
}

/// Binds `port` on loopback, or any free port when it is taken.
async fn bind(port: u16) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("port {port} is not free ({error}); using another");
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free loopback port")
        }
    }
}

#[tokio::main]
async fn main() {
    let seconds = flag("--seconds");
    let port = flag("--port").unwrap_or(7979) as u16;
    let start = Instant::now();
    let registry = start_instance(Duration::ZERO);
    let replica = start_instance(Duration::from_secs(5));

    // The embedded Eureka-compatible registry, as local development would run it.
    let eureka_listener = bind(0).await;
    let eureka_url = format!(
        "http://{}/eureka/",
        eureka_listener.local_addr().expect("bound")
    );
    let eureka = std::sync::Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    tokio::spawn(serve(
        eureka_listener,
        breakwater::discovery::server::router(eureka.clone()),
        std::future::pending(),
    ));
    let eureka_config = || EurekaClientConfig {
        service_urls: vec![eureka_url.clone()],
        renewal_interval: Duration::from_secs(5),
        registry_fetch_interval: Duration::from_secs(1),
        ..EurekaClientConfig::default()
    };

    // The replica's stream, on a port of its own as a second process would have it.
    let replica_listener = bind(0).await;
    let replica_address = replica_listener.local_addr().expect("bound");
    tokio::spawn(serve(
        replica_listener,
        Dashboard::new().registry(replica.clone()).router(),
        std::future::pending(),
    ));
    // This instance serves the dashboard as well as its own stream.
    let listener = bind(port).await;
    let address = listener.local_addr().expect("bound");

    // Both instances register (and heartbeat); their stream URL is in their metadata.
    let mut registrations = Vec::new();
    for (id, at) in [("demo-1", address), ("demo-2", replica_address)] {
        let mut instance = Instance {
            instance_id: id.into(),
            app: "DEMO-SERVICE".into(),
            host_name: "127.0.0.1".into(),
            ip_addr: "127.0.0.1".into(),
            status: Status::Up,
            port: Some(Port {
                port: at.port(),
                enabled: true,
            }),
            vip_address: Some("demo-service".into()),
            home_page_url: Some(format!("http://{at}/")),
            ..Instance::default()
        };
        instance.metadata.insert(
            "hystrix.stream".into(),
            format!("http://{at}/hystrix.stream"),
        );
        let client = EurekaClient::new(eureka_config(), Some(instance)).expect("valid settings");
        registrations.push(client.start());
    }
    // The dashboard discovers the instances through the registry.
    let discovery = EurekaClient::new(eureka_config(), None).expect("valid settings");
    let discovering = discovery.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let streams: Vec<String> = loop {
        let found: Vec<String> = discovery
            .instances("DEMO-SERVICE")
            .iter()
            .filter_map(|i| i.metadata.get("hystrix.stream").cloned())
            .collect();
        if found.len() == 2 || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let own_url = format!("http://{address}/hystrix.stream");
    let dashboard = Dashboard::new()
        .registry(registry.clone())
        .instances(streams.iter().map(|u| u.parse().expect("a URL")));
    tokio::spawn(serve(listener, dashboard.router(), std::future::pending()));
    let banner = format!(
        "dashboard: http://{address}/   (Hystrix stream: {own_url}; Eureka: {eureka_url}apps, {} instances of DEMO-SERVICE)",
        streams.len()
    );
    println!("{banner}");

    // Dynamic config: both instances' breakers follow the Hystrix property names.
    let config = ConfigStore::new();
    let _bindings = [
        hystrix::bind(&config, &registry),
        hystrix::bind(&config, &replica),
    ];
    const FORCE_OPEN: &str = "hystrix.command.inventory.circuitBreaker.forceOpen";
    let forced = config.property(FORCE_OPEN, false);
    // An operator: at 20 s of each minute, force `inventory` open for 5 s, through config.
    {
        let config = config.clone();
        tokio::spawn(async move {
            loop {
                let at = phase(start, 60);
                let force = (20.0..25.0).contains(&at);
                config.set_override(FORCE_OPEN, force.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    // State transitions, as an on-call engineer's log would show them.
    let mut events = registry.subscribe();
    let mut log: Vec<String> = Vec::new();
    let terminal = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        while let Ok(event) = events.try_recv() {
            let what = match event.kind {
                EventKind::StateTransition { from, to } => format!("{from} -> {to}"),
                EventKind::ModeChanged { from, to } => {
                    format!("mode {} -> {}", from.as_str(), to.as_str())
                }
                _ => "settings changed".to_string(),
            };
            log.push(format!(
                "{:>6.1}s  {:<16} {what}",
                start.elapsed().as_secs_f64(),
                event.breaker
            ));
        }
        let mut out = String::new();
        if terminal {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!(
            "breakwater demo: {:.0}s (Ctrl-C to stop); rolling 10 s window\n{banner}\nconfig: {FORCE_OPEN} = {}\n\ninstance 1 of 2:\n",
            start.elapsed().as_secs_f64(),
            forced.get()
        ));
        out.push_str(&format!(
            "{:<16} {:<13} {:>6} {:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>7} {:>7} {:>4}\n",
            "breaker",
            "state",
            "req/s",
            "err",
            "ok",
            "fail",
            "t/o",
            "short",
            "rej",
            "fb-ok",
            "p50 ms",
            "p99 ms",
            "now"
        ));
        for snapshot in registry.snapshot() {
            out.push_str(&row(&snapshot));
            out.push('\n');
        }
        out.push_str("\nrecent transitions:\n");
        for line in log.iter().rev().take(8) {
            out.push_str(line);
            out.push('\n');
        }
        if !terminal {
            out.push_str("----\n");
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        if seconds.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
            break;
        }
    }
    // Leave the registry cleanly, as a service does on shutdown.
    for running in registrations {
        let _ = running.shutdown().await;
    }
    let _ = discovering.shutdown().await;
}
