//! The event-stream engine behind `/hystrix.stream` and `/turbine.stream`.
//!
//! Cost does not grow with the number of watchers: a frame (every event of one tick) is built
//! once and shared by every client on the same interval, and compressed at most once. Clients
//! tick on a grid shared by all clients of an interval, so a hundred dashboards at 500 ms cost
//! two frames a second, not two hundred.
//!
//! Isolation: each client has a small queue of frames (by default 2). A client that does not
//! read fast enough misses frames rather than holding memory; one that reads nothing for the
//! stall timeout is disconnected (through [`crate::serve()`]'s connection handle when the
//! router runs there; otherwise its stream ends the next time it is polled). Everything a
//! client holds is freed when it goes.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use breakwater_server::{ConnectionLimit, ConnectionPermit};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::sync::{Mutex, mpsc};

use crate::metrics::Counting;
use crate::serve::ConnectionHandle;

/// A refused request: its status and the message that says why.
pub(crate) type Refusal = (StatusCode, String);

/// Something that writes one frame of events (`data: {json}\n\n` each).
pub trait FrameSource: Send + Sync + 'static {
    /// Appends the current events to `out`.
    fn write_frame(&self, out: &mut Vec<u8>);
}

impl<F> FrameSource for F
where
    F: Fn(&mut Vec<u8>) + Send + Sync + 'static,
{
    fn write_frame(&self, out: &mut Vec<u8>) {
        self(out)
    }
}

/// Settings of the stream endpoints.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Time between frames when the client gives no `?delay=` (Hystrix: 500 ms).
    pub interval: Duration,
    /// The smallest `?delay=` accepted.
    pub min_interval: Duration,
    /// The largest `?delay=` accepted.
    pub max_interval: Duration,
    /// Most stream connections at once, over all stream endpoints; more get 503 (Hystrix
    /// defaults to 5 with one thread per client; ours share frames, so the default is 128).
    pub max_connections: usize,
    /// Frames queued per client before frames are skipped for it.
    pub client_buffer: usize,
    /// A client that takes no frame for this long is disconnected.
    pub stall_timeout: Duration,
    /// Send `Content-Encoding: gzip` to clients that accept it (browsers do). Hystrix JSON
    /// shrinks about tenfold, which is most of the cost of a stream.
    pub gzip: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            interval: Duration::from_millis(500),
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(60),
            max_connections: 128,
            client_buffer: 2,
            stall_timeout: Duration::from_secs(10),
            gzip: true,
        }
    }
}

/// One tick's events, plain and (lazily) compressed.
struct Frame {
    built: Instant,
    plain: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Frame {
    fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| deflate_segment(&self.plain))
            .clone()
    }
}

/// The ten bytes that start a gzip stream (deflate, no name, unknown OS).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Raw deflate blocks for `plain` that end on a byte boundary (sync flush) and refer to nothing
/// before them: such segments can follow one another in one gzip stream, so one compressed
/// frame serves every client whatever it was sent before.
fn deflate_segment(plain: &[u8]) -> Bytes {
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(plain.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(plain).expect("write to Vec");
    encoder.flush().expect("flush to Vec");
    // Take the flushed bytes; the final block written when the encoder drops goes nowhere.
    Bytes::from(std::mem::take(encoder.get_mut()))
}

/// Runs `f` on the blocking pool; a panic in it goes on in the caller, as if run there.
/// `None` when the runtime is shutting down (and no stream is served any more).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Some(value),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_cancelled) => None,
        },
    }
}

/// A stream endpoint: one source, its frame cache and the shared connection cap.
#[derive(Clone)]
pub(crate) struct Streamer {
    source: Arc<dyn FrameSource>,
    cache: Arc<Mutex<Option<Arc<Frame>>>>,
    settings: Arc<StreamConfig>,
    connections: ConnectionLimit,
    counting: Counting,
}

// Clients of one interval wake together on multiples of it from this instant.
fn grid_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn next_tick(now: Instant, interval: Duration) -> Instant {
    let origin = grid_origin();
    let step = interval.as_nanos().max(1);
    let elapsed = now.saturating_duration_since(origin).as_nanos();
    let ticks = elapsed / step + 1;
    origin + Duration::from_nanos((ticks * step).min(u64::MAX as u128) as u64)
}

impl Streamer {
    pub(crate) fn new(
        source: Arc<dyn FrameSource>,
        settings: Arc<StreamConfig>,
        connections: ConnectionLimit,
        counting: Counting,
    ) -> Self {
        Streamer {
            source,
            cache: Arc::new(Mutex::new(None)),
            settings,
            connections,
            counting,
        }
    }

    /// The frame built at or after `not_before`, building it if needed (one builder at a time;
    /// the others wait and share it), compressed too when `gzip` is asked.
    ///
    /// Building and compressing run on tokio's blocking pool: a frame of 1,000 breakers takes
    /// milliseconds to write and longer to compress, which must not hold up the service's own
    /// tasks on the runtime's workers. (It also keeps the frames' large allocations on a
    /// thread or two instead of spreading them over every worker's allocator arena.)
    async fn frame(&self, not_before: Instant, gzip: bool) -> Option<Arc<Frame>> {
        let mut slot = self.cache.lock().await;
        let frame = match slot.as_ref() {
            Some(frame) if frame.built >= not_before => frame.clone(),
            previous => {
                let capacity = previous.map_or(4096, |f| f.plain.len() + 1024);
                let source = self.source.clone();
                let frame = blocking(move || {
                    let built = Instant::now();
                    #[cfg(target_os = "linux")]
                    let mut out = crate::zero_copy::frame_buffer(capacity);
                    #[cfg(not(target_os = "linux"))]
                    let mut out = Vec::with_capacity(capacity);
                    source.write_frame(&mut out);
                    // Large frames go out with sendfile from a memory file (Linux, under
                    // `serve`).
                    #[cfg(target_os = "linux")]
                    let plain = crate::zero_copy::frame_bytes(out);
                    #[cfg(not(target_os = "linux"))]
                    let plain = Bytes::from(out);
                    let frame = Frame {
                        built,
                        plain,
                        gzip: OnceLock::new(),
                    };
                    if gzip {
                        frame.gzip();
                    }
                    Arc::new(frame)
                })
                .await?;
                *slot = Some(frame.clone());
                frame
            }
        };
        if gzip && frame.gzip.get().is_none() {
            let compress = frame.clone();
            blocking(move || {
                compress.gzip();
            })
            .await?;
        }
        Some(frame)
    }

    /// Parses `?delay=` (milliseconds), as Hystrix's servlet does.
    pub(crate) fn interval(&self, delay: Option<&str>) -> Result<Duration, String> {
        let Some(delay) = delay else {
            return Ok(self.settings.interval);
        };
        let ms: u64 = delay.trim().parse().map_err(|_| {
            format!("query parameter `delay`: {delay:?} is not a whole number of milliseconds")
        })?;
        let interval = Duration::from_millis(ms);
        let (min, max) = (self.settings.min_interval, self.settings.max_interval);
        if interval < min || interval > max {
            return Err(format!(
                "query parameter `delay`: {ms} ms is outside {}..={} ms",
                min.as_millis(),
                max.as_millis()
            ));
        }
        Ok(interval)
    }

    /// Takes a connection slot, or answers 503 as Hystrix does past its cap.
    pub(crate) fn admit(&self) -> Result<ConnectionPermit, Refusal> {
        admit(&self.connections).inspect_err(|_| self.counting.refused("full"))
    }

    /// The streaming response for one client.
    pub(crate) fn respond(
        &self,
        request_headers: &HeaderMap,
        interval: Duration,
        permit: ConnectionPermit,
        connection: Option<ConnectionHandle>,
    ) -> Response {
        let gzip = self.settings.gzip && accepts_gzip(request_headers);
        let (tx, mut rx) = mpsc::channel::<Bytes>(self.settings.client_buffer.max(1));
        tokio::spawn(pump(self.clone(), tx, interval, gzip, permit, connection));
        let body = futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|frame| frame.map(Ok::<_, Infallible>))
        });
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream;charset=UTF-8"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        // Tell buffering reverse proxies (nginx) to pass events on at once.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// Takes a place under the stream connection cap, or answers 503 as Hystrix does past it.
pub(crate) fn admit(connections: &ConnectionLimit) -> Result<ConnectionPermit, Refusal> {
    connections.try_acquire().ok_or_else(|| {
        tracing::warn!(
            max = connections.max(),
            "stream connection refused: too many connections"
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("MaxConcurrentConnections reached: {}\n", connections.max()),
        )
    })
}

/// Feeds one client until it goes, stalls or the server stops.
async fn pump(
    streamer: Streamer,
    tx: mpsc::Sender<Bytes>,
    interval: Duration,
    gzip: bool,
    _permit: ConnectionPermit,
    connection: Option<ConnectionHandle>,
) {
    let counting = streamer.counting.clone();
    let _open = counting.opened();
    if gzip && tx.send(Bytes::from_static(&GZIP_HEADER)).await.is_err() {
        return;
    }
    // The first frame goes out at once; a recent enough one is shared.
    let mut not_before = Instant::now()
        .checked_sub(interval / 2)
        .unwrap_or_else(Instant::now);
    let mut stalled_since: Option<Instant> = None;
    loop {
        let Some(frame) = streamer.frame(not_before, gzip).await else {
            return;
        };
        let bytes = if gzip {
            frame.gzip()
        } else {
            frame.plain.clone()
        };
        let len = bytes.len();
        match tx.try_send(bytes) {
            Ok(()) => {
                stalled_since = None;
                counting.sent(len);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                counting.skipped();
                let now = Instant::now();
                let since = *stalled_since.get_or_insert(now);
                if now.duration_since(since) >= streamer.settings.stall_timeout {
                    tracing::info!(
                        stalled_for = ?now.duration_since(since),
                        "disconnecting a stream client that stopped reading"
                    );
                    counting.cut_off();
                    if let Some(connection) = &connection {
                        connection.close();
                    }
                    return;
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
        let tick = next_tick(Instant::now(), interval);
        tokio::select! {
            _ = tokio::time::sleep_until(tick.into()) => {}
            _ = tx.closed() => return,
        }
        // Every client waking on this tick shares the frame of this tick; a little slack
        // covers wake-up jitter.
        not_before = tick
            .checked_sub(Duration::from_millis(20).min(interval / 4))
            .unwrap_or(tick);
    }
}

/// True when `Accept-Encoding` lists gzip (or `*`) with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn deflate_segments_concatenate_into_one_gzip_stream() {
        let a = b"data: {\"name\":\"a\",\"requestCount\":1}\n\n".repeat(50);
        let b = b"data: {\"name\":\"b\",\"requestCount\":2}\n\n".repeat(50);
        let mut stream = GZIP_HEADER.to_vec();
        for part in [&a, &b, &a] {
            stream.extend_from_slice(&deflate_segment(part));
        }
        // The stream never ends (no final block or trailer), like a live one cut off.
        let mut decoder = flate2::read::GzDecoder::new(&stream[..]);
        let mut out = vec![0; a.len() * 2 + b.len()];
        decoder.read_exact(&mut out).unwrap();
        assert_eq!(out, [a.clone(), b, a].concat());
    }

    #[test]
    fn gzip_is_chosen_from_accept_encoding() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn ticks_fall_on_a_shared_grid() {
        let i = Duration::from_millis(500);
        grid_origin();
        let now = Instant::now();
        let a = next_tick(now, i);
        let b = next_tick(now + Duration::from_millis(3), i);
        assert!(a > now && a <= now + i);
        assert!(b == a || b == a + i);
        assert_eq!(next_tick(a, i), a + i);
    }
}
