//! Hystrix property names, their validation (by the breaker's own limits), and a binding that
//! makes a circuit-breaker [`CircuitBreakerRegistry`](breakwater_circuit_breaker::CircuitBreakerRegistry) follow them.
//!
//! For a command `name`, each setting is read from `hystrix.command.<name>.<setting>`, else
//! `hystrix.command.default.<setting>`, else it keeps the breaker's own configuration:
//!
//! | setting | breaker |
//! |---|---|
//! | `circuitBreaker.forceOpen` | `Mode::ForcedOpen` |
//! | `circuitBreaker.forceClosed` | `Mode::ForcedClosed` (forceOpen wins if both) |
//! | `circuitBreaker.enabled` = false | `Mode::MetricsOnly` (records, never trips) |
//! | `circuitBreaker.errorThresholdPercentage` (0..=100) | `error_threshold_percentage` |
//! | `circuitBreaker.requestVolumeThreshold` (>= 1) | `request_volume_threshold` |
//! | `circuitBreaker.sleepWindowInMilliseconds` (>= 1) | `sleep_window` |
//! | `execution.isolation.thread.timeoutInMilliseconds` (>= 1) | `timeout` |
//! | `execution.isolation.semaphore.maxConcurrentRequests` (>= 1) | `max_concurrent_calls` (bulkhead) |

use breakwater_circuit_breaker::config::MAX_DURATION;

/// What a Hystrix setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Percent,
    Count { min: u64 },
    Millis { min: u64 },
}

/// The settings that drive a breaker: suffix after `hystrix.command.<name>.`.
const SETTINGS: [(&str, Kind); 8] = [
    ("circuitBreaker.forceOpen", Kind::Bool),
    ("circuitBreaker.forceClosed", Kind::Bool),
    ("circuitBreaker.enabled", Kind::Bool),
    ("circuitBreaker.errorThresholdPercentage", Kind::Percent),
    (
        "circuitBreaker.requestVolumeThreshold",
        Kind::Count { min: 1 },
    ),
    (
        "circuitBreaker.sleepWindowInMilliseconds",
        Kind::Millis { min: 1 },
    ),
    (
        "execution.isolation.thread.timeoutInMilliseconds",
        Kind::Millis { min: 1 },
    ),
    (
        "execution.isolation.semaphore.maxConcurrentRequests",
        Kind::Count { min: 1 },
    ),
];

fn setting_of(key: &str) -> Option<Kind> {
    let rest = key.strip_prefix("hystrix.command.")?;
    SETTINGS.iter().find_map(|(suffix, kind)| {
        let name = rest.strip_suffix(suffix)?.strip_suffix('.')?;
        (!name.is_empty()).then_some(*kind)
    })
}

/// For a key under `hystrix.command.<name>.` that is no setting this crate knows: why, with
/// the nearest known setting (a misspelled `forceOpn` would otherwise be written and never
/// read).
///
/// ```
/// use breakwater_dyn_config::hystrix::unknown_setting;
///
/// let typo = unknown_setting("hystrix.command.x.circuitBreaker.forceOpn").unwrap();
/// assert!(typo.contains("did you mean `circuitBreaker.forceOpen`"));
/// assert_eq!(unknown_setting("hystrix.command.x.circuitBreaker.forceOpen"), None);
/// assert_eq!(unknown_setting("orders.timeoutMs"), None);
/// ```
pub fn unknown_setting(key: &str) -> Option<String> {
    let rest = key.strip_prefix("hystrix.command.")?;
    if setting_of(key).is_some() {
        return None;
    }
    // The command name is what comes before the setting: try every split point.
    let (name, nearest, distance) = rest
        .match_indices('.')
        .flat_map(|(i, _)| {
            let (name, setting) = (&rest[..i], &rest[i + 1..]);
            SETTINGS
                .iter()
                .map(move |(known, _)| (name, *known, edit_distance(setting, known)))
        })
        .min_by_key(|(_, _, d)| *d)?;
    let suggestion = if distance <= 3 {
        format!(" (did you mean `{nearest}`, as in `hystrix.command.{name}.{nearest}`?)")
    } else {
        String::new()
    };
    Some(format!(
        "`{key}` is under hystrix.command. but names no known setting{suggestion}"
    ))
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Checks `value` for a Hystrix key: `None` for other keys, else whether the value is
/// acceptable, with the reason when not ([`crate::validate::known_key`] covers every known
/// key).
///
/// ```
/// use breakwater_dyn_config::hystrix::validate;
///
/// let force = "hystrix.command.payments.circuitBreaker.forceOpen";
/// assert_eq!(validate(force, "true"), Some(Ok(())));
/// assert!(validate(force, "yes").unwrap().is_err());
/// assert_eq!(validate("orders.timeoutMs", "5"), None);
/// ```
pub fn validate(key: &str, value: &str) -> Option<Result<(), String>> {
    let kind = setting_of(key)?;
    let v = value.trim();
    Some(match kind {
        // Java's Boolean.parseBoolean ignores case, so Hystrix users write TRUE too.
        Kind::Bool if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") => Ok(()),
        Kind::Bool => Err(format!("expected true or false, got {value:?}")),
        Kind::Percent => match v.parse::<u8>() {
            Ok(p) if p <= 100 => Ok(()),
            _ => Err(format!(
                "expected a percentage from 0 to 100, got {value:?}"
            )),
        },
        Kind::Count { min } => match v.parse::<u64>() {
            Ok(n) if n >= min && n <= u64::from(u32::MAX) => Ok(()),
            _ => Err(format!(
                "expected a whole number from {min} to {}, got {value:?}",
                u32::MAX
            )),
        },
        // The longest duration the breaker takes.
        Kind::Millis { min } => {
            let max = MAX_DURATION.as_millis();
            match v.parse::<u64>() {
                Ok(n) if n >= min && u128::from(n) <= max => Ok(()),
                _ => Err(format!(
                    "expected milliseconds from {min} to {max} ({} h), got {value:?}",
                    MAX_DURATION.as_secs() / 3600
                )),
            }
        }
    })
}

pub use binding::{HystrixBinding, bind};

mod binding {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use breakwater_circuit_breaker::{
        CircuitBreaker, CircuitBreakerConfig, CircuitBreakerRegistry, Mode,
    };

    use super::{SETTINGS, validate};
    use crate::store::{ConfigStore, Watcher};

    /// Keeps the bindings alive: drop it and breakers stop following config.
    #[derive(Debug, Default)]
    pub struct HystrixBinding {
        config: Option<ConfigStore>,
        bound: HashSet<String>,
        watchers: Vec<Arc<dyn Watcher>>,
    }

    impl std::fmt::Debug for dyn Watcher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Watcher")
        }
    }

    /// Binds every breaker now in `registry` to the Hystrix properties of its name (breakers
    /// made later: [`HystrixBinding::bind_new`] or [`HystrixBinding::follow_registry`]).
    ///
    /// ```
    /// use breakwater_circuit_breaker::{Mode, CircuitBreakerRegistry};
    /// use breakwater_dyn_config::{ConfigStore, hystrix};
    ///
    /// let registry = CircuitBreakerRegistry::new();
    /// let payments = registry.breaker("payments");
    /// let config = ConfigStore::new();
    /// let _binding = hystrix::bind(&config, &registry);
    /// config.set_override("hystrix.command.payments.circuitBreaker.forceOpen", "true");
    /// assert_eq!(payments.config().mode, Mode::ForcedOpen);
    /// config.set_override("hystrix.command.default.execution.isolation.thread.timeoutInMilliseconds", "250");
    /// assert_eq!(payments.config().timeout, Some(std::time::Duration::from_millis(250)));
    /// ```
    pub fn bind(config: &ConfigStore, registry: &CircuitBreakerRegistry) -> HystrixBinding {
        let mut binding = HystrixBinding::empty(config);
        binding.bind_new(registry);
        binding
    }

    impl HystrixBinding {
        /// A binding of no breaker yet, to `config`.
        pub(crate) fn empty(config: &ConfigStore) -> HystrixBinding {
            HystrixBinding {
                config: Some(config.clone()),
                bound: HashSet::new(),
                watchers: Vec::new(),
            }
        }

        /// Binds one more breaker (one created after [`bind`]); a breaker already bound is
        /// left as it is.
        pub fn bind(&mut self, breaker: &CircuitBreaker) {
            let Some(config) = &self.config else { return };
            if !self.bound.insert(breaker.name().to_owned()) {
                return;
            }
            let watcher: Arc<dyn Watcher> = Arc::new(BreakerWatcher {
                breaker: breaker.clone(),
                original: (*breaker.config()).clone(),
                config: config.clone(),
                last_good: Mutex::new(Vec::new()),
                applying: Mutex::new(()),
            });
            for (suffix, _) in SETTINGS {
                for command in [breaker.name(), "default"] {
                    config.watch(&format!("hystrix.command.{command}.{suffix}"), &watcher);
                }
            }
            self.watchers.push(watcher);
        }

        /// Binds the breakers of `registry` not bound yet; returns how many.
        pub fn bind_new(&mut self, registry: &CircuitBreakerRegistry) -> usize {
            let before = self.bound.len();
            for breaker in registry.breakers() {
                self.bind(&breaker);
            }
            self.bound.len() - before
        }

        /// Moves the binding into a task (on the current Tokio runtime) that binds new
        /// breakers of `registry` every `every`, since the registry announces none. Abort
        /// the task to unbind everything.
        pub fn follow_registry(
            mut self,
            registry: CircuitBreakerRegistry,
            every: Duration,
        ) -> tokio::task::JoinHandle<()> {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    self.bind_new(&registry);
                }
            })
        }
    }

    struct BreakerWatcher {
        breaker: CircuitBreaker,
        original: CircuitBreakerConfig,
        config: ConfigStore,
        /// The last good text per setting suffix, kept when a new text is invalid.
        last_good: Mutex<Vec<(&'static str, String)>>,
        applying: Mutex<()>,
    }

    impl BreakerWatcher {
        /// The text of a setting: the command's key, else the default's.
        fn text(&self, suffix: &'static str) -> Option<String> {
            let mut last_good = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
            let mut refused = false;
            for command in [self.breaker.name(), "default"] {
                let key = format!("hystrix.command.{command}.{suffix}");
                let Some(sourced) = self.config.effective(&key) else {
                    continue;
                };
                match validate(&key, &sourced.value) {
                    Some(Err(reason)) => {
                        tracing::error!(%key, source = %sourced.origin, %reason, "config value refused; the last good value stays");
                        crate::metrics::rejected(&key, sourced.origin.kind);
                        refused = true;
                        // The command's bad value: the default's may still be good.
                    }
                    _ if refused => {
                        // A good default under a refused command value: keep the command's
                        // last good value if there is one, else use the default.
                        let kept = last_good
                            .iter()
                            .find(|(s, _)| *s == suffix)
                            .map(|(_, v)| v.clone());
                        return kept.or_else(|| Some(sourced.value.trim().to_owned()));
                    }
                    _ => {
                        let value = sourced.value.trim().to_owned();
                        last_good.retain(|(s, _)| *s != suffix);
                        last_good.push((suffix, value.clone()));
                        return Some(value);
                    }
                }
            }
            if refused {
                return last_good
                    .iter()
                    .find(|(s, _)| *s == suffix)
                    .map(|(_, v)| v.clone());
            }
            None
        }

        fn apply(&self) {
            let text = |suffix| self.text(suffix);
            let flag = |suffix| text(suffix).map(|v| v.eq_ignore_ascii_case("true"));
            let number = |suffix| text(suffix).and_then(|v| v.parse::<u64>().ok());
            let original = &self.original;
            let mode = if flag("circuitBreaker.forceOpen") == Some(true) {
                Mode::ForcedOpen
            } else if flag("circuitBreaker.forceClosed") == Some(true) {
                Mode::ForcedClosed
            } else if flag("circuitBreaker.enabled") == Some(false) {
                Mode::MetricsOnly
            } else {
                original.mode
            };
            let result = self.breaker.update(|c| {
                c.mode = mode;
                c.error_threshold_percentage = number("circuitBreaker.errorThresholdPercentage")
                    .map_or(original.error_threshold_percentage, |n| n as u8);
                c.request_volume_threshold = number("circuitBreaker.requestVolumeThreshold")
                    .map_or(original.request_volume_threshold, |n| n as u32);
                c.sleep_window = number("circuitBreaker.sleepWindowInMilliseconds")
                    .map_or(original.sleep_window, Duration::from_millis);
                c.timeout = number("execution.isolation.thread.timeoutInMilliseconds")
                    .map_or(original.timeout, |ms| Some(Duration::from_millis(ms)));
                c.max_concurrent_calls =
                    number("execution.isolation.semaphore.maxConcurrentRequests")
                        .map_or(original.max_concurrent_calls, |n| n as u32);
            });
            if let Err(error) = result {
                tracing::error!(breaker = self.breaker.name(), %error, "breaker settings from config refused; applying the forced state alone");
                // A force during an incident must not wait for an unrelated bad setting.
                if let Err(error) = self.breaker.update(|c| c.mode = mode) {
                    tracing::error!(breaker = self.breaker.name(), %error, "forced state refused");
                }
            }
        }
    }

    impl Watcher for BreakerWatcher {
        fn changed(&self, _config: &ConfigStore, _key: &str) {
            // One change at a time, each from the latest texts.
            let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
            self.apply();
        }
    }
}
