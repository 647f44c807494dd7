//! An HTTP/1.1 proxy in front of moto that injects what moto does not do: throttled stream
//! reads, trimmed data, tables that take a while to become ACTIVE.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy saw and what it should do next.
#[derive(Default)]
pub struct Faults {
    /// Requests by `X-Amz-Target` (e.g. `DynamoDB_20120810.Scan`).
    pub seen: Mutex<HashMap<String, usize>>,
    /// How many `GetRecords` to answer with `error` instead of forwarding.
    pub fail_get_records: AtomicUsize,
    pub error: Mutex<&'static str>,
    /// How many `DescribeTable` answers say `CREATING` instead of `ACTIVE`; until they have
    /// been given, every call on a table's items is answered `ResourceNotFoundException`, as
    /// DynamoDB answers for a table that is still being created.
    pub creating_for: AtomicUsize,
}

impl Faults {
    pub fn count(&self, target: &str) -> usize {
        self.seen.lock().unwrap().get(target).copied().unwrap_or(0)
    }
}

/// An HTTP/1.1 proxy in front of moto on `127.0.0.1:<upstream>` (a thread per connection,
/// one upstream connection per request); returns its port.
pub fn proxy(upstream: u16, faults: Arc<Faults>) -> u16 {
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
        let creating = faults.creating_for.load(Ordering::SeqCst) > 0;
        let describing = target.ends_with(".DescribeTable");
        let on_items = [
            ".PutItem",
            ".GetItem",
            ".Query",
            ".Scan",
            ".TransactWriteItems",
            ".UpdateItem",
        ]
        .iter()
        .any(|op| target.ends_with(op));
        let (status, content_type, payload) = if creating && describing {
            faults.creating_for.fetch_sub(1, Ordering::SeqCst);
            let (status, content_type, payload) = forward(upstream, &head, &body)?;
            let text = String::from_utf8_lossy(&payload).replace("\"ACTIVE\"", "\"CREATING\"");
            (status, content_type, text.into_bytes())
        } else if creating && on_items {
            (
                "HTTP/1.1 400 Bad Request".to_owned(),
                "application/x-amz-json-1.0".to_owned(),
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found (the test proxy: still CREATING)"}"#.to_vec(),
            )
        } else if fail {
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
