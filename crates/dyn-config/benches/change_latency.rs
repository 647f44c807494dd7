//! Write -> callback latency for both change-detection modes: a value written through
//! `Admin` (as the CLI does) against a real DynamoDB API (moto_server on loopback) until the
//! property's `on_change` callback runs, (1) polling every 1 s (writes land at random moments
//! within the poll cycle) and (2) following the table's DynamoDB Stream (polling every 60 s,
//! so only the stream delivers). Prints each distribution.
//!
//! Run: `cargo bench -p breakwater-dyn-config --bench change_latency` (needs `moto[server]`).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};

/// Writes per mode (`CHANGE_LATENCY_WRITES` overrides).
const WRITES: usize = 100;
const POLL: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` ask for this
    }
    let writes: usize = std::env::var("CHANGE_LATENCY_WRITES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(WRITES);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut moto = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts (pip install 'moto[server]')");
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.list_tables().send().await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build(),
    );
    for streamed in [false, true] {
        let table = if streamed {
            "latency-streams"
        } else {
            "latency-poll"
        };
        let admin = Admin::new(client.clone(), table);
        admin.create_tables(streamed).await.unwrap();
        let config = ConfigStore::new();
        let value = config.property("bench.value", 0u64);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        value.on_change(move |v| {
            let _ = tx.send((*v, Instant::now()));
        });
        let mut source = DynamoDbSource::new(client.clone(), table);
        source = if streamed {
            source
                .streams(streams.clone())
                .poll_interval(Duration::from_secs(60))
        } else {
            source.poll_interval(POLL)
        };
        let task = source.start(config.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut latencies = Vec::with_capacity(writes);
        for i in 1..=writes as u64 {
            tokio::time::sleep(Duration::from_millis(fastrand_ms())).await;
            // From the moment the operator's write is sent (its own round trips included).
            let written = Instant::now();
            admin
                .write(
                    "bench.value",
                    &Scope::default(),
                    Some(&i.to_string()),
                    "bench",
                    None,
                )
                .await
                .unwrap();
            loop {
                let (v, at) = rx.recv().await.unwrap();
                if v == i {
                    latencies.push(at.duration_since(written));
                    break;
                }
            }
        }
        task.abort();
        latencies.sort();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        let mode = if streamed {
            "DynamoDB Streams".to_owned()
        } else {
            format!("polling every {POLL:?}")
        };
        println!(
            "{mode}, {writes} writes: write -> callback p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            pct(0.50),
            pct(0.90),
            pct(0.99),
            latencies.last().unwrap()
        );
    }
    let _ = moto.kill();
    let _ = moto.wait();
}

/// A pseudo-random pause of 0..1000 ms, so writes fall anywhere in the poll cycle.
fn fastrand_ms() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) % 1000
}
