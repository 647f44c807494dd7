//! [`CallConfig`]: how calls to one service are retried, hedged and bounded.
//!
//! The retry counts keep the names Ribbon users have in their Archaius tables
//! (`<service>.ribbon.MaxAutoRetries`, `MaxAutoRetriesNextServer`, `OkToRetryOnAllOperations`,
//! `ReadTimeout`); the rest are ours. The breaker, timeout (the deadline over all attempts)
//! and bulkhead of a service are its circuit breaker's settings (`hystrix.command.<service>.*`).

use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerConfig;

/// Most attempts of one call, whatever the settings (gRPC's cap).
pub const MAX_ATTEMPTS: u32 = 5;

/// Calls in flight at once to one service allowed by the bulkhead of a breaker the client
/// makes (Envoy's `max_requests` per cluster). Hystrix's 10 suits a thread pool per command,
/// not an async client whose callers wait on sockets.
pub const MAX_CONCURRENT_CALLS: u32 = 1024;

/// The settings of the breaker the client makes for a service whose registry has no breaker
/// by that name: Hystrix's defaults (a 1 s deadline over every attempt, 20 requests and 50 %
/// errors over 10 s to trip, 5 s open) with a bulkhead of [`MAX_CONCURRENT_CALLS`]. Register
/// a breaker of that name first, or set `hystrix.command.<service>.*`, to change them.
pub fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        max_concurrent_calls: MAX_CONCURRENT_CALLS,
        ..CircuitBreakerConfig::default()
    }
}

/// Settings of the calls to one service. Changes apply to the next call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallConfig {
    /// Retries on the same instance (Ribbon `MaxAutoRetries`). Default 0.
    pub max_auto_retries: u32,
    /// Retries on other instances (Ribbon `MaxAutoRetriesNextServer`). Default 2: three
    /// attempts in all.
    pub max_auto_retries_next_server: u32,
    /// Retry POST and PATCH too (Ribbon `OkToRetryOnAllOperations`). Default off: they are
    /// retried only when the caller opts in for the request or sends an `Idempotency-Key`.
    pub ok_to_retry_on_all_operations: bool,
    /// Time one attempt may take (Ribbon `ReadTimeout`); none by default, so an attempt has
    /// what is left of the call's deadline.
    pub read_timeout: Option<Duration>,
    /// First back-off before a retry; each wait is uniform between 0 and
    /// `backoff_base * 2^(retry - 1)`, at most `backoff_max` ("full jitter", Envoy's 25 ms).
    pub backoff_base: Duration,
    /// Longest back-off before a retry (Envoy's 250 ms).
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured on 429 and 503; a longer one is not waited for.
    pub max_retry_after: Duration,
    /// Retries (and hedges) allowed as a share of requests over `budget_window`, in percent
    /// (Finagle and tower: 20).
    pub budget_retry_percent: f32,
    /// Retries allowed per second whatever the traffic (Finagle and tower: 10).
    pub budget_min_per_second: u32,
    /// The window of the budget (10 s).
    pub budget_window: Duration,
    /// Hedging: when set, an idempotent call with no answer after this long is sent again to
    /// another instance, the first answer wins and the other is cancelled. Off by default.
    pub hedge_delay: Option<Duration>,
    /// Largest response body read by [`Response::bytes`](crate::Response::bytes), `text` and
    /// `json`. Default 16 MiB.
    pub max_response_bytes: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            max_auto_retries: 0,
            max_auto_retries_next_server: 2,
            ok_to_retry_on_all_operations: false,
            read_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
            budget_retry_percent: 20.0,
            budget_min_per_second: 10,
            budget_window: Duration::from_secs(10),
            hedge_delay: None,
            max_response_bytes: 16 << 20,
        }
    }
}

/// A [`CallConfig`] setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call setting {setting}: {reason}")]
pub struct CallConfigError {
    /// The field's name.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl CallConfig {
    /// Attempts of one call: the first, the retries on the same instance and on others,
    /// capped at [`MAX_ATTEMPTS`].
    pub fn max_attempts(&self) -> u32 {
        1u32.saturating_add(self.max_auto_retries)
            .saturating_add(self.max_auto_retries_next_server)
            .min(MAX_ATTEMPTS)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), CallConfigError> {
        let fail = |setting, reason: String| Err(CallConfigError { setting, reason });
        if self.backoff_max < self.backoff_base {
            return fail(
                "backoff_max",
                format!(
                    "{:?} is shorter than backoff_base {:?}",
                    self.backoff_max, self.backoff_base
                ),
            );
        }
        if !(0.0..=1000.0).contains(&self.budget_retry_percent) {
            return fail(
                "budget_retry_percent",
                format!("{} is outside 0..=1000", self.budget_retry_percent),
            );
        }
        if self.budget_window < Duration::from_secs(1)
            || self.budget_window > Duration::from_secs(60)
        {
            return fail(
                "budget_window",
                format!("{:?} is outside 1 s..=60 s", self.budget_window),
            );
        }
        if self.budget_min_per_second > 1_000_000 {
            return fail(
                "budget_min_per_second",
                format!("{} is above 1000000", self.budget_min_per_second),
            );
        }
        if self.read_timeout == Some(Duration::ZERO) {
            return fail("read_timeout", "zero would fail every attempt".into());
        }
        if self.hedge_delay == Some(Duration::ZERO) {
            return fail("hedge_delay", "zero would send every call twice".into());
        }
        if self.max_response_bytes == 0 {
            return fail("max_response_bytes", "zero refuses every body".into());
        }
        Ok(())
    }
}
