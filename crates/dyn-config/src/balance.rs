//! Balancer settings from configuration (feature `balance`): every setting of a
//! [`Balancer`] follows the property
//! `balance.<service>.<setting>`, else `balance.default.<setting>`, else what the balancer
//! was made with. Setting names: [`breakwater_balance::config::SETTINGS`].
//!
//! ```
//! use breakwater_balance::{BalanceConfig, Balancer, Endpoint};
//! use breakwater_dyn_config::{ConfigStore, balance};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (_list, updates) = tokio::sync::watch::channel(vec![Endpoint::new("a", "10.0.0.1", 80)]);
//! let make = |_: &Endpoint| tower::service_fn(|()| async { Ok::<_, std::io::Error>(()) });
//! let payments = Balancer::fixed("payments", updates, make, BalanceConfig::default()).unwrap();
//! let config = ConfigStore::new();
//! let _binding = balance::bind(&config, &payments);
//! config.set_override("balance.payments.ejection.consecutiveFailures", "3");
//! assert_eq!(payments.config().consecutive_failures, 3);
//! config.set_override("balance.default.zoneAffinity", "false");
//! assert!(!payments.config().zone_affinity);
//! // A bad text is refused (logged, counted) and the last good value stays.
//! config.set_override("balance.payments.ejection.consecutiveFailures", "three");
//! assert_eq!(payments.config().consecutive_failures, 3);
//! # }
//! ```

use std::sync::Arc;

use breakwater_balance::config::SETTINGS;
use breakwater_balance::{BalanceConfig, Balancer};

use crate::scoped::{Apply, Scoped, follow};
use crate::store::{ConfigStore, Watcher};

/// Keeps a balancer following configuration: drop it to stop. It holds a clone of the
/// balancer.
pub struct BalanceBinding {
    _watcher: Arc<dyn Watcher>,
}

impl std::fmt::Debug for BalanceBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceBinding").finish_non_exhaustive()
    }
}

/// Binds `balancer`'s settings to the `balance.*` properties of `config`, and applies them
/// now.
pub fn bind<S, C>(config: &ConfigStore, balancer: &Balancer<S, C>) -> BalanceBinding
where
    S: Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    let target = balancer.clone();
    let apply: Apply<BalanceConfig> =
        Box::new(move |c| target.set_config(c).map_err(|e| e.to_string()));
    bind_with(config, balancer.service(), balancer.config(), apply)
}

/// Binds the balancer settings of `service`, which start as `original`, handing each new
/// set to `apply`.
pub(crate) fn bind_with(
    config: &ConfigStore,
    service: &str,
    original: BalanceConfig,
    apply: Apply<BalanceConfig>,
) -> BalanceBinding {
    let keys = SETTINGS
        .iter()
        .map(|(setting, _)| {
            let keys = [service, "default"].map(|scope| format!("balance.{scope}.{setting}"));
            (*setting, keys.to_vec())
        })
        .collect();
    let watcher = follow(
        config,
        Scoped {
            owner: format!("balancer of {service}"),
            keys,
            original,
            set: |c, setting, text| c.set(setting, text).map_err(|e| e.to_string()),
            apply,
        },
    );
    BalanceBinding { _watcher: watcher }
}
