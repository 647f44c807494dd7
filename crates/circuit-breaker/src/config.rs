//! Settings of a breaker, with Hystrix's defaults.
//!
//! A [`CircuitBreakerConfig`] is plain data: build it with struct-update syntax and hand it to
//! [`CircuitBreaker::new`](crate::CircuitBreaker::new), [`CircuitBreakerRegistry::breaker_with`](crate::CircuitBreakerRegistry::breaker_with)
//! or, at run time, [`CircuitBreaker::set_config`](crate::CircuitBreaker::set_config). Every
//! one of those validates it first and answers a [`ConfigError`] naming the field.
//!
//! ```
//! use std::time::Duration;
//! use breakwater_circuit_breaker::{CircuitBreakerConfig, SlowCalls};
//!
//! let config = CircuitBreakerConfig {
//!     error_threshold_percentage: 25,
//!     slow_calls: Some(SlowCalls { duration: Duration::from_millis(250), rate_threshold_percentage: 80 }),
//!     ..CircuitBreakerConfig::default()
//! };
//! assert!(config.validate().is_ok());
//! ```

use std::time::Duration;

use crate::error::ConfigError;

/// How a breaker treats calls, whatever its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Trips on bad health, short-circuits while open, probes in half-open.
    #[default]
    Normal,
    /// Rejects every call (Hystrix `circuitBreaker.forceOpen`). Calls count as short-circuited.
    ForcedOpen,
    /// Admits every call (Hystrix `circuitBreaker.forceClosed`). Health is still recorded and
    /// the breaker may trip underneath, so lifting the force shows the real state.
    ForcedClosed,
    /// Records metrics and events but never changes state or rejects (resilience4j
    /// `METRICS_ONLY`; also what Hystrix `circuitBreaker.enabled=false` means).
    MetricsOnly,
    /// A pass-through: nothing is checked or recorded (resilience4j `DISABLED`).
    Disabled,
}

impl Mode {
    pub(crate) fn to_bits(self) -> u64 {
        match self {
            Mode::Normal => 0,
            Mode::ForcedOpen => 1,
            Mode::ForcedClosed => 2,
            Mode::MetricsOnly => 3,
            Mode::Disabled => 4,
        }
    }

    pub(crate) fn from_bits(bits: u64) -> Mode {
        match bits & 0b111 {
            1 => Mode::ForcedOpen,
            2 => Mode::ForcedClosed,
            3 => Mode::MetricsOnly,
            4 => Mode::Disabled,
            _ => Mode::Normal,
        }
    }

    /// A stable lower-case name (`normal`, `forced_open`, ...), for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ForcedOpen => "forced_open",
            Mode::ForcedClosed => "forced_closed",
            Mode::MetricsOnly => "metrics_only",
            Mode::Disabled => "disabled",
        }
    }
}

/// The window over which health is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last `length` of time, in `buckets` buckets that roll over one at a time (Hystrix's
    /// `metrics.rollingStats.*`). Default: 10 s in 10 buckets.
    Time {
        /// Span of the window.
        length: Duration,
        /// Number of buckets; `length` must divide evenly into them.
        buckets: u32,
    },
    /// The outcomes of the last `calls` calls (resilience4j's count-based window).
    Count {
        /// Number of calls remembered.
        calls: u32,
    },
}

impl Default for Window {
    fn default() -> Self {
        Window::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        }
    }
}

/// Trip on slow calls: when at least `rate_threshold_percentage` percent of the calls in the
/// window took `duration` or longer (resilience4j's slow-call rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlowCalls {
    /// A call at least this long is slow.
    pub duration: Duration,
    /// Percentage of slow calls (1..=100) at which the breaker trips.
    pub rate_threshold_percentage: u8,
}

/// Sleep windows that grow on repeated trips: the n-th consecutive trip (counting from 1)
/// sleeps `sleep_window * multiplier^(n-1)`, capped at `max`, then spread by `jitter`.
/// The schedule every back-off of Breakwater follows ([`breakwater_backoff`]).
pub use breakwater_backoff::{Backoff, Growth};

/// Every setting of one breaker. `CircuitBreakerConfig::default()` is Hystrix's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreakerConfig {
    /// Normal operation or a forced state. Default [`Mode::Normal`].
    pub mode: Mode,
    /// Health window. Default 10 s in 10 buckets.
    pub window: Window,
    /// Calls in the window before the breaker may trip (Hystrix
    /// `circuitBreaker.requestVolumeThreshold`; resilience4j's minimum number of calls).
    /// Default 20.
    pub request_volume_threshold: u32,
    /// Error percentage (0..=100) at which the breaker trips. Default 50.
    pub error_threshold_percentage: u8,
    /// Optional slow-call tripping. Default off.
    pub slow_calls: Option<SlowCalls>,
    /// Trip after this many failures in a row, whatever the window holds (Envoy's outlier
    /// detection: 5 consecutive 5xx). A success starts the count again. Default off.
    pub consecutive_failures: Option<u32>,
    /// How long the breaker stays open before it lets trial calls through. Default 5 s.
    pub sleep_window: Duration,
    /// Optional growth of the sleep window on repeated trips. Default off.
    pub backoff: Option<Backoff>,
    /// Trial calls admitted in half-open; all must succeed to close (1..=32767). Default 1.
    pub half_open_trial_calls: u32,
    /// Timeout applied by [`TimeoutLayer`](crate::timeout::TimeoutLayer); `None` disables it.
    /// Default 1 s (Hystrix `execution.isolation.thread.timeoutInMilliseconds`).
    pub timeout: Option<Duration>,
    /// Calls allowed in flight at once by [`BulkheadLayer`](crate::bulkhead::BulkheadLayer).
    /// Default 10 (Hystrix `execution.isolation.semaphore.maxConcurrentRequests`).
    pub max_concurrent_calls: u32,
    /// Fallbacks allowed to run at once by [`FallbackLayer`](crate::fallback::FallbackLayer).
    /// Default 10.
    pub fallback_max_concurrent_calls: u32,
    /// Record call latency (two clock readings per call). Default on.
    pub record_latency: bool,
    /// Window of the latency percentiles. Default 60 s in 6 buckets (Hystrix
    /// `metrics.rollingPercentile.*`).
    pub percentile_window: Duration,
    /// Buckets of the percentile window.
    pub percentile_buckets: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            mode: Mode::Normal,
            window: Window::default(),
            request_volume_threshold: 20,
            error_threshold_percentage: 50,
            slow_calls: None,
            consecutive_failures: None,
            sleep_window: Duration::from_secs(5),
            backoff: None,
            half_open_trial_calls: 1,
            timeout: Some(Duration::from_secs(1)),
            max_concurrent_calls: 10,
            fallback_max_concurrent_calls: 10,
            record_latency: true,
            percentile_window: Duration::from_secs(60),
            percentile_buckets: 6,
        }
    }
}

/// Most trial calls a half-open breaker can admit.
pub const MAX_TRIAL_CALLS: u32 = (1 << 15) - 1;
/// Longest count-based window.
pub const MAX_COUNT_WINDOW: u32 = 1 << 20;

impl CircuitBreakerConfig {
    /// Checks every field; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.window {
            Window::Time { length, buckets } => {
                check_rolling("window.length", "window.buckets", length, buckets)?
            }
            Window::Count { calls } => {
                if calls == 0 || calls > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        "window.calls",
                        format!("{calls} is outside 1..={MAX_COUNT_WINDOW}"),
                    ));
                }
            }
        }
        if self.error_threshold_percentage > 100 {
            return Err(ConfigError::new(
                "error_threshold_percentage",
                format!(
                    "{} is a percentage and must be at most 100",
                    self.error_threshold_percentage
                ),
            ));
        }
        if let Some(slow) = self.slow_calls {
            if slow.duration.is_zero() {
                return Err(ConfigError::new(
                    "slow_calls.duration",
                    "must be longer than zero",
                ));
            }
            check_at_most_a_day("slow_calls.duration", slow.duration)?;
            if slow.rate_threshold_percentage == 0 || slow.rate_threshold_percentage > 100 {
                return Err(ConfigError::new(
                    "slow_calls.rate_threshold_percentage",
                    format!("{} is outside 1..=100", slow.rate_threshold_percentage),
                ));
            }
        }
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1 (use None to disable)",
            ));
        }
        if self.sleep_window.is_zero() {
            return Err(ConfigError::new("sleep_window", "must be longer than zero"));
        }
        check_at_most_a_day("sleep_window", self.sleep_window)?;
        if let Some(backoff) = self.backoff {
            check_at_most_a_day("backoff.max", backoff.max)?;
            backoff.check(self.sleep_window).map_err(|e| {
                let field = match e.field {
                    "multiplier" => "backoff.multiplier",
                    "max" => "backoff.max",
                    _ => "backoff.jitter",
                };
                ConfigError::new(field, e.reason)
            })?;
        }
        if self.half_open_trial_calls == 0 || self.half_open_trial_calls > MAX_TRIAL_CALLS {
            return Err(ConfigError::new(
                "half_open_trial_calls",
                format!(
                    "{} is outside 1..={MAX_TRIAL_CALLS}",
                    self.half_open_trial_calls
                ),
            ));
        }
        if let Some(timeout) = self.timeout {
            if timeout.is_zero() {
                return Err(ConfigError::new(
                    "timeout",
                    "must be longer than zero (use None to disable)",
                ));
            }
            check_at_most_a_day("timeout", timeout)?;
        }
        if self.max_concurrent_calls == 0 {
            return Err(ConfigError::new(
                "max_concurrent_calls",
                "must be at least 1",
            ));
        }
        if self.fallback_max_concurrent_calls == 0 {
            return Err(ConfigError::new(
                "fallback_max_concurrent_calls",
                "must be at least 1",
            ));
        }
        check_rolling(
            "percentile_window",
            "percentile_buckets",
            self.percentile_window,
            self.percentile_buckets,
        )
    }

    /// Nanoseconds per health bucket, for a time window.
    pub(crate) fn bucket_nanos(&self) -> Option<(u64, u32)> {
        match self.window {
            Window::Time { length, buckets } => {
                Some((length.as_nanos() as u64 / buckets as u64, buckets))
            }
            Window::Count { .. } => None,
        }
    }

    /// The sleep window of the `trips`-th consecutive trip (1-based), jitter drawn.
    pub(crate) fn sleep_for(&self, trips: u32) -> Duration {
        match self.backoff {
            Some(backoff) => backoff.delay(self.sleep_window, trips.saturating_sub(1)),
            None => self.sleep_window,
        }
    }
}

const MAX_BUCKETS: u32 = 10_000;
/// The longest duration any setting takes (window, sleep window, timeout, back-off cap):
/// 24 hours.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn check_at_most_a_day(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::new(
            field,
            format!(
                "{value:?} is longer than the {} h this crate accepts",
                MAX_DURATION.as_secs() / 3600
            ),
        ));
    }
    Ok(())
}

fn check_rolling(
    length_field: &'static str,
    buckets_field: &'static str,
    length: Duration,
    buckets: u32,
) -> Result<(), ConfigError> {
    if buckets == 0 || buckets > MAX_BUCKETS {
        return Err(ConfigError::new(
            buckets_field,
            format!("{buckets} is outside 1..={MAX_BUCKETS}"),
        ));
    }
    if length < Duration::from_millis(1) || length > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::new(
            length_field,
            format!("{length:?} is outside 1ms..=24h"),
        ));
    }
    if !length.as_nanos().is_multiple_of(buckets as u128) {
        return Err(ConfigError::new(
            length_field,
            format!("{length:?} does not divide evenly into {buckets} buckets"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: CircuitBreakerConfig) -> &'static str {
        config.validate().unwrap_err().field
    }

    #[test]
    fn defaults_are_hystrix_and_valid() {
        let c = CircuitBreakerConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.request_volume_threshold, 20);
        assert_eq!(c.error_threshold_percentage, 50);
        assert_eq!(c.sleep_window, Duration::from_secs(5));
        assert_eq!(c.bucket_nanos(), Some((1_000_000_000, 10)));
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let d = CircuitBreakerConfig::default;
        assert_eq!(
            field_of(CircuitBreakerConfig {
                error_threshold_percentage: 101,
                ..d()
            }),
            "error_threshold_percentage"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                window: Window::Time {
                    length: Duration::from_secs(10),
                    buckets: 0
                },
                ..d()
            }),
            "window.buckets"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                window: Window::Time {
                    length: Duration::from_secs(10),
                    buckets: 3
                },
                ..d()
            }),
            "window.length"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                window: Window::Count { calls: 0 },
                ..d()
            }),
            "window.calls"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                half_open_trial_calls: 0,
                ..d()
            }),
            "half_open_trial_calls"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                sleep_window: Duration::ZERO,
                ..d()
            }),
            "sleep_window"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                timeout: Some(Duration::ZERO),
                ..d()
            }),
            "timeout"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                max_concurrent_calls: 0,
                ..d()
            }),
            "max_concurrent_calls"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                slow_calls: Some(SlowCalls {
                    duration: Duration::from_secs(1),
                    rate_threshold_percentage: 0
                }),
                ..d()
            }),
            "slow_calls.rate_threshold_percentage"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                backoff: Some(Backoff {
                    multiplier: f64::NAN,
                    ..Backoff::default()
                }),
                ..d()
            }),
            "backoff.multiplier"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                backoff: Some(Backoff {
                    max: Duration::from_secs(1),
                    ..Backoff::default()
                }),
                ..d()
            }),
            "backoff.max"
        );
        assert_eq!(
            field_of(CircuitBreakerConfig {
                percentile_window: Duration::from_secs(7),
                ..d()
            }),
            "percentile_window"
        );
        let err = CircuitBreakerConfig {
            error_threshold_percentage: 150,
            ..d()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("error_threshold_percentage"),
            "{err}"
        );
        assert!(err.to_string().contains("150"), "{err}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = CircuitBreakerConfig {
            backoff: Some(Backoff {
                growth: Growth::Exponential,
                multiplier: 2.0,
                max: Duration::from_secs(30),
                jitter: 0.0,
            }),
            ..CircuitBreakerConfig::default()
        };
        assert_eq!(c.sleep_for(1), Duration::from_secs(5));
        assert_eq!(c.sleep_for(2), Duration::from_secs(10));
        assert_eq!(c.sleep_for(3), Duration::from_secs(20));
        assert_eq!(c.sleep_for(4), Duration::from_secs(30));
        assert_eq!(c.sleep_for(40), Duration::from_secs(30));
        let j = CircuitBreakerConfig {
            backoff: Some(Backoff {
                growth: Growth::Exponential,
                multiplier: 1.0,
                max: Duration::from_secs(30),
                jitter: 0.5,
            }),
            ..CircuitBreakerConfig::default()
        };
        for _ in 0..50 {
            let sleep = j.sleep_for(1);
            assert!(sleep >= Duration::from_secs_f64(2.5), "{sleep:?}");
            assert!(sleep <= Duration::from_secs_f64(7.5), "{sleep:?}");
        }
    }
}
