//! [`ConnectionLimit`]: at most N of something open at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `max` connections (or streams) at once, shared by every clone: endpoints that
/// share a cap share one `ConnectionLimit`.
///
/// ```
/// use breakwater_server::ConnectionLimit;
///
/// let limit = ConnectionLimit::new(1);
/// let first = limit.try_acquire().expect("one place");
/// assert!(limit.try_acquire().is_none());
/// drop(first);
/// assert_eq!(limit.in_use(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    places: Arc<Semaphore>,
    max: usize,
}

/// One place under a [`ConnectionLimit`], given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl ConnectionLimit {
    /// A cap of `max` (at most [`Semaphore::MAX_PERMITS`]).
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        ConnectionLimit {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A place, or `None` when all `max` are taken.
    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        self.places
            .clone()
            .try_acquire_owned()
            .ok()
            .map(ConnectionPermit)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Places taken now.
    pub fn in_use(&self) -> usize {
        self.max - self.places.available_permits()
    }
}
