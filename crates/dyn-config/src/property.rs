//! Typed properties: lock-free reads, change callbacks, watch streams.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::error::InvalidValue;
use crate::store::{ConfigStore, Watcher};
use crate::value::FromConfig;

type Validator<T> = Box<dyn Fn(&T) -> Result<(), String> + Send + Sync>;
type Callback<T> = Arc<dyn Fn(&T) + Send + Sync>;

struct Inner<T> {
    /// The value packed in 64 bits, for types that fit (see `FromConfig::PACKED`).
    bits: AtomicU64,
    key: String,
    default: Arc<T>,
    value: ArcSwap<T>,
    validator: Validator<T>,
    callbacks: Mutex<Vec<Callback<T>>>,
    sender: watch::Sender<Arc<T>>,
    last_error: Mutex<Option<InvalidValue>>,
    /// Serialises applying changes: read the text, compare, store, announce.
    applying: Mutex<()>,
    /// Hands new values to the callbacks, one delivery at a time (see [`Dispatch`]).
    dispatch: Mutex<Dispatch<T>>,
}

/// The callbacks' mailbox: at most one thread delivers at a time, and it keeps delivering
/// until no newer value is waiting, so callbacks always end on the latest value (a value
/// overtaken before its turn is skipped).
struct Dispatch<T> {
    /// The newest value not delivered yet.
    pending: Option<Arc<T>>,
    /// A thread is delivering (it will pick up `pending`).
    running: bool,
}

/// Clears `running` if a callback panics, so later changes are still delivered.
struct Delivering<'a, T> {
    dispatch: &'a Mutex<Dispatch<T>>,
    armed: bool,
}

impl<T> Drop for Delivering<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            self.dispatch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .running = false;
        }
    }
}

/// A typed setting with a default. Reading it is a lock-free load ([`arc_swap`]); when a
/// layer changes its text, the new value is parsed and validated, then stored and announced
/// to callbacks and watchers. Invalid text is refused with a logged error naming the key and
/// where the text came from, and the last good value stays. Cheap to clone (a handle).
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use breakwater_dyn_config::ConfigStore;
///
/// let config = ConfigStore::new();
/// let timeout = config.property("orders.timeoutMs", 1000u64);
/// let seen = Arc::new(AtomicU64::new(0));
/// let s = seen.clone();
/// timeout.on_change(move |ms| s.store(*ms, Ordering::Relaxed));
/// config.set_override("orders.timeoutMs", "250");
/// assert_eq!((timeout.get(), seen.load(Ordering::Relaxed)), (250, 250));
///
/// config.set_override("orders.timeoutMs", "-5"); // not a u64: refused, 250 stays
/// assert_eq!(timeout.get(), 250);
/// let error = timeout.last_error().unwrap();
/// assert_eq!(error.to_string(),
///     "config key `orders.timeoutMs`: expected a whole number of at least 0, got \"-5\" (value from runtime override)");
/// ```
pub struct Property<T> {
    inner: Arc<Inner<T>>,
}

/// The `ArcSwap` inside a property, for `arc_swap::Cache`.
struct ValueOf<T>(Arc<Inner<T>>);

impl<T> std::ops::Deref for ValueOf<T> {
    type Target = ArcSwap<T>;
    fn deref(&self) -> &ArcSwap<T> {
        &self.0.value
    }
}

/// A property's reader for one thread or task ([`Property::cached`]): `get` takes `&mut
/// self` because it refreshes its own reference when the value changed.
pub struct CachedProperty<T> {
    cache: arc_swap::Cache<ValueOf<T>, Arc<T>>,
}

impl<T> CachedProperty<T> {
    /// The current value.
    #[inline]
    pub fn get(&mut self) -> &T {
        self.cache.load()
    }
}

impl<T: fmt::Debug> fmt::Debug for CachedProperty<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedProperty")
            .field("value", &**self.cache.arc_swap().load())
            .finish()
    }
}

impl<T> Clone for Property<T> {
    fn clone(&self) -> Self {
        Property {
            inner: self.inner.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Property<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Property")
            .field("key", &self.inner.key)
            .field("value", &**self.inner.value.load())
            .finish()
    }
}

impl<T: FromConfig + Clone + PartialEq> Property<T> {
    pub(crate) fn new(key: String, default: T, validator: Validator<T>) -> Self {
        let default = Arc::new(default);
        let (sender, _) = watch::channel(default.clone());
        Property {
            inner: Arc::new(Inner {
                bits: AtomicU64::new(default.pack()),
                key,
                value: ArcSwap::new(default.clone()),
                default,
                validator,
                callbacks: Mutex::new(Vec::new()),
                sender,
                last_error: Mutex::new(None),
                applying: Mutex::new(()),
                dispatch: Mutex::new(Dispatch {
                    pending: None,
                    running: false,
                }),
            }),
        }
    }

    pub(crate) fn watcher(&self) -> Arc<dyn Watcher> {
        self.inner.clone()
    }

    /// The current value: one atomic load for types that fit in 64 bits (numbers, `bool`,
    /// `Duration`, [`Rollout`](crate::Rollout)), else a clone of an `ArcSwap` load (for
    /// large values see [`load`](Self::load)).
    #[inline]
    pub fn get(&self) -> T {
        if T::PACKED
            && let Some(value) = T::unpack(self.inner.bits.load(Ordering::Acquire))
        {
            return value;
        }
        T::clone(&self.inner.value.load())
    }

    /// The current value without cloning it (an `ArcSwap` load; for a hot path on values
    /// that do not fit in 64 bits see [`cached`](Self::cached)).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.inner.value.load()
    }

    /// A reader for one thread or task that keeps its own reference to the value and only
    /// checks (one relaxed load) that it is still current: as cheap as reading a plain
    /// variable for `String`s, `Vec`s and other values that do not fit in 64 bits.
    ///
    /// ```
    /// use breakwater_dyn_config::ConfigStore;
    ///
    /// let config = ConfigStore::new();
    /// let region = config.property("orders.region", String::from("eu-west-1"));
    /// let mut reader = region.cached();
    /// assert_eq!(reader.get(), "eu-west-1");
    /// config.set_override("orders.region", "us-east-1");
    /// assert_eq!(reader.get(), "us-east-1");
    /// ```
    pub fn cached(&self) -> CachedProperty<T> {
        CachedProperty {
            cache: arc_swap::Cache::new(ValueOf(self.inner.clone())),
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// Calls `callback` with new values, in order, on the thread that applied the change.
    ///
    /// When changes are applied concurrently, one thread at a time runs the callbacks and
    /// it keeps going until it has delivered the latest value: a change made meanwhile on
    /// another thread is delivered by the thread already running them (that other thread
    /// returns at once), and a value already replaced by a newer one may be skipped. So
    /// callbacks always end on the value [`get`](Self::get) returns. A callback may read or
    /// change config, this property included (its new value is delivered after the
    /// callbacks return).
    pub fn on_change(&self, callback: impl Fn(&T) + Send + Sync + 'static) {
        self.inner
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    /// A stream of values: the receiver sees the current value and every change.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use breakwater_dyn_config::ConfigStore;
    ///
    /// let config = ConfigStore::new();
    /// let mode = config.property("orders.mode", String::from("normal"));
    /// let mut changes = mode.watch();
    /// config.set_override("orders.mode", "degraded");
    /// changes.changed().await.unwrap();
    /// assert_eq!(**changes.borrow(), "degraded");
    /// # }
    /// ```
    pub fn watch(&self) -> watch::Receiver<Arc<T>> {
        self.inner.sender.subscribe()
    }

    /// The last refused value, if the most recent change was refused.
    pub fn last_error(&self) -> Option<InvalidValue> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl<T: FromConfig + Clone + PartialEq> Watcher for Inner<T> {
    fn changed(&self, config: &ConfigStore, key: &str) {
        {
            let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
            // Read under the lock: whichever change applies last applies the latest text.
            let effective = config.effective(key);
            let parsed = match &effective {
                None => Ok(self.default.clone()),
                Some(sourced) => T::from_config(&sourced.value)
                    .and_then(|v| (self.validator)(&v).map(|()| v))
                    .map(Arc::new)
                    .map_err(|reason| InvalidValue {
                        key: self.key.clone(),
                        origin: sourced.origin.clone(),
                        reason,
                    }),
            };
            let next = match parsed {
                Ok(next) => next,
                Err(invalid) => {
                    tracing::error!(
                        key = %invalid.key,
                        source = %invalid.origin,
                        reason = %invalid.reason,
                        "config value refused; the last good value stays"
                    );
                    crate::metrics::rejected(&invalid.key, invalid.origin.kind);
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(invalid);
                    return;
                }
            };
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if *next == **self.value.load() {
                return;
            }
            self.value.store(next.clone());
            self.bits.store(next.pack(), Ordering::Release);
            self.sender.send_replace(next.clone());
            tracing::info!(key = %self.key, "config value changed");
            // Still under `applying`: the mailbox gets values in the order they were stored.
            let mut dispatch = self.dispatch.lock().unwrap_or_else(|p| p.into_inner());
            dispatch.pending = Some(next);
            if dispatch.running {
                return; // the thread delivering will deliver this one too
            }
            dispatch.running = true;
        }
        self.deliver();
    }
}

impl<T> Inner<T> {
    /// Runs the callbacks with each pending value until none is left. Outside every lock,
    /// so a callback may read or change config itself.
    fn deliver(&self) {
        let mut delivering = Delivering {
            dispatch: &self.dispatch,
            armed: true,
        };
        loop {
            let value = {
                let mut dispatch = self.dispatch.lock().unwrap_or_else(|p| p.into_inner());
                match dispatch.pending.take() {
                    Some(value) => value,
                    None => {
                        // Under the same lock as the check for a pending value, so a value
                        // that arrives now finds `running` false and is delivered by its
                        // own thread.
                        dispatch.running = false;
                        delivering.armed = false;
                        return;
                    }
                }
            };
            let callbacks: Vec<Callback<T>> = self
                .callbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for callback in callbacks {
                callback(&value);
            }
        }
    }
}
