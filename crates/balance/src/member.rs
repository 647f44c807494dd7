//! One instance inside a balancer ([`Member`]) and what every member of one balancer shares
//! ([`Core`]): the settings in force and the counts of ejected instances that the panic
//! threshold and zone spill read on every pick.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use breakwater_circuit_breaker::{CircuitBreaker, State};
use tokio::sync::Notify;

use crate::config::BalanceConfig;
use crate::cost::{CostConfig, Estimator};
use crate::endpoint::Endpoint;

/// The settings in force, with the cost settings drawn from them once.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: BalanceConfig,
    pub(crate) cost: CostConfig,
}

impl Settings {
    pub(crate) fn new(config: BalanceConfig) -> Self {
        Settings {
            cost: config.cost(),
            config,
        }
    }
}

/// Shared by a balancer and each of its members.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) service: Arc<str>,
    pub(crate) settings: ArcSwap<Settings>,
    /// Members whose breaker is not closed (open or probing).
    pub(crate) ejected: AtomicUsize,
    /// Of those, members in the caller's zone.
    pub(crate) ejected_local: AtomicUsize,
    /// Held while members come and go or their ejection is counted.
    pub(crate) writer: Mutex<()>,
    /// Woken when discovery brings members.
    pub(crate) changed: Notify,
}

impl Core {
    pub(crate) fn new(service: Arc<str>, config: BalanceConfig) -> Self {
        Core {
            service,
            settings: ArcSwap::from_pointee(Settings::new(config)),
            ejected: AtomicUsize::new(0),
            ejected_local: AtomicUsize::new(0),
            writer: Mutex::new(()),
            changed: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One instance: where it is, the service that reaches it, its breaker and its cost.
pub(crate) struct Member<S> {
    pub(crate) endpoint: Endpoint,
    pub(crate) service: S,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) estimator: Estimator,
    pub(crate) core: Arc<Core>,
    /// Counted in `core.ejected` (and in `core.ejected_local` when `local`).
    pub(crate) ejected: AtomicBool,
    /// In the caller's zone, as of the last rebuild of the member list.
    pub(crate) local: AtomicBool,
    /// Still in the balancer's list; a removed member's ejection is no longer counted.
    pub(crate) alive: AtomicBool,
    /// Times ejected since it joined.
    pub(crate) ejections: AtomicU64,
}

impl<S> std::fmt::Debug for Member<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.endpoint.id)
            .field("state", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl<S> Member<S> {
    /// Brings the ejected counts in line with the breaker's state, after a call that may have
    /// moved it. The common case (no change) is two loads.
    #[inline]
    pub(crate) fn sync(&self) {
        let ejected = self.breaker.state() != State::Closed;
        if ejected != self.ejected.load(Ordering::Relaxed) {
            self.sync_slow();
        }
    }

    #[cold]
    fn sync_slow(&self) {
        let _writer = self.core.lock();
        if !self.alive.load(Ordering::Relaxed) {
            return;
        }
        let state = self.breaker.state();
        let ejected = state != State::Closed;
        if ejected == self.ejected.swap(ejected, Ordering::Relaxed) {
            return;
        }
        self.count_ejected(ejected);
        if ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                service = %self.core.service,
                instance = %self.endpoint.id,
                address = %self.endpoint.authority(),
                "instance ejected from balancing"
            );
        } else {
            self.estimator.forgive();
            tracing::info!(
                service = %self.core.service,
                instance = %self.endpoint.id,
                "instance back in balancing"
            );
        }
    }

    /// The member leaves the list: its ejection stops counting. Called with the writer lock.
    pub(crate) fn retire(&self) {
        self.alive.store(false, Ordering::Relaxed);
        if self.ejected.swap(false, Ordering::Relaxed) {
            self.count_ejected(false);
        }
    }

    /// One more (or one fewer) ejected member in the counts. Called with the writer lock.
    fn count_ejected(&self, ejected: bool) {
        let counts = [
            Some(&self.core.ejected),
            self.local
                .load(Ordering::Relaxed)
                .then_some(&self.core.ejected_local),
        ];
        for count in counts.into_iter().flatten() {
            if ejected {
                count.fetch_add(1, Ordering::Relaxed);
            } else {
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The member's weight as the cost sees it.
    pub(crate) fn weight(&self, settings: &Settings) -> u32 {
        if settings.config.weights {
            self.endpoint.weight
        } else {
            1
        }
    }
}
