//! `breakwater-eureka`: the embedded Eureka-compatible registry as a standalone server, for
//! local development and tests. Every flag has a matching environment variable; it binds to
//! 127.0.0.1 unless told otherwise and stops gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use breakwater_discovery::registry::{Registry, RegistryConfig};
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
    /// Turn self-preservation off (evict expired leases even when many stop renewing).
    #[arg(long, env = "BREAKWATER_EUREKA_NO_SELF_PRESERVATION")]
    no_self_preservation: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let registry = Arc::new(Registry::new(RegistryConfig {
        self_preservation: !args.no_self_preservation,
        ..RegistryConfig::default()
    }));
    let eviction = breakwater_discovery::server::spawn_eviction(registry.clone());
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    tracing::info!(
        "Eureka registry on http://{}/eureka/",
        listener.local_addr()?
    );
    axum::serve(listener, breakwater_discovery::server::router(registry))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    eviction.abort();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
