//! The [`CircuitBreaker`] handle: one named breaker's settings, statistics and public API;
//! its state machine is in `machine`, the words it runs on in `state`.

mod machine;
mod state;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::broadcast;

use crate::bulkhead::{Bulkhead, Bulkheads};
use crate::clock::Clock;
use crate::config::{CircuitBreakerConfig, Mode, Window};
use crate::error::ConfigError;
use crate::event::{Event, EventKind, State};
use crate::snapshot::{Counts, Latency, Snapshot};
use crate::stats::{CountWindow, Stats};

pub(crate) use state::Permit;
use state::*;

/// Bucket sizes of the time-based statistics: the configured time window, or Hystrix's
/// default 10 s / 10 when health uses a count-based window.
fn stats_buckets(config: &CircuitBreakerConfig) -> (u64, u32) {
    config.bucket_nanos().unwrap_or((1_000_000_000, 10))
}

fn percentile_buckets(config: &CircuitBreakerConfig) -> (u64, u32) {
    (
        nanos(config.percentile_window) / config.percentile_buckets as u64,
        config.percentile_buckets,
    )
}

struct Transitions {
    consecutive_trips: u32,
}

pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    pub(crate) group: Arc<str>,
    pub(crate) thread_pool: Arc<str>,
    pub(crate) clock: Clock,
    hot: AtomicU64,
    slow_nanos: AtomicU64,
    pub(crate) timeout_nanos: AtomicU64,
    /// Failures in a row, counted only when `consecutive_failures` is set.
    failures_in_a_row: AtomicU32,
    pub(crate) fallback_limit: AtomicU32,
    pub(crate) fallbacks_running: AtomicU32,
    state: AtomicU64,
    open_until: AtomicU64,
    transitions: Mutex<Transitions>,
    config: ArcSwap<CircuitBreakerConfig>,
    config_writer: Mutex<()>,
    pub(crate) stats: Stats,
    count_window: ArcSwapOption<CountWindow>,
    events: broadcast::Sender<Event>,
    registry_events: Option<broadcast::Sender<Event>>,
    bulkhead: OnceLock<Bulkhead>,
    /// The registry's bulkheads, where this breaker's bulkhead is added when first made.
    bulkheads: Option<Weak<Bulkheads>>,
}

/// A named circuit breaker. Cheap to clone: clones share one breaker.
///
/// A breaker made by [`new`](Self::new), [`with_config`](Self::with_config), [`Builder::build`]
/// or a [`CircuitBreakerRegistry`](crate::CircuitBreakerRegistry) lives for the rest of the
/// process, like a Hystrix command: make one per dependency, not one per request. In exchange
/// a call never touches a reference count, which would be a cache line shared by every
/// thread.
///
/// A breaker for something that comes and goes (an instance of a service, which leaves with
/// the next deploy) comes from [`Builder::build_freed_when_dropped`]: it is freed when its
/// last clone is dropped, and each call through a [`CircuitBreakerService`](crate::CircuitBreakerService)
/// pays for a reference count.
///
/// Wrap services with [`CircuitBreakerLayer`](crate::CircuitBreakerLayer); read its state with
/// [`snapshot`](Self::snapshot); change its settings at run time with
/// [`set_config`](Self::set_config) or [`update`](Self::update).
///
/// ```
/// use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, Mode, State};
///
/// let breaker = CircuitBreaker::new("payments");
/// assert_eq!(breaker.state(), State::Closed);
///
/// // An operator forces it open during an incident; the next call is refused.
/// breaker.update(|c| c.mode = Mode::ForcedOpen).unwrap();
/// assert!(breaker.snapshot().is_open_for_hystrix());
///
/// // Invalid settings are refused and the old ones stay.
/// let err = breaker.update(|c| c.error_threshold_percentage = 120).unwrap_err();
/// assert_eq!(err.field, "error_threshold_percentage");
/// assert_eq!(breaker.config().mode, Mode::ForcedOpen);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    pub(crate) inner: Handle,
}

/// How a [`CircuitBreaker`] holds its state: leaked for the life of the process (the default,
/// no reference count per call), or shared and freed with its last clone.
#[derive(Clone)]
pub(crate) enum Handle {
    Leaked(&'static Inner),
    Shared(Arc<Inner>),
}

impl std::ops::Deref for Handle {
    type Target = Inner;

    #[inline(always)]
    fn deref(&self) -> &Inner {
        match self {
            Handle::Leaked(inner) => inner,
            Handle::Shared(inner) => inner,
        }
    }
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("mode", &self.config().mode)
            .finish()
    }
}

/// A [`CircuitBreaker`] that may have been freed: see [`CircuitBreaker::downgrade`].
#[derive(Clone)]
pub struct WeakCircuitBreaker(WeakHandle);

#[derive(Clone)]
enum WeakHandle {
    Leaked(&'static Inner),
    Shared(Weak<Inner>),
}

impl WeakCircuitBreaker {
    /// The breaker, if it is still alive.
    pub fn upgrade(&self) -> Option<CircuitBreaker> {
        let inner = match &self.0 {
            WeakHandle::Leaked(inner) => Handle::Leaked(inner),
            WeakHandle::Shared(weak) => Handle::Shared(weak.upgrade()?),
        };
        Some(CircuitBreaker { inner })
    }
}

impl std::fmt::Debug for WeakCircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakCircuitBreaker")
            .field("alive", &self.upgrade().is_some())
            .finish()
    }
}

/// Builds a [`CircuitBreaker`] with a group, a bulkhead name, settings or a clock of its own.
#[derive(Debug, Clone)]
pub struct Builder {
    name: Arc<str>,
    group: Option<Arc<str>>,
    thread_pool: Option<Arc<str>>,
    config: CircuitBreakerConfig,
    clock: Option<Clock>,
}

impl Builder {
    /// Hystrix group key (default: the name).
    pub fn group(mut self, group: impl AsRef<str>) -> Self {
        self.group = Some(group.as_ref().into());
        self
    }

    /// Name of its bulkhead in reports (Hystrix thread-pool key; default: the group).
    pub fn thread_pool(mut self, name: impl AsRef<str>) -> Self {
        self.thread_pool = Some(name.as_ref().into());
        self
    }

    /// Settings (default: [`CircuitBreakerConfig::default`]).
    pub fn config(mut self, config: CircuitBreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Time source (default: [`Clock::new`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the settings and builds the breaker, which lives for the rest of the
    /// process.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.build_in(None, None)
    }

    /// Validates the settings and builds a breaker that is freed when its last clone is
    /// dropped: for instances of a service, which come and go. Not for a registry, which
    /// would keep it alive.
    ///
    /// ```
    /// use breakwater_circuit_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("payments 10.0.0.7:8080")
    ///     .build_freed_when_dropped()
    ///     .unwrap();
    /// let watcher = breaker.downgrade();
    /// assert!(watcher.upgrade().is_some());
    /// drop(breaker);
    /// assert!(watcher.upgrade().is_none());
    /// ```
    pub fn build_freed_when_dropped(self) -> Result<CircuitBreaker, ConfigError> {
        let inner = self.build_inner(None, None)?;
        Ok(CircuitBreaker {
            inner: Handle::Shared(Arc::new(inner)),
        })
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn has_clock(&self) -> bool {
        self.clock.is_some()
    }

    pub(crate) fn build_in(
        self,
        registry_events: Option<broadcast::Sender<Event>>,
        bulkheads: Option<Weak<Bulkheads>>,
    ) -> Result<CircuitBreaker, ConfigError> {
        let inner = self.build_inner(registry_events, bulkheads)?;
        Ok(CircuitBreaker {
            inner: Handle::Leaked(Box::leak(Box::new(inner))),
        })
    }

    fn build_inner(
        self,
        registry_events: Option<broadcast::Sender<Event>>,
        bulkheads: Option<Weak<Bulkheads>>,
    ) -> Result<Inner, ConfigError> {
        self.config.validate()?;
        let clock = self.clock.unwrap_or_default();
        let now = clock.now_nanos();
        let config = self.config;
        let group = self.group.unwrap_or_else(|| self.name.clone());
        let inner = Inner {
            thread_pool: self.thread_pool.unwrap_or_else(|| group.clone()),
            name: self.name,
            group,
            // Set from `config` by `apply` below, as live updates set them.
            hot: AtomicU64::new(0),
            slow_nanos: AtomicU64::new(0),
            timeout_nanos: AtomicU64::new(0),
            failures_in_a_row: AtomicU32::new(0),
            fallback_limit: AtomicU32::new(0),
            fallbacks_running: AtomicU32::new(0),
            state: AtomicU64::new(pack(CLOSED, 0, 0, 0)),
            open_until: AtomicU64::new(0),
            transitions: Mutex::new(Transitions {
                consecutive_trips: 0,
            }),
            stats: Stats::new(now, stats_buckets(&config), percentile_buckets(&config)),
            count_window: ArcSwapOption::from(count_window(&config)),
            config: ArcSwap::from_pointee(config),
            config_writer: Mutex::new(()),
            events: broadcast::channel(256).0,
            registry_events,
            bulkhead: OnceLock::new(),
            bulkheads,
            clock,
        };
        inner.apply(&inner.config.load());
        Ok(inner)
    }
}

/// The count-based health window `config` asks for, if any.
fn count_window(config: &CircuitBreakerConfig) -> Option<Arc<CountWindow>> {
    match config.window {
        Window::Count { calls } => Some(Arc::new(CountWindow::new(calls))),
        Window::Time { .. } => None,
    }
}

impl Inner {
    /// Copies the settings every call reads into their atomics (and the bulkhead's limit): the
    /// one place both building and live updates put a configuration into force.
    fn apply(&self, config: &CircuitBreakerConfig) {
        self.slow_nanos.store(
            config.slow_calls.map_or(0, |s| nanos(s.duration)),
            Ordering::Relaxed,
        );
        self.timeout_nanos
            .store(config.timeout.map_or(0, nanos), Ordering::Relaxed);
        self.fallback_limit
            .store(config.fallback_max_concurrent_calls, Ordering::Relaxed);
        if let Some(bulkhead) = self.bulkhead.get() {
            bulkhead.set_max_concurrent(config.max_concurrent_calls);
        }
        // Last, with release: a call that sees the new mode sees the rest too.
        let word = hot_word(config);
        let _ = self
            .hot
            .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                Some(word | (w & HAS_FALLBACK))
            });
    }
}

impl CircuitBreaker {
    /// A breaker with Hystrix's default settings, not in any registry.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self::builder(name)
            .build()
            .expect("the default configuration is valid")
    }

    /// A breaker with the given settings, not in any registry.
    pub fn with_config(
        name: impl AsRef<str>,
        config: CircuitBreakerConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    /// Starts a [`Builder`].
    pub fn builder(name: impl AsRef<str>) -> Builder {
        Builder {
            name: name.as_ref().into(),
            group: None,
            thread_pool: None,
            config: CircuitBreakerConfig::default(),
            clock: None,
        }
    }

    /// A handle that does not keep a breaker from [`Builder::build_freed_when_dropped`]
    /// alive. A breaker that lives for the process always upgrades.
    pub fn downgrade(&self) -> WeakCircuitBreaker {
        WeakCircuitBreaker(match &self.inner {
            Handle::Leaked(inner) => WeakHandle::Leaked(inner),
            Handle::Shared(inner) => WeakHandle::Shared(Arc::downgrade(inner)),
        })
    }

    /// Asks to start a call outside a [`CircuitBreakerService`](crate::CircuitBreakerService)
    /// (a balancer deciding where a request goes): the breaker admits it or says why not.
    /// The permit reports the call's [`Outcome`](crate::Outcome) when it ends; dropped
    /// unfinished, it counts the call as cancelled.
    ///
    /// ```
    /// use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, Outcome, State};
    ///
    /// let breaker = CircuitBreaker::with_config(
    ///     "instance-a",
    ///     CircuitBreakerConfig { consecutive_failures: Some(2), ..Default::default() },
    /// )
    /// .unwrap();
    /// for _ in 0..2 {
    ///     breaker.try_acquire().unwrap().finish(Outcome::Failure);
    /// }
    /// assert_eq!(breaker.state(), State::Open);
    /// assert!(breaker.try_acquire().is_err());
    /// ```
    pub fn try_acquire(&self) -> Result<crate::CallPermit, crate::error::CircuitOpen> {
        let permit = self.acquire()?;
        Ok(crate::CallPermit::new(self.clone(), permit))
    }

    /// Whether a call would be admitted now, without taking a place: closed, open with its
    /// sleep window over (the next call probes), or half-open with a trial place left. A
    /// forced-open breaker admits nothing; forced-closed, metrics-only and disabled ones
    /// admit everything.
    pub fn admits(&self) -> bool {
        let inner = &*self.inner;
        match Mode::from_bits(inner.hot.load(Ordering::Acquire) & MODE_MASK) {
            Mode::ForcedOpen => false,
            Mode::ForcedClosed | Mode::MetricsOnly | Mode::Disabled => true,
            Mode::Normal => {
                let word = inner.state.load(Ordering::Acquire);
                match state_of(word) {
                    CLOSED => true,
                    OPEN => inner.clock.now_nanos() >= inner.open_until.load(Ordering::Acquire),
                    _ => permits_of(word) > 0,
                }
            }
        }
    }

    /// When an open breaker lets its next trial through, if it is open.
    pub fn open_until(&self) -> Option<SystemTime> {
        let inner = &*self.inner;
        let word = inner.state.load(Ordering::Acquire);
        (state_of(word) == OPEN).then(|| {
            let left = inner
                .open_until
                .load(Ordering::Acquire)
                .saturating_sub(inner.clock.now_nanos());
            SystemTime::now() + Duration::from_nanos(left)
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The breaker's group.
    pub fn group(&self) -> &str {
        &self.inner.group
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<CircuitBreakerConfig> {
        self.inner.config.load_full()
    }

    /// The state machine's state (forced modes are in [`config`](Self::config)`.mode`).
    pub fn state(&self) -> State {
        state_name(self.inner.state.load(Ordering::Acquire))
    }

    /// Replaces every setting at once. The change applies to the next call; calls in flight
    /// finish under the settings they started with. Changing the window starts it afresh.
    /// Invalid settings are refused and the old ones stay in force.
    pub fn set_config(&self, config: CircuitBreakerConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = &*self.inner;
        let _writer = inner
            .config_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old = inner.config.load_full();
        if *old == config {
            return Ok(());
        }
        let now = inner.clock.now_nanos();
        if stats_buckets(&old) != stats_buckets(&config)
            || percentile_buckets(&old) != percentile_buckets(&config)
        {
            inner
                .stats
                .reconfigure(now, stats_buckets(&config), percentile_buckets(&config));
        }
        if old.window != config.window {
            inner.count_window.store(count_window(&config));
            if let Window::Time { .. } = config.window {
                inner.stats.reset_window(now);
            }
        }
        let new_mode = config.mode;
        let config = Arc::new(config);
        inner.config.store(config.clone());
        inner.apply(&config);
        if old.mode != new_mode {
            tracing::warn!(
                breaker = %inner.name,
                from = old.mode.as_str(),
                to = new_mode.as_str(),
                "circuit breaker mode changed"
            );
            self.announce(EventKind::ModeChanged {
                from: old.mode,
                to: new_mode,
            });
        } else {
            tracing::info!(breaker = %inner.name, "circuit breaker settings changed");
            self.announce(EventKind::ConfigChanged);
        }
        Ok(())
    }

    /// Changes some settings: `change` edits a copy of the current ones, which then goes
    /// through [`set_config`](Self::set_config).
    pub fn update(
        &self,
        change: impl FnOnce(&mut CircuitBreakerConfig),
    ) -> Result<(), ConfigError> {
        let mut config = (*self.config()).clone();
        change(&mut config);
        self.set_config(config)
    }

    /// Receives this breaker's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Closes the breaker and empties its health window, whatever its state (an operator's
    /// reset).
    pub fn reset(&self) {
        let now = self.inner.clock.now_nanos();
        let mut t = self.lock_transitions();
        let word = self.inner.state.load(Ordering::Acquire);
        t.consecutive_trips = 0;
        self.close_locked(word, now);
    }

    /// Opens the breaker now, as if it had tripped.
    pub fn trip(&self) {
        let now = self.inner.clock.now_nanos();
        let word = self.inner.state.load(Ordering::Acquire);
        if state_of(word) != OPEN {
            self.open(word, now);
        }
    }

    /// The bulkhead that goes with this breaker: named after its thread-pool key, its limit
    /// follows `max_concurrent_calls`. Created on first use.
    pub fn bulkhead(&self) -> Bulkhead {
        self.inner
            .bulkhead
            .get_or_init(|| {
                let bulkhead = Bulkhead::with_clock(
                    self.inner.thread_pool.clone(),
                    self.config().max_concurrent_calls,
                    self.inner.clock.clone(),
                );
                match self.inner.bulkheads.as_ref().and_then(Weak::upgrade) {
                    Some(bulkheads) => bulkheads.add(bulkhead),
                    None => bulkhead,
                }
            })
            .clone()
    }

    /// Everything the breaker knows, now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &*self.inner;
        let now = inner.clock.now_nanos();
        let config = inner.config.load_full();
        let word = inner.state.load(Ordering::Acquire);
        let rolling_window = inner.stats.window(now, false);
        let rolling = Counts::from_totals(&rolling_window.totals);
        let health = match inner.count_window.load().as_ref() {
            Some(window) => Counts::from_totals(&window.totals()),
            None => Counts::from_totals(&inner.stats.window(now, true).totals),
        };
        let [execute, total] = inner.stats.latency_window(now);
        let latency_execute = Latency::from_histogram(&execute);
        let latency_total = if total.as_slice().iter().any(|&c| c > 0) {
            Latency::from_histogram(&total)
        } else {
            latency_execute.clone()
        };
        let open_for = (state_of(word) == OPEN).then(|| {
            Duration::from_nanos(inner.open_until.load(Ordering::Acquire).saturating_sub(now))
        });
        Snapshot {
            name: inner.name.clone(),
            group: inner.group.clone(),
            thread_pool: inner.thread_pool.clone(),
            taken_at: SystemTime::now(),
            state: state_name(word),
            mode: config.mode,
            open_for,
            rolling,
            cumulative: Counts::from_totals(&inner.stats.totals()),
            health,
            concurrent_calls: inner.stats.in_flight() as u64,
            rolling_max_concurrent_calls: (rolling_window.max_in_flight.max(0) as u64).max(
                inner
                    .bulkhead
                    .get()
                    .map_or(0, |b| b.snapshot().rolling_max_active),
            ),
            latency_execute,
            latency_total,
            config: (*config).clone(),
        }
    }

    pub(crate) fn mark_has_fallback(&self) {
        self.inner.hot.fetch_or(HAS_FALLBACK, Ordering::Release);
    }

    pub(crate) fn has_fallback(&self) -> bool {
        self.inner.hot.load(Ordering::Relaxed) & HAS_FALLBACK != 0
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.inner.clock.now_nanos()
    }
}
