//! Zero-copy fan-out of stream frames (Linux): the kernel sends one copy of a frame to every
//! client instead of copying it from user space once per client.
//!
//! A plain frame of a thousand breakers is megabytes, sent to every watcher twice a second,
//! and copying it into socket buffers once per watcher was the largest part of the server's
//! CPU (`benches/README.md` has the profile). So a large frame is also written once into a
//! sealed in-memory file
//! (`memfd_create(2)`), and connections served by [`crate::serve()`] send it with
//! `sendfile(2)`, which hands the file's pages to the socket without copying them.
//!
//! How a write finds the file: a frame's [`Bytes`] own their memory together with the file and
//! are registered by address while alive. When hyper writes a run of slices that lies inside a
//! registered frame (with hyper's chunk framing around it, which the file holds too), the run
//! goes out as one `sendfile` from the matching offset. Anything else (other bodies, response
//! heads, framing that does not match byte for byte) is written as usual. The bytes on the
//! wire are the same either way: the file holds exactly the bytes it stands in for, and it is
//! sealed, so pages still referenced by socket buffers never change.

use std::fs::File;
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Frames smaller than this are not worth a file of their own.
const MIN_BYTES: usize = 64 * 1024;

/// What follows a chunk's data in HTTP/1.1 chunked encoding.
const CHUNK_END: &[u8] = b"\r\n";

/// A registered frame: where its bytes are in memory, and the file holding
/// `header + bytes + CHUNK_END`.
struct Region {
    start: usize,
    len: usize,
    /// The chunk header hyper writes before these bytes as one chunk (`{len:X}\r\n`).
    header: Box<[u8]>,
    file: Arc<File>,
}

impl Region {
    fn holds(&self, slice: &[u8]) -> bool {
        let at = slice.as_ptr() as usize;
        !slice.is_empty() && at >= self.start && at + slice.len() <= self.start + self.len
    }
}

static REGIONS: Mutex<Vec<Region>> = Mutex::new(Vec::new());

/// Bytes sent with `sendfile` since the process started: counted for tests only.
#[cfg(test)]
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes sent from frame files so far.
#[cfg(test)]
fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

fn regions() -> std::sync::MutexGuard<'static, Vec<Region>> {
    REGIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A frame's memory, kept registered (with its file) for as long as any `Bytes` of it lives.
struct Owner {
    data: Vec<u8>,
}

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let start = self.data.as_ptr() as usize;
        // Unregistered before the memory is reused, so an address never names stale bytes.
        regions().retain(|r| r.start != start);
        let mut spare = spare();
        if spare.len() < MAX_SPARE {
            spare.push(std::mem::take(&mut self.data));
        }
    }
}

/// Frame buffers kept for the next frames. Frames are built on one thread and freed on
/// another; reusing their buffers spares the allocator a megabyte-sized allocation and free
/// per tick, which it would otherwise place in whichever thread's arena is at hand.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A frame is replaced every tick and freed once its clients have sent it: two spare buffers
/// cover one interval's frames in flight.
const MAX_SPARE: usize = 2;

fn spare() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    SPARE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An empty buffer for a frame of about `capacity` bytes: a spare one when there is one.
pub(crate) fn frame_buffer(capacity: usize) -> Vec<u8> {
    if capacity >= MIN_BYTES
        && let Some(mut buffer) = spare().pop()
    {
        buffer.clear();
        buffer.reserve_exact(capacity);
        return buffer;
    }
    Vec::with_capacity(capacity)
}

/// The frame as `Bytes`, backed by a sealed memory file when it is large enough for that to
/// pay (and the file can be made; otherwise plain bytes).
pub(crate) fn frame_bytes(data: Vec<u8>) -> Bytes {
    if data.len() < MIN_BYTES {
        return Bytes::from(data);
    }
    let header = format!("{:X}\r\n", data.len())
        .into_bytes()
        .into_boxed_slice();
    let file = match frame_file(&header, &data) {
        Ok(file) => file,
        Err(error) => {
            tracing::debug!(%error, "no memory file for a frame; it is copied per client");
            return Bytes::from(data);
        }
    };
    let region = Region {
        start: data.as_ptr() as usize,
        len: data.len(),
        header,
        file: Arc::new(file),
    };
    regions().push(region);
    Bytes::from_owner(Owner { data })
}

fn frame_file(header: &[u8], data: &[u8]) -> io::Result<File> {
    let fd = rustix::fs::memfd_create(
        "breakwater-frame",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(header)?;
    file.write_all(data)?;
    file.write_all(CHUNK_END)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    Ok(file)
}

/// How to write the start of a vectored write.
#[derive(Debug)]
enum Plan {
    /// `len` bytes of `file` from `offset` stand for the first slices.
    File {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
    /// Write the first `n` slices as usual; a frame's bytes follow them.
    Before(usize),
}

/// Which part of `bufs` (from its start) can come from a frame file, if any.
fn plan(bufs: &[IoSlice<'_>]) -> Option<Plan> {
    let regions = regions();
    if regions.is_empty() {
        return None;
    }
    let (i, region) = bufs
        .iter()
        .enumerate()
        .find_map(|(i, buf)| regions.iter().find(|r| r.holds(buf)).map(|r| (i, r)))?;
    let slice: &[u8] = &bufs[i];
    let at = slice.as_ptr() as usize;
    let mut offset = region.header.len() + (at - region.start);
    let mut len = slice.len();
    if i > 0 {
        // hyper's chunk header right before the frame's first byte goes out with it.
        let before: &[u8] = &bufs[i - 1];
        let is_header = at == region.start && !before.is_empty() && region.header.ends_with(before);
        match (is_header, i) {
            (true, 1) => {
                offset -= before.len();
                len += before.len();
            }
            (true, _) => return Some(Plan::Before(i - 1)),
            (false, _) => return Some(Plan::Before(i)),
        }
    }
    if at + slice.len() == region.start + region.len
        && let Some(after) = bufs.get(i + 1)
        && !after.is_empty()
        && CHUNK_END.starts_with(after)
    {
        len += after.len();
    }
    Some(Plan::File {
        file: region.file.clone(),
        offset: offset as u64,
        len,
    })
}

/// A TCP connection that sends registered frames with `sendfile`.
#[derive(Debug)]
pub(crate) struct ZeroCopyStream(TcpStream);

impl ZeroCopyStream {
    pub(crate) fn new(stream: TcpStream) -> Self {
        ZeroCopyStream(stream)
    }

    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            let sent = self.0.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(&self.0, file, Some(&mut at), len).map_err(io::Error::from)
            });
            match sent {
                // The file always holds the range asked for: no progress means a broken file.
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    #[cfg(test)]
                    SENT.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match plan(bufs) {
            Some(Plan::File { file, offset, len }) => self.poll_send_file(cx, &file, offset, len),
            Some(Plan::Before(n)) => Pin::new(&mut self.0).poll_write_vectored(cx, &bufs[..n]),
            None => Pin::new(&mut self.0).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn file_range(plan: &Plan) -> (u64, usize) {
        match plan {
            Plan::File { offset, len, .. } => (*offset, *len),
            Plan::Before(n) => panic!("expected a file range, got Before({n})"),
        }
    }

    #[test]
    fn writes_of_a_frame_map_onto_its_file() {
        let _serial = serial();
        let bytes = frame_bytes(frame(100_000, 1));
        let header = b"186A0\r\n".to_vec();
        let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let hl = header.len() as u64;
        // hyper's chunk: header, data, CRLF: all one range of the file.
        let chunk = [
            IoSlice::new(&header),
            IoSlice::new(&bytes),
            IoSlice::new(CHUNK_END),
        ];
        assert_eq!(file_range(&plan(&chunk).unwrap()), (0, 100_000 + 9));
        // Resumed part-way through the data.
        let rest = [IoSlice::new(&bytes[500..]), IoSlice::new(CHUNK_END)];
        assert_eq!(
            file_range(&plan(&rest).unwrap()),
            (hl + 500, 100_000 - 500 + 2)
        );
        // A slice in the middle (HTTP/2 DATA frames): only that slice.
        let middle = [IoSlice::new(&bytes[10..20]), IoSlice::new(CHUNK_END)];
        assert_eq!(file_range(&plan(&middle).unwrap()), (hl + 10, 10));
        // Something else first: written as usual, up to the chunk header.
        let after_head = [
            IoSlice::new(&head),
            IoSlice::new(&header),
            IoSlice::new(&bytes),
        ];
        assert!(matches!(plan(&after_head), Some(Plan::Before(1))));
        // A header that is not this frame's does not go out from the file.
        let other = b"FFFF\r\n".to_vec();
        let wrong = [IoSlice::new(&other), IoSlice::new(&bytes)];
        assert!(matches!(plan(&wrong), Some(Plan::Before(1))));
        // Bytes of no frame.
        let plain = frame(100, 2);
        assert!(plan(&[IoSlice::new(&plain)]).is_none());
    }

    /// The tests that count sent bytes or spare buffers run one at a time (and a test's
    /// runtime is gone, with every frame it held, before the next one starts).
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn small_frames_and_dropped_frames_are_not_registered() {
        let _serial = serial();
        spare().clear();
        let small = frame_bytes(frame(1000, 3));
        assert!(plan(&[IoSlice::new(&small)]).is_none());
        let big = frame_bytes(frame(MIN_BYTES, 4));
        let start = big.as_ptr() as usize;
        let copy = big.clone();
        drop(big);
        assert!(
            regions().iter().any(|r| r.start == start),
            "a clone keeps it"
        );
        drop(copy);
        assert!(regions().iter().all(|r| r.start != start));
        // Its buffer serves the next frame.
        let next = frame_buffer(MIN_BYTES);
        assert_eq!(next.as_ptr() as usize, start);
        assert!(next.is_empty());
    }

    #[test]
    fn frames_arrive_intact_through_sendfile() {
        let _serial = serial();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(send_frames());
        // Dropping the runtime waits for its tasks and blocking threads, frames and all.
        drop(runtime);
    }

    async fn send_frames() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frames: Vec<Bytes> = (0..3).map(|i| frame_bytes(frame(700_000, i))).collect();
        let expected: Vec<u8> = frames
            .iter()
            .flat_map(|f| {
                let mut chunk = format!("{:X}\r\n", f.len()).into_bytes();
                chunk.extend_from_slice(f);
                chunk.extend_from_slice(CHUNK_END);
                chunk
            })
            .collect();
        let before = bytes_sent();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = ZeroCopyStream::new(socket);
            for f in &frames {
                let header = format!("{:X}\r\n", f.len()).into_bytes();
                let (mut h, mut d, mut e) = (&header[..], &f[..], CHUNK_END);
                // As hyper writes: vectored, resuming after partial writes.
                while !(h.is_empty() && d.is_empty() && e.is_empty()) {
                    let bufs = [IoSlice::new(h), IoSlice::new(d), IoSlice::new(e)];
                    let mut n = socket.write_vectored(&bufs).await.unwrap();
                    for part in [&mut h, &mut d, &mut e] {
                        let k = n.min(part.len());
                        *part = &part[k..];
                        n -= k;
                    }
                }
            }
            socket.shutdown().await.unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut received = Vec::new();
        // Read slowly at first so the sender meets a full socket buffer.
        let mut buf = vec![0; 4096];
        for _ in 0..50 {
            let n = client.read(&mut buf).await.unwrap();
            received.extend_from_slice(&buf[..n]);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        client.read_to_end(&mut received).await.unwrap();
        server.await.unwrap();
        assert!(received == expected, "the bytes differ");
        assert_eq!(
            bytes_sent() - before,
            expected.len() as u64,
            "every byte, framing included, went out by sendfile"
        );

        // The same through `serve` and hyper's own chunked encoding: a /hystrix.stream frame of
        // 200 breakers (~360 kB) leaves in one range of its file, chunk header and end
        // included. (One test function, so no other test sends files meanwhile.)
        use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerRegistry};
        use http_body_util::BodyExt;
        let registry = CircuitBreakerRegistry::new();
        for i in 0..200 {
            registry
                .register(CircuitBreaker::builder(format!("command-{i:03}")))
                .unwrap();
        }
        let router = crate::Dashboard::new().registry(registry).router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hystrix.stream?delay=60000",
            listener.local_addr().unwrap()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, router, async {
            let _ = stopped.await;
        }));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<Bytes>>();
        let before = bytes_sent();
        let response = client.get(url.parse().unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut data = Vec::new();
        let last = b"\"name\":\"command-199\"";
        while !(data.ends_with(b"\n\n") && data.windows(last.len()).any(|w| w == last)) {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
                .await
                .expect("a frame within 5 s")
                .unwrap()
                .unwrap();
            data.extend_from_slice(&frame.into_data().unwrap_or_default());
        }
        // Whatever of this first frame is still on its way (the next is a minute off).
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(std::time::Duration::from_millis(300), body.frame()).await
        {
            data.extend_from_slice(&frame.into_data().unwrap_or_default());
        }
        let text = std::str::from_utf8(&data).unwrap();
        assert_eq!(text.matches("\"type\":\"HystrixCommand\"").count(), 200);
        let framed = format!("{:X}\r\n", data.len()).len() + data.len() + CHUNK_END.len();
        assert_eq!(bytes_sent() - before, framed as u64);
        drop(body);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
