//! Dynamic config on embedded defaults, no cloud account: code defaults, a properties file
//! and the environment drive a property, a feature flag and a circuit breaker; an operator's
//! runtime override forces the breaker open and a bad value is refused.
//!
//! With `--moto` it also starts `moto_server` (PyPI `moto[server]`) on loopback, adds the
//! DynamoDB layer, and changes the breaker through the table as the `breakwater-config` CLI
//! does.
//!
//! Run: `cargo run -p breakwater-dyn-config --example embedded [-- --moto]`.

use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, FeatureFlag, Scope, hystrix};

const FORCE_OPEN: &str = "hystrix.command.payments.circuitBreaker.forceOpen";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::temp_dir().join(format!(
        "breakwater-embedded-{}.properties",
        std::process::id()
    ));
    std::fs::write(
        &file,
        "# shipped with the service\norders.timeoutMs = 800\nfeature.newCheckout = 10%\n",
    )?;
    let config = ConfigStore::from_env();
    config.load_file(&file)?;
    let timeout = config.property("orders.timeoutMs", 1000u64);
    let flag = FeatureFlag::new(&config, "feature.newCheckout", false);
    let registry = CircuitBreakerRegistry::new();
    let payments = registry.breaker("payments");
    let _binding = hystrix::bind(&config, &registry);
    let on = (0..1000)
        .filter(|i| flag.is_enabled_for(&format!("tenant-{i}")))
        .count();
    println!(
        "file + defaults: orders.timeoutMs = {} (from {}), newCheckout on for {on}/1000 tenants, payments {:?}",
        timeout.get(),
        config
            .effective("orders.timeoutMs")
            .map_or("code".into(), |s| s.origin.to_string()),
        payments.config().mode
    );

    config.set_override(FORCE_OPEN, "true");
    println!(
        "override forceOpen=true: payments {:?}",
        payments.config().mode
    );
    config.set_override("orders.timeoutMs", "soon");
    println!(
        "override orders.timeoutMs=soon: refused ({}); still {}",
        timeout
            .last_error()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        timeout.get()
    );
    config.clear_override(FORCE_OPEN);
    config.clear_override("orders.timeoutMs");
    println!("overrides cleared: payments {:?}", payments.config().mode);

    if std::env::args().any(|a| a == "--moto") {
        with_moto(&config, &payments).await?;
    }
    std::fs::remove_file(&file)?;
    Ok(())
}

async fn with_moto(
    config: &ConfigStore,
    payments: &breakwater_circuit_breaker::CircuitBreaker,
) -> Result<(), Box<dyn std::error::Error>> {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut moto = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start moto_server (pip install 'moto[server]'): {e}"))?;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "example"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build(),
    );
    let result = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while client.list_tables().send().await.is_err() {
            if std::time::Instant::now() > deadline {
                return Err("moto_server did not answer".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let admin = Admin::new(client.clone(), "breakwater-config");
        admin.create_tables(false).await?;
        let task = DynamoDbSource::new(client.clone(), "breakwater-config")
            .poll_interval(Duration::from_millis(500))
            .start(config.clone())
            .await?;
        let started = std::time::Instant::now();
        admin
            .write(FORCE_OPEN, &Scope::default(), Some("true"), "example", None)
            .await?;
        while payments.config().mode != breakwater_circuit_breaker::Mode::ForcedOpen {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "DynamoDB (moto on :{port}) forceOpen=true: payments {:?} after {:?}",
            payments.config().mode,
            started.elapsed()
        );
        task.abort();
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = moto.kill();
    let _ = moto.wait();
    result
}
