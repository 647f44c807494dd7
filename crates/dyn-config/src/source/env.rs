//! The environment layer: a key is found under its own name, or under its
//! [`env_name`] (upper case, `_` for anything else), so `orders.timeoutMs` can be set as
//! `ORDERS_TIMEOUTMS` in a shell or a container spec.

use std::collections::HashMap;

use crate::origin::{Origin, SourceKind, Sourced};

/// The environment variable a key can also be set as: upper case, `_` for anything that is
/// not a letter or digit.
///
/// ```
/// use breakwater_dyn_config::source::env::env_name;
///
/// assert_eq!(
///     env_name("hystrix.command.payments.circuitBreaker.forceOpen"),
///     "HYSTRIX_COMMAND_PAYMENTS_CIRCUITBREAKER_FORCEOPEN"
/// );
/// ```
pub fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The layer made of these variables, each with `$NAME` as where it came from.
pub(crate) fn layer(vars: impl IntoIterator<Item = (String, String)>) -> HashMap<String, Sourced> {
    vars.into_iter()
        .map(|(name, value)| {
            let origin = Origin {
                kind: SourceKind::Env,
                detail: format!("${name}"),
            };
            (name, Sourced { value, origin })
        })
        .collect()
}
