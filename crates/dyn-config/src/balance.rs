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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use breakwater_balance::config::SETTINGS;
use breakwater_balance::{BalanceConfig, Balancer, SettingError};

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

type Apply = Box<dyn Fn(BalanceConfig) -> Result<(), SettingError> + Send + Sync>;

struct BalanceWatcher {
    service: String,
    original: BalanceConfig,
    apply: Apply,
    /// The last good text per setting, kept when a new text is refused.
    last_good: Mutex<HashMap<&'static str, String>>,
}

/// Binds `balancer`'s settings to the `balance.*` properties of `config`, and applies them
/// now.
pub fn bind<S, C>(config: &ConfigStore, balancer: &Balancer<S, C>) -> BalanceBinding
where
    S: Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    let target = balancer.clone();
    let watcher = Arc::new(BalanceWatcher {
        service: balancer.service().to_owned(),
        original: balancer.config(),
        apply: Box::new(move |c| target.set_config(c)),
        last_good: Mutex::new(HashMap::new()),
    });
    let dyn_watcher: Arc<dyn Watcher> = watcher.clone();
    for (setting, _) in SETTINGS {
        for scope in [watcher.service.as_str(), "default"] {
            config.watch(&format!("balance.{scope}.{setting}"), &dyn_watcher);
        }
    }
    watcher.changed(config, "");
    BalanceBinding {
        _watcher: dyn_watcher,
    }
}

impl Watcher for BalanceWatcher {
    fn changed(&self, config: &ConfigStore, _key: &str) {
        let mut last_good = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.original.clone();
        for (setting, _) in SETTINGS {
            let found = [self.service.as_str(), "default"]
                .into_iter()
                .find_map(|scope| {
                    let key = format!("balance.{scope}.{setting}");
                    config.effective(&key).map(|sourced| (key, sourced))
                });
            let Some((key, sourced)) = found else {
                last_good.remove(setting);
                continue;
            };
            let mut trial = next.clone();
            match trial.set(setting, &sourced.value) {
                Ok(()) => {
                    next = trial;
                    last_good.insert(setting, sourced.value.clone());
                }
                Err(error) => {
                    tracing::error!(%key, source = %sourced.origin, %error, "config value refused; the last good value stays");
                    crate::metrics::rejected(&key, sourced.origin.kind);
                    if let Some(good) = last_good.get(setting) {
                        let _ = next.set(setting, good);
                    }
                }
            }
        }
        if let Err(error) = (self.apply)(next) {
            tracing::error!(service = %self.service, %error, "balancer settings from config refused; the settings in force stay");
        }
    }
}
