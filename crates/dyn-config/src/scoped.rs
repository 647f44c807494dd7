//! Settings objects that follow properties: each setting is read from the first of its keys
//! that has a value (a service's key, then a default scope's), applied to a copy of the
//! settings the object started with, and the result handed to the object. Refused text is
//! logged and counted, and the setting's last good text stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{ConfigStore, Watcher};

/// Applies one setting from text; the error says why it was refused.
pub(crate) type Set<C> = fn(&mut C, &str, &str) -> Result<(), String>;

/// Hands the new settings to what follows them.
pub(crate) type Apply<C> = Box<dyn Fn(C) -> Result<(), String> + Send + Sync>;

pub(crate) struct Scoped<C> {
    /// What the settings belong to, for logs.
    pub(crate) owner: String,
    /// Per setting name: its keys, most specific first.
    pub(crate) keys: Vec<(&'static str, Vec<String>)>,
    /// The settings before any property.
    pub(crate) original: C,
    pub(crate) set: Set<C>,
    pub(crate) apply: Apply<C>,
}

struct ScopedWatcher<C> {
    scoped: Scoped<C>,
    last_good: Mutex<HashMap<&'static str, String>>,
}

/// Watches every key of `scoped` in `config` and applies the settings now; the settings
/// follow as long as the returned watcher lives.
pub(crate) fn follow<C>(config: &ConfigStore, scoped: Scoped<C>) -> Arc<dyn Watcher>
where
    C: Clone + Send + Sync + 'static,
{
    let keys: Vec<String> = scoped.keys.iter().flat_map(|(_, k)| k.clone()).collect();
    let watcher: Arc<dyn Watcher> = Arc::new(ScopedWatcher {
        scoped,
        last_good: Mutex::new(HashMap::new()),
    });
    for key in &keys {
        config.watch(key, &watcher);
    }
    watcher
}

impl<C: Clone + Send + Sync> Watcher for ScopedWatcher<C> {
    fn changed(&self, config: &ConfigStore, _key: &str) {
        let scoped = &self.scoped;
        let mut last_good = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = scoped.original.clone();
        for (setting, keys) in &scoped.keys {
            let found = keys
                .iter()
                .find_map(|key| config.effective(key).map(|sourced| (key, sourced)));
            let Some((key, sourced)) = found else {
                last_good.remove(setting);
                continue;
            };
            let mut trial = next.clone();
            match (scoped.set)(&mut trial, setting, &sourced.value) {
                Ok(()) => {
                    next = trial;
                    last_good.insert(setting, sourced.value.clone());
                }
                Err(error) => {
                    tracing::error!(%key, source = %sourced.origin, %error, "config value refused; the last good value stays");
                    crate::metrics::rejected(key, sourced.origin.kind);
                    if let Some(good) = last_good.get(setting) {
                        let _ = (scoped.set)(&mut next, setting, good);
                    }
                }
            }
        }
        if let Err(error) = (scoped.apply)(next) {
            tracing::error!(owner = %scoped.owner, %error, "settings from config refused; the settings in force stay");
        }
    }
}
