//! The serve loop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::limit::ConnectionLimit;

/// Settings of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A new connection must have sent its first request's headers within this, and on
    /// HTTP/1.1 each later request's headers must arrive within it once begun. Default 10 s.
    pub header_read_timeout: Duration,
    /// Most connections open at once; past it a new connection is closed as soon as it is
    /// accepted. Default 1024.
    pub max_connections: usize,
    /// After shutdown is asked for, how long open connections get to finish their requests
    /// before they are closed. Default 5 s.
    pub drain: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// Closes the connection it belongs to. Every request served by [`serve`] carries one in its
/// extensions.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Notify>);

impl ConnectionHandle {
    /// Drops the connection at once, without a goodbye (its client stopped reading, say).
    pub fn close(&self) {
        self.0.notify_one();
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` completes, then lets
/// open connections finish for [`ServeConfig::drain`] and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    config: ServeConfig,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, config, |stream| stream).await
}

/// [`serve`], with each accepted connection passed through `wrap` first (to count its bytes,
/// or to send some of them another way).
pub async fn serve_with<Io>(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    config: ServeConfig,
    wrap: impl Fn(TcpStream) -> Io,
) -> std::io::Result<()>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    let limit = ConnectionLimit::new(config.max_connections);
    let mut last_refusal_logged: Option<Instant> = None;
    let mut refused_since_log = 0u64;
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
        let Some(permit) = limit.try_acquire() else {
            drop(stream);
            refused_since_log += 1;
            // One line per 10 s at most: a flood of connections must not flood the log too.
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    max = limit.max(),
                    refused = refused_since_log,
                    "connections refused: too many open"
                );
                last_refusal_logged = Some(Instant::now());
                refused_since_log = 0;
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handle = ConnectionHandle(Arc::new(Notify::new()));
        let requested = Arc::new(AtomicBool::new(false));
        let service = router.clone().map_request({
            let handle = handle.clone();
            let requested = requested.clone();
            move |mut request: Request<hyper::body::Incoming>| {
                requested.store(true, Ordering::Release);
                request.extensions_mut().insert(handle.clone());
                request.map(axum::body::Body::new)
            }
        });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let mut stop = stop_rx.clone();
        let io = TokioIo::new(wrap(stream));
        let header_read_timeout = config.header_read_timeout;
        let drain = config.drain;
        tasks.spawn(async move {
            let _permit = permit;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection_with_upgrades(io, service);
            let mut connection = std::pin::pin!(connection);
            // Until its first request, nothing of hyper's times a connection out (HTTP
            // version detection waits for bytes): this deadline does.
            let first_request = tokio::time::sleep(header_read_timeout);
            let mut first_request = std::pin::pin!(first_request);
            let mut waiting_for_first = true;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = handle.0.notified() => {
                        tracing::debug!(%peer, "connection closed by the server");
                        break;
                    }
                    _ = &mut first_request, if waiting_for_first => {
                        if !requested.load(Ordering::Acquire) {
                            tracing::debug!(%peer, "no request within the header read timeout; closed");
                            break;
                        }
                        waiting_for_first = false;
                    }
                    _ = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(drain, connection.as_mut()).await;
                        break;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(config.drain + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
