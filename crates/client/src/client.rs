//! [`Client`]: where calls start, and [`ClientBuilder`], how it is set up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use breakwater_balance::{BalanceConfig, Endpoint};
use breakwater_circuit_breaker::classify::{Outcome, classify_http_status};
use breakwater_circuit_breaker::{CircuitBreaker, CircuitBreakerRegistry};
use breakwater_discovery::EurekaClient;
use breakwater_tracing_mw::RequestContext;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use crate::body::Body;
use crate::builder::{ClientBuilder, key, parse_list};
use crate::config::{CallConfig, CallConfigError};
use crate::durations::{Durations, Peer, Timing};
use crate::error::{Error, ErrorKind};
use crate::metrics::{CallStats, Counters};
use crate::request::RequestBuilder;
use crate::response_body::ResponseBody;
use crate::retry::{Deadline, Retries, Target};
use crate::transport::{Transport, Transports};
use crate::upstream::{Source, Upstream};

/// Most distinct services one client calls; past it, calls to a new one fail (service names
/// can come from input).
pub const MAX_SERVICES: usize = 1024;

/// The smart HTTP client. Cheap to clone (clones share the pool, the services' balancers,
/// breakers and budgets).
///
/// `service://NAME/path` finds an instance of `NAME` at run time, from a static list or a
/// `dns:NAME:PORT` source (given to the builder or in `BREAKWATER_SERVICE_<NAME>`), or else
/// from Eureka; `http://` and `https://` URLs
/// go where they say. See the crate docs for the stack every call goes through.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// Told of each service a client calls; `false` unregisters it.
type Hook = Arc<dyn Fn(&Client, &str) -> bool + Send + Sync>;

pub(crate) struct Inner {
    /// What every service's pool is made from.
    pub(crate) transports: Transports,
    /// `ClientBuilder::connect_timeout`: of plain URLs, and of services without their own.
    pub(crate) connect_timeout: Duration,
    /// The pool of plain URLs.
    pub(crate) direct_pool: Transport,
    pub(crate) hooks: Mutex<Vec<Hook>>,
    /// Per service, what answers its failed calls.
    pub(crate) fallbacks: HashMap<String, crate::builder::Fallback>,
    /// Every attempt's duration, by service and instance.
    pub(crate) durations: Arc<Durations>,
    pub(crate) eureka: Option<EurekaClient>,
    pub(crate) registry: CircuitBreakerRegistry,
    pub(crate) lists: Mutex<HashMap<String, watch::Sender<Vec<Endpoint>>>>,
    /// Services whose instances are a name's DNS records: the name and port.
    pub(crate) dns: Mutex<HashMap<String, (String, u16)>>,
    #[cfg_attr(not(feature = "dns"), allow(dead_code))]
    pub(crate) dns_servers: Option<Vec<std::net::SocketAddr>>,
    /// Made at the first call to a `dns:` service.
    #[cfg(feature = "dns")]
    pub(crate) dns_resolver: std::sync::OnceLock<breakwater_balance::dns::DnsResolver>,
    pub(crate) upstreams: Mutex<HashMap<Arc<str>, Arc<Upstream>>>,
    pub(crate) defaults: CallConfig,
    pub(crate) configs: Mutex<HashMap<String, CallConfig>>,
    pub(crate) balance: BalanceConfig,
    /// Calls to plain URLs: retries of unsent requests and idempotent ones, one budget.
    pub(crate) direct: Arc<ArcSwap<Retries>>,
    pub(crate) direct_counters: Arc<Counters>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `name` can be a service name: letters, digits, `-`, `_`, `.`, at most 253.
fn valid_service(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A direct call's target: the URL's host.
struct Direct(Transport, Arc<Durations>);

impl Target for Direct {
    fn send(
        &self,
        request: Request<Body>,
        _avoid: &[Arc<str>],
    ) -> BoxFuture<'static, Result<Response<Incoming>, breakwater_circuit_breaker::error::BoxError>>
    {
        let uri = request.uri();
        let https = uri.scheme_str() == Some("https");
        let peer = Peer {
            service: "".into(),
            address: uri.host().unwrap_or("").into(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        };
        let timing = Timing::start(&self.1, peer, request.method());
        let call = self.0.clone().oneshot(request);
        Box::pin(async move { crate::instance::timed(timing, call.await.map_err(Into::into)) })
    }
}

impl Client {
    /// A client with the defaults (and `BREAKWATER_SERVICE_*` lists from the environment).
    pub fn new() -> Result<Client, Error> {
        Client::builder().build()
    }

    /// Sets up a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A GET of `url`.
    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A POST to `url`.
    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A PUT to `url`.
    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// A PATCH of `url`.
    pub fn patch(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// A DELETE of `url`.
    pub fn delete(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// A HEAD of `url`.
    pub fn head(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// A request of any method.
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url.as_ref())
    }

    /// Replaces the static list of `service` (creating one), at run time; its balancer follows.
    pub fn set_instances<I, S>(&self, service: &str, instances: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let items: Vec<S> = instances.into_iter().collect();
        if items.iter().any(|i| i.as_ref().trim().starts_with("dns:")) {
            return Err(Error::builder(
                format!("service://{service}"),
                "a dns: source is chosen when the client is built (ClientBuilder::instances or $BREAKWATER_SERVICE_*)",
            ));
        }
        let list = parse_list(service, items)?;
        let mut lists = lock(&self.inner.lists);
        match lists.get(key(service).as_ref()) {
            Some(sender) => {
                sender.send_replace(list);
            }
            None => {
                lists.insert(key(service).into_owned(), watch::channel(list).0);
            }
        }
        Ok(())
    }

    /// The call settings of `service` in force.
    pub fn call_config(&self, service: &str) -> CallConfig {
        if let Some(upstream) = lock(&self.inner.upstreams).get(key(service).as_ref()) {
            return upstream.config();
        }
        lock(&self.inner.configs)
            .get(key(service).as_ref())
            .cloned()
            .unwrap_or_else(|| self.inner.defaults.clone())
    }

    /// Changes the call settings of `service`, for its next call.
    pub fn set_call_config(
        &self,
        service: &str,
        config: CallConfig,
    ) -> Result<(), CallConfigError> {
        config.validate()?;
        if let Some(upstream) = lock(&self.inner.upstreams).get(key(service).as_ref()) {
            upstream.set_config(config.clone())?;
        }
        lock(&self.inner.configs).insert(key(service).into_owned(), config);
        Ok(())
    }

    /// What the client has done for `service` (`None` before its first call), or, for
    /// `None`, for every plain `http(s)://` URL.
    pub fn stats(&self, service: Option<&str>) -> Option<CallStats> {
        match service {
            None => Some(self.inner.direct_counters.stats()),
            Some(service) => lock(&self.inner.upstreams)
                .get(key(service).as_ref())
                .map(|u| u.counters.stats()),
        }
    }

    /// The instances behind `service` as its balancer sees them (`None` before its first
    /// call).
    pub fn instances(&self, service: &str) -> Option<breakwater_balance::BalancerSnapshot> {
        lock(&self.inner.upstreams)
            .get(key(service).as_ref())
            .map(|u| u.balancer.snapshot())
    }

    /// The circuit breaker of `service` (`None` before its first call).
    pub fn breaker(&self, service: &str) -> Option<CircuitBreaker> {
        lock(&self.inner.upstreams)
            .get(key(service).as_ref())
            .map(|u| u.breaker.clone())
    }

    /// The balancer settings of `service` in force (`None` before its first call).
    pub fn balance_config(&self, service: &str) -> Option<BalanceConfig> {
        lock(&self.inner.upstreams)
            .get(key(service).as_ref())
            .map(|u| u.balancer.config())
    }

    /// Changes the balancer settings of `service` (after its first call; the settings of
    /// services not called yet are [`ClientBuilder::balance_config`]'s).
    pub fn set_balance_config(&self, service: &str, config: BalanceConfig) -> Result<(), Error> {
        let upstream = lock(&self.inner.upstreams)
            .get(key(service).as_ref())
            .cloned();
        let target = || format!("service://{service}");
        match upstream {
            Some(upstream) => upstream
                .balancer
                .set_config(config)
                .map_err(|e| Error::builder(target(), e)),
            None => Err(Error::new(ErrorKind::UnknownService, target())
                .with_source("not called yet: its balancer does not exist")),
        }
    }

    /// Calls `hook` with the name of every service this client calls: those it has called,
    /// now, and each new one once, before its first call is sent (so settings bound by the
    /// hook apply from the start). A hook that returns `false` is not called again. This is
    /// how `breakwater-dyn-config` binds live settings to services made on demand.
    pub fn on_service(&self, hook: impl Fn(&Client, &str) -> bool + Send + Sync + 'static) {
        let hook: Hook = Arc::new(hook);
        lock(&self.inner.hooks).push(hook.clone());
        for service in self.services() {
            if !hook(self, &service) {
                lock(&self.inner.hooks).retain(|h| !Arc::ptr_eq(h, &hook));
                return;
            }
        }
    }

    /// The services this client has called, by name.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.upstreams)
            .values()
            .map(|u| u.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// The service's state, made on its first call.
    fn upstream(&self, service: &str) -> Result<Arc<Upstream>, Error> {
        let target = || format!("service://{service}");
        if !valid_service(service) {
            return Err(Error::new(ErrorKind::InvalidUrl, target())
                .with_source("a service name is letters, digits, '-', '_' and '.', at most 253"));
        }
        let name = key(service);
        let name: &str = &name;
        let mut upstreams = lock(&self.inner.upstreams);
        if let Some(upstream) = upstreams.get(name) {
            return Ok(upstream.clone());
        }
        if upstreams.len() >= MAX_SERVICES {
            return Err(Error::new(ErrorKind::UnknownService, target())
                .with_source(format!("this client already calls {MAX_SERVICES} services")));
        }
        let mut list = lock(&self.inner.lists)
            .get(name)
            .map(watch::Sender::subscribe);
        if list.is_none()
            && let Some((host, port)) = lock(&self.inner.dns).get(name).cloned()
        {
            list = Some(self.dns_list(service, host, port)?);
        }
        let source = match (&list, &self.inner.eureka) {
            (Some(list), _) => Source::Static(list.clone()),
            (None, Some(eureka)) => Source::Eureka(eureka),
            (None, None) => return Err(Error::new(ErrorKind::UnknownService, target())),
        };
        let config = lock(&self.inner.configs)
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.inner.defaults.clone());
        let breaker = self
            .inner
            .registry
            .register(CircuitBreaker::builder(name).config(crate::config::breaker_config()))
            .map_err(|e| Error::builder(target(), e))?;
        let upstream = Upstream::new(name, source, &self.inner, breaker, config)
            .map_err(|e| Error::builder(target(), e))?;
        let upstream = Arc::new(upstream);
        upstreams.insert(upstream.name.clone(), upstream.clone());
        drop(upstreams);
        // Bindings set the new service up before its first call goes out.
        let hooks = lock(&self.inner.hooks).clone();
        let dropped: Vec<Hook> = hooks
            .into_iter()
            .filter(|hook| !hook(self, &upstream.name))
            .collect();
        if !dropped.is_empty() {
            lock(&self.inner.hooks).retain(|h| !dropped.iter().any(|d| Arc::ptr_eq(h, d)));
        }
        Ok(upstream)
    }

    /// Starts following the DNS records of `host` for `service`.
    #[cfg(feature = "dns")]
    fn dns_list(
        &self,
        service: &str,
        host: String,
        port: u16,
    ) -> Result<watch::Receiver<Vec<Endpoint>>, Error> {
        use breakwater_balance::dns::{DnsConfig, DnsDiscover, DnsResolver};
        let resolver = match self.inner.dns_resolver.get() {
            Some(resolver) => resolver.clone(),
            None => {
                let resolver = match &self.inner.dns_servers {
                    Some(servers) => DnsResolver::with_name_servers(servers),
                    None => DnsResolver::system().map_err(|e| {
                        Error::builder(format!("service://{service}"), format!("DNS: {e}"))
                    })?,
                };
                self.inner.dns_resolver.get_or_init(|| resolver).clone()
            }
        };
        Ok(DnsDiscover::spawn(&resolver, DnsConfig::new(host, port)))
    }

    #[cfg(not(feature = "dns"))]
    fn dns_list(
        &self,
        service: &str,
        host: String,
        _port: u16,
    ) -> Result<watch::Receiver<Vec<Endpoint>>, Error> {
        Err(Error::builder(
            format!("service://{service}"),
            format!("dns:{host}: this build has no feature `dns`"),
        ))
    }

    /// Sends `request` through the stack: the face under both the convenience API and the
    /// tower `Service`.
    pub(crate) async fn execute(
        &self,
        mut request: Request<Body>,
        timeout: Option<Duration>,
    ) -> Result<Response<ResponseBody>, Error> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("");
        match scheme {
            "service" => {
                let service = uri.host().unwrap_or("");
                let upstream = self.upstream(service)?;
                let target = ServiceTarget(service);
                let limit = [timeout, upstream.timeout()].into_iter().flatten().min();
                if let Some(limit) = limit {
                    request
                        .extensions_mut()
                        .insert(Deadline(tokio::time::Instant::now() + limit));
                }
                let call = upstream.stack.clone().oneshot(request);
                let result = bounded(call, timeout, &upstream.counters, &target).await;
                match result {
                    // The deadline passed while discovery still had no instance: say that.
                    Err(error)
                        if error.is_timeout()
                            && upstream.balancer.snapshot().instances.is_empty() =>
                    {
                        Err(
                            Error::new(ErrorKind::NoInstances, target.to_string()).with_source(
                                format!("none found before the call's deadline ({error})"),
                            ),
                        )
                    }
                    result => result,
                }
            }
            "http" | "https" => {
                let target = UrlWithoutQuery(&uri);
                if let Some(limit) = timeout {
                    request
                        .extensions_mut()
                        .insert(Deadline(tokio::time::Instant::now() + limit));
                }
                let retries = self.inner.direct.load_full();
                let direct = Direct(self.inner.direct_pool.clone(), self.inner.durations.clone());
                let call = async move {
                    let response = retries.send(&direct, request).await?;
                    Ok(response.map(ResponseBody::from))
                };
                bounded(call, timeout, &self.inner.direct_counters, &target).await
            }
            "" => Err(Error::new(ErrorKind::InvalidUrl, uri.to_string())
                .with_source("no scheme: expected http://, https:// or service://")),
            other => Err(Error::new(ErrorKind::UnsupportedScheme, uri.to_string())
                .with_source(format!("{other}://"))),
        }
    }

    /// The largest response body the convenience API reads for `uri` (read in place: no copy
    /// of the settings per call).
    pub(crate) fn body_limit(&self, uri: &http::Uri) -> usize {
        let service = match uri.scheme_str() {
            Some("service") => uri.host().unwrap_or(""),
            _ => return self.inner.defaults.max_response_bytes,
        };
        if let Some(upstream) = lock(&self.inner.upstreams).get(key(service).as_ref()) {
            return upstream.retries.load().config.max_response_bytes;
        }
        lock(&self.inner.configs)
            .get(key(service).as_ref())
            .map_or(self.inner.defaults.max_response_bytes, |c| {
                c.max_response_bytes
            })
    }
}

/// Runs the stack's `call`, within `timeout` when one is given, and counts its outcome.
async fn bounded(
    call: impl Future<
        Output = Result<Response<ResponseBody>, breakwater_circuit_breaker::error::BoxError>,
    >,
    timeout: Option<Duration>,
    counters: &Counters,
    target: &(dyn std::fmt::Display + Sync),
) -> Result<Response<ResponseBody>, Error> {
    let result = match timeout {
        Some(after) => match tokio::time::timeout(after, call).await {
            Ok(result) => result,
            Err(_) => {
                counters.finished(false);
                return Err(Error::timeout(&target.to_string(), after, 0));
            }
        },
        None => call.await,
    };
    finish(counters, target, result)
}

fn finish(
    counters: &Counters,
    target: &(dyn std::fmt::Display + Sync),
    result: Result<Response<ResponseBody>, breakwater_circuit_breaker::error::BoxError>,
) -> Result<Response<ResponseBody>, Error> {
    match result {
        Ok(response) => {
            counters.finished(classify_http_status(response.status()) != Outcome::Failure);
            Ok(response)
        }
        Err(error) => {
            counters.finished(false);
            Err(Error::from_stack(&target.to_string(), error))
        }
    }
}

/// `service://NAME`, for errors (written only when there is one).
struct ServiceTarget<'a>(&'a str);

impl std::fmt::Display for ServiceTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service://{}", self.0)
    }
}

/// A URL without its query (which may hold secrets), for errors and logs.
pub(crate) struct UrlWithoutQuery<'a>(pub(crate) &'a http::Uri);

impl std::fmt::Display for UrlWithoutQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let (Some(scheme), Some(authority)) = (self.0.scheme_str(), self.0.authority()) {
            write!(f, "{scheme}://{authority}")?;
        }
        f.write_str(self.0.path())
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("services", &self.services())
            .field("eureka", &self.inner.eureka.is_some())
            .finish()
    }
}

/// The tower face: any `http::Request<Body>` with an `http`, `https` or `service` URL. Put
/// [`Deadline`] and [`RetryNonIdempotent`](crate::RetryNonIdempotent) in its extensions to
/// bound or widen the retries.
impl Service<Request<Body>> for Client {
    type Response = Response<ResponseBody>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<ResponseBody>, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if request.extensions().get::<RequestContext>().is_none()
            && let Some(context) = RequestContext::current()
        {
            request.extensions_mut().insert(context);
        }
        let client = self.clone();
        let timeout = request
            .extensions()
            .get::<Deadline>()
            .map(|d| d.0.saturating_duration_since(tokio::time::Instant::now()));
        Box::pin(async move { client.execute(request, timeout).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lists_are_read_strictly() {
        let list = parse_list("pay", "127.0.0.1:8080, [::1]:9090".split(',')).unwrap();
        assert_eq!(list[0].authority(), "127.0.0.1:8080");
        assert_eq!(list[1].authority(), "[::1]:9090");
        for bad in ["127.0.0.1", "host:x", ":80", "h:70000"] {
            let e = parse_list("pay", [bad]).unwrap_err();
            assert!(
                e.to_string().contains("service://pay") && e.to_string().contains(bad),
                "{e}"
            );
        }
        assert!(valid_service("payments-v2.eu"));
        assert!(
            !valid_service("pay ments") && !valid_service("") && !valid_service(&"a".repeat(254))
        );
    }
}
