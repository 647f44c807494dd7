//! Serving a router with per-connection control, so a stalled stream client can be cut off.
//!
//! `axum::serve` works too, but it cannot close a connection whose client stopped reading:
//! hyper then waits on the socket and never polls the response body again. [`serve`] runs
//! [`breakwater_server::serve`], which puts a [`ConnectionHandle`] in every request's
//! extensions; the stream endpoints use it to drop such connections. It also has what every
//! server of ours has: a header-read timeout, a connection cap and a graceful drain.
//!
//! On Linux it also sends large stream frames without a copy per client: a frame is written
//! once into a sealed memory file, and every connection's write of it becomes a `sendfile`
//! from that file.

use std::future::Future;
use std::time::Duration;

use axum::Router;
pub use breakwater_server::ConnectionHandle;
pub use breakwater_server::ServeConfig;
use tokio::net::TcpListener;

/// How long open connections get to finish after shutdown is asked for. Streams never
/// finish on their own, so this is short.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` completes, then closes
/// every connection within a second. The settings are [`ServeConfig::default`]'s but for the
/// drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = ServeConfig {
        drain: DRAIN,
        ..ServeConfig::default()
    };
    serve_with_config(listener, router, shutdown, config).await
}

/// [`serve`] with settings of its own (header-read timeout, connection cap, drain).
pub async fn serve_with_config(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    config: ServeConfig,
) -> std::io::Result<()> {
    // Stream frames are sent from memory files without a copy per client (Linux).
    #[cfg(target_os = "linux")]
    return breakwater_server::serve_with(
        listener,
        router,
        shutdown,
        config,
        crate::zero_copy::ZeroCopyStream::new,
    )
    .await;
    #[cfg(not(target_os = "linux"))]
    return breakwater_server::serve(listener, router, shutdown, config).await;
}
