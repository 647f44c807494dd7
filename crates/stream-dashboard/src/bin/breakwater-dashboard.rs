//! `breakwater-dashboard`: the stream dashboard as a standalone server, typically following
//! the `/hystrix.stream` of many instances and merging them Turbine-style.
//!
//! Every flag has a matching environment variable; it binds to 127.0.0.1 unless told
//! otherwise and stops gracefully on SIGTERM or Ctrl-C.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use breakwater_stream_dashboard::{Dashboard, OriginAllowList, StreamConfig};
use clap::Parser;
use http::Uri;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Hystrix stream dashboard and Turbine-style aggregator"
)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "BREAKWATER_DASHBOARD_BIND",
        default_value = "127.0.0.1:7979"
    )]
    bind: SocketAddr,
    /// A `/hystrix.stream` URL to follow and merge (repeat, or comma-separate in the variable).
    #[arg(
        long = "instance",
        env = "BREAKWATER_DASHBOARD_INSTANCES",
        value_delimiter = ','
    )]
    instances: Vec<Uri>,
    /// `host:port` (or `host:*`) that `/proxy.stream` may relay (repeatable).
    #[arg(
        long = "proxy-allow",
        env = "BREAKWATER_DASHBOARD_PROXY_ALLOW",
        value_delimiter = ','
    )]
    proxy_allow: Vec<String>,
    /// A page origin (`https://ops.example.com`) allowed to read the routes from a browser
    /// (repeatable; none by default).
    #[arg(
        long = "cors-origin",
        env = "BREAKWATER_DASHBOARD_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Like --proxy-allow, and the caller's `authorization` parameter is sent on there.
    #[arg(
        long = "proxy-allow-with-credentials",
        env = "BREAKWATER_DASHBOARD_PROXY_ALLOW_WITH_CREDENTIALS",
        value_delimiter = ','
    )]
    proxy_allow_with_credentials: Vec<String>,
    /// Require this bearer token on every route (needed to listen beyond loopback).
    #[arg(long, env = "BREAKWATER_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Listen beyond loopback with no token: anyone who can reach the address can watch the
    /// streams and use the proxy.
    #[arg(long, env = "BREAKWATER_DASHBOARD_INSECURE_LISTEN_WITHOUT_TOKEN")]
    insecure_listen_without_token: bool,
    /// Most stream connections at once.
    #[arg(
        long,
        env = "BREAKWATER_DASHBOARD_MAX_CONNECTIONS",
        default_value_t = 128
    )]
    max_connections: usize,
    /// Default time between frames, in milliseconds.
    #[arg(long, env = "BREAKWATER_DASHBOARD_INTERVAL_MS", default_value_t = 500)]
    interval_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Err(refused) = breakwater_server::check_exposure(
        args.bind,
        args.token.as_deref(),
        args.insecure_listen_without_token,
    ) {
        eprintln!("breakwater-dashboard: {refused}");
        std::process::exit(2);
    }
    let mut allow = OriginAllowList::new();
    for entry in &args.proxy_allow {
        allow = allow.allow(entry)?;
    }
    for entry in &args.proxy_allow_with_credentials {
        allow = allow.allow_with_credentials(entry)?;
    }
    let settings = StreamConfig {
        interval: Duration::from_millis(args.interval_ms),
        max_connections: args.max_connections,
        ..StreamConfig::default()
    };
    let mut dashboard = Dashboard::new()
        .instances(args.instances)
        .proxy_allow_list(allow)
        .stream_config(settings);
    if let Some(token) = args.token {
        dashboard = dashboard.bearer_token(token);
    }
    for origin in &args.cors_origins {
        dashboard = dashboard.allow_cors_origin(origin)?;
    }
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    tracing::info!("dashboard on http://{}/", listener.local_addr()?);
    breakwater_stream_dashboard::serve(
        listener,
        dashboard.router(),
        breakwater_server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
