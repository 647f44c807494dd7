//! The [`CircuitBreaker`] handle: one named breaker's state machine, settings and statistics.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::broadcast;

use crate::bulkhead::Bulkhead;
use crate::clock::Clock;
use crate::config::{Config, Mode, Window};
use crate::error::{CircuitOpen, ConfigError};
use crate::event::{Event, EventKind, State};
use crate::snapshot::{Counts, Latency, Snapshot};
use crate::stats::{self, CountWindow, Stats};

// The state word: state (2 bits) | trial permits left (15) | trial successes (15) | generation (32).
// One word so that half-open admission is a single compare-and-swap: exactly N trials pass.
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

fn pack(state: u64, permits: u32, successes: u32, generation: u32) -> u64 {
    state | (permits as u64) << 2 | (successes as u64) << 17 | (generation as u64) << 32
}
fn state_of(word: u64) -> u64 {
    word & 0b11
}
fn permits_of(word: u64) -> u32 {
    ((word >> 2) & 0x7fff) as u32
}
fn successes_of(word: u64) -> u32 {
    ((word >> 17) & 0x7fff) as u32
}
fn generation_of(word: u64) -> u32 {
    (word >> 32) as u32
}
fn state_name(word: u64) -> State {
    match state_of(word) {
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        _ => State::Closed,
    }
}

// The hot word: what every call needs to know about the settings, in one load.
const MODE_MASK: u64 = 0b111;
const COUNT_WINDOW: u64 = 1 << 3;
const RECORD_LATENCY: u64 = 1 << 4;
const HAS_FALLBACK: u64 = 1 << 5;

fn hot_word(config: &Config) -> u64 {
    let mut word = config.mode.to_bits();
    if matches!(config.window, Window::Count { .. }) {
        word |= COUNT_WINDOW;
    }
    if config.record_latency {
        word |= RECORD_LATENCY;
    }
    word
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Bucket sizes of the time-based statistics: the configured time window, or Hystrix's
/// default 10 s / 10 when health uses a count-based window.
fn stats_buckets(config: &Config) -> (u64, u32) {
    config.bucket_nanos().unwrap_or((1_000_000_000, 10))
}

fn percentile_buckets(config: &Config) -> (u64, u32) {
    (
        nanos(config.percentile_window) / config.percentile_buckets as u64,
        config.percentile_buckets,
    )
}

/// Whether window totals call for a trip under `config`.
pub(crate) fn should_trip(config: &Config, t: &stats::Totals) -> bool {
    use stats::*;
    let requests = t[SUCCESS] + t[FAILURE] + t[TIMEOUT] + t[REJECTED];
    if requests == 0 || requests < config.request_volume_threshold as u64 {
        return false;
    }
    let errors = t[FAILURE] + t[TIMEOUT] + t[REJECTED];
    let error_trip = errors * 100 >= config.error_threshold_percentage as u64 * requests;
    let slow_trip = config
        .slow_calls
        .is_some_and(|s| t[SLOW] * 100 >= s.rate_threshold_percentage as u64 * requests);
    error_trip || slow_trip
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
    pub(crate) fallback_limit: AtomicU32,
    pub(crate) fallbacks_running: AtomicU32,
    state: AtomicU64,
    open_until: AtomicU64,
    transitions: Mutex<Transitions>,
    config: ArcSwap<Config>,
    config_writer: Mutex<()>,
    pub(crate) stats: Stats,
    count_window: ArcSwapOption<CountWindow>,
    events: broadcast::Sender<Event>,
    registry_events: Option<broadcast::Sender<Event>>,
    bulkhead: OnceLock<Bulkhead>,
    registry: Option<crate::registry::WeakRegistry>,
}

/// A named circuit breaker. `Copy`: copies share one breaker.
///
/// A breaker lives for the rest of the process, like a Hystrix command: make one per
/// dependency (a [`Registry`](crate::Registry) does it once per name), not one per request.
/// In exchange a call never touches a reference count, which would be a cache line shared
/// by every thread.
///
/// Wrap services with [`CircuitBreakerLayer`](crate::CircuitBreakerLayer); read its state with
/// [`snapshot`](Self::snapshot); change its settings at run time with
/// [`set_config`](Self::set_config) or [`update`](Self::update).
///
/// ```
/// use breakwater_circuit_breaker::{CircuitBreaker, Config, Mode, State};
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
#[derive(Clone, Copy)]
pub struct CircuitBreaker {
    pub(crate) inner: &'static Inner,
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

/// Builds a [`CircuitBreaker`] with a group, a bulkhead name, settings or a clock of its own.
#[derive(Debug, Clone)]
pub struct Builder {
    name: Arc<str>,
    group: Option<Arc<str>>,
    thread_pool: Option<Arc<str>>,
    config: Config,
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

    /// Settings (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Time source (default: [`Clock::new`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the settings and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.build_in(None, None)
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
        registry: Option<crate::registry::WeakRegistry>,
    ) -> Result<CircuitBreaker, ConfigError> {
        self.config.validate()?;
        let clock = self.clock.unwrap_or_default();
        let now = clock.now_nanos();
        let config = self.config;
        let group = self.group.unwrap_or_else(|| self.name.clone());
        let inner = Inner {
            thread_pool: self.thread_pool.unwrap_or_else(|| group.clone()),
            name: self.name,
            group,
            hot: AtomicU64::new(hot_word(&config)),
            slow_nanos: AtomicU64::new(config.slow_calls.map_or(0, |s| nanos(s.duration))),
            timeout_nanos: AtomicU64::new(config.timeout.map_or(0, nanos)),
            fallback_limit: AtomicU32::new(config.fallback_max_concurrent_calls),
            fallbacks_running: AtomicU32::new(0),
            state: AtomicU64::new(pack(CLOSED, 0, 0, 0)),
            open_until: AtomicU64::new(0),
            transitions: Mutex::new(Transitions {
                consecutive_trips: 0,
            }),
            stats: Stats::new(now, stats_buckets(&config), percentile_buckets(&config)),
            count_window: ArcSwapOption::from(match config.window {
                Window::Count { calls } => Some(Arc::new(CountWindow::new(calls))),
                Window::Time { .. } => None,
            }),
            config: ArcSwap::from_pointee(config),
            config_writer: Mutex::new(()),
            events: broadcast::channel(256).0,
            registry_events,
            bulkhead: OnceLock::new(),
            registry,
            clock,
        };
        Ok(CircuitBreaker {
            inner: Box::leak(Box::new(inner)),
        })
    }
}

/// Admission to one call, handed back when it ends. Only word-sized fields: byte-sized
/// flags written and then read back as a word stall the store buffer on every call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permit {
    start: u64,
    /// Flags in the low bits; the half-open generation this call is a trial of in the high
    /// 32 bits, when `TRIAL` is set.
    flags: u64,
}

const TIMED: u64 = 1;
const PASSTHROUGH: u64 = 2;
const TRIAL: u64 = 4;

impl Permit {
    fn trial(&self) -> Option<u32> {
        (self.flags & TRIAL != 0).then_some((self.flags >> 32) as u32)
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
    pub fn with_config(name: impl AsRef<str>, config: Config) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    /// Starts a [`Builder`].
    pub fn builder(name: impl AsRef<str>) -> Builder {
        Builder {
            name: name.as_ref().into(),
            group: None,
            thread_pool: None,
            config: Config::default(),
            clock: None,
        }
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
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.load_full()
    }

    /// The state machine's state (forced modes are in [`config`](Self::config)`.mode`).
    pub fn state(&self) -> State {
        state_name(self.inner.state.load(Ordering::Acquire))
    }

    /// Replaces every setting at once. The change applies to the next call; calls in flight
    /// finish under the settings they started with. Changing the window starts it afresh.
    /// Invalid settings are refused and the old ones stay in force.
    pub fn set_config(&self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let inner = self.inner;
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
            inner.count_window.store(match config.window {
                Window::Count { calls } => Some(Arc::new(CountWindow::new(calls))),
                Window::Time { .. } => None,
            });
            if let Window::Time { .. } = config.window {
                inner.stats.reset_window(now);
            }
        }
        inner.slow_nanos.store(
            config.slow_calls.map_or(0, |s| nanos(s.duration)),
            Ordering::Relaxed,
        );
        inner
            .timeout_nanos
            .store(config.timeout.map_or(0, nanos), Ordering::Relaxed);
        inner
            .fallback_limit
            .store(config.fallback_max_concurrent_calls, Ordering::Relaxed);
        if let Some(bulkhead) = inner.bulkhead.get() {
            bulkhead.set_max_concurrent(config.max_concurrent_calls);
        }
        let new_mode = config.mode;
        let word = hot_word(&config);
        inner.config.store(Arc::new(config));
        let _ = inner
            .hot
            .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                Some(word | (w & HAS_FALLBACK))
            });
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
    pub fn update(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
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
                match self.inner.registry.as_ref().and_then(|r| r.upgrade()) {
                    Some(registry) => registry.add_bulkhead(bulkhead),
                    None => bulkhead,
                }
            })
            .clone()
    }

    /// Everything the breaker knows, now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner;
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

    fn lock_transitions(&self) -> MutexGuard<'_, Transitions> {
        self.inner
            .transitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn circuit_open(&self, state: &'static str) -> CircuitOpen {
        CircuitOpen {
            name: self.inner.name.clone(),
            state,
        }
    }

    /// Decides whether a call may start. Every `Ok` must be handed back to [`Self::complete`].
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Permit, CircuitOpen> {
        let inner = self.inner;
        let hot = inner.hot.load(Ordering::Acquire);
        let mode = Mode::from_bits(hot & MODE_MASK);
        let mut trial = None;
        match mode {
            Mode::Disabled => {
                return Ok(Permit {
                    start: 0,
                    flags: PASSTHROUGH,
                });
            }
            Mode::ForcedOpen => return Err(self.short_circuit("forced open")),
            Mode::ForcedClosed | Mode::MetricsOnly => {}
            Mode::Normal => {
                let mut word = inner.state.load(Ordering::Acquire);
                loop {
                    match state_of(word) {
                        CLOSED => break,
                        OPEN => {
                            let now = inner.clock.now_nanos();
                            if now < inner.open_until.load(Ordering::Acquire) {
                                return Err(self.short_circuit("open"));
                            }
                            match self.enter_half_open(word) {
                                Ok(generation) => {
                                    trial = Some(generation);
                                    break;
                                }
                                Err(seen) => word = seen,
                            }
                        }
                        _ => {
                            let permits = permits_of(word);
                            if permits == 0 {
                                return Err(self.short_circuit("half-open"));
                            }
                            let taken = word - (1 << 2);
                            match inner.state.compare_exchange_weak(
                                word,
                                taken,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => {
                                    trial = Some(generation_of(word));
                                    break;
                                }
                                Err(seen) => word = seen,
                            }
                        }
                    }
                }
            }
        }
        let timed = hot & RECORD_LATENCY != 0 || inner.slow_nanos.load(Ordering::Relaxed) != 0;
        let start = if timed { inner.clock.raw() } else { 0 };
        inner.stats.begin();
        let trial = match trial {
            Some(generation) => TRIAL | (generation as u64) << 32,
            None => 0,
        };
        Ok(Permit {
            start,
            flags: if timed { TIMED } else { 0 } | trial,
        })
    }

    #[cold]
    fn short_circuit(&self, state: &'static str) -> CircuitOpen {
        let now = self.inner.clock.now_nanos();
        self.inner.stats.count(stats::SHORT_CIRCUITED, now);
        self.circuit_open(state)
    }

    /// Open -> half-open, once the sleep window is over. Returns the trial generation, or the
    /// state word someone else left.
    #[cold]
    fn enter_half_open(&self, seen: u64) -> Result<u32, u64> {
        let inner = self.inner;
        let _t = self.lock_transitions();
        let word = inner.state.load(Ordering::Acquire);
        if word != seen {
            return Err(word);
        }
        let trials = inner.config.load().half_open_trial_calls;
        let generation = generation_of(word).wrapping_add(1);
        inner.state.store(
            pack(HALF_OPEN, trials - 1, 0, generation),
            Ordering::Release,
        );
        drop(_t);
        self.transitioned(State::Open, State::HalfOpen);
        Ok(generation)
    }

    /// Ends a call admitted by [`Self::acquire`], with one of the `stats` counters SUCCESS,
    /// FAILURE, TIMEOUT, REJECTED, BAD_REQUEST or CANCELLED.
    #[inline]
    pub(crate) fn complete(&self, permit: Permit, counter: usize) {
        if permit.flags & PASSTHROUGH != 0 {
            return;
        }
        let inner = self.inner;
        let end = inner.clock.raw();
        let now = inner.clock.nanos(end);
        let health = counter <= stats::REJECTED;
        let mut slow = false;
        let mut elapsed = 0;
        if permit.flags & TIMED != 0 {
            elapsed = now.saturating_sub(inner.clock.nanos(permit.start));
            let slow_nanos = inner.slow_nanos.load(Ordering::Relaxed);
            slow = health && slow_nanos != 0 && elapsed >= slow_nanos;
        }
        let hot = inner.hot.load(Ordering::Acquire);
        let latency =
            (hot & RECORD_LATENCY != 0 && permit.flags & TIMED != 0 && counter != stats::CANCELLED)
                .then_some(elapsed);
        inner.stats.finish(counter, now, slow, latency);
        if health
            && hot & COUNT_WINDOW != 0
            && let Some(window) = inner.count_window.load().as_ref()
        {
            window.push(counter, slow);
        }
        match permit.trial() {
            Some(generation) => self.trial_done(generation, counter, now),
            None => {
                let unhealthy =
                    matches!(counter, stats::FAILURE | stats::TIMEOUT | stats::REJECTED);
                let mode = Mode::from_bits(hot & MODE_MASK);
                if (unhealthy || slow) && matches!(mode, Mode::Normal | Mode::ForcedClosed) {
                    self.evaluate(now);
                }
            }
        }
    }

    /// Counts an error handed back to the caller with no fallback to turn it into a response.
    pub(crate) fn unhandled_error(&self, counter: usize) {
        let now = self.inner.clock.now_nanos();
        if counter != stats::BAD_REQUEST {
            self.inner.stats.count(stats::FALLBACK_MISSING, now);
        }
        self.inner.stats.count(stats::EXCEPTIONS_THROWN, now);
    }

    pub(crate) fn count(&self, counter: usize) {
        let now = self.inner.clock.now_nanos();
        self.inner.stats.count(counter, now);
    }

    /// Closed: trip if the health window says so.
    #[cold]
    fn evaluate(&self, now: u64) {
        let inner = self.inner;
        let word = inner.state.load(Ordering::Acquire);
        if state_of(word) != CLOSED {
            return;
        }
        let config = inner.config.load();
        let totals = match inner.count_window.load().as_ref() {
            Some(window) => window.totals(),
            None => inner.stats.window(now, true).totals,
        };
        if should_trip(&config, &totals) {
            self.open(word, now);
        }
    }

    /// Moves from the state in `seen` to open, if nobody moved it first.
    fn open(&self, seen: u64, now: u64) {
        let inner = self.inner;
        let mut t = self.lock_transitions();
        let word = inner.state.load(Ordering::Acquire);
        let still = match state_of(seen) {
            HALF_OPEN => state_of(word) == HALF_OPEN && generation_of(word) == generation_of(seen),
            CLOSED => state_of(word) == CLOSED,
            _ => false,
        };
        if !still {
            return;
        }
        t.consecutive_trips = t.consecutive_trips.saturating_add(1);
        let sleep = inner.config.load().sleep_for(t.consecutive_trips);
        inner
            .open_until
            .store(now.saturating_add(nanos(sleep)), Ordering::Release);
        inner.state.store(
            pack(OPEN, 0, 0, generation_of(word).wrapping_add(1)),
            Ordering::Release,
        );
        drop(t);
        self.transitioned(state_name(word), State::Open);
    }

    fn close_locked(&self, word: u64, now: u64) {
        let inner = self.inner;
        inner.stats.reset_window(now);
        if let Some(window) = inner.count_window.load().as_ref() {
            window.clear();
        }
        inner.state.store(
            pack(CLOSED, 0, 0, generation_of(word).wrapping_add(1)),
            Ordering::Release,
        );
        if state_of(word) != CLOSED {
            self.transitioned(state_name(word), State::Closed);
        }
    }

    /// A trial call of half-open generation `generation` ended.
    #[cold]
    fn trial_done(&self, generation: u32, counter: usize, now: u64) {
        let inner = self.inner;
        let mut word = inner.state.load(Ordering::Acquire);
        loop {
            if state_of(word) != HALF_OPEN || generation_of(word) != generation {
                return;
            }
            let next = match counter {
                stats::SUCCESS => {
                    let successes = successes_of(word) + 1;
                    if successes >= inner.config.load().half_open_trial_calls {
                        let mut t = self.lock_transitions();
                        if inner.state.load(Ordering::Acquire) == word {
                            t.consecutive_trips = 0;
                            self.close_locked(word, now);
                            return;
                        }
                        drop(t);
                        word = inner.state.load(Ordering::Acquire);
                        continue;
                    }
                    word + (1 << 17)
                }
                stats::FAILURE | stats::TIMEOUT | stats::REJECTED => {
                    self.open(word, now);
                    return;
                }
                // Ignored or abandoned: the trial did not tell anything; let another call try.
                _ => word + (1 << 2),
            };
            match inner
                .state
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    fn transitioned(&self, from: State, to: State) {
        let name = &self.inner.name;
        match to {
            State::Open => tracing::warn!(breaker = %name, %from, %to, "circuit breaker opened"),
            State::HalfOpen => {
                tracing::info!(breaker = %name, %from, %to, "circuit breaker half-open")
            }
            State::Closed => tracing::info!(breaker = %name, %from, %to, "circuit breaker closed"),
        }
        self.announce(EventKind::StateTransition { from, to });
    }

    fn announce(&self, kind: EventKind) {
        let event = Event {
            breaker: self.inner.name.clone(),
            at: SystemTime::now(),
            kind,
        };
        if let Some(registry) = &self.inner.registry_events {
            let _ = registry.send(event.clone());
        }
        let _ = self.inner.events.send(event);
    }
}
