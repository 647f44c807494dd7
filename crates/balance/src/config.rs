//! [`BalanceConfig`]: every setting of a [`Balancer`](crate::Balancer), with defaults taken
//! from linkerd (latency), Envoy (ejection, panic threshold) and Finagle.
//!
//! Each setting has a property name, `balance.<service>.<name>` (and `balance.default.<name>`
//! for every service), listed in [`SETTINGS`]; [`BalanceConfig::set`] applies one from text,
//! which is what dynamic configuration does. A balancer takes new settings at run time with
//! [`Balancer::set_config`](crate::Balancer::set_config) and keeps its instances and their
//! state.
//!
//! ```
//! use std::time::Duration;
//! use breakwater_balance::BalanceConfig;
//!
//! let mut config = BalanceConfig::default();
//! config.set("ejection.consecutiveFailures", "3").unwrap();
//! config.set("zone", "us-east-1a").unwrap();
//! assert_eq!(config.consecutive_failures, 3);
//! assert_eq!(config.zone.as_deref(), Some("us-east-1a"));
//! let err = config.set("panicThresholdPercentage", "150").unwrap_err();
//! assert!(err.to_string().contains("panicThresholdPercentage"), "{err}");
//! ```

use std::fmt;
use std::time::Duration;

use breakwater_circuit_breaker::{Backoff, CircuitBreakerConfig, Window};

use crate::cost::CostConfig;

/// Every setting of a balancer.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceConfig {
    /// Latency assumed for an instance not heard from yet (`cost.defaultRttMs`, 30 ms).
    pub default_rtt: Duration,
    /// Time constant of the latency and failure averages (`cost.decayMs`, 10 s).
    pub decay: Duration,
    /// How much more an instance that only fails costs than one that never does
    /// (`cost.failurePenalty`, 100).
    pub failure_penalty: f64,
    /// Failures in a row that eject an instance (`ejection.consecutiveFailures`, 5, as Envoy).
    pub consecutive_failures: u32,
    /// Error percentage over the last 10 s that ejects an instance
    /// (`ejection.errorThresholdPercentage`, 50), once it has had
    /// `ejection.requestVolumeThreshold` (20) requests in that time.
    pub error_threshold_percentage: u8,
    /// Requests in 10 s before the error percentage counts (`ejection.requestVolumeThreshold`).
    pub request_volume_threshold: u32,
    /// How long a first ejection lasts; the n-th in a row lasts n times that
    /// (`ejection.baseTimeMs`, 30 s).
    pub ejection_time: Duration,
    /// The longest ejection (`ejection.maxTimeMs`, 300 s).
    pub max_ejection_time: Duration,
    /// Below this percentage of instances not ejected, the balancer stops honouring
    /// ejections and spreads over all of them (`panicThresholdPercentage`, 50, as Envoy).
    pub panic_threshold_percentage: u8,
    /// The caller's zone (`zone`); none: zones are not looked at.
    pub zone: Option<String>,
    /// Prefer instances in the caller's zone (`zoneAffinity`, on).
    pub zone_affinity: bool,
    /// Divide each instance's cost by its weight (`weights`, on).
    pub weights: bool,
    /// How long a request waits for discovery to find a first instance after the balancer
    /// starts (`startupWaitMs`, 3 s); after that, no instance fails at once.
    pub startup_wait: Duration,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
            failure_penalty: 100.0,
            consecutive_failures: 5,
            error_threshold_percentage: 50,
            request_volume_threshold: 20,
            ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            panic_threshold_percentage: 50,
            zone: None,
            zone_affinity: true,
            weights: true,
            startup_wait: Duration::from_secs(3),
        }
    }
}

/// The property name of each setting (after `balance.<service>.`) and what it takes.
pub const SETTINGS: &[(&str, &str)] = &[
    ("cost.defaultRttMs", "milliseconds, 1..=60000"),
    ("cost.decayMs", "milliseconds, 1..=3600000"),
    ("cost.failurePenalty", "a number, 0..=1000000"),
    ("ejection.consecutiveFailures", "a count, 1..=1000000"),
    ("ejection.errorThresholdPercentage", "a percentage, 1..=100"),
    ("ejection.requestVolumeThreshold", "a count, 1..=1000000"),
    ("ejection.baseTimeMs", "milliseconds, 1..=86400000"),
    ("ejection.maxTimeMs", "milliseconds, 1..=86400000"),
    ("panicThresholdPercentage", "a percentage, 0..=100"),
    ("zone", "a zone name, or empty for none"),
    ("zoneAffinity", "true or false"),
    ("weights", "true or false"),
    ("startupWaitMs", "milliseconds, 0..=600000"),
];

/// A setting that cannot be used: which one and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The property name (after `balance.<service>.`) or field.
    pub setting: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "balance setting {}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for SettingError {}

fn error(setting: &str, reason: impl Into<String>) -> SettingError {
    SettingError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    setting: &str,
    text: &str,
    min: T,
    max: T,
) -> Result<T, SettingError> {
    let range = min..=max;
    let value: T = text
        .trim()
        .parse()
        .map_err(|_| error(setting, format!("{text:?} is not a number")))?;
    if !range.contains(&value) {
        return Err(error(
            setting,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

fn millis(setting: &str, text: &str, min: u64, max: u64) -> Result<Duration, SettingError> {
    number(setting, text, min, max).map(Duration::from_millis)
}

fn flag(setting: &str, text: &str) -> Result<bool, SettingError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" => Ok(false),
        _ => Err(error(setting, format!("{text:?} is not true or false"))),
    }
}

impl BalanceConfig {
    /// Sets one setting by its property name (see [`SETTINGS`]) from text. Refused text
    /// leaves the setting as it was, and so does a value that would make the settings
    /// inconsistent (a maximum ejection time below the base).
    pub fn set(&mut self, setting: &str, text: &str) -> Result<(), SettingError> {
        let mut next = self.clone();
        match setting {
            "cost.defaultRttMs" => next.default_rtt = millis(setting, text, 1, 60_000)?,
            "cost.decayMs" => next.decay = millis(setting, text, 1, 3_600_000)?,
            "cost.failurePenalty" => {
                next.failure_penalty = number(setting, text, 0.0, 1_000_000.0)?
            }
            "ejection.consecutiveFailures" => {
                next.consecutive_failures = number(setting, text, 1, 1_000_000)?
            }
            "ejection.errorThresholdPercentage" => {
                next.error_threshold_percentage = number(setting, text, 1, 100)?
            }
            "ejection.requestVolumeThreshold" => {
                next.request_volume_threshold = number(setting, text, 1, 1_000_000)?
            }
            "ejection.baseTimeMs" => next.ejection_time = millis(setting, text, 1, 86_400_000)?,
            "ejection.maxTimeMs" => next.max_ejection_time = millis(setting, text, 1, 86_400_000)?,
            "panicThresholdPercentage" => {
                next.panic_threshold_percentage = number(setting, text, 0, 100)?
            }
            "zone" => {
                let zone = text.trim();
                if zone.len() > 128 || zone.chars().any(char::is_control) {
                    return Err(error(
                        setting,
                        "a zone name is at most 128 printable characters",
                    ));
                }
                next.zone = (!zone.is_empty()).then(|| zone.to_owned());
            }
            "zoneAffinity" => next.zone_affinity = flag(setting, text)?,
            "weights" => next.weights = flag(setting, text)?,
            "startupWaitMs" => next.startup_wait = millis(setting, text, 0, 600_000)?,
            other => {
                let known: Vec<&str> = SETTINGS.iter().map(|(name, _)| *name).collect();
                return Err(error(
                    other,
                    format!("no such setting; known: {}", known.join(", ")),
                ));
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Checks the settings together; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.default_rtt.is_zero() {
            return Err(error("cost.defaultRttMs", "must be longer than zero"));
        }
        if self.decay.is_zero() {
            return Err(error("cost.decayMs", "must be longer than zero"));
        }
        if !self.failure_penalty.is_finite() || self.failure_penalty < 0.0 {
            return Err(error("cost.failurePenalty", "must be a number from 0"));
        }
        if self.consecutive_failures == 0 {
            return Err(error("ejection.consecutiveFailures", "must be at least 1"));
        }
        if self.error_threshold_percentage == 0 || self.error_threshold_percentage > 100 {
            return Err(error(
                "ejection.errorThresholdPercentage",
                "must be within 1..=100",
            ));
        }
        if self.panic_threshold_percentage > 100 {
            return Err(error("panicThresholdPercentage", "must be within 0..=100"));
        }
        self.breaker_config().validate().map_err(|e| match e.field {
            "sleep_window" => error("ejection.baseTimeMs", e.reason),
            "backoff.max" => error("ejection.maxTimeMs", e.reason),
            _ => error("ejection", e.to_string()),
        })
    }

    /// The latency and failure averages' settings.
    pub fn cost(&self) -> CostConfig {
        CostConfig {
            default_rtt: self.default_rtt,
            decay: self.decay,
            failure_penalty: self.failure_penalty,
        }
    }

    /// The settings of each instance's breaker: it opens (ejects the instance) on
    /// `consecutive_failures` in a row or the error percentage, sleeps `ejection_time` times
    /// the ejections in a row up to `max_ejection_time`, and one probe closes it.
    pub fn breaker_config(&self) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            window: Window::default(),
            consecutive_failures: Some(self.consecutive_failures),
            error_threshold_percentage: self.error_threshold_percentage,
            request_volume_threshold: self.request_volume_threshold,
            sleep_window: self.ejection_time,
            backoff: Some(Backoff::linear(self.max_ejection_time)),
            half_open_trial_calls: 1,
            // The balancer measures latency itself; the caller owns timeouts.
            timeout: None,
            record_latency: false,
            ..CircuitBreakerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_setting_is_known_and_refuses_garbage() {
        for (name, _) in SETTINGS {
            let mut config = BalanceConfig::default();
            let err = config.set(name, "\u{7}nonsense\u{7}").unwrap_err();
            assert_eq!(err.setting, *name, "{err}");
            assert_eq!(config, BalanceConfig::default(), "{name} left as it was");
        }
        let err = BalanceConfig::default()
            .set("ejection.consecutive", "5")
            .unwrap_err();
        assert!(err.reason.contains("ejection.consecutiveFailures"), "{err}");
    }

    #[test]
    fn inconsistent_ejection_times_are_refused() {
        let mut config = BalanceConfig::default();
        let err = config.set("ejection.maxTimeMs", "1000").unwrap_err();
        assert_eq!(err.setting, "ejection.maxTimeMs", "{err}");
        assert_eq!(config.max_ejection_time, Duration::from_secs(300));
        config.set("ejection.baseTimeMs", "1000").unwrap();
        config.set("ejection.maxTimeMs", "1000").unwrap();
        assert_eq!(config.breaker_config().sleep_window, Duration::from_secs(1));
    }
}
