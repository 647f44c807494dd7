//! [`CallConfig`]: how calls to one service are retried, hedged and bounded.
//!
//! The retry counts keep the names Ribbon users have in their Archaius tables
//! (`<service>.ribbon.MaxAutoRetries`, `MaxAutoRetriesNextServer`, `OkToRetryOnAllOperations`,
//! `ConnectTimeout`, `ReadTimeout`); the rest are ours. The breaker, timeout (the deadline over all attempts)
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

/// The settings [`CallConfig::set`] takes by name, and what each holds: Ribbon's names for
/// Ribbon's settings (`<service>.ribbon.*` in an Archaius table), ours for the rest.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "MaxAutoRetries",
        "a count, 0..=100 (attempts are capped at 5)",
    ),
    (
        "MaxAutoRetriesNextServer",
        "a count, 0..=100 (attempts are capped at 5)",
    ),
    ("OkToRetryOnAllOperations", "true or false"),
    ("ConnectTimeout", "milliseconds, 1..=600000"),
    ("ReadTimeout", "milliseconds, 1..=3600000"),
    ("backoff.baseMs", "milliseconds, 0..=60000"),
    ("backoff.maxMs", "milliseconds, 0..=600000"),
    ("retryAfter.maxMs", "milliseconds, 0..=3600000"),
    ("retryBudget.percent", "a percentage of requests, 0..=1000"),
    (
        "retryBudget.minPerSecond",
        "retries per second, 0..=1000000",
    ),
    ("retryBudget.windowMs", "milliseconds, 1000..=60000"),
    ("hedge.delayMs", "milliseconds, 1..=600000, or off"),
    ("maxResponseBytes", "bytes, 1..=4294967296"),
];

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
    /// How long a connection may take to open (Ribbon `ConnectTimeout`); none by default, so
    /// the client's [`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout).
    pub connect_timeout: Option<Duration>,
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
            connect_timeout: None,
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
    /// The setting's name (one of [`SETTINGS`]) or field.
    pub setting: String,
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

    /// Sets one setting by its name (see [`SETTINGS`]) from text. Refused text leaves the
    /// settings as they were, and so does a value that makes them inconsistent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakwater_client::CallConfig;
    ///
    /// let mut config = CallConfig::default();
    /// config.set("MaxAutoRetriesNextServer", "1").unwrap();
    /// config.set("hedge.delayMs", "40").unwrap();
    /// assert_eq!(config.max_attempts(), 2);
    /// assert_eq!(config.hedge_delay, Some(Duration::from_millis(40)));
    /// let refused = config.set("ReadTimeout", "soon").unwrap_err();
    /// assert_eq!(refused.setting, "ReadTimeout");
    /// ```
    pub fn set(&mut self, setting: &str, text: &str) -> Result<(), CallConfigError> {
        let text = text.trim();
        let mut next = self.clone();
        let ms = |min: u64, max: u64| millis(setting, text, min, max);
        match setting {
            "MaxAutoRetries" => next.max_auto_retries = count(setting, text, 100)? as u32,
            "MaxAutoRetriesNextServer" => {
                next.max_auto_retries_next_server = count(setting, text, 100)? as u32
            }
            "OkToRetryOnAllOperations" => {
                next.ok_to_retry_on_all_operations = match text.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(refused(setting, text, "true or false")),
                }
            }
            "ConnectTimeout" => next.connect_timeout = Some(ms(1, 600_000)?),
            "ReadTimeout" => next.read_timeout = Some(ms(1, 3_600_000)?),
            "backoff.baseMs" => next.backoff_base = ms(0, 60_000)?,
            "backoff.maxMs" => next.backoff_max = ms(0, 600_000)?,
            "retryAfter.maxMs" => next.max_retry_after = ms(0, 3_600_000)?,
            "retryBudget.percent" => {
                next.budget_retry_percent = match text.parse::<f32>() {
                    Ok(p) if (0.0..=1000.0).contains(&p) => p,
                    _ => return Err(refused(setting, text, "a percentage, 0..=1000")),
                }
            }
            "retryBudget.minPerSecond" => {
                next.budget_min_per_second = count(setting, text, 1_000_000)? as u32
            }
            "retryBudget.windowMs" => next.budget_window = ms(1000, 60_000)?,
            "hedge.delayMs" => {
                next.hedge_delay = if text.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(ms(1, 600_000)?)
                }
            }
            "maxResponseBytes" => {
                let n = count(setting, text, 1 << 32)?;
                if n == 0 {
                    return Err(refused(setting, text, "bytes, 1..=4294967296"));
                }
                next.max_response_bytes = usize::try_from(n).unwrap_or(usize::MAX);
            }
            other => {
                let known: Vec<&str> = SETTINGS.iter().map(|(name, _)| *name).collect();
                return Err(CallConfigError {
                    setting: other.into(),
                    reason: format!("no such setting; known: {}", known.join(", ")),
                });
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), CallConfigError> {
        let fail = |setting: &str, reason: String| {
            Err(CallConfigError {
                setting: setting.into(),
                reason,
            })
        };
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
        if self.connect_timeout == Some(Duration::ZERO) {
            return fail("connect_timeout", "zero would fail every connection".into());
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

fn refused(setting: &str, text: &str, expected: &str) -> CallConfigError {
    CallConfigError {
        setting: setting.into(),
        reason: format!("{text:?} is not {expected}"),
    }
}

fn count(setting: &str, text: &str, max: u64) -> Result<u64, CallConfigError> {
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(refused(
            setting,
            text,
            &format!("a whole number, 0..={max}"),
        )),
    }
}

fn millis(setting: &str, text: &str, min: u64, max: u64) -> Result<Duration, CallConfigError> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(refused(
            setting,
            text,
            &format!("milliseconds, {min}..={max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_refuses_nonsense_and_names_itself() {
        for (name, _) in SETTINGS {
            let mut config = CallConfig::default();
            let err = config.set(name, "\u{7}nonsense").unwrap_err();
            assert_eq!(err.setting, *name, "{err}");
            assert_eq!(config, CallConfig::default(), "{name} left as it was");
        }
        let err = CallConfig::default().set("MaxRetries", "1").unwrap_err();
        assert!(err.reason.contains("MaxAutoRetries"), "{err}");
    }

    #[test]
    fn settings_are_read_from_text() {
        let mut config = CallConfig::default();
        for (setting, text) in [
            ("MaxAutoRetries", "1"),
            ("MaxAutoRetriesNextServer", "9"),
            ("OkToRetryOnAllOperations", "TRUE"),
            ("ConnectTimeout", "250"),
            ("ReadTimeout", " 800 "),
            ("retryBudget.percent", "5.5"),
            ("hedge.delayMs", "30"),
            ("maxResponseBytes", "1024"),
        ] {
            config.set(setting, text).unwrap();
        }
        assert_eq!(config.max_attempts(), MAX_ATTEMPTS);
        assert!(config.ok_to_retry_on_all_operations);
        assert_eq!(config.connect_timeout, Some(Duration::from_millis(250)));
        assert_eq!(config.read_timeout, Some(Duration::from_millis(800)));
        assert_eq!(config.budget_retry_percent, 5.5);
        assert_eq!(config.max_response_bytes, 1024);
        config.set("hedge.delayMs", "off").unwrap();
        assert_eq!(config.hedge_delay, None);
        // Consistency: a maximum back-off below the base is refused, the base stays.
        let err = config.set("backoff.maxMs", "10").unwrap_err();
        assert_eq!(err.setting, "backoff_max");
        assert_eq!(config.backoff_max, Duration::from_millis(250));
        assert!(config.set("maxResponseBytes", "0").is_err());
    }
}
