//! Validation: the rules of known keys (shared by the library and the `breakwater-config`
//! CLI, so the CLI refuses what a service would refuse) and validators to give properties.
//!
//! A property always checks its type ([`FromConfig`]); a validator adds a rule on the typed
//! value. Known keys are the Hystrix settings ([`crate::hystrix`]) and feature flags
//! (`feature.*`, see [`Rollout`]).

use crate::flag::Rollout;
use crate::value::FromConfig;

/// Checks `value` against the rules of a known key: `None` when the key has no rules here
/// (anything goes), else whether the value is acceptable, with the reason when not.
///
/// ```
/// use breakwater_dyn_config::validate::known_key;
///
/// let key = "hystrix.command.payments.circuitBreaker.errorThresholdPercentage";
/// assert_eq!(known_key(key, "50"), Some(Ok(())));
/// assert!(known_key(key, "150").unwrap().is_err());
/// assert!(known_key("feature.newCheckout", "25%").unwrap().is_ok());
/// assert!(known_key("feature.newCheckout", "maybe").unwrap().is_err());
/// assert_eq!(known_key("orders.anything", "goes"), None);
/// ```
pub fn known_key(key: &str, value: &str) -> Option<Result<(), String>> {
    if let Some(result) = crate::hystrix::validate(key, value) {
        return Some(result);
    }
    if key.starts_with("feature.") {
        return Some(Rollout::from_config(value).map(|_| ()));
    }
    None
}

/// Checks a key can be written: not empty, no whitespace or control characters, not under
/// the prefix of the table's own bookkeeping.
///
/// ```
/// use breakwater_dyn_config::validate::key;
///
/// assert!(key("orders.timeoutMs").is_ok());
/// assert!(key("orders timeoutMs").is_err());
/// assert!(key("__breakwater__/version").is_err());
/// ```
pub fn key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if let Some(at) = key
        .chars()
        .position(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "the key has whitespace or a control character at character {at}"
        ));
    }
    if key.starts_with(crate::table::INTERNAL_PREFIX) {
        return Err(format!(
            "keys starting with {:?} are the table's own bookkeeping",
            crate::table::INTERNAL_PREFIX
        ));
    }
    Ok(())
}

/// A validator for [`ConfigStore::property_validated`](crate::ConfigStore::property_validated):
/// the value must lie in `min..=max`.
///
/// ```
/// use breakwater_dyn_config::{ConfigStore, validate};
///
/// let config = ConfigStore::new();
/// let retries = config.property_validated("orders.retries", 3u32, validate::range(0, 10));
/// config.set_override("orders.retries", "11");
/// assert_eq!(retries.get(), 3);
/// assert!(retries.last_error().unwrap().to_string().contains("from 0 to 10"));
/// ```
pub fn range<T>(min: T, max: T) -> impl Fn(&T) -> Result<(), String> + Send + Sync + 'static
where
    T: PartialOrd + std::fmt::Display + Send + Sync + 'static,
{
    move |v| {
        if *v >= min && *v <= max {
            Ok(())
        } else {
            Err(format!("must be from {min} to {max}, got {v}"))
        }
    }
}

/// A validator: the value must be one of `allowed`.
///
/// ```
/// use breakwater_dyn_config::{ConfigStore, validate};
///
/// let config = ConfigStore::new();
/// let level = config.property_validated(
///     "log.level",
///     String::from("info"),
///     validate::one_of(["debug", "info", "warn"]),
/// );
/// config.set_override("log.level", "loud");
/// assert_eq!(level.get(), "info");
/// ```
pub fn one_of<const N: usize>(
    allowed: [&'static str; N],
) -> impl Fn(&String) -> Result<(), String> + Send + Sync + 'static {
    move |v| {
        if allowed.contains(&v.as_str()) {
            Ok(())
        } else {
            Err(format!("must be one of {allowed:?}, got {v:?}"))
        }
    }
}
