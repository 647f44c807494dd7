//! What a breaker announces: state transitions, forced modes, configuration changes.
//!
//! Subscribe with [`CircuitBreaker::subscribe`](crate::CircuitBreaker::subscribe) or, for every
//! breaker of a registry, [`CircuitBreakerRegistry::subscribe`](crate::CircuitBreakerRegistry::subscribe). Events go
//! through a bounded broadcast channel: a subscriber that falls behind loses the oldest events
//! (and is told so by `RecvError::Lagged`); it never slows the calls.

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Mode;

/// The state of a breaker's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; health is watched.
    Closed,
    /// Calls are short-circuited until the sleep window ends.
    Open,
    /// A limited number of trial calls decide between closing and opening again.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One announcement of a breaker.
#[derive(Debug, Clone)]
pub struct Event {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// Wall-clock time of the event.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The state machine moved.
    StateTransition {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// The mode (normal, forced open, ...) changed.
    ModeChanged {
        /// Before.
        from: Mode,
        /// After.
        to: Mode,
    },
    /// Some other setting changed.
    ConfigChanged,
}
