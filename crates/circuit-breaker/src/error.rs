//! Errors returned by the layers of this crate.
//!
//! Services built from these layers return [`BoxError`], as tower's own middleware does, so
//! that layers compose. Match on the cause with `downcast_ref`:
//!
//! ```
//! use breakwater_circuit_breaker::error::{BoxError, CircuitOpen};
//!
//! fn is_fast_failure(err: &BoxError) -> bool {
//!     err.downcast_ref::<CircuitOpen>().is_some()
//! }
//! # let _ = is_fast_failure;
//! ```

use std::time::Duration;

/// The error type of every service in this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The call was not made because the breaker is open (or forced open, or half-open with no
/// trial call left). Hystrix calls this a short-circuit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("circuit breaker `{name}` is {state} and rejected the call")]
pub struct CircuitOpen {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) state: &'static str,
}

impl CircuitOpen {
    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The call took longer than the command's timeout and was abandoned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("call through `{name}` timed out after {after:?}")]
pub struct Elapsed {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) after: Duration,
}

impl Elapsed {
    /// An `Elapsed` error for a call through `name`, for timeouts made outside this crate:
    /// a breaker counts it as a timeout.
    pub fn new(name: impl AsRef<str>, after: Duration) -> Self {
        Elapsed {
            name: name.as_ref().into(),
            after,
        }
    }

    /// The timeout that elapsed.
    pub fn after(&self) -> Duration {
        self.after
    }
}

/// The bulkhead was full: the call was rejected at once rather than queued (Hystrix's semaphore
/// isolation).
#[derive(Debug, Clone, thiserror::Error)]
#[error("bulkhead `{name}` is full ({max_concurrent} calls in flight) and rejected the call")]
pub struct Rejected {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) max_concurrent: u32,
}

impl Rejected {
    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The fallback could not run because too many fallbacks were already running; the original
/// error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("fallback of `{name}` rejected: {max_concurrent} fallbacks already running")]
pub struct FallbackRejected {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) max_concurrent: u32,
    #[source]
    pub(crate) source: BoxError,
}

/// A setting that cannot be used, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid circuit-breaker setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, as named in [`CircuitBreakerConfig`](crate::CircuitBreakerConfig) (nested fields joined with `.`).
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}
