//! The dashboard page in headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/browser/`; `scripts/test.sh` installs both). Traffic makes a breaker open and
//! close again while the page watches; the page's DOM must show both, and a screenshot is
//! kept in `test-artifacts/dashboard.png`. With feature `balance`, a balancer's instances too,
//! seen through a dashboard that follows the instance (`test-artifacts/dashboard-balancers.png`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod common;

use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerRegistry,
};
use breakwater_stream_dashboard::Dashboard;
use common::Server;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::{Layer, ServiceExt, service_fn};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium's path, after checking that it and playwright-core are installed.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: run `bash scripts/test.sh`, which installs Debian's `chromium`"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run `bash scripts/test.sh` (npm ci there)",
        browser_dir().display()
    );
    chromium
}

/// A fresh screenshot path in `test-artifacts/`.
fn screenshot(name: &str) -> PathBuf {
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join(name);
    let _ = std::fs::remove_file(&screenshot);
    screenshot
}

/// Runs `dashboard-e2e.mjs` with `args`, handing each line it prints to `on_line`; fails the
/// test unless it ends well and printed every one of `expected`. Checks the screenshot.
async fn run_page(
    args: &[&str],
    screenshot: &std::path::Path,
    expected: &[&str],
    mut on_line: impl FnMut(&str),
) {
    let mut node = tokio::process::Command::new("node")
        .current_dir(browser_dir())
        .arg("dashboard-e2e.mjs")
        .args(args)
        .arg("--screenshot")
        .arg(screenshot)
        .args(["--timeout-ms", "60000"])
        .env("CHROMIUM_PATH", chromium())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (installed with the machine; see scripts/test.sh)");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("browser: {line}");
            on_line(&line);
            seen.push(line);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the browser test did not finish in 90 s; it said {seen:?}"
    );
    let status = node.wait().await.unwrap();
    assert!(status.success(), "the browser test failed: {seen:?}");
    for expected in expected {
        assert!(
            seen.iter().any(|l| l == expected),
            "no {expected:?} in {seen:?}"
        );
    }
    let png = std::fs::read(screenshot).expect("a screenshot was kept");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is a real PNG"
    );
}

async fn dependency(fail: bool) -> Result<(), BoxError> {
    if fail { Err("down".into()) } else { Ok(()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_a_breaker_open_and_close_again() {
    chromium();
    let registry = CircuitBreakerRegistry::new();
    let config = CircuitBreakerConfig {
        request_volume_threshold: 5,
        sleep_window: Duration::from_secs(2),
        ..CircuitBreakerConfig::default()
    };
    let breaker = registry
        .register(
            CircuitBreaker::builder("payments")
                .group("billing")
                .config(config),
        )
        .unwrap();
    registry.breaker("inventory");
    let _bulkhead = breaker.bulkhead();
    let server = Server::start(Dashboard::new().registry(registry).router()).await;

    // Succeed until the page shows the breaker (closed), fail until it shows it open, then
    // succeed so it closes again: the page sees CLOSED -> OPEN -> ... -> CLOSED.
    let page_saw_card = Arc::new(AtomicBool::new(false));
    let page_saw_open = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let page_saw_card = page_saw_card.clone();
        let page_saw_open = page_saw_open.clone();
        async move {
            loop {
                let fail =
                    page_saw_card.load(Ordering::Relaxed) && !page_saw_open.load(Ordering::Relaxed);
                let service = CircuitBreakerLayer::new(&breaker).layer(service_fn(dependency));
                let _ = service.oneshot(fail).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let shot = screenshot("dashboard.png");
    let url = server.url("/");
    run_page(
        &["--url", &url, "--command", "payments"],
        &shot,
        &["SAW CARD", "SAW OPEN", "SAW CLOSED", "OK"],
        |line| match line {
            "SAW CARD" => page_saw_card.store(true, Ordering::Relaxed),
            "SAW OPEN" => page_saw_open.store(true, Ordering::Relaxed),
            _ => {}
        },
    )
    .await;
    traffic.abort();
}

/// The instances behind a balancer, on the page of a dashboard that follows the instance's
/// stream: one ejected (until when), the others active with their share, none as a command.
#[cfg(feature = "balance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_each_upstream_instance() {
    chromium();
    let (_balancer, _list) = common::fleet::payments_with_one_ejected().await;
    let instance = common::fleet::instance_dashboard().await;
    let follower = Server::start(
        Dashboard::new()
            .instances([instance.url("/hystrix.stream").parse().unwrap()])
            .router(),
    )
    .await;
    let shot = screenshot("dashboard-balancers.png");
    let url = follower.url("/");
    run_page(
        &[
            "--url",
            &url,
            "--balancer",
            "payments",
            "--ejected",
            common::fleet::FAILING,
        ],
        &shot,
        &["SAW BALANCER", "OK"],
        |_| {},
    )
    .await;
}
