//! The state machine: admission, completion, tripping, half-open trials and the events
//! each transition announces.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::state::*;
use super::{CircuitBreaker, Transitions};
use crate::config::{CircuitBreakerConfig, Mode};
use crate::error::CircuitOpen;
use crate::event::{Event, EventKind, State};
use crate::stats;

/// Whether window totals call for a trip under `config`.
pub(crate) fn should_trip(config: &CircuitBreakerConfig, t: &stats::Totals) -> bool {
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

impl CircuitBreaker {
    pub(super) fn lock_transitions(&self) -> MutexGuard<'_, Transitions> {
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
        let inner = &*self.inner;
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
        let inner = &*self.inner;
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
        let inner = &*self.inner;
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
                if hot & CONSECUTIVE != 0 && health {
                    self.count_in_a_row(unhealthy, mode, now);
                }
                if (unhealthy || slow) && matches!(mode, Mode::Normal | Mode::ForcedClosed) {
                    self.evaluate(now);
                }
            }
        }
    }

    /// Closed, with `consecutive_failures` set: counts a failure or starts again on a
    /// success, and trips when the count reaches the setting.
    #[inline]
    fn count_in_a_row(&self, unhealthy: bool, mode: Mode, now: u64) {
        let inner = &*self.inner;
        if !unhealthy {
            if inner.failures_in_a_row.load(Ordering::Relaxed) != 0 {
                inner.failures_in_a_row.store(0, Ordering::Relaxed);
            }
            return;
        }
        let in_a_row = inner.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = inner.config.load().consecutive_failures;
        if limit.is_some_and(|limit| in_a_row >= limit)
            && matches!(mode, Mode::Normal | Mode::ForcedClosed)
        {
            let word = inner.state.load(Ordering::Acquire);
            if state_of(word) == CLOSED {
                self.open(word, now);
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
        let inner = &*self.inner;
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
    pub(super) fn open(&self, seen: u64, now: u64) {
        let inner = &*self.inner;
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
        inner.failures_in_a_row.store(0, Ordering::Relaxed);
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

    pub(super) fn close_locked(&self, word: u64, now: u64) {
        let inner = &*self.inner;
        inner.stats.reset_window(now);
        inner.failures_in_a_row.store(0, Ordering::Relaxed);
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
        let inner = &*self.inner;
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

    pub(super) fn announce(&self, kind: EventKind) {
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
