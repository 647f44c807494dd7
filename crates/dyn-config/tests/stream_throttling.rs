//! Stream errors against moto, through a loopback proxy that can answer `GetRecords` with an
//! error: a throttled read backs off and reads on from the same position (no reopened
//! stream, no full scan); a trimmed-data error reopens the stream and reloads the table.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};
use common::proxy::{Faults, proxy};
use common::{ARRIVAL, Moto, eventually};

const SCAN: &str = "DynamoDB_20120810.Scan";
const GET_RECORDS: &str = "DynamoDBStreams_20120810.GetRecords";
const GET_SHARD_ITERATOR: &str = "DynamoDBStreams_20120810.GetShardIterator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_stream_reads_retry_without_a_full_reload() {
    let moto = Moto::start().await;
    let admin = Admin::new(moto.client(), "throttled");
    admin.create_tables(true).await.unwrap();
    admin
        .write("k", &Scope::default(), Some("1"), "t", None)
        .await
        .unwrap();

    let faults = Arc::new(Faults::default());
    let upstream: u16 = moto.url.rsplit(':').next().unwrap().parse().unwrap();
    let port = proxy(upstream, faults.clone());
    // The source talks to moto through the proxy; the SDK's own retries are off, so each
    // injected error reaches the source.
    let proxied = format!("http://127.0.0.1:{port}");
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        moto.streams_client()
            .config()
            .to_builder()
            .endpoint_url(&proxied)
            .retry_config(aws_sdk_dynamodbstreams::config::retry::RetryConfig::disabled())
            .build(),
    );
    let config = ConfigStore::new();
    let k = config.property("k", 0u32);
    let task = DynamoDbSource::new(common::client_for(port), "throttled")
        .streams(streams)
        .poll_interval(Duration::from_secs(600)) // no poll during the test: only the stream
        .stream_interval(Duration::from_millis(50))
        .start(config.clone())
        .await
        .unwrap();
    assert_eq!(k.get(), 1);
    let (scans, iterators) = (faults.count(SCAN), faults.count(GET_SHARD_ITERATOR));
    assert_eq!(scans, 1, "the first load");

    // Throttled: the change still arrives, from the same stream position, without a scan.
    *faults.error.lock().unwrap() = "LimitExceededException";
    let reads = faults.count(GET_RECORDS);
    faults.fail_get_records.store(3, Ordering::SeqCst);
    admin
        .write("k", &Scope::default(), Some("2"), "t", Some(1))
        .await
        .unwrap();
    assert!(
        eventually(ARRIVAL, || k.get() == 2).await.is_some(),
        "the change arrives after the throttling"
    );
    assert!(
        faults.count(GET_RECORDS) >= reads + 4,
        "read again after each error"
    );
    assert_eq!(faults.count(SCAN), scans, "no full reload after throttling");
    assert_eq!(
        faults.count(GET_SHARD_ITERATOR),
        iterators,
        "the stream was not opened again"
    );
    assert_eq!(
        faults.fail_get_records.load(Ordering::SeqCst),
        0,
        "every injected error was answered"
    );

    // Trimmed data: the position is lost, so the stream is opened again and the table
    // reloaded (which also brings a change made meanwhile).
    *faults.error.lock().unwrap() = "TrimmedDataAccessException";
    faults.fail_get_records.store(1, Ordering::SeqCst);
    assert!(
        eventually(ARRIVAL, || faults.count(SCAN) > scans)
            .await
            .is_some(),
        "a full reload after trimmed data"
    );
    assert!(faults.count(GET_SHARD_ITERATOR) > iterators, "reopened");
    admin
        .write("k", &Scope::default(), Some("3"), "t", Some(2))
        .await
        .unwrap();
    assert!(
        eventually(ARRIVAL, || k.get() == 3).await.is_some(),
        "the reopened stream delivers"
    );
    task.abort();
}
