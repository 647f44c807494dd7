//! The layered store every property reads from.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

use crate::error::SourceError;
use crate::origin::{Origin, SourceKind, Sourced};
use crate::property::Property;
pub use crate::source::env::env_name;
use crate::value::FromConfig;

/// Something told when the effective text of `key` may have changed. It reads the text
/// itself (under its own lock), so concurrent changes always end with the latest text applied.
pub(crate) trait Watcher: Send + Sync {
    fn changed(&self, config: &ConfigStore, key: &str);
}

#[derive(Default)]
struct Inner {
    layers: RwLock<[HashMap<String, Sourced>; 4]>,
    watchers: RwLock<HashMap<String, Vec<Weak<dyn Watcher>>>>,
}

/// The layered store: typed [`Property`] handles are made from it, and sources write their
/// layer into it. Cheap to clone (a handle).
///
/// ```
/// use breakwater_dyn_config::ConfigStore;
///
/// let config = ConfigStore::new();
/// let timeout_ms = config.property("checkout.timeoutMs", 1000u64);
/// assert_eq!(timeout_ms.get(), 1000);
/// config.set_override("checkout.timeoutMs", "250");
/// assert_eq!(timeout_ms.get(), 250);
/// config.set_override("checkout.timeoutMs", "soon"); // refused, logged; 250 stays
/// assert_eq!(timeout_ms.get(), 250);
/// ```
#[derive(Clone, Default)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers = self.inner.layers.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("ConfigStore")
            .field("override", &layers[0].len())
            .field("dynamodb", &layers[1].len())
            .field("env", &layers[2].len())
            .field("file", &layers[3].len())
            .finish()
    }
}

impl ConfigStore {
    /// An empty store: every property has its default until a layer says otherwise.
    pub fn new() -> Self {
        ConfigStore::default()
    }

    /// A store with the process's environment as its environment layer: a key is found
    /// under its own name or as [`env_name`] (upper case, `_` for anything else).
    pub fn from_env() -> Self {
        let config = ConfigStore::new();
        config.load_env(std::env::vars());
        config
    }

    /// Replaces the environment layer with these variables (see [`crate::source::env`]).
    ///
    /// ```
    /// use breakwater_dyn_config::ConfigStore;
    ///
    /// let config = ConfigStore::new();
    /// let port = config.property("server.port", 8080u16);
    /// config.load_env([("SERVER_PORT".to_owned(), "9090".to_owned())]);
    /// assert_eq!(port.get(), 9090);
    /// ```
    pub fn load_env(&self, vars: impl IntoIterator<Item = (String, String)>) {
        self.replace_layer(SourceKind::Env, crate::source::env::layer(vars));
    }

    /// Replaces the file layer with a Java-style properties file (see
    /// [`crate::source::file`]). A malformed line refuses the whole file and the previous
    /// file layer stays.
    ///
    /// ```
    /// use breakwater_dyn_config::ConfigStore;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-{}.properties", std::process::id()));
    /// std::fs::write(&path, "# checkout\ncheckout.retries = 2\n").unwrap();
    /// let config = ConfigStore::new();
    /// let retries = config.property("checkout.retries", 3u32);
    /// config.load_file(&path).unwrap();
    /// assert_eq!(retries.get(), 2);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<(), SourceError> {
        let layer = crate::source::file::read(path.as_ref())?;
        self.replace_layer(SourceKind::File, layer);
        Ok(())
    }

    /// A typed property with a default; its value follows the layers from now on.
    pub fn property<T: FromConfig + Clone + PartialEq>(
        &self,
        key: impl Into<String>,
        default: T,
    ) -> Property<T> {
        self.property_validated(key, default, |_| Ok(()))
    }

    /// A typed property whose values must also pass `validator` (an `Err` explains why);
    /// a value that fails keeps the last good one.
    pub fn property_validated<T: FromConfig + Clone + PartialEq>(
        &self,
        key: impl Into<String>,
        default: T,
        validator: impl Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Property<T> {
        let property = Property::new(key.into(), default, Box::new(validator));
        let watcher: Arc<dyn Watcher> = property.watcher();
        self.watch(property.key(), &watcher);
        property
    }

    /// Registers `watcher` for `key` and tells it the current text at once.
    pub(crate) fn watch(&self, key: &str, watcher: &Arc<dyn Watcher>) {
        self.inner
            .watchers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default()
            .push(Arc::downgrade(watcher));
        watcher.changed(self, key);
    }

    /// Sets a runtime override (the highest layer) for `key`.
    pub fn set_override(&self, key: &str, value: impl Into<String>) {
        let origin = Origin {
            kind: SourceKind::Override,
            detail: String::new(),
        };
        self.set(
            SourceKind::Override,
            key,
            Some(Sourced {
                value: value.into(),
                origin,
            }),
        );
    }

    /// Removes the runtime override of `key`.
    pub fn clear_override(&self, key: &str) {
        self.set(SourceKind::Override, key, None);
    }

    /// The text `key` has now and where it came from, if any layer has it.
    pub fn effective(&self, key: &str) -> Option<Sourced> {
        let layers = self.inner.layers.read().unwrap_or_else(|p| p.into_inner());
        Self::lookup(&layers, key)
    }

    fn lookup(layers: &[HashMap<String, Sourced>; 4], key: &str) -> Option<Sourced> {
        SourceKind::ALL.iter().find_map(|layer| {
            let map = &layers[layer.index()];
            map.get(key)
                .or_else(|| {
                    (*layer == SourceKind::Env)
                        .then(|| map.get(&env_name(key)))
                        .flatten()
                })
                .cloned()
        })
    }

    /// Sets or removes one key of one layer.
    pub(crate) fn set(&self, layer: SourceKind, key: &str, value: Option<Sourced>) {
        {
            let mut layers = self.inner.layers.write().unwrap_or_else(|p| p.into_inner());
            let map = &mut layers[layer.index()];
            match value {
                Some(v) => {
                    if map.get(key) == Some(&v) {
                        return;
                    }
                    map.insert(key.to_owned(), v);
                }
                None => {
                    if map.remove(key).is_none() {
                        return;
                    }
                }
            }
        }
        self.notify(key);
    }

    /// Replaces a whole layer, telling the watchers of every key whose text changed.
    pub(crate) fn replace_layer(&self, layer: SourceKind, values: HashMap<String, Sourced>) {
        let changed: Vec<String> = {
            let mut layers = self.inner.layers.write().unwrap_or_else(|p| p.into_inner());
            let old = std::mem::replace(&mut layers[layer.index()], values);
            let new = &layers[layer.index()];
            let mut changed: Vec<String> = old
                .iter()
                .filter(|(k, v)| new.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            changed.extend(new.keys().filter(|k| !old.contains_key(*k)).cloned());
            changed
        };
        let watched: Vec<String> = {
            let watchers = self
                .inner
                .watchers
                .read()
                .unwrap_or_else(|p| p.into_inner());
            watchers.keys().cloned().collect()
        };
        for key in watched {
            // Environment variables match a key by its own name or its env_name.
            if changed.iter().any(|c| *c == key || *c == env_name(&key)) {
                self.notify(&key);
            }
        }
    }

    fn notify(&self, key: &str) {
        let live: Vec<Arc<dyn Watcher>> = {
            let mut watchers = self
                .inner
                .watchers
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let Some(list) = watchers.get_mut(key) else {
                return;
            };
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for watcher in live {
            watcher.changed(self, key);
        }
    }
}
