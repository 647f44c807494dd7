//! Discovery as a stream of changes: [`EurekaDiscover`] and [`StaticDiscover`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use breakwater_discovery::{Applications, EurekaClient, Instance, Status};
use futures_core::Stream;
use tokio::sync::watch;
use tower::discover::Change;

use crate::endpoint::Endpoint;

type Waiting<T> = Pin<Box<dyn Future<Output = Option<watch::Receiver<T>>> + Send>>;

/// A watched value, read once at first and then at every change, until its sender goes.
struct Watched<T> {
    receiver: Option<watch::Receiver<T>>,
    waiting: Option<Waiting<T>>,
    started: bool,
}

impl<T: Send + Sync + 'static> Watched<T> {
    fn new(receiver: watch::Receiver<T>) -> Self {
        Watched {
            receiver: Some(receiver),
            waiting: None,
            started: false,
        }
    }

    /// `read` applied to the value when it is new (the first time, or changed since);
    /// `None` once the sender is gone.
    fn poll_value<R>(
        &mut self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&T) -> R,
    ) -> Poll<Option<R>> {
        if !self.started {
            self.started = true;
            if let Some(receiver) = self.receiver.as_mut() {
                return Poll::Ready(Some(read(&receiver.borrow_and_update())));
            }
        }
        let waiting = match (&mut self.waiting, self.receiver.take()) {
            (Some(waiting), _) => waiting,
            (None, Some(mut receiver)) => self.waiting.insert(Box::pin(async move {
                receiver.changed().await.ok().map(|()| receiver)
            })),
            (None, None) => return Poll::Ready(None),
        };
        match waiting.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.waiting = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(mut receiver)) => {
                self.waiting = None;
                let value = read(&receiver.borrow_and_update());
                self.receiver = Some(receiver);
                Poll::Ready(Some(value))
            }
        }
    }
}

/// The endpoints in service now, and the changes not yet handed out.
struct Diff<F, S> {
    current: HashMap<String, Endpoint>,
    pending: VecDeque<Change<String, S>>,
    make: F,
}

impl<F: Fn(&Endpoint) -> S, S> Diff<F, S> {
    fn new(make: F) -> Self {
        Diff {
            current: HashMap::new(),
            pending: VecDeque::new(),
            make,
        }
    }

    /// Queues what turns `current` into `next`: removals first, then new or changed
    /// endpoints (an insert under a known id replaces it).
    fn apply(&mut self, next: Vec<Endpoint>) {
        let next: HashMap<String, Endpoint> = next.into_iter().map(|e| (e.id.clone(), e)).collect();
        let gone: Vec<String> = self
            .current
            .keys()
            .filter(|id| !next.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.current.remove(&id);
            self.pending.push_back(Change::Remove(id));
        }
        let mut ids: Vec<&String> = next.keys().collect();
        ids.sort();
        for id in ids {
            let endpoint = &next[id];
            if self.current.get(id) != Some(endpoint) {
                self.pending
                    .push_back(Change::Insert(id.clone(), (self.make)(endpoint)));
                self.current.insert(id.clone(), endpoint.clone());
            }
        }
    }
}

/// The `UP` instances of one application (or VIP address) in an [`EurekaClient`]'s view, as
/// a `tower::discover` stream. While the registry cannot be reached the client keeps its last
/// view, and so the instances stay in service. An instance with no usable address or port is
/// left out, with a warning naming it (once).
pub struct EurekaDiscover<F, S> {
    watched: Watched<Arc<Applications>>,
    name: String,
    diff: Diff<F, S>,
    skipped: HashSet<String>,
}

// Never pinned structurally: every field may move.
impl<F, S> Unpin for EurekaDiscover<F, S> {}

impl<F: Fn(&Endpoint) -> S, S> EurekaDiscover<F, S> {
    /// The instances of `app_or_vip` (an application name or a VIP address, any case) that
    /// `client` sees; `make` turns each into the service requests go to.
    pub fn new(client: &EurekaClient, app_or_vip: impl Into<String>, make: F) -> Self {
        EurekaDiscover {
            watched: Watched::new(client.watch()),
            name: app_or_vip.into(),
            diff: Diff::new(make),
            skipped: HashSet::new(),
        }
    }
}

/// What the `UP` instances of `name` in `apps` come to; those that cannot be endpoints are
/// warned about once (remembered in `skipped`).
fn endpoints(name: &str, skipped: &mut HashSet<String>, apps: &Applications) -> Vec<Endpoint> {
    let wanted = |i: &Instance| {
        i.app.eq_ignore_ascii_case(name)
            || i.vip_address
                .as_deref()
                .is_some_and(|v| v.split(',').any(|v| v.trim().eq_ignore_ascii_case(name)))
    };
    let mut endpoints = Vec::new();
    for instance in apps
        .instances()
        .filter(|i| wanted(i) && i.status == Status::Up)
    {
        match Endpoint::from_instance(instance) {
            Ok(endpoint) => {
                skipped.remove(instance.id());
                endpoints.push(endpoint);
            }
            Err(reason) => {
                if skipped.insert(instance.id().to_owned()) {
                    tracing::warn!(service = %name, %reason, "instance left out of balancing");
                }
            }
        }
    }
    endpoints
}

impl<F: Fn(&Endpoint) -> S, S> Stream for EurekaDiscover<F, S> {
    type Item = Result<Change<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (name, skipped) = (this.name.as_str(), &mut this.skipped);
        poll_changes(&mut this.watched, &mut this.diff, cx, |apps| {
            endpoints(name, skipped, apps)
        })
    }
}

/// The next change: one queued, else what the watched value's next version comes to.
fn poll_changes<T, F, S>(
    watched: &mut Watched<T>,
    diff: &mut Diff<F, S>,
    cx: &mut Context<'_>,
    mut read: impl FnMut(&T) -> Vec<Endpoint>,
) -> Poll<Option<Result<Change<String, S>, Infallible>>>
where
    T: Send + Sync + 'static,
    F: Fn(&Endpoint) -> S,
{
    loop {
        if let Some(change) = diff.pending.pop_front() {
            return Poll::Ready(Some(Ok(change)));
        }
        match watched.poll_value(cx, &mut read) {
            Poll::Ready(Some(endpoints)) => diff.apply(endpoints),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// A list of endpoints that can change at run time (set from dyn-config, the environment or
/// code through the `watch` channel), as a `tower::discover` stream. The stream ends when the
/// sender is dropped; the services it gave stay with the balancer.
pub struct StaticDiscover<F, S> {
    watched: Watched<Vec<Endpoint>>,
    diff: Diff<F, S>,
}

// Never pinned structurally: every field may move.
impl<F, S> Unpin for StaticDiscover<F, S> {}

impl<F: Fn(&Endpoint) -> S, S> StaticDiscover<F, S> {
    /// The endpoints `list` holds, now and as it changes; `make` turns each into a service.
    /// Two endpoints with one id: the last wins.
    pub fn new(list: watch::Receiver<Vec<Endpoint>>, make: F) -> Self {
        StaticDiscover {
            watched: Watched::new(list),
            diff: Diff::new(make),
        }
    }
}

impl<F: Fn(&Endpoint) -> S, S> Stream for StaticDiscover<F, S> {
    type Item = Result<Change<String, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        poll_changes(&mut this.watched, &mut this.diff, cx, Vec::clone)
    }
}
