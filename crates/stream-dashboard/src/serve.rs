//! Serving a router with per-connection control, so a stalled stream client can be cut off.
//!
//! `axum::serve` works too, but it cannot close a connection whose client stopped reading:
//! hyper then waits on the socket and never polls the response body again. [`serve`] keeps a
//! [`ConnectionHandle`] per connection in the request's extensions; the stream endpoints use
//! it to drop such connections.
//!
//! On Linux it also sends large stream frames without a copy per client: a frame is written
//! once into a sealed memory file, and every connection's write of it becomes a `sendfile`
//! from that file (a hundred plain watchers of 1,000 breakers are 370 MB/s that the process
//! no longer copies into socket buffers itself).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Closes the connection it belongs to. Found in request extensions under [`serve`].
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Notify>);

impl ConnectionHandle {
    /// Drops the connection (at once, without a goodbye: its client stopped reading).
    pub fn close(&self) {
        self.0.notify_one();
    }
}

/// How long open connections get to finish after shutdown is asked for. Streams never
/// finish on their own, so this is short.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` completes, then closes
/// every connection within a second.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let handle = ConnectionHandle(Arc::new(Notify::new()));
        let service = router.clone().map_request({
            let handle = handle.clone();
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(handle.clone());
                request.map(axum::body::Body::new)
            }
        });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            // Stream frames are sent from memory files without a copy per client (Linux).
            #[cfg(target_os = "linux")]
            let stream = crate::zero_copy::ZeroCopyStream::new(stream);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                _ = handle.0.notified() => {
                    tracing::debug!(%peer, "connection closed by the server");
                }
                _ = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, connection).await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN * 2, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
