//! Rolling statistics without a shared hot cache line and without locked instructions.
//!
//! Every thread records into a slot of its own: cumulative counters and a latency histogram
//! that only it writes, with plain atomic loads and stores (no `lock`-prefixed
//! read-modify-write), so a call costs a few cache hits on a line no other core touches.
//! Threads beyond the slot table share a few striped slots and use atomic adds there.
//!
//! Windows are not kept as buckets that writers must reset; instead the cumulative totals are
//! checkpointed at each bucket boundary, and a window is "totals now minus the checkpoint at its
//! start". The first recording after a boundary takes the checkpoint before it records, so
//! checkpoints are exact: nothing else changes the totals between the boundary and that
//! recording.
//!
//! Calls in flight are `started - finished`, so a call may end on another thread than the one
//! it began on. The count-based window (the last N calls) is a ring of one-byte slots with
//! running totals.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crossbeam_utils::CachePadded;
use histogram::Histogram;

pub(crate) const SUCCESS: usize = 0;
pub(crate) const FAILURE: usize = 1;
pub(crate) const TIMEOUT: usize = 2;
pub(crate) const REJECTED: usize = 3;
pub(crate) const SHORT_CIRCUITED: usize = 4;
pub(crate) const BAD_REQUEST: usize = 5;
pub(crate) const CANCELLED: usize = 6;
pub(crate) const SLOW: usize = 7;
pub(crate) const FALLBACK_SUCCESS: usize = 8;
pub(crate) const FALLBACK_FAILURE: usize = 9;
pub(crate) const FALLBACK_MISSING: usize = 10;
pub(crate) const FALLBACK_REJECTION: usize = 11;
pub(crate) const EXCEPTIONS_THROWN: usize = 12;
/// Calls begun (the other counters of admitted calls count them as they end).
pub(crate) const STARTED: usize = 13;
pub(crate) const COUNTERS: usize = 14;

pub(crate) type Totals = [u64; COUNTERS];

/// The counters that end an admitted call.
const ENDINGS: [usize; 6] = [SUCCESS, FAILURE, TIMEOUT, REJECTED, BAD_REQUEST, CANCELLED];

fn in_flight_of(t: &Totals) -> i64 {
    let ended: u64 = ENDINGS.iter().map(|&i| t[i]).fold(0, u64::wrapping_add);
    (t[STARTED].wrapping_sub(ended) as i64).max(0)
}

/// Latencies are kept in microseconds, 6.25% relative precision, up to 2^26 us (67 s), in the
/// bucket layout of the `histogram` crate (which reads them back for percentiles).
const GROUPING_POWER: u8 = 4;
const MAX_VALUE_POWER: u8 = 26;
pub(crate) const MAX_MICROS: u64 = (1 << MAX_VALUE_POWER) - 1;

pub(crate) fn new_histogram() -> Histogram {
    Histogram::new(GROUPING_POWER, MAX_VALUE_POWER).expect("constant histogram parameters")
}

fn bucket_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| new_histogram().as_slice().len())
}

/// The `histogram` crate's bucket for a value (its log-linear "H2" layout): values below
/// 2^(g+1) have a bucket each; above, each power of two is split into 2^g buckets.
#[inline]
fn bucket_of(value: u64) -> usize {
    if value < (1 << (GROUPING_POWER + 1)) {
        return value as usize;
    }
    let s = (63 - (value | 1).leading_zeros()) - GROUPING_POWER as u32;
    (((s as u64) << GROUPING_POWER) + (value >> s)) as usize
}

/// Which latency a recording is for.
#[derive(Clone, Copy)]
pub(crate) enum Latency {
    /// The inner service's own time (Hystrix `latencyExecute`).
    Execution = 0,
    /// End to end, fallback included (Hystrix `latencyTotal`).
    Total = 1,
}

#[derive(Default)]
struct Slot {
    totals: [AtomicU64; COUNTERS],
    latency: [OnceLock<Box<[AtomicU64]>>; 2],
}

/// How many threads get a slot of their own in each breaker (allocated on first use).
const OWN_SLOTS: usize = 256;
/// Slots shared, with atomic adds, by the threads beyond those.
const SHARED_SLOTS: usize = 8;

/// A thread's number, given back for reuse when the thread ends.
struct ThreadNumber(usize);

static FREE_NUMBERS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

impl ThreadNumber {
    fn take() -> ThreadNumber {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let reused = FREE_NUMBERS.lock().ok().and_then(|mut free| free.pop());
        ThreadNumber(reused.unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for ThreadNumber {
    fn drop(&mut self) {
        // The mutex orders this thread's last writes before the next owner's first.
        if let Ok(mut free) = FREE_NUMBERS.lock() {
            free.push(self.0);
        }
    }
}

thread_local! {
    static THREAD_NUMBER: ThreadNumber = ThreadNumber::take();
    /// A cache of the number, readable without the destructor-registration check.
    static NUMBER_CACHE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Where the calling thread writes: its own slot, or a shared one.
#[derive(Clone, Copy)]
struct Writer {
    index: usize,
    exclusive: bool,
}

#[inline]
fn writer() -> Writer {
    let cached = NUMBER_CACHE.try_with(|c| c.get()).unwrap_or(usize::MAX - 1);
    let number = if cached < usize::MAX - 1 {
        cached
    } else {
        match THREAD_NUMBER.try_with(|n| n.0) {
            Ok(n) => {
                let _ = NUMBER_CACHE.try_with(|c| c.set(n));
                n
            }
            // The thread is shutting down: write where anyone may.
            Err(_) => OWN_SLOTS,
        }
    };
    if number < OWN_SLOTS {
        Writer {
            index: number,
            exclusive: true,
        }
    } else {
        Writer {
            index: number % SHARED_SLOTS,
            exclusive: false,
        }
    }
}

/// Adds to a counter: a plain load and store when only this thread writes it.
#[inline]
fn add(counter: &AtomicU64, exclusive: bool) {
    if exclusive {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    } else {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A ring of checkpoints of cumulative values at bucket boundaries.
struct Ring<T> {
    bucket_nanos: u64,
    /// `(boundary number, value at that boundary)`, indexed by boundary modulo the length.
    entries: Vec<Option<(u64, T)>>,
    /// The last boundary checkpointed.
    last: u64,
}

impl<T: Clone> Ring<T> {
    fn new(bucket_nanos: u64, buckets: u32, now: u64, value: T) -> Self {
        let last = now / bucket_nanos;
        let mut ring = Ring {
            bucket_nanos,
            entries: vec![None; buckets as usize],
            last,
        };
        let len = ring.entries.len() as u64;
        ring.entries[(last % len) as usize] = Some((last, value));
        ring
    }

    fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    fn next_boundary_nanos(&self) -> u64 {
        (self.last + 1).saturating_mul(self.bucket_nanos)
    }

    /// Boundaries passed since the last checkpoint, if any.
    fn due(&self, now: u64) -> bool {
        now / self.bucket_nanos > self.last
    }

    /// Checkpoints `value` at every boundary from the last one up to `now`'s.
    fn advance(&mut self, now: u64, value: &T) {
        let current = now / self.bucket_nanos;
        let first = (self.last + 1).max((current + 1).saturating_sub(self.len()));
        for b in first..=current {
            let i = (b % self.len()) as usize;
            self.entries[i] = Some((b, value.clone()));
        }
        self.last = current;
    }

    /// The first boundary inside the window that ends at `now`.
    fn window_start(&self, now: u64) -> u64 {
        (now / self.bucket_nanos + 1).saturating_sub(self.len())
    }

    /// The checkpoint at the window's start; `None` when the window starts after the last
    /// checkpoint (nothing recorded inside it) or before the first (use the floor).
    fn at(&self, boundary: u64) -> Option<&T> {
        let i = (boundary % self.len()) as usize;
        match &self.entries[i] {
            Some((b, v)) if *b == boundary => Some(v),
            _ => None,
        }
    }
}

/// Health buckets and the highest concurrency seen in each.
struct HealthWindow {
    ring: Ring<Totals>,
    /// Highest concurrency of each bucket, by boundary number.
    max_in_flight: Vec<Option<(u64, i64)>>,
    /// Totals when the window was created or changed: no window reaches back past it.
    floor: (u64, Totals),
    /// Totals when the breaker last closed: the health window never reaches back past it
    /// (the rolling statistics do).
    reset: (u64, Totals),
}

struct PercentileWindow {
    ring: Ring<[Histogram; 2]>,
    floor: [Histogram; 2],
}

struct Windows {
    health: HealthWindow,
    percentiles: PercentileWindow,
}

/// Everything a breaker (or bulkhead) counts.
pub(crate) struct Stats {
    own: Box<[OnceLock<Box<CachePadded<Slot>>>]>,
    shared: Box<[CachePadded<Slot>]>,
    /// When the next health or percentile bucket starts (clock nanoseconds).
    next_rotation: CachePadded<AtomicU64>,
    /// Highest exact concurrency reported through [`Stats::observe_concurrency`] since the
    /// last health boundary.
    peak: CachePadded<AtomicI64>,
    windows: Mutex<Windows>,
}

/// The totals of one window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WindowTotals {
    pub totals: Totals,
    pub max_in_flight: i64,
}

impl Stats {
    pub(crate) fn new(now: u64, health_bucket: (u64, u32), percentile_bucket: (u64, u32)) -> Self {
        let zero = [0; COUNTERS];
        let windows = Windows {
            health: HealthWindow {
                ring: Ring::new(health_bucket.0, health_bucket.1, now, zero),
                max_in_flight: vec![None; health_bucket.1 as usize],
                floor: (now, zero),
                reset: (now, zero),
            },
            percentiles: PercentileWindow {
                ring: Ring::new(
                    percentile_bucket.0,
                    percentile_bucket.1,
                    now,
                    [new_histogram(), new_histogram()],
                ),
                floor: [new_histogram(), new_histogram()],
            },
        };
        let stats = Stats {
            own: (0..OWN_SLOTS).map(|_| OnceLock::new()).collect(),
            shared: (0..SHARED_SLOTS)
                .map(|_| CachePadded::new(Slot::default()))
                .collect(),
            next_rotation: CachePadded::new(AtomicU64::new(0)),
            peak: CachePadded::new(AtomicI64::new(0)),
            windows: Mutex::new(windows),
        };
        stats.set_next_rotation(&stats.lock());
        stats
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        // A panic while holding this lock cannot leave the checkpoints half-written in a way
        // that matters more than losing them, so keep serving.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_next_rotation(&self, w: &Windows) {
        let next = w
            .health
            .ring
            .next_boundary_nanos()
            .min(w.percentiles.ring.next_boundary_nanos());
        self.next_rotation.store(next, Ordering::Release);
    }

    #[inline]
    fn slot(&self, w: Writer) -> &Slot {
        if w.exclusive {
            self.own[w.index].get_or_init(|| Box::new(CachePadded::new(Slot::default())))
        } else {
            &self.shared[w.index]
        }
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.own
            .iter()
            .filter_map(|s| s.get().map(|b| &***b))
            .chain(self.shared.iter().map(|s| &**s))
    }

    /// A call starts.
    #[inline(always)]
    pub(crate) fn begin(&self) {
        let w = writer();
        add(&self.slot(w).totals[STARTED], w.exclusive);
    }

    /// A call that [`begin`](Self::begin) counted has ended with `counter`, `slow` or not,
    /// taking `latency` (nanoseconds) if measured.
    #[inline(always)]
    pub(crate) fn finish(&self, counter: usize, now: u64, slow: bool, latency: Option<u64>) {
        self.rotate_if_due(now);
        let w = writer();
        let slot = self.slot(w);
        add(&slot.totals[counter], w.exclusive);
        if slow {
            add(&slot.totals[SLOW], w.exclusive);
        }
        if let Some(nanos) = latency {
            Self::record_in(slot, w, Latency::Execution, nanos);
        }
    }

    /// Counts an event that was never in flight (a short-circuit, a fallback result).
    #[inline]
    pub(crate) fn count(&self, counter: usize, now: u64) {
        self.rotate_if_due(now);
        let w = writer();
        add(&self.slot(w).totals[counter], w.exclusive);
    }

    #[inline]
    fn record_in(slot: &Slot, w: Writer, which: Latency, nanos: u64) {
        let micros = (nanos / 1_000).min(MAX_MICROS);
        let buckets = slot.latency[which as usize]
            .get_or_init(|| (0..bucket_count()).map(|_| AtomicU64::new(0)).collect());
        // In range: micros <= MAX_MICROS maps below bucket_count().
        if let Some(bucket) = buckets.get(bucket_of(micros)) {
            add(bucket, w.exclusive);
        }
    }

    /// Reports an exactly known concurrency (a bulkhead's), kept as the bucket's peak.
    pub(crate) fn observe_concurrency(&self, value: i64) {
        if value > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(value, Ordering::Relaxed);
        }
    }

    /// Records a latency on this thread's slot.
    pub(crate) fn record_latency_here(&self, which: Latency, nanos: u64) {
        let w = writer();
        Self::record_in(self.slot(w), w, which, nanos);
    }

    #[inline]
    fn rotate_if_due(&self, now: u64) {
        if now >= self.next_rotation.load(Ordering::Acquire) {
            self.rotate(now);
        }
    }

    #[cold]
    fn rotate(&self, now: u64) {
        let mut w = self.lock();
        self.rotate_locked(&mut w, now);
    }

    fn rotate_locked(&self, w: &mut Windows, now: u64) {
        if w.health.ring.due(now) {
            let ended = w.health.ring.last;
            let totals = self.totals();
            let in_flight_now = in_flight_of(&totals);
            // The bucket that just ended peaked at the highest exact concurrency reported, or
            // at least at what is in flight now; the next starts from the current level.
            let peak = self
                .peak
                .swap(in_flight_now, Ordering::Relaxed)
                .max(in_flight_now);
            let len = w.health.max_in_flight.len() as u64;
            w.health.max_in_flight[(ended % len) as usize] = Some((ended, peak));
            let current = now / w.health.ring.bucket_nanos;
            let first_idle = (ended + 1).max((current + 1).saturating_sub(len));
            for b in first_idle..current {
                w.health.max_in_flight[(b % len) as usize] = Some((b, in_flight_now));
            }
            w.health.ring.advance(now, &totals);
        }
        if w.percentiles.ring.due(now) {
            let histograms = [
                self.latency_totals(Latency::Execution),
                self.latency_totals(Latency::Total),
            ];
            w.percentiles.ring.advance(now, &histograms);
        }
        self.set_next_rotation(w);
    }

    /// Cumulative totals over every slot.
    pub(crate) fn totals(&self) -> Totals {
        let mut out = [0u64; COUNTERS];
        for s in self.slots() {
            for (o, c) in out.iter_mut().zip(s.totals.iter()) {
                *o = o.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        out
    }

    pub(crate) fn in_flight(&self) -> i64 {
        in_flight_of(&self.totals())
    }

    fn latency_totals(&self, which: Latency) -> Histogram {
        let mut sum = vec![0u64; bucket_count()];
        for s in self.slots() {
            if let Some(buckets) = s.latency[which as usize].get() {
                for (a, b) in sum.iter_mut().zip(buckets.iter()) {
                    *a = a.wrapping_add(b.load(Ordering::Relaxed));
                }
            }
        }
        Histogram::from_buckets(GROUPING_POWER, MAX_VALUE_POWER, sum)
            .expect("bucket count matches the configuration")
    }

    /// Totals of the rolling window ending at `now`; with `since_reset`, not before the
    /// breaker last closed.
    pub(crate) fn window(&self, now: u64, since_reset: bool) -> WindowTotals {
        let w = self.lock();
        let totals = self.totals();
        let ring = &w.health.ring;
        let start = ring.window_start(now);
        let mut out = WindowTotals::default();
        if start > ring.last {
            // Nothing was recorded since a boundary inside the window.
            out.max_in_flight = self.in_flight();
            return out;
        }
        let start_nanos = start.saturating_mul(ring.bucket_nanos);
        let base = if since_reset && w.health.reset.0 >= start_nanos {
            &w.health.reset.1
        } else if w.health.floor.0 > start_nanos {
            &w.health.floor.1
        } else {
            ring.at(start).unwrap_or(&w.health.floor.1)
        };
        for (i, t) in out.totals.iter_mut().enumerate() {
            *t = totals[i].wrapping_sub(base[i]);
        }
        let mut peak = self.peak.load(Ordering::Relaxed).max(in_flight_of(&totals));
        for (b, m) in w.health.max_in_flight.iter().flatten() {
            if *b >= start && *b < ring.last {
                peak = peak.max(*m);
            }
        }
        out.max_in_flight = peak;
        out
    }

    /// Latency histograms (execution, total) of the percentile window ending at `now`.
    pub(crate) fn latency_window(&self, now: u64) -> [Histogram; 2] {
        let w = self.lock();
        let ring = &w.percentiles.ring;
        let start = ring.window_start(now);
        if start > ring.last {
            return [new_histogram(), new_histogram()];
        }
        let base = ring.at(start).unwrap_or(&w.percentiles.floor);
        let current = [
            self.latency_totals(Latency::Execution),
            self.latency_totals(Latency::Total),
        ];
        let mut out = [new_histogram(), new_histogram()];
        for k in 0..2 {
            for ((o, c), b) in out[k]
                .as_mut_slice()
                .iter_mut()
                .zip(current[k].as_slice())
                .zip(base[k].as_slice())
            {
                *o = c.wrapping_sub(*b);
            }
        }
        out
    }

    /// Cumulative latency histograms (execution, total), for metrics exporters.
    pub(crate) fn latency_cumulative(&self) -> [Histogram; 2] {
        [
            self.latency_totals(Latency::Execution),
            self.latency_totals(Latency::Total),
        ]
    }

    /// Empties the health window from `now` on (the breaker closed).
    pub(crate) fn reset_window(&self, now: u64) {
        let mut w = self.lock();
        self.rotate_locked(&mut w, now);
        w.health.reset = (now, self.totals());
    }

    /// Starts new windows with other bucket sizes (the configuration changed).
    pub(crate) fn reconfigure(&self, now: u64, health: (u64, u32), percentiles: (u64, u32)) {
        let mut w = self.lock();
        self.rotate_locked(&mut w, now);
        let totals = self.totals();
        if (w.health.ring.bucket_nanos, w.health.ring.len() as u32) != health {
            w.health = HealthWindow {
                ring: Ring::new(health.0, health.1, now, totals),
                max_in_flight: vec![None; health.1 as usize],
                floor: (now, totals),
                reset: (now, totals),
            };
        }
        if (
            w.percentiles.ring.bucket_nanos,
            w.percentiles.ring.len() as u32,
        ) != percentiles
        {
            let current = self.latency_cumulative();
            w.percentiles = PercentileWindow {
                ring: Ring::new(percentiles.0, percentiles.1, now, current.clone()),
                floor: current,
            };
        }
        self.set_next_rotation(&w);
    }
}

mod count_window;

pub(crate) use count_window::CountWindow;

#[cfg(test)]
mod tests;
