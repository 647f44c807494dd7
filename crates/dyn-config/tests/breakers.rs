//! End to end: an operator sets Hystrix properties with the `breakwater-config` CLI in the
//! DynamoDB table (moto_server), and a running breaker follows them.

mod common;

use std::process::Command;
use std::time::Duration;

use breakwater_circuit_breaker::{CircuitBreakerLayer, CircuitBreakerRegistry, Mode};
use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, hystrix};
use common::{ARRIVAL, Moto, eventually};
use tower::{Layer, ServiceExt, service_fn};

fn cli(moto: &Moto, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_breakwater-config"))
        .args([
            "--table",
            "breakers",
            "--endpoint-url",
            &moto.url,
            "--region",
            "us-east-1",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the CLI runs")
}

async fn call(registry: &CircuitBreakerRegistry) -> Result<(), String> {
    let breaker = registry.breaker("payments");
    CircuitBreakerLayer::new(&breaker)
        .layer(service_fn(|()| async { Ok::<_, std::io::Error>(()) }))
        .oneshot(())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_open_set_with_the_cli_short_circuits_the_breaker() {
    let moto = Moto::start().await;
    let out = cli(&moto, &["init"]);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let registry = CircuitBreakerRegistry::new();
    let breaker = registry.breaker("payments");
    let config = ConfigStore::new();
    let _binding = hystrix::bind(&config, &registry);
    let task = DynamoDbSource::new(moto.client(), "breakers")
        .poll_interval(Duration::from_millis(200))
        .start(config.clone())
        .await
        .unwrap();
    assert!(call(&registry).await.is_ok(), "closed: calls go through");

    let out = cli(
        &moto,
        &[
            "set",
            "hystrix.command.payments.circuitBreaker.forceOpen",
            "true",
            "--who",
            "sre",
        ],
    );
    assert!(
        out.status.success(),
        "set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = eventually(ARRIVAL, || breaker.config().mode == Mode::ForcedOpen).await;
    assert!(opened.is_some(), "the breaker follows forceOpen");
    let refused = call(&registry).await.expect_err("short-circuited");
    assert!(refused.to_lowercase().contains("open"), "{refused}");

    // The default applies to every command; the command's own key wins over it.
    let out = cli(
        &moto,
        &[
            "set",
            "hystrix.command.default.circuitBreaker.sleepWindowInMilliseconds",
            "750",
        ],
    );
    assert!(out.status.success());
    let slept = eventually(ARRIVAL, || {
        breaker.config().sleep_window == Duration::from_millis(750)
    })
    .await;
    assert!(slept.is_some(), "default.* applies");

    // The CLI refuses what the key cannot take, and writes nothing.
    let out = cli(
        &moto,
        &[
            "set",
            "hystrix.command.payments.circuitBreaker.errorThresholdPercentage",
            "150",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0 to 100") && stderr.contains("nothing was written"),
        "{stderr}"
    );

    // JSON output, and lifting the force closes the breaker again.
    let out = cli(
        &moto,
        &[
            "--output",
            "json",
            "get",
            "hystrix.command.payments.circuitBreaker.forceOpen",
        ],
    );
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(row["value"], "true");
    assert_eq!(row["updated_by"], "sre");
    assert_eq!(row["version"], 1);
    let out = cli(
        &moto,
        &[
            "set",
            "hystrix.command.payments.circuitBreaker.forceOpen",
            "false",
            "--expect-version",
            "1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed = eventually(ARRIVAL, || breaker.config().mode == Mode::Normal).await;
    assert!(closed.is_some());
    assert!(call(&registry).await.is_ok());

    // A stale expected version is a conflict that names who wrote it.
    let out = cli(
        &moto,
        &[
            "set",
            "hystrix.command.payments.circuitBreaker.forceOpen",
            "true",
            "--expect-version",
            "1",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 2"));

    let history = Admin::new(moto.client(), "breakers")
        .history(
            "hystrix.command.payments.circuitBreaker.forceOpen",
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    task.abort();
}
