//! Exponential back-off with a cap and jitter: the one schedule every part of Breakwater waits
//! by after a failure (the Eureka client's heartbeats and fetches, the stream aggregator's
//! reconnects, the DynamoDB source's polls, a circuit breaker's growing sleep window).
//!
//! A [`Backoff`] is the shape of the growth; the caller keeps the base delay (an interval, a
//! sleep window) and how many failures in a row it has seen:
//!
//! ```
//! use std::time::Duration;
//! use breakwater_backoff::Backoff;
//!
//! let interval = Duration::from_secs(30);
//! // Double per failure up to 10 intervals, no jitter (Eureka's client).
//! let backoff = Backoff::exponential(interval * 10);
//! assert_eq!(backoff.delay(interval, 0), interval);
//! assert_eq!(backoff.delay(interval, 2), interval * 4);
//! assert_eq!(backoff.delay(interval, 9), interval * 10);
//!
//! // With 20 % jitter a fleet does not retry in step.
//! let backoff = backoff.with_jitter(0.2);
//! let d = backoff.delay(interval, 1);
//! assert!(d >= interval * 2 * 8 / 10 && d <= interval * 2 * 12 / 10);
//! ```
//!
//! Arithmetic saturates: no base, count or setting makes it panic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::time::Duration;

/// Delays that grow on failures in a row: after `n` failures the delay is
/// `base * multiplier^n` ([`Growth::Exponential`]) or `base * (n + 1)` ([`Growth::Linear`]),
/// capped at `max`, then spread by `jitter` and capped at `max` again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// How the delay grows. Default [`Growth::Exponential`].
    pub growth: Growth,
    /// Growth factor per failure, at least 1 (exponential growth only).
    pub multiplier: f64,
    /// Longest delay.
    pub max: Duration,
    /// Random spread as a fraction (0.0..=1.0): a delay `d` becomes uniform in
    /// `[d * (1 - jitter), d * (1 + jitter)]`, still capped at `max`.
    pub jitter: f64,
}

/// How a [`Backoff`]'s delay grows with failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Growth {
    /// `base * multiplier^n` after `n` failures.
    #[default]
    Exponential,
    /// `base * (n + 1)` after `n` failures: the base again for each failure (Envoy's
    /// ejection time, 30 s times the ejections).
    Linear,
}

impl Default for Backoff {
    /// Doubling up to 60 s with 20 % jitter.
    fn default() -> Self {
        Backoff {
            growth: Growth::Exponential,
            multiplier: 2.0,
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

/// A [`Backoff`] setting that cannot be used, by field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffError {
    /// `multiplier`, `max` or `jitter`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for BackoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "back-off {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for BackoffError {}

impl Backoff {
    /// Doubling up to `max`, without jitter.
    pub fn exponential(max: Duration) -> Self {
        Backoff {
            growth: Growth::Exponential,
            multiplier: 2.0,
            max,
            jitter: 0.0,
        }
    }

    /// The base delay once more per failure (`base * (n + 1)` after `n` failures) up to
    /// `max`, without jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakwater_backoff::Backoff;
    ///
    /// let b = Backoff::linear(Duration::from_secs(300));
    /// let s = Duration::from_secs(30);
    /// assert_eq!(b.delay(s, 0), s);
    /// assert_eq!(b.delay(s, 2), s * 3);
    /// assert_eq!(b.delay(s, 20), Duration::from_secs(300));
    /// ```
    pub fn linear(max: Duration) -> Self {
        Backoff {
            growth: Growth::Linear,
            multiplier: 1.0,
            max,
            jitter: 0.0,
        }
    }

    /// The same growth with this spread (0.0..=1.0).
    pub fn with_jitter(self, jitter: f64) -> Self {
        Backoff { jitter, ..self }
    }

    /// The same cap and spread with this growth factor (at least 1).
    pub fn with_multiplier(self, multiplier: f64) -> Self {
        Backoff { multiplier, ..self }
    }

    /// Checks the settings for delays that start at `base`: a finite multiplier of at least
    /// 1, a cap no shorter than `base`, a jitter within 0.0..=1.0.
    pub fn check(&self, base: Duration) -> Result<(), BackoffError> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(BackoffError {
                field: "multiplier",
                reason: format!("{} must be a finite number >= 1", self.multiplier),
            });
        }
        if self.max < base {
            return Err(BackoffError {
                field: "max",
                reason: format!("{:?} is shorter than the base delay {base:?}", self.max),
            });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(BackoffError {
                field: "jitter",
                reason: format!("{} is outside 0.0..=1.0", self.jitter),
            });
        }
        Ok(())
    }

    /// The delay after `failures` failures in a row (0: `base`), with random jitter.
    pub fn delay(&self, base: Duration, failures: u32) -> Duration {
        let unit = if self.jitter > 0.0 {
            fastrand::f64()
        } else {
            0.5
        };
        self.delay_at(base, failures, unit)
    }

    /// "Full jitter" (as Envoy's and AWS's retries wait): uniform between zero and the delay
    /// without jitter after `failures` failures, whatever `jitter` says.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakwater_backoff::Backoff;
    ///
    /// let b = Backoff::exponential(Duration::from_millis(250));
    /// let base = Duration::from_millis(25);
    /// assert!(b.full_jitter_delay(base, 1) <= Duration::from_millis(50));
    /// assert!(b.full_jitter_delay(base, 9) <= Duration::from_millis(250));
    /// ```
    pub fn full_jitter_delay(&self, base: Duration, failures: u32) -> Duration {
        Backoff {
            jitter: 0.0,
            ..*self
        }
        .delay_at(base, failures, 0.5)
        .mul_f64(fastrand::f64())
    }

    /// [`delay`](Self::delay) with the jitter's random draw given: `unit` in `[0, 1)` (0.5
    /// is the unjittered delay).
    pub fn delay_at(&self, base: Duration, failures: u32, unit: f64) -> Duration {
        let max = self.max.as_secs_f64();
        // Settings that `check` refuses still give a delay, never a panic.
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let grown = match self.growth {
            Growth::Exponential => base.as_secs_f64() * multiplier.powi(failures.min(1024) as i32),
            Growth::Linear => base.as_secs_f64() * (f64::from(failures) + 1.0),
        }
        .min(max);
        let spread = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let secs = (grown * spread).min(max).max(0.0);
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_to_the_cap() {
        let b = Backoff::exponential(S * 10);
        let delays: Vec<u64> = (0..6).map(|n| b.delay(S, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.delay(S, u32::MAX), S * 10);
    }

    #[test]
    fn jitter_spreads_within_its_fraction_and_below_the_cap() {
        let b = Backoff::exponential(S * 10).with_jitter(0.2);
        for (n, factor) in [(0u32, 1.0), (1, 2.0), (3, 8.0), (4, 10.0), (30, 10.0)] {
            for _ in 0..50 {
                let d = b.delay(S, n).as_secs_f64();
                assert!(d >= 0.8 * factor - 1e-9, "{n}: {d}");
                assert!(d <= (1.2 * factor).min(10.0) + 1e-9, "{n}: {d}");
            }
        }
        let spread: std::collections::HashSet<u128> =
            (0..50).map(|_| b.delay(S, 0).as_micros()).collect();
        assert!(spread.len() > 5, "jittered: {spread:?}");
        assert_eq!(b.delay_at(S, 0, 0.0), S * 8 / 10);
        assert_eq!(b.delay_at(S, 0, 0.5), S);
    }

    #[test]
    fn huge_bases_and_bad_settings_saturate() {
        let b = Backoff::exponential(Duration::MAX).with_jitter(0.2);
        assert!(b.delay(Duration::MAX, 4) > Duration::from_secs(1 << 60));
        let bad = Backoff {
            growth: Growth::Exponential,
            multiplier: f64::NAN,
            max: S,
            jitter: f64::INFINITY,
        };
        assert_eq!(bad.delay(S * 5, 3), S);
        assert_eq!(bad.check(S).unwrap_err().field, "multiplier");
        assert_eq!(Backoff::default().check(S * 61).unwrap_err().field, "max");
        assert_eq!(
            Backoff::default()
                .with_jitter(1.5)
                .check(S)
                .unwrap_err()
                .field,
            "jitter"
        );
        assert!(Backoff::default().check(S * 5).is_ok());
    }
}
