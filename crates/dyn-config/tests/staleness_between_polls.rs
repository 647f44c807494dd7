//! The staleness gauge keeps counting while DynamoDB is down, between polls and whatever the
//! change detection (polling, Streams), and stops when the source's task is aborted (metrics
//! read back through metrics-util's debugging recorder, in a binary of its own).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};
use common::{ARRIVAL, Moto, eventually};
use metrics_util::debugging::{DebugValue, Snapshotter};

/// The staleness gauge of each table as last set since the previous snapshot (the debugging
/// recorder hands a gauge's value out once, then reads 0 until it is set again).
fn staleness(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let ("breakwater_config_staleness_seconds", DebugValue::Gauge(v)) =
            (key.key().name(), value)
        {
            let table = key
                .key()
                .labels()
                .find(|l| l.key() == "table")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            out.insert(table, v.into_inner());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_grows_between_polls_and_stops_with_the_task() {
    let snapshotter = common::debugging_recorder();

    let moto = Moto::start().await;
    for (table, streams) in [("polled", false), ("pushed", true)] {
        let admin = Admin::new(moto.client(), table);
        admin.create_tables(streams).await.unwrap();
        admin
            .write("k", &Scope::default(), Some("1"), "t", None)
            .await
            .unwrap();
    }
    // Polls far apart: during the test no poll happens, so only a ticker moves the gauge.
    let never = Duration::from_secs(600);
    let polled_config = ConfigStore::new();
    let polled = DynamoDbSource::new(moto.client(), "polled")
        .poll_interval(never)
        .start(polled_config.clone())
        .await
        .unwrap();
    let pushed_config = ConfigStore::new();
    let k = pushed_config.property("k", 0u32);
    let pushed = DynamoDbSource::new(moto.client(), "pushed")
        .streams(moto.streams_client())
        .poll_interval(never)
        .start(pushed_config.clone())
        .await
        .unwrap();
    // The pushed source does follow the stream.
    Admin::new(moto.client(), "pushed")
        .write("k", &Scope::default(), Some("2"), "t", Some(1))
        .await
        .unwrap();
    assert!(
        eventually(ARRIVAL, || k.get() == 2).await.is_some(),
        "the stream delivers"
    );

    drop(moto);
    // Two windows during the outage, 5 s apart, each 2 s long (the ticker sets the gauge every
    // second, so each window sees at least one setting even on a loaded machine); the largest
    // value seen in each is compared. Stream reads fail throughout; no poll runs.
    async fn window(snapshotter: &Snapshotter, length: Duration) -> HashMap<String, f64> {
        let mut most: HashMap<String, f64> = HashMap::new();
        let end = std::time::Instant::now() + length;
        while std::time::Instant::now() < end {
            for (table, v) in staleness(snapshotter) {
                let m = most.entry(table).or_insert(0.0);
                *m = m.max(v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        most
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    staleness(&snapshotter);
    let first = window(&snapshotter, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = window(&snapshotter, Duration::from_secs(2)).await;
    for table in ["polled", "pushed"] {
        let (a, b) = (
            first.get(table).copied().unwrap_or(0.0),
            second.get(table).copied().unwrap_or(0.0),
        );
        assert!(a > 0.5, "{table}: stale during the outage ({a} s)");
        assert!(
            b >= a + 2.0,
            "{table}: the gauge keeps growing between polls ({a} s, then {b} s)"
        );
    }
    assert_eq!(k.get(), 2, "the last good value stays");

    // Aborted: nothing sets the gauge any more (no ticker left behind).
    polled.abort();
    pushed.abort();
    assert!(polled.await.unwrap_err().is_cancelled());
    assert!(pushed.await.unwrap_err().is_cancelled());
    staleness(&snapshotter);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = staleness(&snapshotter);
    for table in ["polled", "pushed"] {
        assert_eq!(
            after.get(table).copied().unwrap_or(0.0),
            0.0,
            "{table}: not set after the abort"
        );
    }
}
