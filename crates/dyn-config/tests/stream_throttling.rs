//! Stream errors against moto, through a loopback proxy that can answer `GetRecords` with an
//! error: a throttled read backs off and reads on from the same position (no reopened
//! stream, no full scan); a trimmed-data error reopens the stream and reloads the table.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater_dyn_config::admin::Admin;
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};
use common::{ARRIVAL, Moto, eventually};

/// What the proxy saw and what it should do next.
#[derive(Default)]
struct Faults {
    /// Requests by `X-Amz-Target` (e.g. `DynamoDB_20120810.Scan`).
    seen: Mutex<HashMap<String, usize>>,
    /// How many `GetRecords` to answer with `error` instead of forwarding.
    fail_get_records: AtomicUsize,
    error: Mutex<&'static str>,
}

impl Faults {
    fn count(&self, target: &str) -> usize {
        self.seen.lock().unwrap().get(target).copied().unwrap_or(0)
    }
}

/// An HTTP/1.1 proxy in front of moto on `127.0.0.1:<upstream>` (a thread per connection,
/// one upstream connection per request); returns its port.
fn proxy(upstream: u16, faults: Arc<Faults>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let faults = faults.clone();
            std::thread::spawn(move || {
                let _ = serve(client, upstream, &faults);
            });
        }
    });
    port
}

fn serve(client: TcpStream, upstream: u16, faults: &Faults) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        // The request head.
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(()); // the client closed the connection
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let header = |name: &str| {
            head.iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        let target = header("x-amz-target").unwrap_or_default();
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        *faults
            .seen
            .lock()
            .unwrap()
            .entry(target.clone())
            .or_default() += 1;

        let fail = target.ends_with(".GetRecords")
            && faults
                .fail_get_records
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let (status, content_type, payload) = if fail {
            let error = *faults.error.lock().unwrap();
            let payload = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error}","message":"injected by the test proxy"}}"#
            );
            (
                "HTTP/1.1 400 Bad Request".to_owned(),
                "application/x-amz-json-1.0".to_owned(),
                payload.into_bytes(),
            )
        } else {
            forward(upstream, &head, &body)?
        };
        write!(
            client,
            "{status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            payload.len()
        )?;
        client.write_all(&payload)?;
        client.flush()?;
    }
}

/// Sends one request to moto and reads its whole answer: (status line, content type, body).
fn forward(
    upstream: u16,
    head: &[String],
    body: &[u8],
) -> std::io::Result<(String, String, Vec<u8>)> {
    let mut moto = TcpStream::connect(("127.0.0.1", upstream))?;
    for line in head {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            moto.write_all(line.as_bytes())?;
        }
    }
    moto.write_all(b"connection: close\r\n\r\n")?;
    moto.write_all(body)?;
    let mut answer = Vec::new();
    moto.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut payload = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let mut content_type = String::from("application/x-amz-json-1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            "transfer-encoding" if value.trim().eq_ignore_ascii_case("chunked") => {
                payload = unchunk(&payload)
            }
            _ => {}
        }
    }
    Ok((status, content_type, payload))
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

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
