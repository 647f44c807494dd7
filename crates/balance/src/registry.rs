//! [`BalancerRegistry`]: the balancers of a process, for pages and metrics to read.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::balancer::{Balancer, Shared};
use crate::snapshot::BalancerSnapshot;

/// What the registry needs of a balancer, whatever its service types.
trait Observed: Send + Sync {
    fn snapshot(&self) -> BalancerSnapshot;
}

impl<S: Send + Sync, C: Send + Sync> Observed for Shared<S, C> {
    fn snapshot(&self) -> BalancerSnapshot {
        Shared::snapshot(self)
    }
}

/// The live balancers of a process. It holds none of them alive: a balancer whose last
/// clone is dropped leaves it, with its instances.
///
/// Every balancer joins [`BalancerRegistry::global`] when it is made.
#[derive(Default)]
pub struct BalancerRegistry {
    balancers: Mutex<Vec<Weak<dyn Observed>>>,
}

impl std::fmt::Debug for BalancerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerRegistry")
            .field("balancers", &self.lock().len())
            .finish()
    }
}

impl BalancerRegistry {
    /// The process-wide registry.
    pub fn global() -> &'static BalancerRegistry {
        static GLOBAL: OnceLock<BalancerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(BalancerRegistry::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn Observed>>> {
        self.balancers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add<S, C>(&self, balancer: &Balancer<S, C>)
    where
        S: Send + Sync + 'static,
        C: Send + Sync + 'static,
    {
        let shared: Arc<dyn Observed> = balancer.shared.clone();
        let weak = Arc::downgrade(&shared);
        drop(shared);
        let mut balancers = self.lock();
        balancers.retain(|b| b.strong_count() > 0);
        balancers.push(weak);
    }

    /// A snapshot of every live balancer, by service.
    pub fn snapshot(&self) -> Vec<BalancerSnapshot> {
        let live: Vec<Arc<dyn Observed>> = {
            let mut balancers = self.lock();
            balancers.retain(|b| b.strong_count() > 0);
            balancers.iter().filter_map(Weak::upgrade).collect()
        };
        let mut snapshots: Vec<BalancerSnapshot> = live.iter().map(|b| b.snapshot()).collect();
        snapshots.sort_by(|a, b| a.service.cmp(&b.service));
        snapshots
    }

    /// How many balancers are alive.
    pub fn len(&self) -> usize {
        let mut balancers = self.lock();
        balancers.retain(|b| b.strong_count() > 0);
        balancers.len()
    }

    /// Whether no balancer is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
