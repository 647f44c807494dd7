//! The two words every call reads: the state word (state, half-open trial places and
//! successes, generation) and the hot word (mode and per-call switches), and the [`Permit`] a
//! call holds between admission and completion.

use std::time::Duration;

use crate::config::{CircuitBreakerConfig, Window};
use crate::event::State;

// The state word: state (2 bits) | trial permits left (15) | trial successes (15) | generation (32).
// One word so that half-open admission is a single compare-and-swap: exactly N trials pass.
pub(super) const CLOSED: u64 = 0;
pub(super) const OPEN: u64 = 1;
pub(super) const HALF_OPEN: u64 = 2;

pub(super) fn pack(state: u64, permits: u32, successes: u32, generation: u32) -> u64 {
    state | (permits as u64) << 2 | (successes as u64) << 17 | (generation as u64) << 32
}
pub(super) fn state_of(word: u64) -> u64 {
    word & 0b11
}
pub(super) fn permits_of(word: u64) -> u32 {
    ((word >> 2) & 0x7fff) as u32
}
pub(super) fn successes_of(word: u64) -> u32 {
    ((word >> 17) & 0x7fff) as u32
}
pub(super) fn generation_of(word: u64) -> u32 {
    (word >> 32) as u32
}
pub(super) fn state_name(word: u64) -> State {
    match state_of(word) {
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        _ => State::Closed,
    }
}

// The hot word: what every call needs to know about the settings, in one load.
pub(super) const MODE_MASK: u64 = 0b111;
pub(super) const COUNT_WINDOW: u64 = 1 << 3;
pub(super) const RECORD_LATENCY: u64 = 1 << 4;
pub(super) const HAS_FALLBACK: u64 = 1 << 5;
pub(super) const CONSECUTIVE: u64 = 1 << 6;

pub(super) fn hot_word(config: &CircuitBreakerConfig) -> u64 {
    let mut word = config.mode.to_bits();
    if matches!(config.window, Window::Count { .. }) {
        word |= COUNT_WINDOW;
    }
    if config.record_latency {
        word |= RECORD_LATENCY;
    }
    if config.consecutive_failures.is_some() {
        word |= CONSECUTIVE;
    }
    word
}

pub(super) fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permit {
    pub(super) start: u64,
    /// Flags in the low bits; the half-open generation this call is a trial of in the high
    /// 32 bits, when `TRIAL` is set.
    pub(super) flags: u64,
}

pub(super) const TIMED: u64 = 1;
pub(super) const PASSTHROUGH: u64 = 2;
pub(super) const TRIAL: u64 = 4;

impl Permit {
    pub(super) fn trial(&self) -> Option<u32> {
        (self.flags & TRIAL != 0).then_some((self.flags >> 32) as u32)
    }
}
