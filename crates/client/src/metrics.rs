//! Counts per service: requests by outcome, attempts that failed, retries, hedges, budget
//! refusals. Read them with [`Client::stats`](crate::Client::stats).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The counters of one service (or of every plain URL).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    hedges: AtomicU64,
    hedges_won: AtomicU64,
}

/// What a [`Client`](crate::Client) has done for one service since it first called it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls answered (any status but 5xx, 408, 429).
    pub succeeded: u64,
    /// Calls that failed (an error, or a 5xx/408/429 answer after the retries).
    pub failed: u64,
    /// Attempts that failed in a way worth retrying.
    pub failed_attempts: u64,
    /// Retries sent.
    pub retries: u64,
    /// Retries and hedges not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Calls a hedge answered first.
    pub hedges_won: u64,
}

impl Counters {
    pub(crate) fn finished(&self, success: bool) {
        if success {
            self.succeeded.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Relaxed);
    }
    pub(crate) fn hedge(&self) {
        self.hedges.fetch_add(1, Relaxed);
    }
    pub(crate) fn hedge_won(&self) {
        self.hedges_won.fetch_add(1, Relaxed);
    }

    pub(crate) fn stats(&self) -> CallStats {
        CallStats {
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            retries: self.retries.load(Relaxed),
            budget_exhausted: self.budget_exhausted.load(Relaxed),
            hedges: self.hedges.load(Relaxed),
            hedges_won: self.hedges_won.load(Relaxed),
        }
    }
}
