//! The time source behind windows, sleep windows and latency.
//!
//! Reading the clock twice per call is most of what a breaker that records latency costs
//! (`std::time::Instant::now()` is about 30 ns on a typical VM). The default [`Clock`] reads the
//! CPU's time-stamp counter through [`quanta`] and scales only differences, which is several
//! times cheaper. Tests use [`Clock::tokio`] so that tokio's paused clock drives windows and
//! sleeps, or [`Clock::manual`] for a clock moved by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock. Cheap to clone.
#[derive(Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Quanta { clock: quanta::Clock, base: u64 },
    Tokio { base: tokio::time::Instant },
    Manual { nanos: Arc<AtomicU64> },
}

impl Clock {
    /// The default clock: the time-stamp counter where the CPU has a reliable one, the OS
    /// monotonic clock otherwise.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        Clock {
            kind: Kind::Quanta { clock, base },
        }
    }

    /// A clock that follows `tokio::time`, so that `tokio::time::pause` and `advance` drive it.
    /// Meant for tests; it must be created and read inside a tokio runtime when paused.
    pub fn tokio() -> Self {
        Clock {
            kind: Kind::Tokio {
                base: tokio::time::Instant::now(),
            },
        }
    }

    /// A clock that only moves when told to, through the returned [`ManualClock`].
    pub fn manual() -> (Self, ManualClock) {
        let nanos = Arc::new(AtomicU64::new(0));
        (
            Clock {
                kind: Kind::Manual {
                    nanos: nanos.clone(),
                },
            },
            ManualClock { nanos },
        )
    }

    /// A raw reading; only differences between readings of one clock, passed through
    /// [`Clock::nanos`], mean anything.
    #[inline]
    pub(crate) fn raw(&self) -> u64 {
        match &self.kind {
            Kind::Quanta { clock, .. } => clock.raw(),
            Kind::Tokio { base } => base.elapsed().as_nanos() as u64,
            Kind::Manual { nanos } => nanos.load(Ordering::Acquire),
        }
    }

    /// Nanoseconds since this clock was created, for a raw reading.
    #[inline]
    pub(crate) fn nanos(&self, raw: u64) -> u64 {
        match &self.kind {
            Kind::Quanta { clock, base } => clock.delta_as_nanos(*base, raw),
            Kind::Tokio { .. } | Kind::Manual { .. } => raw,
        }
    }

    /// Nanoseconds since this clock was created.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        self.nanos(self.raw())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Quanta { .. } => "quanta",
            Kind::Tokio { .. } => "tokio",
            Kind::Manual { .. } => "manual",
        };
        f.debug_struct("Clock").field("kind", &kind).finish()
    }
}

/// The handle that moves a [`Clock::manual`] clock.
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(by.as_nanos() as u64, Ordering::AcqRel);
    }

    /// Time since the clock was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}
