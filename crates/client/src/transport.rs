//! The connection pools calls go out through: hyper-util's pooled client (HTTP/1.1 and
//! HTTP/2; TLS with feature `rustls`), with trace-context injection and a client span per
//! request (tracing-mw), and a connect timeout that can change at run time.
//!
//! Each service gets its own pool (so its `ConnectTimeout` is its own); the TLS set-up is made
//! once per [`Client`](crate::Client) and shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use breakwater_circuit_breaker::error::BoxError;
use breakwater_tracing_mw::{ClientLayer, ClientService, Formats};
use futures::future::BoxFuture;
use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::{Layer, Service};

use crate::body::Body;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// The traced pooled client.
pub(crate) type Transport = ClientService<Client<Timed<Connector>, Body>>;

/// How long a connection (TCP, and TLS when the URL is `https`) may take to open; shared by a
/// pool and whoever changes it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectTimeout(Arc<AtomicU64>);

impl ConnectTimeout {
    pub(crate) fn new(after: Duration) -> Self {
        ConnectTimeout(Arc::new(AtomicU64::new(nanos(after))))
    }
    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Relaxed))
    }
    pub(crate) fn set(&self, after: Duration) {
        self.0.store(nanos(after), Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A connection that did not open in time.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub(crate) struct ConnectTimedOut(Duration);

/// A connector bounded by a [`ConnectTimeout`] read at each connect.
#[derive(Clone)]
pub(crate) struct Timed<C> {
    inner: C,
    timeout: ConnectTimeout,
}

impl<C> Service<Uri> for Timed<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<C::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let after = self.timeout.get();
        let connect = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(after, connect).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(ConnectTimedOut(after).into()),
            }
        })
    }
}

/// Pool and connection settings, and the connector every pool of a client starts from.
#[derive(Clone)]
pub(crate) struct Transports {
    connector: Connector,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    formats: Formats,
}

impl Transports {
    pub(crate) fn new(
        pool_idle_timeout: Duration,
        pool_max_idle_per_host: usize,
        formats: Formats,
    ) -> Self {
        Transports {
            connector: connector(),
            pool_idle_timeout,
            pool_max_idle_per_host,
            formats,
        }
    }

    /// A new pool whose connections open within `timeout`.
    pub(crate) fn pool(&self, timeout: ConnectTimeout) -> Transport {
        let connector = Timed {
            inner: self.connector.clone(),
            timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector);
        ClientLayer::new(self.formats.clone()).layer(client)
    }
}

fn connector() -> Connector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    #[cfg(feature = "rustls")]
    let connector = {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // Machines without a certificate store still get a client; https calls then fail
        // with the verifier's error, naming the URL.
        let builder = match builder.with_native_roots() {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(%error, "no platform root certificates: https calls will fail");
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http)
    };
    #[cfg(not(feature = "rustls"))]
    let connector = http;
    connector
}
