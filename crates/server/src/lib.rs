//! What every Breakwater server does, in one place: the Eureka registry, the stream dashboard
//! and the service kit all serve through it.
//!
//! - [`serve`]: HTTP/1.1 and HTTP/2 on a listener until a shutdown future completes, with a
//!   deadline for a connection's first request and for reading request headers (a client that
//!   connects and sends nothing, or trickles its headers, is cut off), a cap on open
//!   connections (past it a new connection is closed at once), and a graceful drain. Every
//!   request carries a [`ConnectionHandle`] that closes its connection (for streams whose
//!   client stopped reading).
//! - [`shutdown_signal`]: completes on SIGTERM or Ctrl-C.
//! - [`check_exposure`] and [`require_token`]: bind to loopback unless the server has a
//!   token, and then require it (bearer, basic-auth password, or `?access_token=`).
//! - [`ConnectionLimit`]: a cap on connections (or streams) shared by several endpoints.
//! - [`read_body`]: a request body up to a limit; too large is 413, unreadable is 400.
//! - [`health`]: the `application/health+json` document (IETF draft-inadarei-api-health-check-06)
//!   every health endpoint of ours answers with.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use breakwater_server::{ServeConfig, check_exposure, serve, shutdown_signal};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr = "127.0.0.1:8080".parse()?;
//! check_exposure(addr, None, false)?; // a non-loopback address would need a token
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! let router = Router::new().route("/", get(|| async { "hello" }));
//! serve(listener, router, shutdown_signal(), ServeConfig::default()).await?;
//! # Ok(()) }
//! ```
//!
//! This crate depends on no other Breakwater crate, so each of them can use it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod exposure;
pub mod health;
mod limit;
mod serve;
mod signal;
mod token;

pub use body::{BodyError, read_body};
pub use exposure::{ExposureError, check_exposure};
pub use limit::{ConnectionLimit, ConnectionPermit};
pub use serve::{ConnectionHandle, ServeConfig, serve, serve_with};
pub use signal::shutdown_signal;
pub use token::{require_token, require_token_for_writes};
