//! The time source behind windows, sleep windows and latency.
//!
//! Reading a hardware clock is most of what a breaker that records latency would cost: on a
//! cloud VM `std::time::Instant::now()` and even the CPU's time-stamp counter cost more than
//! the rest of a call, twice per call (`benches/README.md` has the figures). So the default
//! [`Clock`] is a *recent-time* clock, like the
//! `System.currentTimeMillis()` that Hystrix times its commands with: one background thread
//! (`breakwater-clock`, started with the first clock) stores the monotonic time every
//! millisecond, and reading it is a single atomic load. Latencies are then counted in whole
//! ticks, which is Hystrix's resolution; a call shorter than a tick reads as 0 or 1 ms, and the
//! average over many calls stays right.
//!
//! [`Clock::precise`] reads the time-stamp counter instead (through [`quanta`]) for
//! microsecond latencies at about twice the cost of a call. Tests use [`Clock::tokio`], so
//! that tokio's paused clock drives windows and sleeps, or [`Clock::manual`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often the recent-time clock is refreshed.
pub const TICK: Duration = Duration::from_millis(1);

/// A monotonic clock. Cheap to clone.
#[derive(Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Recent(&'static RecentTime),
    Precise { clock: quanta::Clock, base: u64 },
    Tokio { base: tokio::time::Instant },
    Manual { nanos: Arc<AtomicU64> },
}

/// Nanoseconds since `base`, refreshed every [`TICK`] by one thread for the whole process.
struct RecentTime {
    base: Instant,
    nanos: AtomicU64,
}

fn recent_time() -> &'static RecentTime {
    static RECENT: OnceLock<&'static RecentTime> = OnceLock::new();
    RECENT.get_or_init(|| {
        let recent: &'static RecentTime = Box::leak(Box::new(RecentTime {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
        }));
        let spawned = std::thread::Builder::new()
            .name("breakwater-clock".into())
            .spawn(move || {
                loop {
                    let now = recent.base.elapsed().as_nanos() as u64;
                    recent.nanos.fetch_max(now, Ordering::Release);
                    std::thread::sleep(TICK);
                }
            });
        if let Err(e) = spawned {
            // Without the thread the clock would stand still: breakers would never leave
            // the open state. Better to stop here, loudly, than to run like that.
            panic!("breakwater: cannot start the clock thread: {e}");
        }
        recent
    })
}

impl Clock {
    /// The default clock: recent time, refreshed every millisecond by a background thread
    /// (see the module documentation).
    pub fn new() -> Self {
        let recent = recent_time();
        // Make the first reading current even if the thread has not run yet.
        recent
            .nanos
            .fetch_max(recent.base.elapsed().as_nanos() as u64, Ordering::Release);
        Clock {
            kind: Kind::Recent(recent),
        }
    }

    /// A clock read from the CPU's time-stamp counter where it is reliable (the OS monotonic
    /// clock otherwise): microsecond latencies, at the price of two counter reads per call.
    pub fn precise() -> Self {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        Clock {
            kind: Kind::Precise { clock, base },
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
            Kind::Recent(recent) => recent.nanos.load(Ordering::Acquire),
            Kind::Precise { clock, .. } => clock.raw(),
            Kind::Tokio { base } => base.elapsed().as_nanos() as u64,
            Kind::Manual { nanos } => nanos.load(Ordering::Acquire),
        }
    }

    /// Nanoseconds since this clock's origin, for a raw reading.
    #[inline]
    pub(crate) fn nanos(&self, raw: u64) -> u64 {
        match &self.kind {
            Kind::Precise { clock, base } => clock.delta_as_nanos(*base, raw),
            Kind::Recent(_) | Kind::Tokio { .. } | Kind::Manual { .. } => raw,
        }
    }

    /// Nanoseconds since this clock's origin.
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
            Kind::Recent(_) => "recent",
            Kind::Precise { .. } => "precise",
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
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::AcqRel);
    }

    /// Time since the clock was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_time_moves_on_its_own() {
        let clock = Clock::new();
        let first = clock.now_nanos();
        std::thread::sleep(Duration::from_millis(20));
        let later = clock.now_nanos();
        assert!(later - first >= 10_000_000, "{first} -> {later}");
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let (clock, hand) = Clock::manual();
        assert_eq!(clock.now_nanos(), 0);
        hand.advance(Duration::from_millis(3));
        assert_eq!(clock.now_nanos(), 3_000_000);
        assert_eq!(hand.elapsed(), Duration::from_millis(3));
    }
}
