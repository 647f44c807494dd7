//! [`CircuitBreakerRegistry`]: the breakers and bulkheads of a process, by name.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::broadcast;

use crate::breaker::{Builder, CircuitBreaker};
use crate::bulkhead::{Bulkhead, BulkheadSnapshot, Bulkheads};
use crate::clock::Clock;
use crate::config::CircuitBreakerConfig;
use crate::error::ConfigError;
use crate::event::Event;
use crate::snapshot::Snapshot;

struct Inner {
    breakers: RwLock<BTreeMap<Arc<str>, CircuitBreaker>>,
    bulkheads: Arc<Bulkheads>,
    events: broadcast::Sender<Event>,
    clock: Option<Clock>,
}

/// Named breakers and bulkheads: what the stream dashboard reports and dynamic configuration
/// changes. Cheap to clone: clones share one registry.
///
/// ```
/// use breakwater_circuit_breaker::CircuitBreakerRegistry;
///
/// let registry = CircuitBreakerRegistry::new();
/// let a = registry.breaker("users");
/// let b = registry.breaker("users");
/// assert_eq!(a.name(), b.name()); // one breaker per name
/// assert_eq!(registry.snapshot().len(), 1);
/// ```
#[derive(Clone)]
pub struct CircuitBreakerRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CircuitBreakerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerRegistry")
            .field("breakers", &self.read_breakers().len())
            .finish()
    }
}

impl Default for CircuitBreakerRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::make(None)
    }

    /// An empty registry whose breakers and bulkheads use `clock` (for tests on a paused or
    /// manual clock).
    pub fn with_clock(clock: Clock) -> Self {
        Self::make(Some(clock))
    }

    fn make(clock: Option<Clock>) -> Self {
        CircuitBreakerRegistry {
            inner: Arc::new(Inner {
                breakers: RwLock::new(BTreeMap::new()),
                bulkheads: Arc::default(),
                events: broadcast::channel(1024).0,
                clock,
            }),
        }
    }

    /// The process-wide registry.
    pub fn global() -> &'static CircuitBreakerRegistry {
        static GLOBAL: OnceLock<CircuitBreakerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(CircuitBreakerRegistry::new)
    }

    fn read_breakers(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Arc<str>, CircuitBreaker>> {
        self.inner
            .breakers
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The breaker called `name`, made with default settings if there is none.
    pub fn breaker(&self, name: impl AsRef<str>) -> CircuitBreaker {
        self.register(CircuitBreaker::builder(name))
            .expect("the default configuration is valid")
    }

    /// The breaker called `name`, made with `config` if there is none; an existing breaker
    /// gets `config` as its new settings.
    pub fn breaker_with(
        &self,
        name: impl AsRef<str>,
        config: CircuitBreakerConfig,
    ) -> Result<CircuitBreaker, ConfigError> {
        if let Some(existing) = self.get(name.as_ref()) {
            existing.set_config(config)?;
            return Ok(existing);
        }
        self.register(CircuitBreaker::builder(name).config(config))
    }

    /// Builds and adds a breaker; if one has the name already, that one is returned unchanged.
    pub fn register(&self, builder: Builder) -> Result<CircuitBreaker, ConfigError> {
        if let Some(existing) = self.get(builder.name()) {
            return Ok(existing);
        }
        let builder = match (&self.inner.clock, builder.has_clock()) {
            (Some(clock), false) => builder.clock(clock.clone()),
            _ => builder,
        };
        let mut map = self
            .inner
            .breakers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(builder.name()) {
            return Ok(existing.clone());
        }
        let name = builder.name().clone();
        let breaker = builder.build_in(
            Some(self.inner.events.clone()),
            Some(Arc::downgrade(&self.inner.bulkheads)),
        )?;
        map.insert(name, breaker.clone());
        Ok(breaker)
    }

    /// The breaker called `name`, if any.
    pub fn get(&self, name: &str) -> Option<CircuitBreaker> {
        self.read_breakers().get(name).cloned()
    }

    /// Removes a breaker from the registry (services holding it keep using it).
    pub fn remove(&self, name: &str) -> Option<CircuitBreaker> {
        self.inner
            .breakers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }

    /// Every breaker, by name.
    pub fn breakers(&self) -> Vec<CircuitBreaker> {
        self.read_breakers().values().cloned().collect()
    }

    /// A snapshot of every breaker, by name.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        self.breakers().iter().map(|b| b.snapshot()).collect()
    }

    /// The bulkhead called `name`, made with a cap of 10 if there is none.
    pub fn bulkhead(&self, name: impl AsRef<str>) -> Bulkhead {
        let name = name.as_ref();
        if let Some(bulkhead) = self.inner.bulkheads.get(name) {
            return bulkhead;
        }
        self.inner.bulkheads.add(Bulkhead::with_clock(
            name.into(),
            CircuitBreakerConfig::default().max_concurrent_calls,
            self.inner.clock.clone().unwrap_or_default(),
        ))
    }

    /// Every bulkhead, by name.
    pub fn bulkheads(&self) -> Vec<Bulkhead> {
        self.inner.bulkheads.all()
    }

    /// A snapshot of every bulkhead, by name.
    pub fn bulkhead_snapshots(&self) -> Vec<BulkheadSnapshot> {
        self.bulkheads().iter().map(|b| b.snapshot()).collect()
    }

    /// Receives the events of every breaker of this registry from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }
}
