//! The loopback-unless-a-token rule.

use std::net::SocketAddr;

/// A server asked to listen beyond loopback with nothing that authenticates its callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to listen on {addr} without a token: anyone who can reach it could use it; \
     set a token, bind to 127.0.0.1 / [::1], or say you accept the risk with the insecure flag"
)]
pub struct ExposureError {
    /// The address asked for.
    pub addr: SocketAddr,
}

/// Our servers bind to loopback unless told otherwise, and a server told to listen on any
/// other address must have a token (bearer, or the password of HTTP basic auth) that callers
/// present. `token` is that token, if configured; an empty one counts as none.
/// `insecure_without_token` is the operator's explicit word that the server may listen
/// beyond loopback with no token at all (a flag whose name says so); it is logged as a
/// warning.
///
/// ```
/// use breakwater_server::check_exposure;
///
/// assert!(check_exposure("127.0.0.1:8761".parse().unwrap(), None, false).is_ok());
/// assert!(check_exposure("[::1]:8761".parse().unwrap(), None, false).is_ok());
/// assert!(check_exposure("0.0.0.0:8761".parse().unwrap(), None, false).is_err());
/// assert!(check_exposure("0.0.0.0:8761".parse().unwrap(), Some(""), false).is_err());
/// assert!(check_exposure("0.0.0.0:8761".parse().unwrap(), Some("s3cret"), false).is_ok());
/// assert!(check_exposure("0.0.0.0:8761".parse().unwrap(), None, true).is_ok());
/// ```
pub fn check_exposure(
    addr: SocketAddr,
    token: Option<&str>,
    insecure_without_token: bool,
) -> Result<(), ExposureError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        return Ok(());
    }
    if insecure_without_token {
        tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach this address can use it");
        return Ok(());
    }
    Err(ExposureError { addr })
}
