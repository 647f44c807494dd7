//! [`Balancer`]: a tower `Service` that sends each request to one instance of a service.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use breakwater_circuit_breaker::classify::{AnyError, Classify};
use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{CircuitBreaker, Clock};
use breakwater_discovery::EurekaClient;
use tokio::time::Instant;
use tower::Service;
use tower::discover::{Change, Discover};

use crate::config::{BalanceConfig, SettingError};
use crate::cost::Estimator;
use crate::discover::{EurekaDiscover, StaticDiscover};
use crate::endpoint::Endpoint;
use crate::future::{BalancerFuture, Call};
use crate::member::{Core, Member, Settings};
use crate::pick::Members;
use crate::registry::BalancerRegistry;

/// No instance of a service could take a request: none discovered (after the start-up wait),
/// or every one removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoInstances {
    /// The service (application or VIP name) the balancer is for.
    pub service: Arc<str>,
}

impl fmt::Display for NoInstances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no instance of service `{}` is known to the balancer",
            self.service
        )
    }
}

impl std::error::Error for NoInstances {}

pub(crate) struct Shared<S, C> {
    pub(crate) core: Arc<Core>,
    pub(crate) members: ArcSwap<Members<S>>,
    make: Box<dyn Fn(&Endpoint) -> S + Send + Sync>,
    classify: C,
    started: Instant,
    /// Set once discovery has brought at least one instance (or given up).
    discovered: AtomicBool,
    /// The task that follows discovery, stopped when the last balancer clone goes.
    follower: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl<S, C> Drop for Shared<S, C> {
    fn drop(&mut self) {
        if let Some(task) = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Sends each request to one instance of a service: power of two choices over a cost that
/// follows latency and failures ([`cost`](crate::cost)), among the instances whose breaker
/// has not ejected them, in the caller's zone first; over every instance when fewer than the
/// panic threshold are healthy. Instances come from a `tower::discover` stream of
/// [`Endpoint`]s; `make` turns each into the service that reaches it.
///
/// Cheap to clone: clones share the instances, their state and the settings. Needs a Tokio
/// runtime: a task follows discovery for as long as a clone is alive.
///
/// ```
/// use breakwater_balance::{BalanceConfig, Balancer, Endpoint};
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (_list, updates) = tokio::sync::watch::channel(vec![
///     Endpoint::new("a", "10.0.0.1", 8080),
///     Endpoint::new("b", "10.0.0.2", 8080),
/// ]);
/// // A stand-in for an HTTP client bound to the instance's address.
/// let make = |e: &Endpoint| {
///     let authority = e.authority();
///     service_fn(move |path: &'static str| {
///         let authority = authority.clone();
///         async move { Ok::<_, std::io::Error>(format!("{authority}{path}")) }
///     })
/// };
/// let balancer = Balancer::fixed("payments", updates, make, BalanceConfig::default()).unwrap();
/// let answer = balancer.clone().oneshot("/charge").await.unwrap();
/// assert!(answer.ends_with(":8080/charge"), "{answer}");
/// assert_eq!(balancer.snapshot().instances.len(), 2);
/// # }
/// ```
pub struct Balancer<S, C = AnyError> {
    pub(crate) shared: Arc<Shared<S, C>>,
}

impl<S, C: Clone> Clone for Balancer<S, C> {
    fn clone(&self) -> Self {
        Balancer {
            shared: self.shared.clone(),
        }
    }
}

impl<S, C> fmt::Debug for Balancer<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("service", &self.shared.core.service)
            .field("instances", &self.shared.members.load().all.len())
            .finish()
    }
}

impl<S> Balancer<S>
where
    S: Send + Sync + 'static,
{
    /// The `UP` instances of `app_or_vip` in `client`'s view; every `Err` of an instance is
    /// a failure (use [`with_classifier`](Self::with_classifier) for HTTP statuses).
    pub fn eureka(
        client: &EurekaClient,
        app_or_vip: impl Into<String>,
        make: impl Fn(&Endpoint) -> S + Send + Sync + 'static,
        config: BalanceConfig,
    ) -> Result<Self, SettingError> {
        let app_or_vip = app_or_vip.into();
        let discover = EurekaDiscover::new(client, app_or_vip.clone(), Endpoint::clone);
        Self::with_classifier(app_or_vip, discover, make, config, AnyError)
    }

    /// The endpoints of a list that can change at run time.
    pub fn fixed(
        service: impl Into<String>,
        list: tokio::sync::watch::Receiver<Vec<Endpoint>>,
        make: impl Fn(&Endpoint) -> S + Send + Sync + 'static,
        config: BalanceConfig,
    ) -> Result<Self, SettingError> {
        let discover = StaticDiscover::new(list, Endpoint::clone);
        Self::with_classifier(service, discover, make, config, AnyError)
    }
}

impl<S, C> Balancer<S, C>
where
    S: Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    /// A balancer for `service` over the endpoints `discover` yields, telling failures with
    /// `classify` (an HTTP 503 is an `Ok` to the client, a failure to the balancer: use
    /// `HttpStatus`).
    pub fn with_classifier<D>(
        service: impl Into<String>,
        discover: D,
        make: impl Fn(&Endpoint) -> S + Send + Sync + 'static,
        config: BalanceConfig,
        classify: C,
    ) -> Result<Self, SettingError>
    where
        D: Discover<Key = String, Service = Endpoint> + Send + 'static,
        D::Error: Into<BoxError> + Send,
    {
        config.validate()?;
        let service: Arc<str> = service.into().into();
        let shared = Arc::new(Shared {
            core: Arc::new(Core::new(service, config)),
            members: ArcSwap::from_pointee(Members::default()),
            make: Box::new(make),
            classify,
            started: Instant::now(),
            discovered: AtomicBool::new(false),
            follower: std::sync::Mutex::new(None),
        });
        let task = tokio::spawn(follow(Arc::downgrade(&shared), discover));
        *shared.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        let balancer = Balancer { shared };
        BalancerRegistry::global().add(&balancer);
        Ok(balancer)
    }
}

impl<S, C> Balancer<S, C> {
    /// The service this balancer is for.
    pub fn service(&self) -> &str {
        &self.shared.core.service
    }

    /// The settings in force.
    pub fn config(&self) -> BalanceConfig {
        self.shared.core.settings.load().config.clone()
    }

    /// Replaces every setting at once, for the next request; the instances keep their
    /// latency, failures and ejections. Invalid settings are refused and the old ones stay.
    pub fn set_config(&self, config: BalanceConfig) -> Result<(), SettingError> {
        config.validate()?;
        let shared = &self.shared;
        let _writer = shared.core.lock();
        let breaker = config.breaker_config();
        let members = shared.members.load_full();
        for member in &members.all {
            member
                .breaker
                .set_config(breaker.clone())
                .map_err(|e| SettingError {
                    setting: "ejection".into(),
                    reason: e.to_string(),
                })?;
        }
        shared.core.settings.store(Arc::new(Settings::new(config)));
        shared.rebuild(members.all.clone());
        tracing::info!(service = %shared.core.service, "balancer settings changed");
        Ok(())
    }

    /// Changes some settings: `change` edits a copy of the current ones, which then goes
    /// through [`set_config`](Self::set_config).
    pub fn update(&self, change: impl FnOnce(&mut BalanceConfig)) -> Result<(), SettingError> {
        let mut config = self.config();
        change(&mut config);
        self.set_config(config)
    }
}

impl<S, C> Shared<S, C> {
    /// Puts `all` in force as the member list, with the zone positions and local counts the
    /// settings call for. Called with the writer lock.
    fn rebuild(&self, all: Vec<Arc<Member<S>>>) {
        let settings = self.core.settings.load();
        let zone = settings
            .config
            .zone
            .as_deref()
            .filter(|_| settings.config.zone_affinity);
        let mut local = Vec::new();
        let mut remote = Vec::new();
        let mut ejected_local = 0;
        for (i, member) in all.iter().enumerate() {
            let is_local = zone.is_some_and(|zone| {
                member
                    .endpoint
                    .zone
                    .as_deref()
                    .is_some_and(|z| z.eq_ignore_ascii_case(zone))
            });
            member.local.store(is_local, Ordering::Relaxed);
            if zone.is_some() {
                if is_local {
                    local.push(i);
                    ejected_local += usize::from(member.ejected.load(Ordering::Relaxed));
                } else {
                    remote.push(i);
                }
            }
        }
        self.core
            .ejected_local
            .store(ejected_local, Ordering::Relaxed);
        self.members.store(Arc::new(Members { all, local, remote }));
    }

    fn member(&self, endpoint: Endpoint) -> Arc<Member<S>> {
        let settings = self.core.settings.load();
        let breaker = CircuitBreaker::builder(format!("{} {}", self.core.service, endpoint.id))
            .group(&*self.core.service)
            .config(settings.config.breaker_config())
            // The clock of the rest of the balancer (and of tokio's paused-time tests).
            .clock(Clock::tokio())
            .build_freed_when_dropped()
            .expect("validated with the settings");
        Arc::new(Member {
            service: (self.make)(&endpoint),
            estimator: Estimator::new(&settings.cost),
            endpoint,
            breaker,
            core: self.core.clone(),
            ejected: AtomicBool::new(false),
            local: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            ejections: AtomicU64::new(0),
        })
    }

    /// One change from discovery. A removed instance gets no new requests; those in flight
    /// hold their member and finish.
    fn apply(&self, change: Change<String, Endpoint>) {
        let _writer = self.core.lock();
        let current = self.members.load_full();
        let mut all: Vec<Arc<Member<S>>> = current.all.clone();
        match change {
            Change::Insert(id, endpoint) => {
                let existing = all.iter().position(|m| m.endpoint.id == id);
                if let Some(i) = existing {
                    if all[i].endpoint == endpoint {
                        return;
                    }
                    all[i].retire();
                    all[i] = self.member(endpoint);
                } else {
                    all.push(self.member(endpoint));
                }
            }
            Change::Remove(id) => {
                let Some(i) = all.iter().position(|m| m.endpoint.id == id) else {
                    return;
                };
                all.swap_remove(i).retire();
            }
        }
        self.rebuild(all);
        if !self.members.load().all.is_empty() {
            self.discovered.store(true, Ordering::Release);
            self.core.changed.notify_waiters();
        }
    }
}

/// Follows `discover` into `shared`'s member list until the stream ends or the balancer goes.
async fn follow<S, C, D>(shared: Weak<Shared<S, C>>, discover: D)
where
    D: Discover<Key = String, Service = Endpoint>,
    D::Error: Into<BoxError> + Send,
{
    let mut discover = std::pin::pin!(discover);
    loop {
        let next = std::future::poll_fn(|cx| discover.as_mut().poll_discover(cx)).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let failed = match next {
            Some(Ok(change)) => {
                shared.apply(change);
                continue;
            }
            Some(Err(error)) => error.into().to_string(),
            None => {
                tracing::debug!(service = %shared.core.service, "discovery ended; the instances known stay in service");
                shared.discovered.store(true, Ordering::Release);
                shared.core.changed.notify_waiters();
                return;
            }
        };
        tracing::warn!(service = %shared.core.service, error = %failed, "discovery failed; the instances known stay in service");
        drop(shared);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

impl<S, C, Req> Service<Req> for Balancer<S, C>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    S::Response: Send + 'static,
    C: Classify<S::Response> + Clone + Send + Sync + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BalancerFuture<S, Req, C>;

    /// Always ready: an instance is picked per request, and each instance's service is made
    /// ready in the request's future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.call_avoiding(request, &[])
    }
}

impl<S, C> Balancer<S, C> {
    /// Sends `request` to an instance other than those of `avoid` (instance ids) when another
    /// can take it (admitted by its breaker, or in panic mode any other); else as
    /// [`call`](Service::call) would. A retry goes to a different instance this way.
    pub fn call_avoiding<Req>(&self, request: Req, avoid: &[Arc<str>]) -> BalancerFuture<S, Req, C>
    where
        S: Service<Req> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        S::Response: Send + 'static,
        C: Classify<S::Response> + Clone + Send + Sync + 'static,
        Req: Send + 'static,
    {
        let shared = &self.shared;
        let settings = shared.core.settings.load();
        if let Some(picked) = shared.members.load().pick(&settings, avoid) {
            return BalancerFuture::calling(Call::new(picked, request, shared.classify.clone()));
        }
        let deadline = shared.started + settings.config.startup_wait;
        let no_instances = || -> BoxError {
            NoInstances {
                service: shared.core.service.clone(),
            }
            .into()
        };
        if shared.discovered.load(Ordering::Acquire) || Instant::now() >= deadline {
            return BalancerFuture::failed(no_instances());
        }
        // Start-up: wait (bounded) for discovery to bring a first instance.
        let shared = shared.clone();
        let avoid = avoid.to_vec();
        BalancerFuture::waiting(Box::pin(async move {
            let wait = async {
                loop {
                    let changed = shared.core.changed.notified();
                    if !shared.members.load().all.is_empty()
                        || shared.discovered.load(Ordering::Acquire)
                    {
                        return;
                    }
                    changed.await;
                }
            };
            let _ = tokio::time::timeout_at(deadline, wait).await;
            let settings = shared.core.settings.load();
            let picked = shared.members.load().pick(&settings, &avoid);
            match picked {
                Some(picked) => Call::new(picked, request, shared.classify.clone()).await,
                None => Err(NoInstances {
                    service: shared.core.service.clone(),
                }
                .into()),
            }
        }))
    }
}
