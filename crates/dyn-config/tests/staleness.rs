//! While DynamoDB is unreachable, the staleness gauge grows and poll errors are counted
//! (metrics read back through metrics-util's debugging recorder).

mod common;

use std::time::Duration;

use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};
use common::Moto;
use metrics_util::debugging::DebugValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_is_exposed_while_dynamodb_is_down() {
    let snapshotter = common::debugging_recorder();

    let moto = Moto::start().await;
    let admin = Admin::new(moto.client(), "stale");
    admin.create_tables(false).await.unwrap();
    admin
        .write("k", &Scope::default(), Some("1"), "t", None)
        .await
        .unwrap();
    let config = ConfigStore::new();
    let k = config.property("k", 0u32);
    let task = DynamoDbSource::new(moto.client(), "stale")
        .poll_interval(Duration::from_millis(50))
        .start(config.clone())
        .await
        .unwrap();
    drop(moto);
    // The debugging recorder reports what changed since the last snapshot: accumulate.
    let (mut staleness, mut errors) = (0.0f64, 0u64);
    let mut read = || {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            match (key.key().name(), value) {
                ("breakwater_config_staleness_seconds", DebugValue::Gauge(v)) => {
                    staleness = staleness.max(v.into_inner())
                }
                ("breakwater_config_poll_errors_total", DebugValue::Counter(n)) => errors += n,
                _ => {}
            }
        }
        (staleness, errors)
    };
    // A failed poll includes the SDK's own retries (seconds), so allow for a few. The gauge is
    // set on each failed poll, so the first failure may come before half a second has passed:
    // wait for later ones too.
    let started = std::time::Instant::now();
    let (mut stale, mut failed) = read();
    while (failed < 1 || stale <= 0.5) && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (stale, failed) = read();
    }
    assert_eq!(k.get(), 1, "the last good value stays");
    assert!(failed >= 1, "failed polls are counted");
    assert!(
        stale > 0.5,
        "the gauge shows the values getting stale ({stale} s)"
    );
    task.abort();
}
