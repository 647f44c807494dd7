//! The connection pool every call goes out through: hyper-util's pooled client (HTTP/1.1 and
//! HTTP/2; TLS with feature `rustls`), with trace-context injection and a client span per
//! request (tracing-mw).

use std::time::Duration;

use breakwater_tracing_mw::{ClientLayer, ClientService, Formats};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Layer;

use crate::body::Body;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// The traced pooled client.
pub(crate) type Transport = ClientService<Client<Connector, Body>>;

/// Pool and connection settings (one pool per [`Client`](crate::Client)).
pub(crate) struct TransportConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) pool_max_idle_per_host: usize,
    pub(crate) formats: Formats,
}

pub(crate) fn transport(config: &TransportConfig) -> Transport {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(config.connect_timeout));
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
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(connector);
    ClientLayer::new(config.formats.clone()).layer(client)
}
