//! `breakwater-eureka`: the embedded Eureka-compatible registry as a standalone server, for
//! local development and tests. Every flag has a matching environment variable; it binds to
//! 127.0.0.1 unless told otherwise and stops gracefully on SIGTERM or Ctrl-C.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Eureka-compatible registry (REST API under /eureka and /eureka/v2)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "BREAKWATER_EUREKA_BIND", default_value = "127.0.0.1:8761")]
    bind: SocketAddr,
    /// Self-preservation holds evictions while fewer than this share (0..=1) of the
    /// instances renewed in the last minute.
    #[arg(
        long,
        env = "BREAKWATER_EUREKA_RENEWAL_PERCENT_THRESHOLD",
        default_value_t = 0.85
    )]
    renewal_percent_threshold: f64,
    /// Turn self-preservation off (evict expired leases even when many stop renewing).
    #[arg(long, env = "BREAKWATER_EUREKA_NO_SELF_PRESERVATION")]
    no_self_preservation: bool,
    /// Require this token on every request: the password of basic auth (what Eureka clients
    /// send for `http://user:TOKEN@host:8761/eureka/`) or `Authorization: Bearer`. Needed to
    /// listen beyond loopback.
    #[arg(long, env = "BREAKWATER_EUREKA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// With a token: reads (GET) need none, only writes do.
    #[arg(long, env = "BREAKWATER_EUREKA_OPEN_READS")]
    open_reads: bool,
    /// Listen beyond loopback with no token: anyone who can reach the address can register,
    /// deregister and take over instances.
    #[arg(long, env = "BREAKWATER_EUREKA_INSECURE_LISTEN_WITHOUT_TOKEN")]
    insecure_listen_without_token: bool,
    /// Most connections open at once.
    #[arg(
        long,
        env = "BREAKWATER_EUREKA_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    max_connections: usize,
    /// A connection must have sent a request's headers within this many milliseconds.
    #[arg(
        long,
        env = "BREAKWATER_EUREKA_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_read_timeout_ms: u64,
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
        eprintln!("breakwater-eureka: {refused}");
        std::process::exit(2);
    }
    let config = InstanceRegistryConfig {
        self_preservation: !args.no_self_preservation,
        renewal_percent_threshold: args.renewal_percent_threshold,
        ..InstanceRegistryConfig::default()
    };
    if let Err(reason) = config.check() {
        eprintln!("breakwater-eureka: {reason}");
        std::process::exit(2);
    }
    let registry = Arc::new(InstanceRegistry::new(config));
    let eviction = breakwater_discovery::server::spawn_eviction(registry.clone());
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    tracing::info!(
        "Eureka registry on http://{}/eureka/",
        listener.local_addr()?
    );
    let mut router = breakwater_discovery::server::router(registry);
    if let Some(token) = args.token.filter(|t| !t.is_empty()) {
        router = if args.open_reads {
            breakwater_server::require_token_for_writes(router, token)
        } else {
            breakwater_server::require_token(router, token, &[])
        };
    }
    let config = breakwater_server::ServeConfig {
        max_connections: args.max_connections,
        header_read_timeout: std::time::Duration::from_millis(args.header_read_timeout_ms.max(1)),
        ..breakwater_server::ServeConfig::default()
    };
    breakwater_server::serve(
        listener,
        router,
        breakwater_server::shutdown_signal(),
        config,
    )
    .await?;
    eviction.abort();
    Ok(())
}
