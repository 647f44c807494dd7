//! The count-based health window: the outcomes of the last N calls, as a ring of one-byte
//! slots with running totals.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use super::{COUNTERS, FAILURE, REJECTED, SLOW, SUCCESS, TIMEOUT, Totals};

/// The outcomes of the last N calls.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: CachePadded<AtomicU64>,
    /// Running totals of success, failure, timeout, rejected and slow among the slots.
    totals: [AtomicU64; 5],
}

const SLOT_EMPTY: u8 = 0;
const SLOT_SLOW: u8 = 0x80;

impl CountWindow {
    pub(crate) fn new(calls: u32) -> Self {
        CountWindow {
            slots: (0..calls).map(|_| AtomicU8::new(SLOT_EMPTY)).collect(),
            next: CachePadded::new(AtomicU64::new(0)),
            totals: Default::default(),
        }
    }

    /// Remembers one call; `counter` is SUCCESS, FAILURE, TIMEOUT or REJECTED.
    pub(crate) fn push(&self, counter: usize, slow: bool) {
        debug_assert!(counter <= REJECTED);
        let slot = (counter as u8 + 1) | if slow { SLOT_SLOW } else { 0 };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let old = self.slots[i as usize].swap(slot, Ordering::AcqRel);
        self.add(slot, 1);
        self.add(old, u64::MAX); // wrapping -1
    }

    fn add(&self, slot: u8, delta: u64) {
        if slot == SLOT_EMPTY {
            return;
        }
        let counter = ((slot & !SLOT_SLOW) - 1) as usize;
        self.totals[counter].fetch_add(delta, Ordering::Relaxed);
        if slot & SLOT_SLOW != 0 {
            self.totals[4].fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub(crate) fn clear(&self) {
        for s in self.slots.iter() {
            let old = s.swap(SLOT_EMPTY, Ordering::AcqRel);
            self.add(old, u64::MAX);
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut out = [0u64; COUNTERS];
        for (i, c) in [SUCCESS, FAILURE, TIMEOUT, REJECTED, SLOW]
            .into_iter()
            .enumerate()
        {
            out[c] = self.totals[i].load(Ordering::Relaxed);
        }
        out
    }
}
